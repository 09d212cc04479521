//! The dynamic address pool (`ifconfig-pool`, `ifconfig-ipv6-pool`) with optional persistence
//! (`ifconfig-pool-persist`): a client gets the same address again when it comes back.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::config::{Topology, TunnelV4, TunnelV6};

/// What a client got from the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Slot number (shared by v4 and v6).
    pub slot: u32,
    /// The client's IPv4 address and the address its `ifconfig` points at (the net30 peer, or
    /// the server for p2p); None without an IPv4 pool.
    pub v4: Option<(Ipv4Addr, Ipv4Addr)>,
    /// The client's IPv6 address.
    pub v6: Option<Ipv6Addr>,
}

/// Address pool for one server.
#[derive(Debug)]
pub struct Pool {
    v4: Option<TunnelV4>,
    v6: Option<TunnelV6>,
    slots: u32,
    used: BTreeSet<u32>,
    /// name → slot it had (persisted across restarts when configured).
    remembered: HashMap<String, u32>,
}

impl Pool {
    /// The pool of a server's tunnel addressing.
    pub fn new(v4: Option<TunnelV4>, v6: Option<TunnelV6>) -> Self {
        let v4_slots = v4.and_then(|t| {
            let (a, b) = t.pool?;
            let span = u32::from(b).checked_sub(u32::from(a))? + 1;
            Some(match t.topology {
                Topology::Net30 => span / 4,
                _ => span,
            })
        });
        let v6_slots = v6.and_then(|t| {
            let (_, bits) = t.pool?;
            Some(if bits >= 128 {
                1
            } else {
                1u32 << (128 - u32::from(bits)).min(20)
            })
        });
        let slots = match (v4_slots, v6_slots) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => 0,
        };
        Self {
            v4,
            v6,
            slots,
            used: BTreeSet::new(),
            remembered: HashMap::new(),
        }
    }

    /// How many clients the pool can hold.
    pub fn capacity(&self) -> u32 {
        self.slots
    }

    fn lease(&self, slot: u32) -> Lease {
        let v4 = self.v4.and_then(|t| {
            let (start, _) = t.pool?;
            let start = u32::from(start);
            Some(match t.topology {
                Topology::Net30 => {
                    let base = start + slot * 4;
                    (Ipv4Addr::from(base + 2), Ipv4Addr::from(base + 1))
                }
                Topology::P2p => (Ipv4Addr::from(start + slot), t.local),
                Topology::Subnet => (Ipv4Addr::from(start + slot), t.netmask()),
            })
        });
        let v6 = self.v6.and_then(|t| {
            let (base, _) = t.pool?;
            Some(Ipv6Addr::from(u128::from(base) + u128::from(slot)))
        });
        Lease { slot, v4, v6 }
    }

    /// An address for `name`: the one it had before if free (and `reuse_name`), else the lowest
    /// free one.
    pub fn allocate(&mut self, name: &str, reuse_name: bool) -> Option<Lease> {
        if reuse_name
            && let Some(&slot) = self.remembered.get(name)
            && slot < self.slots
            && self.used.insert(slot)
        {
            return Some(self.lease(slot));
        }
        let taken_by_others: BTreeSet<u32> = self.remembered.values().copied().collect();
        let free = (0..self.slots)
            .find(|s| !self.used.contains(s) && !taken_by_others.contains(s))
            .or_else(|| (0..self.slots).find(|s| !self.used.contains(s)))?;
        self.used.insert(free);
        if reuse_name {
            self.remembered.insert(name.to_string(), free);
        }
        Some(self.lease(free))
    }

    /// Gives a slot back.
    pub fn release(&mut self, slot: u32) {
        self.used.remove(&slot);
    }

    /// `ifconfig-pool-persist` file contents: `name,ipv4,ipv6` lines.
    pub fn persist_text(&self) -> String {
        let mut names: Vec<(&String, &u32)> = self.remembered.iter().collect();
        names.sort();
        let mut out = String::new();
        for (name, &slot) in names {
            let l = self.lease(slot);
            out.push_str(&format!(
                "{name},{},{}\n",
                l.v4.map(|(a, _)| a.to_string()).unwrap_or_default(),
                l.v6.map(|a| a.to_string()).unwrap_or_default()
            ));
        }
        out
    }

    /// Reads an `ifconfig-pool-persist` file (lines that do not fit the pool are skipped).
    pub fn load_persist(&mut self, text: &str) {
        for line in text.lines() {
            let mut parts = line.split(',');
            let (Some(name), Some(v4)) = (parts.next(), parts.next()) else {
                continue;
            };
            let slot = (0..self.slots).find(|&s| {
                self.lease(s)
                    .v4
                    .is_some_and(|(a, _)| a.to_string() == v4.trim())
            });
            if let Some(slot) = slot {
                self.remembered.insert(name.trim().to_string(), slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet() -> TunnelV4 {
        TunnelV4 {
            local: Ipv4Addr::new(198, 18, 0, 1),
            prefix_len: 24,
            remote: None,
            topology: Topology::Subnet,
            pool: Some((Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 253))),
        }
    }

    #[test]
    fn subnet_pool_allocates_lowest_free_and_remembers_names() {
        let mut p = Pool::new(Some(subnet()), None);
        assert_eq!(p.capacity(), 252);
        let a = p.allocate("alice", true).unwrap();
        let b = p.allocate("bob", true).unwrap();
        assert_eq!(a.v4.unwrap().0, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(a.v4.unwrap().1, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(b.v4.unwrap().0, Ipv4Addr::new(198, 18, 0, 3));
        p.release(a.slot);
        let c = p.allocate("carol", true).unwrap();
        // alice's address stays reserved for her while others are free.
        assert_eq!(c.v4.unwrap().0, Ipv4Addr::new(198, 18, 0, 4));
        assert_eq!(p.allocate("alice", true).unwrap().slot, a.slot);
        let text = p.persist_text();
        let mut q = Pool::new(Some(subnet()), None);
        q.load_persist(&text);
        assert_eq!(q.allocate("bob", true).unwrap().slot, b.slot);
    }

    #[test]
    fn net30_gives_a_slash30_per_client_and_pool_runs_out() {
        let t = TunnelV4 {
            local: Ipv4Addr::new(198, 18, 0, 1),
            prefix_len: 24,
            remote: Some(Ipv4Addr::new(198, 18, 0, 2)),
            topology: Topology::Net30,
            pool: Some((Ipv4Addr::new(198, 18, 0, 4), Ipv4Addr::new(198, 18, 0, 11))),
        };
        let v6 = TunnelV6 {
            local: "2001:db8::1".parse().unwrap(),
            prefix_len: 64,
            remote: None,
            pool: Some(("2001:db8::1000".parse().unwrap(), 64)),
        };
        let mut p = Pool::new(Some(t), Some(v6));
        assert_eq!(p.capacity(), 2);
        let a = p.allocate("a", false).unwrap();
        assert_eq!(
            a.v4,
            Some((Ipv4Addr::new(198, 18, 0, 6), Ipv4Addr::new(198, 18, 0, 5)))
        );
        assert_eq!(a.v6, Some("2001:db8::1000".parse().unwrap()));
        let b = p.allocate("b", false).unwrap();
        assert_eq!(b.v4.unwrap().0, Ipv4Addr::new(198, 18, 0, 10));
        assert!(p.allocate("c", false).is_none());
    }
}
