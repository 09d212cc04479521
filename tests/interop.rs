//! Interop tests against the real OpenVPN 2.6 server (layer 4 in DESIGN.md).
//!
//! Each test builds its own lab (two network namespaces and a veth pair, see
//! tests/support/netns.rs), starts `openvpn` as the server in one namespace and the client under
//! test in the other, and drives traffic through the tunnel. They need root and `openvpn`; without
//! them they print why and pass, unless `FERROVPN_REQUIRE_INTEROP=1` (set by `.ci/run`).
//!
//! The client is `ferrovpn connect` by default; `FERROVPN_INTEROP_CLIENT=openvpn` runs the same
//! cases with the reference client (to validate the harness, or to compare). Other knobs:
//! `FERROVPN_BIN` (binary to test), `FERROVPN_INTEROP_VERB` (ferrovpn `--verb`, default 4),
//! `FERROVPN_INTEROP_KEEP=1` (keep the scratch directory of a failed test; `all`: of every test).
//!
//! Run: `sudo -E cargo test --test interop -- --nocapture` (timings go to stderr).

// The clock and sleep bans (clippy.toml) are for the protocol core; this harness waits on real
// processes in real time.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::client::{Client, ClientImpl};
use support::netns::Lab;
use support::openvpn::{
    Digest, Knobs, OpenVpnServer, PUSHED_DOMAIN, Proto, ServerCert, Topology, VPN_ONLY_V4,
    VPN_ONLY_V6, Wrap,
};
use support::pki::KeyAlg;
use support::traffic::{self, MB, Transfer};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
const BULK: u64 = 50 * MB;
/// What the OpenVPN 2.6 server logs when a client's exit notification arrives: the control-channel
/// `EXIT` message (with `protocol-flags cc-exit`; 2.6.3 and 2.6.14 spell it differently), or the
/// older OCC exit packet (`SIGTERM[soft,remote-exit]`, `SIGUSR1[...]` mid-renegotiation).
const EXIT_NOTIFIED: [&str; 3] = [
    "Exit message received by peer",
    "CC-EEN exit message received by peer",
    "[soft,remote-exit]",
];

/// One connected client and its server. Fields drop in order: client, server, then the lab.
struct Session {
    client: Client,
    server: OpenVpnServer,
    lab: Lab,
    tag: String,
    routes_before: String,
    started: Instant,
    timings: Vec<(String, Duration)>,
}

impl Session {
    /// Builds the lab, starts the server, starts the client and waits for it to connect.
    /// `None` if the interop tests cannot run here (see `support::interop_ready`).
    fn start(tag: &str, knobs: Knobs) -> Option<Session> {
        let imp = support::interop_ready()?;
        Some(Self::start_with(tag, imp, knobs, true))
    }

    /// Like `start`; with `wait` false it returns as soon as the client process runs.
    fn start_with(tag: &str, imp: ClientImpl, knobs: Knobs, wait: bool) -> Session {
        let started = Instant::now();
        let lab = Lab::new(tag);
        let mut server = OpenVpnServer::new(&lab, knobs);
        let mut timings = vec![("setup".to_owned(), started.elapsed())];
        timings.push(("server start".into(), server.start(&lab)));
        let routes_before = lab.client_routes();
        assert!(lab.client_tun_devices().is_empty());
        let profile = server.client_profile(&lab, "client.ovpn");
        let client = Client::start(&lab, imp, &profile, &server.knobs.ferrovpn_args);
        let mut s = Session {
            client,
            server,
            lab,
            tag: tag.to_owned(),
            routes_before,
            started,
            timings,
        };
        if wait {
            let took = s.client.wait_connected(1, CONNECT_TIMEOUT);
            let took = took.unwrap_or_else(|e| panic!("[{tag}] client did not connect: {e}"));
            s.timings.push(("connect".into(), took));
        }
        s
    }

    fn imp(&self) -> ClientImpl {
        self.client.imp
    }

    fn time<T>(&mut self, what: &str, f: impl FnOnce(&Self) -> T) -> T {
        let t = Instant::now();
        let r = f(self);
        self.timings.push((what.to_owned(), t.elapsed()));
        r
    }

    /// Pings through the tunnel: the server's tunnel address, the host only pushed routes reach,
    /// and their IPv6 twins when IPv6 is on; checks the pushed DNS is in resolv.conf.
    fn check_tunnel(&mut self) {
        let ns = self.lab.client_ns.clone();
        let k = self.server.knobs.clone();
        let mut targets = vec![self.server.tunnel_v4()];
        if k.push_routes {
            targets.push(VPN_ONLY_V4.to_owned());
        }
        if k.ipv6 {
            targets.push(self.server.tunnel_v6());
            if k.push_routes {
                targets.push(VPN_ONLY_V6.to_owned());
            }
        }
        for t in targets {
            let r = self.time(&format!("ping {t}"), |_| traffic::ping(&ns, &t, 3));
            r.unwrap_or_else(|e| panic!("[{}] {e}", self.tag));
        }
        if k.push_dns {
            let resolv = self.lab.client_resolv();
            let want = format!("nameserver {}", self.server.pushed_dns());
            assert!(
                resolv.lines().any(|l| l.trim() == want),
                "[{}] pushed DNS not applied: expected a line {want:?} in the namespace's \
                 resolv.conf, which reads:\n{resolv}",
                self.tag
            );
            assert!(
                resolv.contains(PUSHED_DOMAIN),
                "[{}] pushed DOMAIN {PUSHED_DOMAIN} not in resolv.conf:\n{resolv}",
                self.tag
            );
        }
    }

    /// A checksummed transfer of `up`/`down` bytes to the server's tunnel address.
    fn bulk(&mut self, t: Transfer) {
        let what = format!("transfer {}+{} MB", t.up / MB, t.down / MB);
        let r = self.time(&what, |s| traffic::transfer(&s.lab, &t));
        let r = r.unwrap_or_else(|e| panic!("[{}] {e}", self.tag));
        eprintln!("[{}] {}", self.tag, r.summary(&t));
    }

    fn bulk_default(&mut self) {
        let t = Transfer::new(&self.server.tunnel_v4(), BULK, BULK);
        self.bulk(t);
    }

    /// SIGTERM the client; it must exit 0, leave resolv.conf and the routes as they were and
    /// remove its TUN device; over UDP the server must have seen its exit notification.
    fn finish(mut self) {
        let tag = self.tag.clone();
        let t = Instant::now();
        let status = self.client.terminate(EXIT_TIMEOUT);
        self.timings.push(("client exit".into(), t.elapsed()));
        let status =
            status.unwrap_or_else(|| panic!("[{tag}] client ignored SIGTERM for {EXIT_TIMEOUT:?}"));
        assert!(
            status.success(),
            "[{tag}] client exited with {status} after SIGTERM"
        );
        let resolv = self.lab.client_resolv();
        assert_eq!(
            resolv,
            self.lab.resolv_original(),
            "[{tag}] the namespace's resolv.conf was not restored"
        );
        assert_eq!(
            self.lab.client_routes(),
            self.routes_before,
            "[{tag}] the client namespace's routes differ from before the client ran"
        );
        let tuns = self.lab.client_tun_devices();
        assert!(tuns.is_empty(), "[{tag}] TUN devices left behind: {tuns:?}");
        if self.server.knobs.proto.is_udp() {
            // explicit-exit-notify: the server drops the client at once instead of timing out.
            let r = self
                .server
                .wait_for_any(&EXIT_NOTIFIED, 1, Duration::from_secs(5));
            r.unwrap_or_else(|e| panic!("[{tag}] no exit notification reached the server: {e}"));
        }
        self.report();
    }

    fn report(&self) {
        let parts: Vec<String> = self
            .timings
            .iter()
            .map(|(w, d)| format!("{w} {:.3}s", d.as_secs_f64()))
            .collect();
        eprintln!(
            "[{}] client={} total {:.2}s: {}",
            self.tag,
            self.imp().name(),
            self.started.elapsed().as_secs_f64(),
            parts.join(", ")
        );
    }
}

/// Connect, ping (+ DNS), 50 MB each way, disconnect cleanly.
fn standard(tag: &str, knobs: Knobs) {
    let Some(mut s) = Session::start(tag, knobs) else {
        return;
    };
    s.check_tunnel();
    s.bulk_default();
    if s.imp() == ClientImpl::Ferrovpn {
        // The bulk transfer went through batched TUN reads and writes (TUN offload).
        let log = s.client.log_text();
        assert!(
            log.contains("offload on"),
            "[{tag}] the TUN device was opened without offload:\n{log}"
        );
    }
    s.finish();
}

/// (1) UDP, tls-crypt, AES-256-GCM, topology subnet, IPv6 inside the tunnel, pushed DNS and
/// routes; inline profile.
#[test]
fn udp_tls_crypt_aes256gcm_ipv6_dns() {
    standard(
        "udp-tlscrypt-ipv6",
        Knobs {
            proto: Proto::Udp,
            wrap: Wrap::TlsCrypt,
            data_ciphers: "AES-256-GCM".into(),
            topology: Topology::Subnet,
            ipv6: true,
            ..Knobs::default()
        },
    );
}

/// (2) TCP, tls-auth with SHA256, AES-128-GCM, topology net30; profile refers to files.
#[test]
fn tcp_tls_auth_sha256_aes128gcm_net30() {
    standard(
        "tcp-tlsauth-net30",
        Knobs {
            proto: Proto::Tcp,
            wrap: Wrap::TlsAuth(Digest::Sha256),
            data_ciphers: "AES-128-GCM".into(),
            topology: Topology::Net30,
            inline: false,
            ..Knobs::default()
        },
    );
}

/// (3) UDP, tls-crypt-v2 with force-cookie (the stateless server handshake), ChaCha20-Poly1305.
#[test]
fn udp_tls_crypt_v2_cookie_chacha20() {
    standard(
        "udp-tlscryptv2-chacha",
        Knobs {
            wrap: Wrap::TlsCryptV2 { force_cookie: true },
            data_ciphers: "CHACHA20-POLY1305".into(),
            ..Knobs::default()
        },
    );
}

/// Layer 2: `dev tap` on the server (`server` then pushes `route-gateway`) and in the profile.
/// Ethernet frames cross the data channel (ARP included), the pushed `ifconfig` is an address
/// with a netmask and the pushed routes go via the gateway on the TAP segment.
#[test]
fn udp_dev_tap_layer2() {
    let Some(mut s) = Session::start(
        "udp-tap",
        Knobs {
            extra_server: vec!["dev tap".into()],
            extra_client: vec!["dev tap".into()],
            ..Knobs::default()
        },
    ) else {
        return;
    };
    let link = support::netns::exec_in_ok(
        &s.lab.client_ns,
        &["ip", "-d", "-o", "link", "show", "type", "tun"],
    );
    assert!(
        link.contains("tap") && link.contains("link/ether"),
        "[udp-tap] the client's device is not a TAP device: {link}"
    );
    s.check_tunnel();
    let t = Transfer::new(&s.server.tunnel_v4(), 20 * MB, 20 * MB);
    s.bulk(t);
    s.finish();
}

/// The pre-2.6 key derivation: the client does not offer TLS-EKM, so the server and client
/// derive the data keys with the TLS 1.0 PRF (what OpenVPN 2.4/2.5 servers do); TCP, tls-crypt.
#[test]
fn legacy_prf_key_derivation() {
    let knobs = Knobs {
        proto: Proto::Tcp,
        data_ciphers: "AES-256-GCM".into(),
        ferrovpn_args: vec!["--legacy-key-derivation".into()],
        ..Knobs::default()
    };
    let Some(mut s) = Session::start("legacy-prf", knobs) else {
        return;
    };
    s.check_tunnel();
    s.bulk_default();
    if s.client.imp == ClientImpl::Ferrovpn {
        let log = std::fs::read_to_string(&s.server.log).unwrap_or_default();
        let push = log
            .lines()
            .find(|l| l.contains("PUSH_REPLY"))
            .unwrap_or_default()
            .to_owned();
        assert!(!push.is_empty(), "no PUSH_REPLY in the server log");
        assert!(
            !push.contains("tls-ekm"),
            "the server still used TLS-EKM: {push}"
        );
    }
    s.finish();
}

/// UDP over IPv6 (udp6 transport), tls-auth SHA512, AES-256-CBC with HMAC-SHA512, RSA-2048
/// certificates; profile refers to files.
#[test]
fn udp6_tls_auth_sha512_aes256cbc_rsa() {
    standard(
        "udp6-tlsauth-cbc-rsa",
        Knobs {
            proto: Proto::Udp6,
            wrap: Wrap::TlsAuth(Digest::Sha512),
            data_ciphers: "AES-256-CBC".into(),
            key_alg: KeyAlg::Rsa2048,
            inline: false,
            ..Knobs::default()
        },
    );
}

fn user_pass_knobs(inline: bool) -> Knobs {
    Knobs {
        user_pass: Some(("alice".into(), "correct horse".into())),
        management: Some(7505),
        inline,
        ..Knobs::default()
    }
}

/// (4) Username/password accepted (no client certificate; `verify-client-cert none`,
/// `username-as-common-name`); credentials in a file.
#[test]
fn auth_user_pass_accepted() {
    let Some(mut s) = Session::start("userpass-ok", user_pass_knobs(false)) else {
        return;
    };
    let status = s.server.management("status 2");
    assert!(
        status.lines().any(|l| l.starts_with("CLIENT_LIST,alice,")),
        "[{}] the server does not list the client as `alice`:\n{status}",
        s.tag
    );
    s.check_tunnel();
    s.bulk_default();
    s.finish();
}

/// (5) Username/password refused: the client exits non-zero within 30 s with AUTH_FAILED in its
/// log, and leaves DNS, routes and devices as they were. Inline `<auth-user-pass>`.
#[test]
fn auth_user_pass_refused() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let started = Instant::now();
    let lab = Lab::new("userpass-refused");
    let mut server = OpenVpnServer::new(&lab, user_pass_knobs(true));
    server.start(&lab);
    let routes_before = lab.client_routes();
    let wrong = Some(("alice".to_owned(), "wrong password".to_owned()));
    let profile = server.client_profile_with(&lab, "client.ovpn", wrong);
    let mut client = Client::start(&lab, imp, &profile, &[]);
    let status = client.proc.wait_timeout(Duration::from_secs(30));
    let log = client.log_text();
    let status =
        status.unwrap_or_else(|| panic!("client still running 30 s after the server refused it"));
    // The reference client exits 0 after AUTH_FAILED (a "soft" SIGTERM); ferrovpn must not.
    if imp == ClientImpl::Ferrovpn {
        assert!(
            !status.success(),
            "client exited successfully ({status}) after AUTH_FAILED"
        );
    }
    assert!(
        log.contains("AUTH_FAILED"),
        "client log does not mention AUTH_FAILED"
    );
    assert!(
        !log.contains(support::openvpn::LOG_CONNECTED),
        "client reported a completed connection"
    );
    assert!(server.log_text().contains("check-user-pass: refused alice"));
    assert_eq!(
        lab.client_resolv(),
        lab.resolv_original(),
        "resolv.conf changed"
    );
    assert_eq!(lab.client_routes(), routes_before, "routes changed");
    assert!(
        lab.client_tun_devices().is_empty(),
        "TUN device left behind"
    );
    eprintln!(
        "[userpass-refused] client={} exited {status} after {:.2}s",
        imp.name(),
        started.elapsed().as_secs_f64()
    );
}

/// (6) The server renegotiates every 10 s (`reneg-sec 10`) while a paced transfer runs for
/// ~28 s: at least two renegotiations happen under load and no byte is lost or corrupted.
#[test]
fn renegotiation_under_load() {
    // tran-window 5: an old key dies 5 s after a renegotiation began, so a client that does not
    // move its traffic to the new key loses it (by default the old key lives on for an hour).
    let knobs = Knobs {
        reneg_sec: Some(10),
        extra_server: vec!["tran-window 5".into()],
        ..Knobs::default()
    };
    let Some(mut s) = Session::start("reneg", knobs) else {
        return;
    };
    s.check_tunnel();
    let handshakes_before = s.server.count_in_log(HANDSHAKE_LINE);
    // 14 s up and 14 s down at 2 MB/s.
    let t = Transfer::new(&s.server.tunnel_v4(), 28 * MB, 28 * MB)
        .rate(2 * MB)
        .timeout(Duration::from_secs(90));
    s.bulk(t);
    let renegs = s.server.count_in_log(HANDSHAKE_LINE) - handshakes_before;
    assert!(
        renegs >= 2,
        "[reneg] only {renegs} renegotiations during the transfer"
    );
    eprintln!("[reneg] {renegs} renegotiations during the transfer");
    // Disconnect right after the next renegotiation rather than during one: an exit notification
    // sent while a renegotiation is in flight is lost by OpenVPN 2.6 itself at times (its own
    // client too: the server logs "key IDs out of sync" and drops it).
    let r = s
        .server
        .wait_for_log(HANDSHAKE_LINE, handshakes_before + renegs + 1, RENEG_WAIT);
    r.unwrap_or_else(|e| panic!("[reneg] no renegotiation after the transfer: {e}"));
    s.check_tunnel();
    s.finish();
}

const RENEG_WAIT: Duration = Duration::from_secs(15);

/// What the OpenVPN server logs each time a new data-channel key is installed (after the initial
/// handshake and after every renegotiation).
const HANDSHAKE_LINE: &str = "Incoming Data Channel: Cipher";

/// (7) The server goes away and comes back mid-session; each time the client reconnects (one
/// more `Initialization Sequence Completed`) and traffic flows again. First a graceful stop
/// (SIGTERM: the UDP server sends RESTART to its clients), then a crash (SIGKILL: nothing tells
/// the client; it must notice through the pushed `ping-restart`, 6 s here). After the graceful
/// stop the reconnect must not wait for ping-restart.
#[test]
fn server_restart_reconnect() {
    let knobs = Knobs {
        keepalive: (1, 6),
        ..Knobs::default()
    };
    let Some(mut s) = Session::start("restart", knobs) else {
        return;
    };
    s.check_tunnel();
    for (connects, crash) in [(2, false), (3, true)] {
        let what = if crash { "killed" } else { "stopped" };
        let t = Instant::now();
        let status = if crash {
            s.server.kill()
        } else {
            s.server.stop()
        };
        eprintln!(
            "[restart] server {what} ({status}) in {:.2}s",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        s.server.start(&s.lab);
        let r = s.client.wait_connected(connects, Duration::from_secs(60));
        r.unwrap_or_else(|e| panic!("[restart] no reconnect after the server was {what}: {e}"));
        let took = t.elapsed();
        s.timings
            .push((format!("reconnect after server {what}"), took));
        // The stopping server told the client (RESTART); waiting for ping-restart instead would
        // take up to 2 minutes with common server settings (keepalive 10 120).
        assert!(
            crash || took < Duration::from_secs(4),
            "[restart] reconnect took {took:?} after a graceful server stop, as long as \
             ping-restart (6 s): the client ignored the server's RESTART control message \
             (OpenVPN: \"SIGUSR1[soft,server-pushed-connection-reset]\", reconnect at once)"
        );
        let (ns, addr) = (s.lab.client_ns.clone(), s.server.tunnel_v4());
        let r = s.time("first ping after reconnect", |_| {
            traffic::ping_until(&ns, &addr, Duration::from_secs(10))
        });
        r.unwrap_or_else(|e| panic!("[restart] after the server was {what}: {e}"));
        s.check_tunnel();
        s.bulk_default();
    }
    s.finish();
}

/// (8) A server certificate without the serverAuth EKU (EKU clientAuth only: what another
/// client of the same CA would present when posing as the server) must be refused, and the log
/// must say why. Tried with `remote-cert-tls server` in the profile, and without it: ferrovpn
/// checks the EKU by default and then names its `--no-server-eku-check` override; the reference
/// client refuses too, through OpenSSL's certificate-purpose check.
#[test]
fn server_cert_without_server_eku_is_refused() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    for (tag, remote_cert_tls) in [("wrong-purpose", true), ("wrong-purpose-default", false)] {
        let knobs = Knobs {
            server_cert: ServerCert::NoServerEku,
            remote_cert_tls,
            ..Knobs::default()
        };
        let wanted = EkuRefusal {
            imp,
            remote_cert_tls,
        };
        let mut s = Session::start_with(tag, imp, knobs, false);
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            let exited = s.client.proc.try_status();
            let log = s.client.log_text();
            assert!(
                !log.contains(support::openvpn::LOG_CONNECTED),
                "[{tag}] the client accepted a server certificate without serverAuth EKU"
            );
            if wanted.found_in(&log) {
                break;
            }
            if let Some(st) = exited {
                panic!("[{tag}] client exited ({st}) without logging {wanted}");
            }
            assert!(
                Instant::now() < deadline,
                "[{tag}] within {CONNECT_TIMEOUT:?} the client did not log {wanted}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s.timings.push(("refused".into(), s.started.elapsed()));
        if let Some(st) = s.client.proc.try_status() {
            assert!(
                !st.success(),
                "[{tag}] client exited 0 after refusing the server"
            );
        }
        // Whether it exits on its own or keeps retrying, it must stop and leave nothing behind.
        let st = s.client.terminate(EXIT_TIMEOUT);
        assert!(st.is_some(), "[{tag}] client ignored SIGTERM");
        assert_eq!(
            s.lab.client_resolv(),
            s.lab.resolv_original(),
            "[{tag}] resolv.conf changed"
        );
        assert!(
            s.lab.client_tun_devices().is_empty(),
            "[{tag}] TUN device left behind"
        );
        s.report();
    }
}

/// What the client's log must say when it refuses a server certificate for its EKU.
struct EkuRefusal {
    imp: ClientImpl,
    remote_cert_tls: bool,
}

impl EkuRefusal {
    fn found_in(&self, log: &str) -> bool {
        match self.imp {
            ClientImpl::Ferrovpn => {
                let eku =
                    log.contains("EKU") || log.to_ascii_lowercase().contains("extended key usage");
                eku && (self.remote_cert_tls || log.contains("--no-server-eku-check"))
            }
            ClientImpl::OpenVpn => {
                log.contains("unsuitable certificate purpose") || log.contains("VERIFY EKU ERROR")
            }
        }
    }
}

impl std::fmt::Display for EkuRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.imp {
            ClientImpl::Ferrovpn => {
                f.write_str("an EKU error (\"EKU\" or \"extended key usage\")")?;
                if !self.remote_cert_tls {
                    f.write_str(" naming --no-server-eku-check")?;
                }
                Ok(())
            }
            ClientImpl::OpenVpn => {
                f.write_str("\"unsuitable certificate purpose\" or \"VERIFY EKU ERROR\"")
            }
        }
    }
}

/// SIGUSR1 and SIGHUP to the client process restart the connection at once (a new session, the
/// remote resolved again), as with OpenVPN; the tunnel works after each.
#[test]
fn client_sigusr1_and_sighup_restart() {
    let Some(mut s) = Session::start("client-signals", Knobs::default()) else {
        return;
    };
    if s.imp() != ClientImpl::Ferrovpn {
        s.finish();
        return;
    }
    for (n, sig) in [(2, libc::SIGUSR1), (3, libc::SIGHUP)] {
        s.client.proc.signal(sig);
        if let Err(e) = s.client.wait_connected(n, CONNECT_TIMEOUT) {
            panic!(
                "[client-signals] no new connection after signal {sig}: {e}\n{}",
                s.client.log_text()
            );
        }
        s.check_tunnel();
    }
    let log = s.client.log_text();
    assert!(
        log.contains("SIGUSR1 received") && log.contains("SIGHUP received"),
        "the client did not log the signals:\n{log}"
    );
    s.finish();
}

/// `up`, `route-up` and `down` scripts run in that order with OpenVPN's arguments and
/// environment (what resolver scripts read: `dev`, `ifconfig_local`, `route_*`,
/// `foreign_option_N`); with `script-security 1` the client refuses to start the tunnel and says
/// which directive needs what.
#[test]
fn client_up_route_up_down_scripts() {
    if support::interop_ready().is_none() || ClientImpl::from_env() != ClientImpl::Ferrovpn {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ferrovpn-hooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hook = dir.join("hook.sh");
    let out = dir.join("calls.txt");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$script_type args=[$*] dev=$dev local=$ifconfig_local mask=$ifconfig_netmask \
             gw=$route_vpn_gateway net1=$route_network_1 fo1=$foreign_option_1 fo2=$foreign_option_2 \
             trusted=$trusted_ip:$trusted_port ctx=$script_context\" >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let h = hook.display().to_string();
    let knobs = |level: &str| Knobs {
        extra_client: vec![
            format!("script-security {level}"),
            format!("up {h}"),
            format!("route-up {h}"),
            format!("down {h}"),
        ],
        ..Knobs::default()
    };
    let Some(mut s) = Session::start("client-scripts", knobs("2")) else {
        return;
    };
    s.check_tunnel();
    s.finish();
    let calls = std::fs::read_to_string(&out).unwrap_or_default();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 3, "expected up, route-up, down:\n{calls}");
    assert!(lines[0].starts_with("up args=[tun"), "{calls}");
    assert!(lines[1].starts_with("route-up args=[]"), "{calls}");
    assert!(lines[2].starts_with("down args=[tun"), "{calls}");
    for l in &lines {
        for want in [
            "local=198.19.",
            "mask=255.255.255.0",
            "fo1=dhcp-option DNS ",
            "trusted=198.18.",
            "ctx=init",
        ] {
            assert!(l.contains(want), "{want:?} missing in {l}");
        }
    }

    // script-security 1: not run, and the run ends with a message naming the level needed.
    let lab = Lab::new("client-scripts-sec1");
    let mut server = OpenVpnServer::new(&lab, knobs("1"));
    server.start(&lab);
    let profile = server.client_profile(&lab, "client.ovpn");
    let mut client = Client::start(&lab, ClientImpl::Ferrovpn, &profile, &[]);
    let status = client.proc.wait_timeout(CONNECT_TIMEOUT);
    let log = client.log_text();
    let status = status.unwrap_or_else(|| panic!("still running with script-security 1:\n{log}"));
    assert!(!status.success(), "exit {status}");
    assert!(
        log.contains("script-security 2 or higher is required"),
        "no clear message:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `inactive 3`: with no traffic the client exits (status 0) a few seconds after connecting;
/// `session-timeout 4`: it exits 4 s after connecting even while traffic flows.
#[test]
fn client_inactive_and_session_timeout_exit() {
    if support::interop_ready().is_none() || ClientImpl::from_env() != ClientImpl::Ferrovpn {
        return;
    }
    for (tag, line, needle) in [
        (
            "client-inactive",
            "inactive 3",
            "no traffic for the 'inactive' period",
        ),
        (
            "client-session-timeout",
            "session-timeout 4",
            "session-timeout reached",
        ),
    ] {
        let lab = Lab::new(tag);
        let mut server = OpenVpnServer::new(
            &lab,
            Knobs {
                extra_client: vec![line.into()],
                ..Knobs::default()
            },
        );
        server.start(&lab);
        let profile = server.client_profile(&lab, "client.ovpn");
        let mut client = Client::start(&lab, ClientImpl::Ferrovpn, &profile, &[]);
        let took = client
            .wait_connected(1, CONNECT_TIMEOUT)
            .unwrap_or_else(|e| panic!("[{tag}] {e}\n{}", client.log_text()));
        if tag == "client-session-timeout" {
            // Traffic does not keep a session past its timeout.
            let _ = traffic::ping(&lab.client_ns, &server.tunnel_v4(), 2);
        }
        let t = Instant::now();
        let status = client.proc.wait_timeout(Duration::from_secs(20));
        let log = client.log_text();
        let status = status.unwrap_or_else(|| panic!("[{tag}] still running:\n{log}"));
        assert!(status.success(), "[{tag}] exit {status}:\n{log}");
        assert!(log.contains(needle), "[{tag}] no {needle:?} in:\n{log}");
        eprintln!(
            "[{tag}] connected after {took:?}, exited {:.1}s later",
            t.elapsed().as_secs_f64()
        );
    }
}
