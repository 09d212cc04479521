//! Interop tests of the server (`ferrovpn serve CONFIG`) with stock OpenVPN 2.6 clients.
//!
//! The server under test is pluggable (tests/support/server.rs): `ferrovpn serve` by default,
//! or the reference `openvpn` server with `FERROVPN_INTEROP_SERVER=openvpn` (to validate the
//! tests themselves). Both run the same server.conf (OpenVPN syntax) in the lab's server
//! namespace; the clients are Debian's `openvpn` 2.6 client, each in its own namespace.
//!
//! Addresses (X = `Lab::x`, unique per lab in this process): underlay 198.18.X.0/24 (server
//! 198.18.X.1 port 1194, first client 198.18.X.2, extra clients 198.18.X.3, ...); tunnel
//! 198.19.X.0/24 (server 198.19.X.1); in `site_to_site_iroute` the pool is 198.19.X.0/25, the
//! LAN behind the client 198.19.X.128/26 and the LAN behind the server 198.19.X.192/26.
//!
//! They need root and `openvpn`; otherwise they print why and pass, unless
//! `FERROVPN_REQUIRE_INTEROP=1` makes that a failure. `FERROVPN_BIN`, `FERROVPN_INTEROP_VERB`
//! (ferrovpn `--verb`, default 4) and `FERROVPN_INTEROP_KEEP` work as in tests/interop.rs.
//!
//! Run: `sudo -E cargo test --test server_interop -- --nocapture`
//! (reference: `sudo -E FERROVPN_INTEROP_SERVER=openvpn cargo test --test server_interop`).

// The clock and sleep bans (clippy.toml) are for the protocol core; this harness waits on real
// processes in real time.
#![allow(clippy::disallowed_methods)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use support::lab_multi::{add_behind, add_client};
use support::netns::{Lab, run_ok};
use support::server::{
    ClientAuth, ClientEntry, OvpnClient, PORT, Profile, Proto, Server, ServerConf, ServerImpl,
    ServerPki, WrapKeys, only_ferrovpn, server_ready, wait_log_any,
};
use support::traffic::{MB, Transfer, ping, ping_until, transfer, transfer_between};

const CONNECT: Duration = Duration::from_secs(30);
/// A host on the server namespace's `lo` that only a pushed route reaches.
const VPN_ONLY: &str = "198.19.255.1";
const MGMT_PORT: u16 = 7505;

fn tunnel_net(lab: &Lab) -> String {
    format!("198.19.{}.0", lab.x)
}

fn server_tunnel_addr(lab: &Lab) -> String {
    format!("198.19.{}.1", lab.x)
}

fn pki(lab: &Lab, clients: &[&str], revoked: &[&str]) -> ServerPki {
    ServerPki::generate(&lab.dir.join("pki"), clients, revoked)
}

fn cert(cn: &str) -> ClientAuth {
    ClientAuth::Cert(cn.to_owned())
}

fn must<T>(tag: &str, what: &str, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("[{tag}] {what}: {e}"))
}

/// Starts the openvpn client `name` in `ns` and waits until it is connected.
fn connect(
    lab: &Lab,
    tag: &str,
    ns: &str,
    name: &str,
    profile: &Profile,
    pki: &ServerPki,
) -> OvpnClient {
    let path = profile.write(lab, pki, name);
    let mut c = OvpnClient::start(lab, ns, name, &path);
    let t = must(
        tag,
        &format!("client {name} connect"),
        c.wait_connected(1, CONNECT),
    );
    eprintln!("[{tag}] client {name} connected in {t:.2?}");
    c
}

fn tunnel_addr(tag: &str, c: &OvpnClient) -> String {
    c.tunnel_addr()
        .unwrap_or_else(|| panic!("[{tag}] client {} has no address on a tun device", c.name))
}

fn entries_for<'a>(list: &'a [ClientEntry], cn: &str) -> Vec<&'a ClientEntry> {
    list.iter().filter(|e| e.cn == cn).collect()
}

/// Cases 1 and 2: one client, tls-crypt, pushed route and DNS; ping the server's tunnel address
/// and the pushed-route host, 20 MB each way with checksums.
fn basic(tag: &str, proto: Proto) {
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    let lab = Lab::new(tag);
    let x = lab.x;
    let pki = pki(&lab, &["client1"], &[]);
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    run_ok(&[
        "ip",
        "-n",
        &lab.server_ns,
        "addr",
        "add",
        &format!("{VPN_ONLY}/32"),
        "dev",
        "lo",
    ]);
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
    conf.listen(&lab.server_underlay_v4(), proto)
        .line(&wrap.server_line)
        .line(format!("push \"route {VPN_ONLY} 255.255.255.255\""))
        .line(format!("push \"dhcp-option DNS 198.19.{x}.53\""))
        .line("push \"dhcp-option DOMAIN test.internal\"");
    let _server = Server::start(&lab, imp, &conf);
    let profile = Profile::new(&lab, proto, cert("client1"), Some(&wrap));
    let client = connect(&lab, tag, &lab.client_ns, "client1", &profile, &pki);

    let log = client.log_text();
    for pushed in [
        format!("route {VPN_ONLY} 255.255.255.255"),
        format!("dhcp-option DNS 198.19.{x}.53"),
        "dhcp-option DOMAIN test.internal".to_owned(),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("PUSH_REPLY") && l.contains(&pushed)),
            "[{tag}] the client did not receive `{pushed}` in its PUSH_REPLY"
        );
    }
    let addr = tunnel_addr(tag, &client);
    assert!(
        addr.starts_with(&format!("198.19.{x}.")) && addr != server_tunnel_addr(&lab),
        "[{tag}] client tunnel address {addr} is not from the pool 198.19.{x}.0/24"
    );
    must(
        tag,
        "ping server tunnel address",
        ping(&lab.client_ns, &server_tunnel_addr(&lab), 3),
    );
    must(
        tag,
        "ping host behind pushed route",
        ping(&lab.client_ns, VPN_ONLY, 3),
    );
    let t = Transfer::new(&server_tunnel_addr(&lab), 20 * MB, 20 * MB);
    let r = must(tag, "20 MB each way", transfer(&lab, &t));
    eprintln!("[{tag}] {}", r.summary(&t));
}

/// Case 1: `proto udp`.
#[test]
fn udp_basic() {
    basic("udp_basic", Proto::Udp);
}

/// Case 2: `proto tcp-server`.
#[test]
fn tcp_basic() {
    basic("tcp_basic", Proto::Tcp);
}

/// Case 3: `tls-crypt-v2 srv.key` on the server, the client's own key from it.
#[test]
fn tls_crypt_v2() {
    let tag = "tls_crypt_v2";
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    let lab = Lab::new(tag);
    let pki = pki(&lab, &["client1"], &[]);
    let wrap = WrapKeys::tls_crypt_v2(&lab.dir);
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
    conf.listen(&lab.server_underlay_v4(), Proto::Udp)
        .line(&wrap.server_line);
    let _server = Server::start(&lab, imp, &conf);
    let profile = Profile::new(&lab, Proto::Udp, cert("client1"), Some(&wrap));
    let _client = connect(&lab, tag, &lab.client_ns, "client1", &profile, &pki);
    must(
        tag,
        "ping",
        ping(&lab.client_ns, &server_tunnel_addr(&lab), 3),
    );
    let t = Transfer::new(&server_tunnel_addr(&lab), 2 * MB, 2 * MB);
    must(tag, "2 MB each way", transfer(&lab, &t));
}

/// Case 4: site to site. A LAN behind the client (198.19.X.128/26, the client namespace routes
/// it with forwarding on) and one behind the server (198.19.X.192/26); the server has
/// `route` + `client-config-dir` with `iroute` for the client's LAN and pushes a route to its
/// own. Ping and a TCP transfer from the host behind the server to the host behind the client.
#[test]
fn site_to_site_iroute() {
    let tag = "site_to_site_iroute";
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    let mut lab = Lab::new(tag);
    let x = lab.x;
    let (cns, sns) = (lab.client_ns.clone(), lab.server_ns.clone());
    let lan = add_behind(
        &mut lab,
        &cns,
        "lan",
        &format!("198.19.{x}.129"),
        &format!("198.19.{x}.130"),
        26,
    );
    let hq = add_behind(
        &mut lab,
        &sns,
        "hq",
        &format!("198.19.{x}.193"),
        &format!("198.19.{x}.194"),
        26,
    );
    let pki = pki(&lab, &["client1"], &[]);
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    let ccd = lab.dir.join("ccd");
    fs::create_dir_all(&ccd).unwrap();
    let ccd_file = ccd.join("client1");
    fs::write(
        &ccd_file,
        format!("iroute 198.19.{x}.128 255.255.255.192\n"),
    )
    .unwrap();
    lab.watch_log("ccd/client1", &ccd_file);
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.128");
    conf.listen(&lab.server_underlay_v4(), Proto::Udp)
        .line(&wrap.server_line)
        .line(format!("route 198.19.{x}.128 255.255.255.192"))
        .line(format!("client-config-dir {}", ccd.display()))
        .line(format!("push \"route 198.19.{x}.192 255.255.255.192\""));
    let _server = Server::start(&lab, imp, &conf);
    let profile = Profile::new(&lab, Proto::Udp, cert("client1"), Some(&wrap));
    let _client = connect(&lab, tag, &lab.client_ns, "client1", &profile, &pki);

    // The server's route to the client's LAN may appear a moment after the client connects.
    must(
        tag,
        "ping hq -> lan",
        ping_until(&hq.ns, &lan.addr, Duration::from_secs(10)),
    );
    must(tag, "ping lan -> hq", ping(&lan.ns, &hq.addr, 3));
    let t = Transfer::new(&lan.addr, 10 * MB, 10 * MB);
    let r = must(
        tag,
        "transfer hq -> lan",
        transfer_between(&lab, &lan.ns, &hq.ns, &t),
    );
    eprintln!("[{tag}] {}", r.summary(&t));
}

/// Case 5: one server, a UDP and a TCP listener (OpenVPN 2.7 multi-socket `local ADDR PORT
/// PROTO` lines), `client-to-client`; a UDP client and a TCP client reach each other.
/// OpenVPN 2.6 cannot listen on both at once: against it the same checks run with two UDP
/// clients (validating the test), and the TCP half is skipped.
#[test]
fn client_to_client_udp_and_tcp() {
    let tag = "client_to_client_udp_and_tcp";
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    let mut lab = Lab::new(tag);
    let c2 = add_client(&mut lab, 1);
    let pki = pki(&lab, &["client1", "client2"], &[]);
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    let srv = lab.server_underlay_v4();
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
    let second = match imp {
        ServerImpl::Ferrovpn => {
            conf.line(format!("local {srv} {PORT} udp"))
                .line(format!("local {srv} {PORT} tcp"));
            Proto::Tcp
        }
        ServerImpl::OpenVpn => {
            only_ferrovpn(
                tag,
                imp,
                "no multi-socket `local ... udp` + `local ... tcp` in 2.6; both clients on UDP",
            );
            conf.listen(&srv, Proto::Udp);
            Proto::Udp
        }
    };
    conf.line(&wrap.server_line).line("client-to-client");
    let _server = Server::start(&lab, imp, &conf);
    let p1 = Profile::new(&lab, Proto::Udp, cert("client1"), Some(&wrap));
    let p2 = Profile::new(&lab, second, cert("client2"), Some(&wrap));
    let a = connect(&lab, tag, &lab.client_ns, "client1", &p1, &pki);
    let b = connect(&lab, tag, &c2.ns, "client2", &p2, &pki);
    let (addr_a, addr_b) = (tunnel_addr(tag, &a), tunnel_addr(tag, &b));
    assert_ne!(addr_a, addr_b, "[{tag}] both clients got the same address");
    must(
        tag,
        "ping udp client -> tcp client",
        ping_until(&a.ns, &addr_b, Duration::from_secs(5)),
    );
    must(
        tag,
        "ping tcp client -> udp client",
        ping(&b.ns, &addr_a, 3),
    );
    let t = Transfer::new(&addr_a, 5 * MB, 5 * MB);
    let r = must(
        tag,
        "transfer client2 -> client1",
        transfer_between(&lab, &a.ns, &b.ns, &t),
    );
    eprintln!("[{tag}] {}", r.summary(&t));
}

/// Case 6: `management 127.0.0.1 7505`: `status 2` lists the client (CN, real and virtual
/// address); `kill CN` answers SUCCESS and the client is disconnected (it restarts).
#[test]
fn management_status_and_kill() {
    let tag = "management_status_and_kill";
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    let lab = Lab::new(tag);
    let pki = pki(&lab, &["client1"], &[]);
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
    conf.listen(&lab.server_underlay_v4(), Proto::Udp)
        .line(&wrap.server_line)
        .line(format!("management 127.0.0.1 {MGMT_PORT}"));
    // OpenVPN 2.6 kills a UDP client silently: the client notices by ping-restart.
    conf.set("keepalive", "keepalive 1 6");
    let server = Server::start(&lab, imp, &conf);
    let profile = Profile::new(&lab, Proto::Udp, cert("client1"), Some(&wrap));
    let mut client = connect(&lab, tag, &lab.client_ns, "client1", &profile, &pki);
    let addr = tunnel_addr(tag, &client);

    let list = must(
        tag,
        "status 2",
        server.wait_client_list(
            "client1 with its virtual address",
            Duration::from_secs(10),
            |l| l.iter().any(|e| e.cn == "client1" && !e.virt.is_empty()),
        ),
    );
    let e = entries_for(&list, "client1");
    assert_eq!(e.len(), 1, "[{tag}] CLIENT_LIST: {list:?}");
    assert_eq!(e[0].virt, addr, "[{tag}] virtual address in CLIENT_LIST");
    assert_eq!(
        e[0].real_ip(),
        format!("198.18.{}.2", lab.x),
        "[{tag}] real address in CLIENT_LIST: {:?}",
        e[0]
    );

    let reply = must(tag, "kill client1", server.management("kill client1"));
    assert!(
        reply.starts_with("SUCCESS"),
        "[{tag}] `kill client1` answered {reply:?}"
    );
    // The client notices at once (RESTART/HALT from the server) or at the latest by its
    // ping-restart (20 s), then reconnects or exits.
    let seen = wait_log_any(
        &client.proc,
        &[
            "SIGUSR1[soft",
            "SIGTERM[soft",
            "Restart pause",
            "Inactivity timeout",
            "Connection reset",
            "RESTART",
            "HALT",
        ],
        Duration::from_secs(30),
    );
    let seen =
        seen.unwrap_or_else(|| panic!("[{tag}] the client log shows no disconnect after `kill`"));
    eprintln!("[{tag}] client after kill: {seen:?}");
    // Killed, it reconnects (RESTART) or exits (HALT); either way it is not left half-connected.
    let start = Instant::now();
    loop {
        if client.connected_count() >= 2 {
            eprintln!("[{tag}] client reconnected after kill");
            must(
                tag,
                "ping after reconnect",
                ping_until(
                    &lab.client_ns,
                    &server_tunnel_addr(&lab),
                    Duration::from_secs(5),
                ),
            );
            break;
        }
        if let Some(s) = client.proc.try_status() {
            eprintln!("[{tag}] client exited after kill ({s})");
            break;
        }
        assert!(
            start.elapsed() < CONNECT,
            "[{tag}] the client neither reconnected nor exited after kill"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Case 7: `crl-verify crl.pem` revoking one client certificate: that client fails (TLS error
/// in its log), the other connects.
#[test]
fn revoked_certificate_refused() {
    let tag = "revoked_certificate_refused";
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    let mut lab = Lab::new(tag);
    let c2 = add_client(&mut lab, 1);
    let pki = pki(&lab, &["good", "revoked"], &["revoked"]);
    let crl = pki.crl.clone().expect("crl");
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
    conf.listen(&lab.server_underlay_v4(), Proto::Udp)
        .line(&wrap.server_line)
        .line(format!("crl-verify {}", crl.display()))
        .line(format!("management 127.0.0.1 {MGMT_PORT}"));
    let server = Server::start(&lab, imp, &conf);
    let mut bad_profile = Profile::new(&lab, Proto::Udp, cert("revoked"), Some(&wrap));
    // With TLS 1.3 the client's side of the handshake is done before the server checks its
    // certificate; the server's alert may not reach it, and it only gives up after
    // `hand-window` (default 60 s).
    bad_profile.extra.push("hand-window 10".into());
    let path = bad_profile.write(&lab, &pki, "revoked");
    let mut bad = OvpnClient::start(&lab, &c2.ns, "revoked", &path);
    let good_profile = Profile::new(&lab, Proto::Udp, cert("good"), Some(&wrap));
    let _good = connect(&lab, tag, &lab.client_ns, "good", &good_profile, &pki);
    must(
        tag,
        "ping from the good client",
        ping(&lab.client_ns, &server_tunnel_addr(&lab), 2),
    );

    let errors = [
        "TLS Error",
        "TLS error",
        "tls_error",
        "SSL alert",
        "AUTH_FAILED",
    ];
    let seen = wait_log_any(&bad.proc, &errors, Duration::from_secs(25));
    assert!(
        seen.is_some(),
        "[{tag}] the revoked client's log shows no TLS error (looked for {errors:?})"
    );
    assert!(
        bad.wait_connected(1, Duration::from_secs(2)).is_err(),
        "[{tag}] the client with the revoked certificate connected"
    );
    let (list, raw) = must(tag, "status 2", server.status2());
    assert!(
        entries_for(&list, "revoked")
            .iter()
            .all(|e| e.virt.is_empty()),
        "[{tag}] revoked client in status 2:\n{raw}"
    );
    assert_eq!(
        entries_for(&list, "good").len(),
        1,
        "[{tag}] status 2 reply:\n{raw}"
    );
}

/// Case 8: `auth-user-pass-verify check.sh via-file` (accepts only alice/secret),
/// `verify-client-cert none`, `username-as-common-name`: alice connects, bob gets AUTH_FAILED.
#[test]
fn auth_user_pass_verify() {
    let tag = "auth_user_pass_verify";
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    let mut lab = Lab::new(tag);
    let c2 = add_client(&mut lab, 1);
    let pki = pki(&lab, &[], &[]);
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    let script = lab.dir.join("check.sh");
    fs::write(
        &script,
        r#"#!/bin/sh
# auth-user-pass-verify via-file: $1 holds the user name and the password on two lines.
u=$(sed -n 1p "$1")
p=$(sed -n 2p "$1")
if [ "$u" = alice ] && [ "$p" = secret ]; then
  echo "check.sh: accepted $u" >&2
  exit 0
fi
echo "check.sh: refused $u" >&2
exit 1
"#,
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
    conf.listen(&lab.server_underlay_v4(), Proto::Udp)
        .line(&wrap.server_line)
        .line("script-security 2")
        .line(format!(
            "auth-user-pass-verify {} via-file",
            script.display()
        ))
        .line("verify-client-cert none")
        .line("username-as-common-name")
        .line(format!("management 127.0.0.1 {MGMT_PORT}"));
    let server = Server::start(&lab, imp, &conf);
    let alice = Profile::new(
        &lab,
        Proto::Udp,
        ClientAuth::UserPass("alice".into(), "secret".into()),
        Some(&wrap),
    );
    let _alice = connect(&lab, tag, &lab.client_ns, "alice", &alice, &pki);
    must(
        tag,
        "ping from alice",
        ping(&lab.client_ns, &server_tunnel_addr(&lab), 2),
    );
    // username-as-common-name: the user name is the CN in status.
    must(
        tag,
        "status 2 lists alice",
        server.wait_client_list("alice", Duration::from_secs(10), |l| {
            l.iter().any(|e| e.cn == "alice" && !e.virt.is_empty())
        }),
    );
    let bob = Profile::new(
        &lab,
        Proto::Udp,
        ClientAuth::UserPass("bob".into(), "wrong".into()),
        Some(&wrap),
    );
    let path = bob.write(&lab, &pki, "bob");
    let mut bob = OvpnClient::start(&lab, &c2.ns, "bob", &path);
    // (The openvpn client exits on AUTH_FAILED; wait_for_log looks at the log once more then.)
    must(
        tag,
        "bob gets AUTH_FAILED",
        bob.proc.wait_for_log("AUTH_FAILED", 1, CONNECT),
    );
    assert_eq!(bob.connected_count(), 0, "[{tag}] bob connected");
    let (list, raw) = must(tag, "status 2", server.status2());
    assert_eq!(
        entries_for(&list, "alice").len(),
        1,
        "[{tag}] status 2 reply:\n{raw}"
    );
    assert!(
        entries_for(&list, "bob").iter().all(|e| e.virt.is_empty()),
        "[{tag}] bob in status 2:\n{raw}"
    );
}

/// One half of case 9: two clients (own namespaces) with the same certificate.
fn duplicate_cn_case(imp: ServerImpl, tag: &str, duplicate_cn: bool) {
    let mut lab = Lab::new(tag);
    let c2 = add_client(&mut lab, 1);
    let pki = pki(&lab, &["client1"], &[]);
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
    conf.listen(&lab.server_underlay_v4(), Proto::Udp)
        .line(&wrap.server_line)
        .line(format!("management 127.0.0.1 {MGMT_PORT}"));
    if duplicate_cn {
        conf.line("duplicate-cn");
    }
    // The replaced client notices by ping-restart at the latest.
    conf.set("keepalive", "keepalive 1 6");
    let server = Server::start(&lab, imp, &conf);
    let profile = Profile::new(&lab, Proto::Udp, cert("client1"), Some(&wrap));
    let first_real = format!("198.18.{}.2", lab.x);
    let mut first = connect(&lab, tag, &lab.client_ns, "first", &profile, &pki);
    let one = |l: &[ClientEntry]| l.iter().any(|e| e.cn == "client1" && !e.virt.is_empty());
    must(
        tag,
        "status 2 with the first client",
        server.wait_client_list("client1", Duration::from_secs(10), one),
    );
    let second = connect(&lab, tag, &c2.ns, "second", &profile, &pki);
    let second_addr = tunnel_addr(tag, &second);
    must(
        tag,
        "ping from the second client",
        ping(&c2.ns, &server_tunnel_addr(&lab), 2),
    );
    if duplicate_cn {
        let list = must(
            tag,
            "status 2 with both clients",
            server.wait_client_list("two client1 entries", Duration::from_secs(10), |l| {
                entries_for(l, "client1")
                    .iter()
                    .filter(|e| !e.virt.is_empty())
                    .count()
                    == 2
            }),
        );
        let e = entries_for(&list, "client1");
        assert_ne!(
            e[0].virt, e[1].virt,
            "[{tag}] same virtual address twice: {list:?}"
        );
        let mut reals: Vec<&str> = e.iter().map(|e| e.real_ip()).collect();
        reals.sort();
        assert_eq!(
            reals,
            [first_real.as_str(), c2.addr.as_str()],
            "[{tag}] real addresses: {list:?}"
        );
        let first_addr = tunnel_addr(tag, &first);
        assert_ne!(first_addr, second_addr);
        must(
            tag,
            "ping from the first client",
            ping(&lab.client_ns, &server_tunnel_addr(&lab), 2),
        );
        assert_eq!(
            first.connected_count(),
            1,
            "[{tag}] the first client was disconnected despite duplicate-cn"
        );
    } else {
        let list = must(
            tag,
            "status 2 with only the second client",
            server.wait_client_list(
                "one client1 entry, from the second client",
                Duration::from_secs(10),
                |l| {
                    let e = entries_for(l, "client1");
                    e.len() == 1 && e[0].real_ip() == c2.addr && e[0].virt == second_addr
                },
            ),
        );
        eprintln!("[{tag}] after the second connect: {list:?}");
        // The first one loses its session: told at once, or at the latest by ping-restart.
        let seen = wait_log_any(
            &first.proc,
            &[
                "SIGUSR1[soft",
                "Restart pause",
                "Inactivity timeout",
                "RESTART",
                "HALT",
                "AUTH_FAILED",
            ],
            Duration::from_secs(30),
        );
        let seen = seen.unwrap_or_else(|| panic!("[{tag}] the first client was not disconnected"));
        eprintln!("[{tag}] first client: {seen:?}");
        first.terminate();
    }
}

/// Case 9: without `duplicate-cn` a second connection with the same certificate replaces the
/// first; with it, both stay connected with their own addresses.
#[test]
fn duplicate_cn() {
    let tag = "duplicate_cn";
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    duplicate_cn_case(imp, "duplicate_cn-replace", false);
    duplicate_cn_case(imp, "duplicate_cn-allowed", true);
}

/// `user nobody` / `group nogroup`: after start-up the server no longer runs as root (every
/// thread), clients still connect and pass traffic, and at stop the TUN device is gone.
#[test]
fn privileges_dropped_after_start() {
    let tag = "privileges_dropped";
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    let lab = Lab::new(tag);
    let pki = pki(&lab, &["client1"], &[]);
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    // The unprivileged server must be able to read its files.
    for dir in [&lab.dir, &pki.dir] {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    }
    for f in fs::read_dir(&pki.dir).expect("pki dir").flatten() {
        let _ = fs::set_permissions(f.path(), fs::Permissions::from_mode(0o644));
    }
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
    conf.listen(&lab.server_underlay_v4(), Proto::Udp)
        .line(&wrap.server_line)
        .line("user nobody")
        .line("group nogroup");
    let mut server = Server::start(&lab, imp, &conf);
    let profile = Profile::new(&lab, Proto::Udp, cert("client1"), Some(&wrap));
    let _client = connect(&lab, tag, &lab.client_ns, "client1", &profile, &pki);
    must(
        tag,
        "ping",
        ping(&lab.client_ns, &server_tunnel_addr(&lab), 3),
    );
    let pid = server.proc.pid();
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).expect("server tasks");
    for t in tasks.flatten() {
        let status = fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let uid = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap_or("Uid: ?")
            .to_owned();
        let ids: Vec<&str> = uid.split_whitespace().skip(1).collect();
        assert!(
            ids.len() == 4 && ids.iter().all(|i| *i == "65534"),
            "[{tag}] server thread {:?} still runs as {uid}",
            t.file_name()
        );
    }
    let t = Transfer::new(&server_tunnel_addr(&lab), 2 * MB, 2 * MB);
    must(tag, "2 MB each way", transfer(&lab, &t));
    server.proc.stop();
    let links = run_ok(&["ip", "-n", &lab.server_ns, "-o", "link", "show"]);
    assert!(
        !links.contains("tun"),
        "[{tag}] a TUN device is left after the server stopped:\n{links}"
    );
}

/// `auth-gen-token`: alice authenticates once with the script; after `kill alice` her client
/// reconnects with the pushed token instead of the password, and the script is not run again.
#[test]
fn auth_gen_token_replaces_the_password_on_reconnect() {
    let tag = "auth_gen_token";
    let Some(imp) = server_ready(tag, &[]) else {
        return;
    };
    let lab = Lab::new(tag);
    let pki = pki(&lab, &[], &[]);
    let wrap = WrapKeys::tls_crypt(&lab.dir);
    let script = lab.dir.join("check.sh");
    let runs = lab.dir.join("check.runs");
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
echo run >> {}
u=$(sed -n 1p "$1")
p=$(sed -n 2p "$1")
[ "$u" = alice ] && [ "$p" = secret ]
"#,
            runs.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
    conf.listen(&lab.server_underlay_v4(), Proto::Udp)
        .line(&wrap.server_line)
        .line("script-security 2")
        .line(format!(
            "auth-user-pass-verify {} via-file",
            script.display()
        ))
        .line("verify-client-cert none")
        .line("username-as-common-name")
        .line("auth-gen-token")
        .line(format!("management 127.0.0.1 {MGMT_PORT}"));
    let server = Server::start(&lab, imp, &conf);
    let alice = Profile::new(
        &lab,
        Proto::Udp,
        ClientAuth::UserPass("alice".into(), "secret".into()),
        Some(&wrap),
    );
    let mut client = connect(&lab, tag, &lab.client_ns, "alice", &alice, &pki);
    must(
        tag,
        "status 2 lists alice",
        server.wait_client_list("alice", Duration::from_secs(10), |l| {
            l.iter().any(|e| e.cn == "alice" && !e.virt.is_empty())
        }),
    );
    let count_runs = || {
        fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(
        count_runs(),
        1,
        "[{tag}] the script ran {} times",
        count_runs()
    );
    let reply = must(tag, "kill alice", server.management("kill alice"));
    assert!(reply.contains("SUCCESS"), "[{tag}] kill answered {reply:?}");
    must(
        tag,
        "alice reconnects",
        client.wait_connected(2, Duration::from_secs(30)),
    );
    must(
        tag,
        "ping after the reconnect",
        ping_until(
            &lab.client_ns,
            &server_tunnel_addr(&lab),
            Duration::from_secs(10),
        ),
    );
    assert_eq!(
        count_runs(),
        1,
        "[{tag}] the script ran again on the reconnect: the token was not used"
    );
}

/// `ferrovpn genkey`: a tls-crypt-v2 server key and client key made by ferrovpn, used by the
/// reference `openvpn` 2.6 on both ends (server and client); and a client key OpenVPN made from
/// ferrovpn's server key, used against `ferrovpn serve`. Keys cross both ways.
#[test]
fn keys_made_by_ferrovpn_genkey_work_in_openvpn() {
    let tag = "genkey_interop";
    let Some(_) = server_ready(tag, &[]) else {
        return;
    };
    for (i, server_imp) in [ServerImpl::OpenVpn, ServerImpl::Ferrovpn]
        .into_iter()
        .enumerate()
    {
        let sub = format!("{tag}{i}");
        let lab = Lab::new(&sub);
        let pki = pki(&lab, &["client1"], &[]);
        let bin = support::client::ferrovpn_bin().expect("ferrovpn binary");
        let srv = lab.dir.join("fv-srv.key");
        let cli = lab.dir.join("cli.key");
        let run = |prog: &std::path::Path, args: &[&str]| {
            let out = std::process::Command::new(prog)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "[{sub}] {prog:?} {args:?}: {out:?}");
        };
        run(
            &bin,
            &["genkey", "tls-crypt-v2-server", srv.to_str().unwrap()],
        );
        if server_imp == ServerImpl::OpenVpn {
            let args = [
                "genkey",
                "tls-crypt-v2-client",
                cli.to_str().unwrap(),
                "--server-key",
            ];
            run(&bin, &[&args[..], &[srv.to_str().unwrap()]].concat());
        } else {
            run(
                std::path::Path::new("openvpn"),
                &[
                    "--tls-crypt-v2",
                    srv.to_str().unwrap(),
                    "--genkey",
                    "tls-crypt-v2-client",
                    cli.to_str().unwrap(),
                ],
            );
        }
        let wrap = WrapKeys {
            server_line: format!("tls-crypt-v2 {}", srv.display()),
            client_tag: "tls-crypt-v2",
            client_key: cli.clone(),
        };
        let mut conf = ServerConf::common(&pki, &tunnel_net(&lab), "255.255.255.0");
        conf.listen(&lab.server_underlay_v4(), Proto::Udp)
            .line(&wrap.server_line);
        let _server = Server::start(&lab, server_imp, &conf);
        let profile = Profile::new(&lab, Proto::Udp, cert("client1"), Some(&wrap));
        let _client = connect(&lab, &sub, &lab.client_ns, "client1", &profile, &pki);
        must(
            &sub,
            "ping",
            ping(&lab.client_ns, &server_tunnel_addr(&lab), 2),
        );
        eprintln!(
            "[{sub}] {} server, {} client key from ferrovpn's server key: connected",
            server_imp.name(),
            if server_imp == ServerImpl::OpenVpn {
                "ferrovpn's"
            } else {
                "openvpn's"
            }
        );
    }
}
