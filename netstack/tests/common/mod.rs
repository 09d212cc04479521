//! Two stacks wired back to back in memory, and small helpers.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BytesMut;
use ferrovpn_netstack::{Limits, Stack, StackConfig, spawn};
use tokio::sync::mpsc;

pub const A4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const B4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

pub fn config(v4: Ipv4Addr, v6: Ipv6Addr, limits: Limits) -> StackConfig {
    StackConfig {
        ipv4: Some((v4, 24)),
        ipv6: Some((v6, 64)),
        mtu: 1500,
        dns_servers: vec![SocketAddr::new(B4.into(), 53)],
        limits,
    }
}

pub fn wire(mut from: mpsc::Receiver<BytesMut>, to: mpsc::Sender<BytesMut>) {
    tokio::spawn(async move {
        while let Some(p) = from.recv().await {
            if to.send(p).await.is_err() {
                break;
            }
        }
    });
}

/// Stack A (198.18.0.1, 2001:db8::1) and stack B (.2, ::2), A's DNS server is B:53.
pub fn pair_with(limits: Limits) -> (Stack, Stack) {
    let (a, pa) = spawn(config(A4, A6, limits.clone()));
    let (b, pb) = spawn(config(B4, B6, limits));
    wire(pa.outbound, pb.inbound);
    wire(pb.outbound, pa.inbound);
    (a, b)
}

pub fn pair() -> (Stack, Stack) {
    pair_with(Limits::default())
}

/// Deterministic pseudo-random bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// FNV-1a.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Like `wire`, but drops about `loss_per_mille`/1000 packets and holds every 16th one back
/// behind its successor (at most 2 ms), with a fixed seed.
pub fn wire_lossy(
    mut from: mpsc::Receiver<BytesMut>,
    to: mpsc::Sender<BytesMut>,
    seed: u64,
    loss_per_mille: u64,
) {
    tokio::spawn(async move {
        let mut x = seed | 1;
        let mut held: Option<BytesMut> = None;
        loop {
            let next = if held.is_some() {
                match tokio::time::timeout(std::time::Duration::from_millis(2), from.recv()).await {
                    Ok(p) => p,
                    Err(_) => {
                        if let Some(h) = held.take() {
                            if to.send(h).await.is_err() {
                                break;
                            }
                        }
                        continue;
                    }
                }
            } else {
                from.recv().await
            };
            let Some(p) = next else { break };
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 1000 < loss_per_mille {
                continue;
            }
            if held.is_none() && x % 16 == 1 {
                held = Some(p);
                continue;
            }
            if to.send(p).await.is_err() {
                break;
            }
            if let Some(h) = held.take() {
                if to.send(h).await.is_err() {
                    break;
                }
            }
        }
    });
}
