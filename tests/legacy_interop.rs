//! Old servers against the real OpenVPN 2.6 server: a non-negotiating peer emulated with
//! `compat-mode 2.3.0` (CBC ciphers from `data-ciphers-fallback`, the TLS 1.0 PRF instead of
//! TLS-EKM), servers rustls cannot talk to (TLS 1.1 only, DHE only) and a SHA1-signed server
//! certificate under `tls-cert-profile`.
//!
//! Same prerequisites as tests/interop.rs (root, `openvpn`, network namespaces); without them the
//! tests print why and pass unless `FERROVPN_REQUIRE_INTEROP=1`. The client is always ferrovpn:
//! the checks read its log. Run: `sudo -E cargo test --test legacy_interop -- --nocapture`.

#![allow(clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::client::{Client, ClientImpl};
use support::netns::{Lab, run_ok};
use support::openvpn::{Knobs, OpenVpnServer};
use support::pki::KeyAlg;
use support::traffic::{self, MB, Transfer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A client and its server. Fields drop in order: client, server, then the lab.
struct Run {
    client: Client,
    server: OpenVpnServer,
    lab: Lab,
    tag: String,
}

impl Run {
    /// `None` when the interop tests cannot run here.
    fn start(tag: &str, knobs: Knobs) -> Option<Run> {
        support::interop_ready()?;
        Some(Self::start_in(Lab::new(tag), tag, knobs))
    }

    fn start_in(lab: Lab, tag: &str, knobs: Knobs) -> Run {
        let mut server = OpenVpnServer::new(&lab, knobs);
        server.start(&lab);
        let profile = server.client_profile(&lab, "client.ovpn");
        let client = Client::start(&lab, ClientImpl::Ferrovpn, &profile, &[]);
        Run {
            client,
            server,
            lab,
            tag: tag.to_owned(),
        }
    }

    fn connected(&mut self) {
        let r = self.client.wait_connected(1, CONNECT_TIMEOUT);
        if let Err(e) = r {
            panic!(
                "[{}] client did not connect: {e}\n--- client log:\n{}\n--- server log:\n{}",
                self.tag,
                self.client.log_text(),
                self.server.log_text()
            );
        }
    }

    /// Ping the server's tunnel address and move data both ways with a checksum.
    fn traffic(&self) {
        let ns = self.lab.client_ns.clone();
        traffic::ping(&ns, &self.server.tunnel_v4(), 3)
            .unwrap_or_else(|e| panic!("[{}] {e}", self.tag));
        let t = Transfer::new(&self.server.tunnel_v4(), 5 * MB, 5 * MB);
        let r = traffic::transfer(&self.lab, &t).unwrap_or_else(|e| panic!("[{}] {e}", self.tag));
        eprintln!("[{}] {}", self.tag, r.summary(&t));
    }

    /// Waits until the client log contains every one of `needles`; it must never connect.
    fn wait_refusal(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + REFUSAL_TIMEOUT;
        loop {
            let log = self.client.log_text();
            assert!(
                !log.contains(support::openvpn::LOG_CONNECTED),
                "[{}] the client connected:\n{log}",
                self.tag
            );
            if needles.iter().all(|n| log.contains(n)) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] within {REFUSAL_TIMEOUT:?} the client log did not show {needles:?}:\n{log}\n--- server log:\n{}",
                self.tag,
                self.server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) {
        let st = self.client.terminate(EXIT_TIMEOUT);
        assert!(st.is_some(), "[{}] client ignored SIGTERM", self.tag);
        assert!(
            self.lab.client_tun_devices().is_empty(),
            "[{}] TUN device left behind",
            self.tag
        );
    }
}

/// A 2.3-style client (`compat-mode 2.3.0`: no cipher list, no TLS-EKM) against a 2.6 server that
/// falls back to `data-ciphers-fallback CIPHER` with `auth DIGEST`.
fn non_negotiated_cbc(tag: &str, cipher: &str, digest: &str) {
    let knobs = Knobs {
        data_ciphers: "AES-256-GCM:AES-128-GCM".into(),
        extra_server: vec![
            format!("data-ciphers-fallback {cipher}"),
            format!("auth {digest}"),
        ],
        extra_client: vec![
            "compat-mode 2.3.0".into(),
            format!("cipher {cipher}"),
            format!("auth {digest}"),
        ],
        ..Knobs::default()
    };
    let Some(mut run) = Run::start(tag, knobs) else {
        return;
    };
    run.connected();
    run.traffic();
    let log = run.client.log_text();
    let want =
        format!("data channel: cipher {cipher}, auth {digest}, keys from the legacy TLS 1.0 PRF");
    assert!(log.contains(&want), "[{tag}] expected {want:?} in:\n{log}");
    let server_log = run.server.log_text();
    let push = server_log
        .lines()
        .find(|l| l.contains("PUSH_REPLY"))
        .unwrap_or_default();
    assert!(!push.is_empty(), "[{tag}] no PUSH_REPLY in the server log");
    assert!(
        !push.contains("tls-ekm"),
        "[{tag}] the server still agreed to TLS-EKM: {push}"
    );
    assert!(
        !push.contains("cipher "),
        "[{tag}] the server negotiated a cipher instead of falling back: {push}"
    );
    // The server may write this line a little after the data moved: wait for it.
    let data_channel = format!("Data Channel: cipher '{cipher}', auth '{digest}'");
    if let Err(e) = run
        .server
        .wait_for_log(&data_channel, 1, Duration::from_secs(15))
    {
        panic!("[{tag}] {e}:\n{}", run.server.log_text());
    }
    run.stop();
}

#[test]
fn compat_2_3_aes128cbc_sha1_fallback() {
    non_negotiated_cbc("legacy-aes128cbc-sha1", "AES-128-CBC", "SHA1");
}

#[test]
fn compat_2_3_aes256cbc_sha512_fallback() {
    non_negotiated_cbc("legacy-aes256cbc-sha512", "AES-256-CBC", "SHA512");
}

/// A server limited to TLS 1.1: the client must say so and what to change on the server.
#[test]
fn tls_1_1_only_server_is_explained() {
    let knobs = Knobs {
        extra_server: vec![
            "tls-version-min 1.0".into(),
            "tls-version-max 1.1".into(),
            "tls-cipher DEFAULT:@SECLEVEL=0".into(),
        ],
        // The server drops the refused handshake silently: the explanation comes when
        // hand-window runs out, shortened here.
        extra_client: vec!["hand-window 12".into()],
        ..Knobs::default()
    };
    let Some(mut run) = Run::start("legacy-tls11", knobs) else {
        return;
    };
    run.wait_refusal(&["only TLS below 1.2", "tls-version-min 1.2"]);
    run.stop();
}

/// A server offering only DHE key exchange (finite-field group from RFC 7919): the client must
/// name DHE and the server-side fix.
#[test]
fn dhe_only_server_is_explained() {
    let dh = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ffdhe2048.pem");
    let knobs = Knobs {
        key_alg: KeyAlg::Rsa2048,
        extra_server: vec![
            format!("dh {}", dh.display()),
            "tls-version-max 1.2".into(),
            "tls-cipher DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256".into(),
        ],
        extra_client: vec!["hand-window 12".into()],
        ..Knobs::default()
    };
    let Some(mut run) = Run::start("legacy-dhe", knobs) else {
        return;
    };
    run.wait_refusal(&["DHE", "dh none", "ECDHE"]);
    run.stop();
}

/// A CA and a server certificate signed with SHA1 (RSA-2048), made with the openssl CLI.
/// Returns (ca.crt, server.crt, server.key).
fn sha1_server_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("sha1 dir");
    let p = |n: &str| dir.join(n);
    let s = |p: &PathBuf| p.to_string_lossy().into_owned();
    let (ca_key, ca_crt, key, csr, crt, ext) = (
        p("sha1-ca.key"),
        p("sha1-ca.crt"),
        p("sha1-server.key"),
        p("sha1-server.csr"),
        p("sha1-server.crt"),
        p("sha1-ext.cnf"),
    );
    run_ok(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-sha1",
        "-days",
        "3650",
        "-subj",
        "/CN=sha1 test CA",
        "-keyout",
        &s(&ca_key),
        "-out",
        &s(&ca_crt),
    ]);
    run_ok(&[
        "openssl",
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=sha1-server",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
    ]);
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    run_ok(&[
        "openssl",
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca_crt),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-sha1",
        "-days",
        "3650",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&crt),
    ]);
    (ca_crt, crt, key)
}

/// The server presents a SHA1-signed certificate: `tls-cert-profile preferred` refuses it with a
/// message naming the certificate and the option; the default (`legacy`) connects and warns.
#[test]
fn sha1_server_certificate_and_cert_profile() {
    if support::interop_ready_with(&["openssl"]).is_none() {
        return;
    }
    for (tag, profile) in [
        ("legacy-sha1-pref", "preferred"),
        ("legacy-sha1-legacy", "legacy"),
    ] {
        let lab = Lab::new(tag);
        let (sha1_ca, crt, key) = sha1_server_cert(&lab.dir.join("sha1"));
        // The server trusts the test CA (client certificates) and presents the SHA1 chain; the
        // client trusts both CAs. Later lines win in both parsers.
        let pki_ca = lab.dir.join("pki/ca.crt");
        let both = lab.dir.join("sha1/both-ca.crt");
        let knobs = Knobs {
            key_alg: KeyAlg::Rsa2048,
            remote_cert_tls: false,
            extra_server: vec![
                format!("cert {}", crt.display()),
                format!("key {}", key.display()),
                "tls-cert-profile insecure".into(),
            ],
            extra_client: vec![
                format!("ca {}", both.display()),
                format!("tls-cert-profile {profile}"),
            ],
            ..Knobs::default()
        };
        let mut server = OpenVpnServer::new(&lab, knobs);
        let cat = format!(
            "{}{}",
            std::fs::read_to_string(&pki_ca).expect("pki ca"),
            std::fs::read_to_string(&sha1_ca).expect("sha1 ca")
        );
        std::fs::write(&both, cat).expect("ca bundle");
        server.start(&lab);
        let profile_path = server.client_profile(&lab, "client.ovpn");
        let client = Client::start(&lab, ClientImpl::Ferrovpn, &profile_path, &[]);
        let mut run = Run {
            client,
            server,
            lab,
            tag: tag.to_owned(),
        };
        if profile == "preferred" {
            run.wait_refusal(&["sha1-server", "SHA1", "tls-cert-profile preferred"]);
        } else {
            run.connected();
            traffic::ping(&run.lab.client_ns, &run.server.tunnel_v4(), 2)
                .unwrap_or_else(|e| panic!("[{tag}] {e}"));
            let log = run.client.log_text();
            assert!(
                log.contains("signed with SHA1"),
                "[{tag}] no SHA1 warning in the client log:\n{log}"
            );
        }
        run.stop();
    }
}
