//! One UDP flow through the exit: a connected host socket per (client, destination), and the
//! task that turns its replies into IP/UDP packets for the client.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::packet::{fill_udp_headers, udp_header_len};
use super::{Counters, Shared};

pub(super) struct UdpFlow {
    /// For the replies task.
    sock: UdpSocket,
    /// The same socket, for sending without waiting: tokio's `try_send` fails until the
    /// reactor has seen the new socket writable, which would drop a flow's first datagram.
    send: std::net::UdpSocket,
    /// Last datagram either way, in milliseconds since the exit's epoch.
    last: AtomicU64,
    dead: AtomicBool,
}

impl UdpFlow {
    /// Opens the host socket and starts the reply task.
    pub(super) fn open(
        shared: &Arc<Shared>,
        outbound: mpsc::Sender<BytesMut>,
        client: SocketAddr,
        dst: SocketAddr,
    ) -> io::Result<Arc<Self>> {
        let any = match dst.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let std = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
        std.connect(dst)?;
        std.set_nonblocking(true)?;
        let flow = Arc::new(Self {
            send: std.try_clone()?,
            sock: UdpSocket::from_std(std)?,
            last: AtomicU64::new(millis(shared)),
            dead: AtomicBool::new(false),
        });
        shared
            .counters
            .udp_flows_active
            .fetch_add(1, Ordering::Relaxed);
        tokio::spawn(replies(shared.clone(), flow.clone(), outbound, client, dst));
        Ok(flow)
    }

    pub(super) fn alive(&self) -> bool {
        !self.dead.load(Ordering::Relaxed)
    }

    /// Sends a client's datagram; dropped (and counted) when the host socket is full.
    pub(super) fn send(&self, shared: &Shared, payload: &[u8]) {
        self.last.store(millis(shared), Ordering::Relaxed);
        let c = &shared.counters;
        match self.send.send(payload) {
            Ok(n) => Counters::add(&c.bytes_to_host, n as u64),
            Err(_) => Counters::add(&c.packets_dropped, 1),
        }
    }
}

fn millis(shared: &Shared) -> u64 {
    let d = tokio::time::Instant::now().saturating_duration_since(shared.epoch);
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads the host socket until the flow idles out or the exit stops.
async fn replies(
    shared: Arc<Shared>,
    flow: Arc<UdpFlow>,
    outbound: mpsc::Sender<BytesMut>,
    client: SocketAddr,
    dst: SocketAddr,
) {
    let idle = shared.cfg.limits.udp_idle_timeout;
    let mtu = shared.cfg.mtu;
    let hdr = udp_header_len(dst.ip());
    let c = &shared.counters;
    let mut stop = shared.stop.subscribe();
    // One byte more than fits, to tell an oversized datagram from one that fits exactly.
    let fresh = || BytesMut::zeroed(mtu.max(hdr) + 1);
    let mut buf = fresh();
    loop {
        let last = Duration::from_millis(flow.last.load(Ordering::Relaxed));
        let deadline = shared.epoch + last + idle;
        let n = tokio::select! {
            r = flow.sock.recv(&mut buf[hdr..]) => match r {
                Ok(n) => n,
                // ICMP errors for earlier datagrams (port unreachable): the flow goes on.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    tracing::debug!("exit: UDP {client} -> {dst}: {e}");
                    break;
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                let last = Duration::from_millis(flow.last.load(Ordering::Relaxed));
                if tokio::time::Instant::now() >= shared.epoch + last + idle {
                    break;
                }
                continue;
            }
            _ = stop.wait_for(|s| *s) => break,
        };
        if hdr + n > mtu {
            Counters::add(&c.packets_dropped, 1);
            continue;
        }
        flow.last.store(millis(&shared), Ordering::Relaxed);
        Counters::add(&c.bytes_from_host, n as u64);
        buf.truncate(hdr + n);
        if fill_udp_headers(&mut buf, dst, client).is_none() {
            break;
        }
        let packet = std::mem::replace(&mut buf, fresh());
        tokio::select! {
            r = outbound.send(packet) => if r.is_err() { break },
            _ = stop.wait_for(|s| *s) => break,
        }
        Counters::add(&c.packets_out, 1);
    }
    flow.dead.store(true, Ordering::Relaxed);
    c.udp_flows_active.fetch_sub(1, Ordering::Relaxed);
    shared.udp_dead.fetch_add(1, Ordering::Relaxed);
    shared.wake.notify_one();
}
