//! Point-to-point without a server: static-key mode (`secret`, `ifconfig LOCAL REMOTE`) between
//! the real OpenVPN 2.6 and `ferrovpn connect`, the classic two-gateway set-up, in network
//! namespaces (root and `openvpn` needed; skipped otherwise unless FERROVPN_REQUIRE_INTEROP=1).
//! `FERROVPN_INTEROP_CLIENT=openvpn` runs the same case with openvpn on both ends.

#![allow(clippy::disallowed_methods)]

mod support;

use std::fs;
use std::time::Duration;

use support::client::{Client, ClientImpl};
use support::netns::Lab;
use support::openvpn::VPN_ONLY_V4;
use support::traffic::{self, MB, Transfer};

const PORT: u16 = 1194;

/// One end's configuration: the same text works for openvpn and ferrovpn.
fn peer_conf(remote: Option<&str>, local: &str, peer: &str, key: &str, dir: u8) -> String {
    let mut c = String::from("dev tun\nproto udp4\n");
    match remote {
        Some(r) => c.push_str(&format!("remote {r} {PORT}\nnobind\n")),
        None => c.push_str(&format!("port {PORT}\n")),
    }
    c.push_str(&format!(
        "ifconfig {local} {peer}\nsecret {key} {dir}\ncipher AES-256-CBC\nauth SHA256\n\
         keepalive 2 20\nverb 4\n"
    ));
    c
}

#[test]
fn static_key_p2p_with_openvpn() {
    let Some(imp) = support::interop_ready() else {
        return;
    };
    let lab = Lab::new("p2p-static");
    let x = lab.x;
    let (a, b) = (format!("198.19.{x}.1"), format!("198.19.{x}.2"));
    let key = lab.dir.join("static.key");
    support::pki::genkey_secret(&key);
    let key = key.to_string_lossy().into_owned();

    // Gateway A: the reference, listening (no remote), with a host behind it on its loopback.
    let conf_a = lab.dir.join("a.conf");
    fs::write(&conf_a, peer_conf(None, &a, &b, &key, 0)).unwrap();
    support::netns::run_ok(&[
        "ip",
        "-n",
        &lab.server_ns,
        "addr",
        "add",
        &format!("{VPN_ONLY_V4}/32"),
        "dev",
        "lo",
    ]);
    let mut gw_a = lab.spawn(
        "openvpn gateway A",
        &lab.server_ns,
        &["openvpn", "--config", &conf_a.to_string_lossy()],
        "gw-a.log",
    );
    // Without a remote, openvpn completes its initialisation only once the peer is heard.
    gw_a.wait_for_log("link local (bound)", 1, Duration::from_secs(20))
        .expect("openvpn gateway A did not start");

    // Gateway B: the client under test, with a route to the host behind A.
    let conf_b = lab.dir.join("b.conf");
    let mut text = peer_conf(Some(&lab.server_underlay_v4()), &b, &a, &key, 1);
    text.push_str(&format!("route {VPN_ONLY_V4} 255.255.255.255\n"));
    fs::write(&conf_b, text).unwrap();
    let mut gw_b = Client::start(&lab, imp, &conf_b, &[]);
    gw_b.wait_connected(1, Duration::from_secs(20))
        .expect("gateway B did not come up");
    gw_a.wait_for_log(
        "Initialization Sequence Completed",
        1,
        Duration::from_secs(20),
    )
    .expect("gateway A never heard from gateway B");

    // Through the tunnel: the peer's address, the host behind it, and data both ways.
    traffic::ping_until(&lab.client_ns, &a, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("ping {a} through the static-key tunnel: {e}"));
    traffic::ping(&lab.client_ns, VPN_ONLY_V4, 3).expect("ping the host behind gateway A");
    let r = traffic::transfer(&lab, &Transfer::new(&a, 10 * MB, 10 * MB))
        .expect("10 MB each way through the static-key tunnel");
    eprintln!(
        "[p2p-static] {}",
        r.summary(&Transfer::new(&a, 10 * MB, 10 * MB))
    );

    // OpenVPN agreed with our options string (its OCC check logs a warning otherwise).
    let log_a = gw_a.log_text();
    assert!(
        !log_a.contains("WARNING: 'ifconfig'") && !log_a.contains("WARNING: 'cipher'"),
        "openvpn reported an options mismatch:\n{log_a}"
    );
    let status = gw_b.terminate(Duration::from_secs(10)).expect("B exits");
    assert!(status.success(), "gateway B exited with {status}");
    if imp == ClientImpl::Ferrovpn {
        let log_b = gw_b.log_text();
        assert!(
            log_b.contains("static-key tunnel closed") && log_b.contains("0 dropped"),
            "no clean summary in ferrovpn's log:\n{log_b}"
        );
    }
    assert!(
        lab.client_tun_devices().is_empty(),
        "TUN device left behind"
    );
}
