//! The server's internal routing table: which peer owns a tunnel address (its pool or
//! `ifconfig-push` address) or a subnet behind it (`iroute`), longest prefix first.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Tunnel addresses and iroutes → peer id.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    hosts: HashMap<IpAddr, u32>,
    /// Sorted by prefix length, longest first.
    nets: Vec<(IpNet, u32)>,
}

impl RouteTable {
    /// Adds a host address; an address another peer held moves to `peer`.
    pub(crate) fn add_host(&mut self, addr: IpAddr, peer: u32) -> Option<u32> {
        self.hosts.insert(addr, peer).filter(|&p| p != peer)
    }

    /// Adds a subnet behind `peer` (`iroute`).
    pub(crate) fn add_net(&mut self, net: IpNet, peer: u32) {
        let net = net.trunc();
        self.nets.retain(|(n, _)| *n != net);
        let at = self
            .nets
            .iter()
            .position(|(n, _)| n.prefix_len() < net.prefix_len())
            .unwrap_or(self.nets.len());
        self.nets.insert(at, (net, peer));
    }

    /// Forgets everything of `peer`.
    pub(crate) fn remove_peer(&mut self, peer: u32) {
        self.hosts.retain(|_, p| *p != peer);
        self.nets.retain(|(_, p)| *p != peer);
    }

    /// The peer a packet to `dst` goes to.
    pub(crate) fn lookup(&self, dst: IpAddr) -> Option<u32> {
        if let Some(&p) = self.hosts.get(&dst) {
            return Some(p);
        }
        self.nets
            .iter()
            .find(|(n, _)| n.contains(&dst))
            .map(|&(_, p)| p)
    }

    /// Whether `peer` may send from `src` (its own address or one behind it).
    pub(crate) fn owns(&self, peer: u32, src: IpAddr) -> bool {
        self.lookup(src) == Some(peer)
    }

    /// All entries (for status output): `(address or net, peer)`.
    pub(crate) fn entries(&self) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = self
            .hosts
            .iter()
            .map(|(a, p)| (a.to_string(), *p))
            .chain(self.nets.iter().map(|(n, p)| (n.to_string(), *p)))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_and_ownership() {
        let mut t = RouteTable::default();
        t.add_host("198.18.0.2".parse().unwrap(), 1);
        t.add_host("198.18.0.3".parse().unwrap(), 2);
        t.add_net("198.18.60.0/24".parse().unwrap(), 1);
        t.add_net("198.18.60.128/25".parse().unwrap(), 2);
        t.add_net("2001:db8:60::/48".parse().unwrap(), 2);
        assert_eq!(t.lookup("198.18.0.2".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("198.18.60.5".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("198.18.60.200".parse().unwrap()), Some(2));
        assert_eq!(t.lookup("2001:db8:60::9".parse().unwrap()), Some(2));
        assert_eq!(t.lookup("198.18.61.1".parse().unwrap()), None);
        assert!(t.owns(1, "198.18.60.1".parse().unwrap()));
        assert!(!t.owns(1, "198.18.0.3".parse().unwrap()));
        t.remove_peer(1);
        assert_eq!(t.lookup("198.18.60.5".parse().unwrap()), None);
        assert_eq!(t.lookup("198.18.60.200".parse().unwrap()), Some(2));
    }
}
