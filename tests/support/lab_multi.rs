//! More namespaces for a [`Lab`]: extra clients of the server, and networks behind a namespace
//! (a LAN behind a VPN client, a host behind the VPN server). Every namespace added here is
//! registered with the lab ([`Lab::add_extra_namespace`]) and deleted with it.
//!
//! Addresses (X = `Lab::x`; all inside 198.18.0.0/15):
//! - extra client `i` (1, 2, ...): namespace `<client_ns>-c<i>`, its device `vC` holds
//!   198.18.X.(2+i)/32 with peer 198.18.X.1 (the server's underlay address), and the server
//!   namespace routes 198.18.X.(2+i)/32 to its device `vS<i>`. Point-to-point addressing keeps
//!   the lab's own 198.18.X.0/24 link as it is.
//! - a network behind a namespace: a veth pair `v<suffix>` (in the router) / `eth0` (in the new
//!   namespace) on a subnet the test chooses, with a default route in the new namespace via the
//!   router.

use super::netns::{Lab, exec_in_ok, run_ok};

/// One more client namespace with its own routing table and an underlay path to the server.
#[derive(Clone, Debug)]
pub struct ExtraClient {
    pub ns: String,
    /// Its underlay address (what the server sees as the client's real address).
    pub addr: String,
}

/// Adds client namespace number `i` (1..=200) linked to the lab's server namespace.
pub fn add_client(lab: &mut Lab, i: u8) -> ExtraClient {
    assert!((1..=200).contains(&i), "extra client number {i}");
    let ns = lab.add_extra_namespace(&format!("c{i}"));
    let x = lab.x;
    let s = lab.server_ns.clone();
    let server = lab.server_underlay_v4();
    let addr = format!("198.18.{x}.{}", 2 + u16::from(i));
    let vs = format!("vS{i}");
    run_ok(&[
        "ip", "link", "add", &vs, "netns", &s, "type", "veth", "peer", "name", "vC", "netns", &ns,
    ]);
    run_ok(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        &addr,
        "peer",
        &format!("{server}/32"),
        "dev",
        "vC",
    ]);
    run_ok(&["ip", "-n", &ns, "link", "set", "vC", "up"]);
    run_ok(&["ip", "-n", &s, "link", "set", &vs, "up"]);
    run_ok(&[
        "ip",
        "-n",
        &s,
        "route",
        "add",
        &format!("{addr}/32"),
        "dev",
        &vs,
        "src",
        &server,
    ]);
    ExtraClient { ns, addr }
}

/// A namespace on a network behind `router_ns`.
#[derive(Clone, Debug)]
pub struct Behind {
    pub ns: String,
    /// The host's address on that network.
    pub addr: String,
    /// The router's address on it.
    pub gateway: String,
}

/// Adds namespace `<client_ns>-SUFFIX` behind `router_ns`: veth `v<suffix>` in the router with
/// `gateway/prefix`, `eth0` in the new namespace with `addr/prefix` and a default route via
/// `gateway`. Turns on IPv4 forwarding in `router_ns`.
pub fn add_behind(
    lab: &mut Lab,
    router_ns: &str,
    suffix: &str,
    gateway: &str,
    addr: &str,
    prefix: u8,
) -> Behind {
    let ns = lab.add_extra_namespace(suffix);
    let dev = format!("v{suffix}");
    assert!(dev.len() <= 15, "interface name {dev} too long");
    run_ok(&[
        "ip", "link", "add", &dev, "netns", router_ns, "type", "veth", "peer", "name", "eth0",
        "netns", &ns,
    ]);
    run_ok(&[
        "ip",
        "-n",
        router_ns,
        "addr",
        "add",
        &format!("{gateway}/{prefix}"),
        "dev",
        &dev,
    ]);
    run_ok(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{addr}/{prefix}"),
        "dev",
        "eth0",
    ]);
    run_ok(&["ip", "-n", router_ns, "link", "set", &dev, "up"]);
    run_ok(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
    run_ok(&[
        "ip", "-n", &ns, "route", "add", "default", "via", gateway, "dev", "eth0",
    ]);
    exec_in_ok(router_ns, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    Behind {
        ns,
        addr: addr.to_owned(),
        gateway: gateway.to_owned(),
    }
}
