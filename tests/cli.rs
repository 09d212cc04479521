//! Black-box tests of the `ferrovpn` command line that need no root and no network beyond
//! loopback: profile errors, `check`, giving up after `connect-retry-max`, and `demo --check`.

#![allow(clippy::disallowed_methods)] // real processes, real time

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrovpn")
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg")
}

fn write_profile(dir: &Path, name: &str, body: &str) -> PathBuf {
    let v = vectors();
    let text = body
        .replace("@CA@", &v.join("ca.crt").display().to_string())
        .replace("@CERT@", &v.join("client.crt").display().to_string())
        .replace("@KEY@", &v.join("client.key").display().to_string())
        .replace("@TA@", &v.join("ta.key").display().to_string());
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrovpn-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn malformed_profile_names_file_line_and_directive() {
    let dir = tempdir("malformed");
    let p = write_profile(
        &dir,
        "bad.ovpn",
        "client\ndev tun\nca @CA@\ncert @CERT@\nkey @KEY@\nremote 127.0.0.1 notaport\n",
    );
    let out = Command::new(bin()).arg("connect").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.ovpn:6") && err.contains("remote"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_reports_warnings_for_unknown_directives() {
    let dir = tempdir("check");
    let p = write_profile(
        &dir,
        "ok.ovpn",
        "client\ndev tun\nremote 127.0.0.1 1194 udp\nca @CA@\ncert @CERT@\nkey @KEY@\ntls-crypt @TA@\nfrobnicate yes\n",
    );
    let out = Command::new(bin()).arg("check").arg(&p).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok.ovpn:8") && text.contains("frobnicate"),
        "{text}"
    );
    assert!(text.contains("remote 127.0.0.1 1194"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gives_up_after_connect_retry_max_with_a_reason() {
    let dir = tempdir("retry");
    // Nothing listens on this loopback port: every attempt fails.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    drop(sock);
    let p = write_profile(
        &dir,
        "retry.ovpn",
        &format!(
            "client\ndev tun\nremote 127.0.0.1 {port} udp\nca @CA@\ncert @CERT@\nkey @KEY@\ntls-crypt @TA@\nserver-poll-timeout 2\nconnect-retry 1\nconnect-retry-max 2\n"
        ),
    );
    let start = Instant::now();
    let out = Command::new(bin())
        .args(["connect", "--state-dir"])
        .arg(dir.join("state"))
        .arg(&p)
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("giving up") && err.contains("connect-retry-max"),
        "{err}"
    );
    assert!(err.contains("no answer from the server"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `ferrovpn demo --check`: PKI, userspace server, proxy client and the page fetched through the
/// tunnel, in one process. Run as `nobody` when the tests run as root, so it is shown to need
/// neither root nor a TUN device.
#[test]
fn demo_check_fetches_the_page_through_the_tunnel_without_privileges() {
    let as_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let args = [
        "demo",
        "--check",
        "--socks5",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ];
    let mut cmd = if as_root && Path::new("/usr/bin/setpriv").exists() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            bin(),
        ]);
        c
    } else {
        Command::new(bin())
    };
    let start = Instant::now();
    let out = cmd.args(args).output().expect("run ferrovpn demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo --check failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("demo check passed"), "{stdout}\n{stderr}");
    assert!(start.elapsed() < Duration::from_secs(30));
}

/// `check` tells a server configuration from a client profile, reports errors with file and
/// line and exit 1, and has a JSON form for tools.
#[test]
fn check_reads_server_configs_and_reports_errors_as_json() {
    let dir = tempdir("check-server");
    let v = vectors();
    let conf = dir.join("server.conf");
    let base = format!(
        "port 1194\nproto udp\ndev tun\nserver 198.18.5.0 255.255.255.0\ntopology subnet\nca {}\ncert {}\nkey {}\ndh none\nkeepalive 10 60\n",
        v.join("ca.crt").display(),
        v.join("client.crt").display(),
        v.join("client.key").display()
    );
    std::fs::write(&conf, &base).unwrap();
    let out = Command::new(bin())
        .arg("check")
        .arg(&conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("server configuration") && text.contains("198.18.5.1/24"),
        "{text}"
    );
    std::fs::write(&conf, format!("{base}remote 198.18.5.9\n")).unwrap();
    let out = Command::new(bin())
        .args(["check", "--json"])
        .arg(&conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("\"kind\":\"server\"")
            && text.contains("\"ok\":false")
            && text.contains("\"line\":11")
            && text.contains("\"directive\":\"remote\""),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `profiles import` makes a self-contained copy (files inlined, mode 0600); `exec NAME` finds it
/// by name and connects to a `serve --userspace` server on loopback; `remove` deletes it.
#[test]
fn stored_profiles_are_self_contained_and_usable_by_name() {
    let dir = tempdir("profiles");
    let store = dir.join("store");
    let v = vectors();
    let work = dir.join("src");
    std::fs::create_dir_all(&work).unwrap();
    for f in [
        "ca.crt",
        "client.crt",
        "client.key",
        "server.crt",
        "server.key",
        "ta.key",
    ] {
        std::fs::copy(v.join(f), work.join(f)).unwrap();
    }
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        work.join("server.conf"),
        format!(
            "local 127.0.0.1\nport {port}\nproto udp4\ndev tun\ntopology subnet\nserver 198.18.66.0 255.255.255.0\nca ca.crt\ncert server.crt\nkey server.key\ndh none\ntls-crypt ta.key\nkeepalive 10 60\n"
        ),
    )
    .unwrap();
    std::fs::write(
        work.join("office.ovpn"),
        format!(
            "client\ndev tun\nproto udp4\nremote 127.0.0.1 {port}\nnobind\nca ca.crt\ncert client.crt\nkey client.key\nremote-cert-tls server\ntls-crypt ta.key\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .env("FERROVPN_PROFILES_DIR", &store)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = run(&[
        "profiles",
        "import",
        work.join("office.ovpn").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let stored = store.join("office.ovpn");
    let text = std::fs::read_to_string(&stored).unwrap();
    assert!(text.contains("<ca>") && text.contains("<tls-crypt>") && !text.contains("ca ca.crt"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The source files can go: the stored profile does not need them.
    for f in ["ca.crt", "client.crt", "client.key", "ta.key"] {
        let _ = std::fs::rename(work.join(f), work.join(format!("{f}.moved")));
    }
    std::fs::copy(work.join("ca.crt.moved"), work.join("ca.crt")).unwrap();
    std::fs::copy(work.join("ta.key.moved"), work.join("ta.key")).unwrap();
    let list = run(&["profiles", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("office\t127.0.0.1"),
        "{list:?}"
    );
    let mut server = Command::new(bin())
        .args(["serve", "--userspace", "server.conf"])
        .current_dir(&work)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = run(&["exec", "office", "--", "true"]);
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "exec by profile name failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run(&["profiles", "remove", "office"]).status.success());
    assert!(!stored.exists());
    assert!(!run(&["profiles", "show", "office"]).status.success());
    let _ = std::fs::remove_dir_all(dir);
}

/// `log FILE` in the profile: the client's log lines go to the file, not to stderr; `log-append`
/// keeps what was there. No root needed: nothing answers on the server address and
/// `connect-retry-max 1` ends the run.
#[test]
fn profile_log_file() {
    let dir = tempdir("logfile");
    let log = dir.join("client.log");
    std::fs::write(&log, "earlier line\n").unwrap();
    for (directive, keeps) in [("log-append", true), ("log", false)] {
        let profile = write_profile(
            &dir,
            &format!("{directive}.ovpn"),
            &format!(
                "client\ndev tun\nremote 127.0.0.1 9 udp\nserver-poll-timeout 1\nconnect-retry 1\n\
                 connect-retry-max 1\nca @CA@\ncert @CERT@\nkey @KEY@\n{directive} {}\n",
                log.display()
            ),
        );
        let out = Command::new(bin())
            .args(["connect", &profile.to_string_lossy()])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!out.status.success(), "{directive}: {stderr}");
        assert!(
            text.contains("connecting to 127.0.0.1:9"),
            "{directive}: {text}"
        );
        assert!(
            !stderr.contains("connecting to"),
            "{directive}: stderr has the log: {stderr}"
        );
        assert_eq!(text.contains("earlier line"), keeps, "{directive}: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `status FILE 1`: the client writes OpenVPN 2.6's client statistics file every second (also
/// while it cannot reach the server) and a last time when it stops.
#[test]
fn profile_status_file() {
    let dir = tempdir("statusfile");
    let status = dir.join("client.status");
    let profile = write_profile(
        &dir,
        "status.ovpn",
        &format!(
            "client\ndev tun\nremote 127.0.0.1 9 udp\nserver-poll-timeout 2\nconnect-retry 1\n\
             connect-retry-max 1\nca @CA@\ncert @CERT@\nkey @KEY@\nstatus {} 1\n",
            status.display()
        ),
    );
    let out = Command::new(bin())
        .args(["connect", &profile.to_string_lossy()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&status).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"OpenVPN STATISTICS"), "{text}");
    assert!(lines[1].starts_with("Updated,20"), "{text}");
    for key in [
        "TUN/TAP read bytes,",
        "TUN/TAP write bytes,",
        "TCP/UDP read bytes,",
        "TCP/UDP write bytes,",
        "Auth read bytes,",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(key)), "{key}: {text}");
    }
    // The hard resets it sent count as link writes.
    let written: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("TCP/UDP write bytes,"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(written > 0, "{text}");
    assert_eq!(lines.last(), Some(&"END"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
