//! Authentication against the real OpenVPN 2.6 server, its `auth-user-pass-verify` scripts
//! deciding:
//!
//! - `static_challenge_scrv1`: `static-challenge "Enter PIN" 1` in the profile; the response is
//!   read from standard input (not a terminal) and sent as `SCRV1:base64(password):
//!   base64(response)`; the verify script accepts exactly that string, so a wrong response is
//!   refused (AUTH_FAILED, exit status non-zero) and the right one connects.
//! - `auth_retry_nointeract_keeps_trying`: a wrong password with `auth-retry nointeract`: the
//!   client does not exit, it tries again (the script runs several times).
//! - `auth_failed_temp_backoff`: the script refuses the first attempt with
//!   `TEMP[backoff 2]:maintenance window` in `$auth_failed_reason_file` (OpenVPN 2.6 sends
//!   `AUTH_FAILED,TEMP[backoff 2]:maintenance window`); the client says so, waits the 2 s the
//!   server asked for and connects on the next attempt.
//! - `dynamic_challenge_crv1`: the script refuses the first attempt with
//!   `CRV1:R,E:state42:base64(alice):Enter the code` in `$auth_failed_reason_file`; the client
//!   asks the question (answer from standard input) and reconnects with password
//!   `CRV1::state42::4321`, which the script accepts.
//! - `auth_pending_web_auth`: the script defers (exit 2) with `WEB_AUTH::URL` in
//!   `$auth_pending_file` and accepts 3 s later through `$auth_control_file`; the client prints
//!   the URL, stays pending past nothing but the server's timeout, then connects.
//!
//! Same prerequisites as tests/interop.rs (root, `openvpn`, network namespaces). Run:
//! `sudo -E cargo test --test auth_interop -- --nocapture`.

#![allow(clippy::disallowed_methods)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use support::client::{Client, ClientImpl};
use support::netns::Lab;
use support::openvpn::{Knobs, OpenVpnServer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

fn scrv1(password: &str, response: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD;
    format!("SCRV1:{}:{}", b.encode(password), b.encode(response))
}

/// Appends `lines` to the generated client profile.
fn add_to_profile(profile: &Path, lines: &[&str]) {
    let mut text = fs::read_to_string(profile).expect("read profile");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    fs::write(profile, text).expect("write profile");
}

/// A server whose verify script accepts `alice` with exactly `password`.
fn server_expecting(lab: &Lab, password: &str) -> OpenVpnServer {
    let mut server = OpenVpnServer::new(
        lab,
        Knobs {
            user_pass: Some((USER.into(), password.into())),
            ..Knobs::default()
        },
    );
    server.start(lab);
    server
}

fn client_with_stdin(lab: &Lab, profile: &Path, stdin: &str) -> Client {
    let input = lab.dir.join("stdin.txt");
    fs::write(&input, stdin).expect("write stdin");
    Client::start_with_stdin(lab, ClientImpl::Ferrovpn, profile, &[], Some(&input))
}

fn static_challenge_run(tag: &str, response: &str) -> Option<(Lab, OpenVpnServer, Client)> {
    support::interop_ready()?;
    let lab = Lab::new(tag);
    let server = server_expecting(&lab, &scrv1(PASSWORD, "123456"));
    let profile =
        server.client_profile_with(&lab, "client.ovpn", Some((USER.into(), PASSWORD.into())));
    add_to_profile(&profile, &["static-challenge \"Enter PIN\" 1"]);
    let client = client_with_stdin(&lab, &profile, &format!("{response}\n"));
    Some((lab, server, client))
}

#[test]
fn static_challenge_scrv1() {
    // The right response: connected, the script saw the SCRV1 string.
    let Some((_lab, server, mut client)) = static_challenge_run("auth-scrv1-ok", "123456") else {
        return;
    };
    if let Err(e) = client.wait_connected(1, CONNECT_TIMEOUT) {
        panic!(
            "[auth-scrv1-ok] not connected: {e}\n--- client:\n{}\n--- server:\n{}",
            client.log_text(),
            server.log_text()
        );
    }
    assert!(
        server
            .log_text()
            .contains(&format!("check-user-pass: accepted {USER}")),
        "the verify script did not accept the SCRV1 password"
    );
    client.proc.stop();

    // A wrong response: refused, the client exits non-zero saying AUTH_FAILED.
    let Some((_lab, server, mut client)) = static_challenge_run("auth-scrv1-bad", "000000") else {
        return;
    };
    let status = client.proc.wait_timeout(CONNECT_TIMEOUT);
    let log = client.log_text();
    let status = status.unwrap_or_else(|| panic!("still running after AUTH_FAILED:\n{log}"));
    assert!(!status.success(), "exit status {status} after AUTH_FAILED");
    assert!(log.contains("AUTH_FAILED"), "no AUTH_FAILED in:\n{log}");
    assert!(
        server
            .log_text()
            .contains(&format!("check-user-pass: refused {USER}")),
        "the server did not refuse the wrong response"
    );
}

#[test]
fn auth_retry_nointeract_keeps_trying() {
    if support::interop_ready().is_none() {
        return;
    }
    let lab = Lab::new("auth-retry");
    let server = server_expecting(&lab, PASSWORD);
    let profile =
        server.client_profile_with(&lab, "client.ovpn", Some((USER.into(), "wrong".into())));
    add_to_profile(&profile, &["auth-retry nointeract", "connect-retry 1 1"]);
    let mut client = Client::start(&lab, ClientImpl::Ferrovpn, &profile, &[]);
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let refused = format!("check-user-pass: refused {USER}");
    while server.count_in_log(&refused) < 3 {
        assert!(
            client.proc.try_status().is_none(),
            "the client exited after AUTH_FAILED despite auth-retry nointeract:\n{}",
            client.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "fewer than 3 attempts within {CONNECT_TIMEOUT:?}:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(client.proc.try_status().is_none(), "the client exited");
    client.proc.stop();
}

/// The verify script for `auth_failed_temp_backoff`: refuses the first attempt with a TEMP
/// reason, accepts the next ones.
fn temp_then_accept_script(dir: &Path) -> PathBuf {
    let counter = dir.join("attempts");
    let script = dir.join("temp-then-accept.sh");
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
n=$(cat {c} 2>/dev/null || echo 0)
echo $((n + 1)) > {c}
if [ "$n" = 0 ]; then
  echo "TEMP[backoff 2]:maintenance window" > "$auth_failed_reason_file"
  echo "check-user-pass: temporary refusal" >&2
  exit 1
fi
echo "check-user-pass: accepted" >&2
exit 0
"#,
            c = counter.display()
        ),
    )
    .expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

#[test]
fn auth_failed_temp_backoff() {
    if support::interop_ready().is_none() {
        return;
    }
    let lab = Lab::new("auth-temp");
    let script = temp_then_accept_script(&lab.dir);
    let mut server = OpenVpnServer::new(
        &lab,
        Knobs {
            extra_server: vec![
                "script-security 2".into(),
                format!("auth-user-pass-verify {} via-file", script.display()),
                "verify-client-cert none".into(),
                "username-as-common-name".into(),
            ],
            ..Knobs::default()
        },
    );
    server.start(&lab);
    let profile =
        server.client_profile_with(&lab, "client.ovpn", Some((USER.into(), PASSWORD.into())));
    let mut client = Client::start(&lab, ClientImpl::Ferrovpn, &profile, &[]);
    if let Err(e) = client.wait_connected(1, CONNECT_TIMEOUT) {
        panic!(
            "[auth-temp] not connected after the temporary refusal: {e}\n--- client:\n{}\n--- server:\n{}",
            client.log_text(),
            server.log_text()
        );
    }
    let log = client.log_text();
    assert!(
        log.contains("AUTH_FAILED,TEMP") && log.contains("maintenance window"),
        "the client did not report the temporary refusal:\n{log}"
    );
    assert!(
        log.contains("trying again in 2s"),
        "the client did not use the server's backoff:\n{log}"
    );
    client.proc.stop();
}

/// A server whose verify script is `body` (a shell script); the client gets alice's password.
fn server_with_script(lab: &Lab, name: &str, body: &str) -> (OpenVpnServer, PathBuf) {
    let script = lab.dir.join(name);
    fs::write(&script, body).expect("write script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut server = OpenVpnServer::new(
        lab,
        Knobs {
            extra_server: vec![
                "script-security 2".into(),
                format!("auth-user-pass-verify {} via-file", script.display()),
                "verify-client-cert none".into(),
                "username-as-common-name".into(),
            ],
            ..Knobs::default()
        },
    );
    server.start(lab);
    let profile =
        server.client_profile_with(lab, "client.ovpn", Some((USER.into(), PASSWORD.into())));
    (server, profile)
}

#[test]
fn dynamic_challenge_crv1() {
    if support::interop_ready().is_none() {
        return;
    }
    let lab = Lab::new("auth-crv1");
    let user_b64 = base64::engine::general_purpose::STANDARD.encode(USER);
    let script = format!(
        r#"#!/bin/sh
u=$(sed -n 1p "$1")
p=$(sed -n 2p "$1")
if [ "$u" = '{USER}' ] && [ "$p" = '{PASSWORD}' ]; then
  echo "CRV1:R,E:state42:{user_b64}:Enter the code" > "$auth_failed_reason_file"
  echo "check-user-pass: challenge sent" >&2
  exit 1
fi
if [ "$u" = '{USER}' ] && [ "$p" = 'CRV1::state42::4321' ]; then
  echo "check-user-pass: challenge answered" >&2
  exit 0
fi
echo "check-user-pass: refused $u" >&2
exit 1
"#
    );
    let (server, profile) = server_with_script(&lab, "crv1.sh", &script);
    let mut client = client_with_stdin(&lab, &profile, "4321\n");
    if let Err(e) = client.wait_connected(1, CONNECT_TIMEOUT) {
        panic!(
            "[auth-crv1] not connected: {e}\n--- client:\n{}\n--- server:\n{}",
            client.log_text(),
            server.log_text()
        );
    }
    assert!(
        server
            .log_text()
            .contains("check-user-pass: challenge answered")
    );
    assert!(
        client.log_text().contains("Enter the code"),
        "the client did not show the question"
    );
    client.proc.stop();
}

#[test]
fn auth_pending_web_auth() {
    if support::interop_ready().is_none() {
        return;
    }
    let lab = Lab::new("auth-webauth");
    let url = "https://198.18.0.1/sso/login?session=7";
    let script = format!(
        r#"#!/bin/sh
printf '60\nwebauth\nWEB_AUTH::{url}\n' > "$auth_pending_file"
( sleep 3; echo 1 > "$auth_control_file" ) >/dev/null 2>&1 &
echo "check-user-pass: deferred" >&2
exit 2
"#
    );
    let (server, profile) = server_with_script(&lab, "webauth.sh", &script);
    // hand-window shorter than the wait: only the server's AUTH_PENDING timeout keeps it alive.
    add_to_profile(&profile, &["hand-window 2"]);
    let mut client = Client::start(&lab, ClientImpl::Ferrovpn, &profile, &[]);
    if let Err(e) = client.wait_connected(1, CONNECT_TIMEOUT) {
        panic!(
            "[auth-webauth] not connected: {e}\n--- client:\n{}\n--- server:\n{}",
            client.log_text(),
            server.log_text()
        );
    }
    let log = client.log_text();
    assert!(
        log.contains(url),
        "the client did not print the URL:\n{log}"
    );
    assert!(
        log.contains("authentication pending (up to 60s)"),
        "the client did not take the server's timeout:\n{log}"
    );
    client.proc.stop();
}

/// `pkcs12` instead of `ca`/`cert`/`key`: a file made by `openssl pkcs12 -export` (OpenSSL 3's
/// defaults: AES-256-CBC, PBKDF2, SHA-256 MAC) with its password in an `askpass` file, and an
/// inline `<pkcs12>` block without password; both connect and move traffic.
#[test]
fn pkcs12_file_and_inline() {
    if support::interop_ready().is_none() {
        return;
    }
    let lab = Lab::new("auth-pkcs12");
    let mut server = OpenVpnServer::new(
        &lab,
        Knobs {
            inline: false,
            ..Knobs::default()
        },
    );
    server.start(&lab);
    let base = server.client_profile(&lab, "base.ovpn");
    let text = fs::read_to_string(&base).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !(l.starts_with("ca ") || l.starts_with("cert ") || l.starts_with("key ")))
        .collect();
    let pki = &server.pki;
    let export = |out: &Path, pass: &str| {
        let s = |p: &Path| p.display().to_string();
        support::netns::run_ok(&[
            "openssl",
            "pkcs12",
            "-export",
            "-in",
            &s(&pki.client_crt),
            "-inkey",
            &s(&pki.client_key),
            "-certfile",
            &s(&pki.ca_crt),
            "-out",
            &s(out),
            "-passout",
            &format!("pass:{pass}"),
        ]);
    };
    let p12 = lab.dir.join("client.p12");
    export(&p12, "p12 secret");
    let pass = lab.dir.join("p12.pass");
    fs::write(&pass, "p12 secret\n").unwrap();
    let with_file = lab.dir.join("client-p12.ovpn");
    fs::write(
        &with_file,
        format!(
            "{}\npkcs12 {}\naskpass {}\n",
            kept.join("\n"),
            p12.display(),
            pass.display()
        ),
    )
    .unwrap();
    let open = lab.dir.join("open.p12");
    export(&open, "");
    let b64 = base64::engine::general_purpose::STANDARD.encode(fs::read(&open).unwrap());
    let inline = lab.dir.join("client-p12-inline.ovpn");
    fs::write(
        &inline,
        format!("{}\n<pkcs12>\n{b64}\n</pkcs12>\n", kept.join("\n")),
    )
    .unwrap();
    for (n, profile) in [(1, &with_file), (2, &inline)] {
        let mut client = Client::start(&lab, ClientImpl::Ferrovpn, profile, &[]);
        if let Err(e) = client.wait_connected(n, CONNECT_TIMEOUT) {
            panic!(
                "[auth-pkcs12] {} not connected: {e}\n{}",
                profile.display(),
                client.log_text()
            );
        }
        support::traffic::ping(&lab.client_ns, &server.tunnel_v4(), 2)
            .unwrap_or_else(|e| panic!("[auth-pkcs12] {e}"));
        client.proc.stop();
    }
}

/// An encrypted PKCS#8 `key` (`openssl pkey -aes256`) with its password in an `askpass` file
/// connects; a wrong password stops the client before it connects, saying so.
#[test]
fn encrypted_key_with_askpass() {
    if support::interop_ready().is_none() {
        return;
    }
    let lab = Lab::new("auth-enckey");
    let mut server = OpenVpnServer::new(
        &lab,
        Knobs {
            inline: false,
            ..Knobs::default()
        },
    );
    server.start(&lab);
    let base = server.client_profile(&lab, "base.ovpn");
    let text = fs::read_to_string(&base).unwrap();
    let enc = lab.dir.join("client-enc.key");
    support::netns::run_ok(&[
        "openssl",
        "pkey",
        "-in",
        &server.pki.client_key.display().to_string(),
        "-aes256",
        "-passout",
        "pass:key secret",
        "-out",
        &enc.display().to_string(),
    ]);
    assert!(
        fs::read_to_string(&enc)
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    let profile_with = |name: &str, password: &str| {
        let pass = lab.dir.join(format!("{name}.pass"));
        fs::write(&pass, format!("{password}\n")).unwrap();
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("key ") {
                    format!("key {}\naskpass {}", enc.display(), pass.display())
                } else {
                    l.to_owned()
                }
            })
            .collect();
        let p = lab.dir.join(name);
        fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    let good = profile_with("enc-good.ovpn", "key secret");
    let mut client = Client::start(&lab, ClientImpl::Ferrovpn, &good, &[]);
    if let Err(e) = client.wait_connected(1, CONNECT_TIMEOUT) {
        panic!("[auth-enckey] not connected: {e}\n{}", client.log_text());
    }
    client.proc.stop();
    let bad = profile_with("enc-bad.ovpn", "wrong");
    let mut client = Client::start(&lab, ClientImpl::Ferrovpn, &bad, &[]);
    let status = client.proc.wait_timeout(Duration::from_secs(10));
    let log = client.log_text();
    let status =
        status.unwrap_or_else(|| panic!("still running with a wrong key password:\n{log}"));
    assert!(!status.success());
    assert!(log.contains("cannot decrypt the private key"), "{log}");
}
