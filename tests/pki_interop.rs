//! Interop tests of the built-in PKI and self-hosting commands, run as the README shows them
//! (`ferrovpn init-server`, `ferrovpn add-client`, `ferrovpn pki revoke`): the server.conf and
//! the `.ovpn` profile they write, run by the stock OpenVPN 2.6 server and client and by
//! `ferrovpn serve`.
//!
//! Only two lines of the generated server.conf change for the lab: the listener is bound to the
//! lab's server underlay address (198.18.X.1) and the tunnel network 10.8.0.0/24 becomes
//! 198.19.X.0/24 (test ranges only). The profile is used exactly as written (its `remote` is the
//! underlay address, given to `init_server` as the public address).
//!
//! They need root and `openvpn`; otherwise they print why and pass, unless
//! `FERROVPN_REQUIRE_INTEROP=1` makes that a failure.
//!
//! Run: `sudo -E cargo test --test pki_interop -- --nocapture`
#![cfg(feature = "runtime")]
// The clock and sleep bans (clippy.toml) are for the protocol core; this harness waits on real
// processes in real time.
#![allow(clippy::disallowed_methods)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrovpn::runtime::pki::PkiDir;
use support::client::ferrovpn_bin;
use support::netns::{Lab, Proc};
use support::server::{LOG_READY, OvpnClient, server_ready, wait_log_any};
use support::traffic::ping;

const CONNECT: Duration = Duration::from_secs(30);

fn server_tunnel_addr(lab: &Lab) -> String {
    format!("198.19.{}.1", lab.x)
}

/// `init_server` (UDP, public address = the lab's server underlay address) and one client;
/// server.conf adapted to the lab. Returns (server dir, profile).
/// Runs `ferrovpn ARGS` to completion; panics with its output if it fails.
fn ferrovpn(args: &[&str]) -> String {
    let bin = ferrovpn_bin().expect("the ferrovpn binary was not built");
    let out = std::process::Command::new(bin)
        .args(args)
        .output()
        .expect("run ferrovpn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ferrovpn {args:?} failed:\n{text}");
    text
}

fn setup(lab: &Lab, client: &str) -> (PathBuf, PathBuf) {
    let dir = lab.dir.join("srv");
    let d = dir.to_string_lossy().into_owned();
    let next_steps = ferrovpn(&[
        "init-server",
        "--dir",
        &d,
        "--public-address",
        &lab.server_underlay_v4(),
        "--proto",
        "udp",
    ]);
    eprintln!("init-server said:\n{next_steps}");
    let server_conf = dir.join("server.conf");
    let conf = fs::read_to_string(&server_conf).expect("read server.conf");
    let mut out = String::new();
    let mut replaced = false;
    for line in conf.lines() {
        if line.starts_with("server 10.8.0.0 ") {
            out.push_str(&format!("server 198.19.{}.0 255.255.255.0\n", lab.x));
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with("port ") {
            out.push_str(&format!("local {}\n", lab.server_underlay_v4()));
        }
    }
    assert!(replaced, "no `server 10.8.0.0 ...` line in:\n{conf}");
    fs::write(&server_conf, out).expect("write server.conf");
    lab.watch_log("server.conf", &server_conf);
    ferrovpn(&["add-client", client, "--dir", &d]);
    let profile = dir.join("clients").join(format!("{client}.ovpn"));
    let text = fs::read_to_string(&profile).expect("read profile");
    assert!(
        text.contains(&format!("remote {} 1194 udp", lab.server_underlay_v4())),
        "{text}"
    );
    (dir, profile)
}

fn start_openvpn_server(lab: &Lab, dir: &Path) -> Proc {
    let d = dir.to_string_lossy().into_owned();
    let mut p = lab.spawn(
        "openvpn server",
        &lab.server_ns,
        &["openvpn", "--cd", &d, "--config", "server.conf"],
        "server.log",
    );
    if let Err(e) = p.wait_for_log(LOG_READY, 1, Duration::from_secs(20)) {
        panic!("the openvpn server did not start with the generated server.conf: {e}");
    }
    p
}

fn connect(lab: &Lab, tag: &str, name: &str, profile: &Path) -> OvpnClient {
    let mut c = OvpnClient::start(lab, &lab.client_ns, name, profile);
    match c.wait_connected(1, CONNECT) {
        Ok(t) => eprintln!("[{tag}] openvpn client {name} connected in {t:.2?}"),
        Err(e) => {
            panic!("[{tag}] the openvpn client did not connect with the generated profile: {e}")
        }
    }
    c
}

/// (1) The openvpn 2.6 server runs the generated server.conf, the openvpn client the generated
/// profile: it connects and pings the server's tunnel address. (3) Then the client is revoked
/// (the CRL rewritten) and the same server refuses it.
#[test]
fn openvpn_server_and_client_then_revocation() {
    let tag = "pki_openvpn";
    if server_ready(tag, &[]).is_none() {
        return;
    }
    let lab = Lab::new(tag);
    let (dir, profile) = setup(&lab, "alice");
    let server = start_openvpn_server(&lab, &dir);
    let mut client = connect(&lab, tag, "alice", &profile);
    ping(&lab.client_ns, &server_tunnel_addr(&lab), 3)
        .unwrap_or_else(|e| panic!("[{tag}] ping through the tunnel: {e}"));
    client.terminate();
    drop(client);

    ferrovpn(&[
        "pki",
        "--dir",
        &dir.join("pki").to_string_lossy(),
        "revoke",
        "alice",
    ]);
    let pki = PkiDir::open(&dir.join("pki")).expect("open PKI");
    let serial = pki
        .list()
        .into_iter()
        .find(|e| e.name == "alice")
        .expect("alice in the index")
        .serial;

    // OpenVPN re-reads crl-verify when the file changes, at the next handshake.
    let again = OvpnClient::start(&lab, &lab.client_ns, "alice-revoked", &profile);
    let seen = wait_log_any(
        &server,
        &["certificate revoked", "CRL: certificate serial number"],
        Duration::from_secs(20),
    );
    assert!(
        seen.is_some(),
        "[{tag}] the openvpn server did not report the revoked certificate (serial {serial})"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        again.connected_count(),
        0,
        "[{tag}] the revoked client connected anyway"
    );
}

/// (2) `ferrovpn serve` runs the same generated server.conf; the openvpn client connects with
/// the generated profile and pings the server's tunnel address.
#[test]
fn ferrovpn_server_with_openvpn_client() {
    let tag = "pki_ferrovpn";
    if server_ready(tag, &[]).is_none() {
        return;
    }
    let Some(bin) = ferrovpn_bin() else {
        eprintln!("[{tag}] skipped: the ferrovpn binary was not built");
        return;
    };
    let lab = Lab::new(tag);
    let (dir, profile) = setup(&lab, "bob");
    let conf = dir.join("server.conf").to_string_lossy().into_owned();
    let bin = bin.to_string_lossy().into_owned();
    let mut server = lab.spawn(
        "ferrovpn server",
        &lab.server_ns,
        &[&bin, "serve", &conf, "--verb", "4"],
        "server.log",
    );
    if let Err(e) = server.wait_for_log(LOG_READY, 1, Duration::from_secs(20)) {
        panic!("[{tag}] ferrovpn serve did not start with the generated server.conf: {e}");
    }
    let _client = connect(&lab, tag, "bob", &profile);
    ping(&lab.client_ns, &server_tunnel_addr(&lab), 3)
        .unwrap_or_else(|e| panic!("[{tag}] ping through the tunnel: {e}"));
}
