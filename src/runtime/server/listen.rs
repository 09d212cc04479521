//! The server's sockets: UDP listeners and TCP listeners with one reader and one writer task per
//! connection. Everything received goes to the core task as [`NetIn`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::config::{Family, Listener, Transport};
use crate::proto::wire::TcpDeframer;
use crate::runtime::datagram_batch::RxQueue;

/// A bound UDP listener: the socket, quinn-udp's state for it (GSO sends, `recvmmsg`/GRO
/// receives) and its local address.
pub struct UdpListener {
    /// The socket, shared by its reader task and the core (which sends).
    pub sock: Arc<UdpSocket>,
    /// Batching state.
    pub state: Arc<quinn_udp::UdpSocketState>,
    /// Where it is bound.
    pub local: SocketAddr,
}

/// Datagrams one `recvmmsg` brought, copied back to back into one buffer.
pub struct UdpBatch {
    /// Index of the UDP socket.
    pub sock: usize,
    /// The datagrams' bytes.
    pub data: Vec<u8>,
    /// Per datagram: sender, offset in `data`, length.
    pub items: Vec<(SocketAddr, usize, usize)>,
}

impl UdpBatch {
    /// Every datagram with its sender.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.items
            .iter()
            .map(|&(from, at, n)| (from, &self.data[at..at + n]))
    }
}

/// Something from the network for the core.
pub enum NetIn {
    /// UDP datagrams.
    Udp(UdpBatch),
    /// A new TCP connection; the core writes packets for it into `tx` (unframed).
    TcpOpen {
        /// Connection id.
        conn: u64,
        /// Peer.
        addr: SocketAddr,
        /// Packets to send.
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// One packet from a TCP connection.
    Tcp {
        /// Connection id.
        conn: u64,
        /// Peer.
        addr: SocketAddr,
        /// Packet.
        data: Vec<u8>,
    },
    /// The connection closed.
    TcpClosed {
        /// Connection id.
        conn: u64,
        /// Peer.
        addr: SocketAddr,
    },
}

fn bind_addr(l: &Listener) -> SocketAddr {
    let ip = l.addr.unwrap_or(match l.family {
        Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::Any | Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    SocketAddr::new(ip, l.port)
}

fn socket_for(l: &Listener) -> std::io::Result<Socket> {
    let addr = bind_addr(l);
    let (ty, proto) = match l.proto {
        Transport::Udp => (Type::DGRAM, Protocol::UDP),
        Transport::Tcp => (Type::STREAM, Protocol::TCP),
    };
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() && l.addr.is_none() {
        // Dual stack unless the profile said udp6/tcp6-server.
        s.set_only_v6(l.family == Family::V6)?;
    }
    if l.proto == Transport::Tcp {
        s.set_reuse_address(true)?;
    } else {
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
    }
    s.set_nonblocking(true)?;
    s.bind(&SockAddr::from(addr))?;
    Ok(s)
}

/// Binds every listener and starts its tasks. Returns the UDP sockets (by index) and the
/// addresses actually bound.
pub async fn start(
    listeners: &[Listener],
    to_core: mpsc::Sender<NetIn>,
) -> Result<(Vec<UdpListener>, Vec<(Transport, SocketAddr)>), String> {
    let mut udp = Vec::new();
    let mut bound = Vec::new();
    let conn_ids = Arc::new(AtomicU64::new(1));
    for l in listeners {
        let what = format!(
            "{} {}",
            match l.proto {
                Transport::Udp => "udp",
                Transport::Tcp => "tcp",
            },
            bind_addr(l)
        );
        let s = socket_for(l).map_err(|e| format!("cannot listen on {what}: {e}"))?;
        match l.proto {
            Transport::Udp => {
                let sock =
                    Arc::new(UdpSocket::from_std(s.into()).map_err(|e| format!("{what}: {e}"))?);
                let local = sock.local_addr().map_err(|e| format!("{what}: {e}"))?;
                let state = Arc::new(
                    quinn_udp::UdpSocketState::new((&*sock).into())
                        .map_err(|e| format!("{what}: {e}"))?,
                );
                bound.push((Transport::Udp, local));
                let idx = udp.len();
                udp.push(UdpListener {
                    sock: sock.clone(),
                    state: state.clone(),
                    local,
                });
                tokio::spawn(read_udp(sock, state, idx, to_core.clone()));
            }
            Transport::Tcp => {
                s.listen(128).map_err(|e| format!("{what}: {e}"))?;
                let lst = TcpListener::from_std(s.into()).map_err(|e| format!("{what}: {e}"))?;
                let local = lst.local_addr().map_err(|e| format!("{what}: {e}"))?;
                bound.push((Transport::Tcp, local));
                let tx = to_core.clone();
                let ids = conn_ids.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok((stream, addr)) = lst.accept().await else {
                            continue;
                        };
                        let conn = ids.fetch_add(1, Ordering::Relaxed);
                        spawn_conn(stream, canonical(addr), conn, tx.clone());
                    }
                });
            }
        }
        info!("listening on {what}");
    }
    Ok((udp, bound))
}

/// One UDP socket's reader: a `recvmmsg` (GRO runs split by their stride) becomes one
/// [`NetIn::Udp`] message, so the hop to the core costs one allocation per batch, not per packet.
async fn read_udp(
    sock: Arc<UdpSocket>,
    state: Arc<quinn_udp::UdpSocketState>,
    idx: usize,
    to_core: mpsc::Sender<NetIn>,
) {
    let mut rx = RxQueue::new(quinn_udp::BATCH_SIZE);
    let mut meta = [quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE];
    loop {
        if let Err(e) = sock.readable().await {
            debug!("udp receive: {e}");
            continue;
        }
        let mut iovs: Vec<std::io::IoSliceMut<'_>> = rx
            .slots
            .iter_mut()
            .map(|b| std::io::IoSliceMut::new(b))
            .collect();
        let got = match sock.try_io(tokio::io::Interest::READABLE, || {
            state.recv((&*sock).into(), &mut iovs, &mut meta)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                debug!("udp receive: {e}");
                continue;
            }
        };
        drop(iovs);
        let total: usize = meta[..got].iter().map(|m| m.len).sum();
        let mut batch = UdpBatch {
            sock: idx,
            data: Vec::with_capacity(total),
            items: Vec::with_capacity(got),
        };
        for (m, slot) in meta[..got].iter().zip(&rx.slots) {
            let from = canonical(m.addr);
            for d in slot[..m.len].chunks(m.stride.max(1)) {
                batch.items.push((from, batch.data.len(), d.len()));
                batch.data.extend_from_slice(d);
            }
        }
        if to_core.send(NetIn::Udp(batch)).await.is_err() {
            return;
        }
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) shown and keyed as IPv4.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

fn spawn_conn(stream: TcpStream, addr: SocketAddr, conn: u64, to_core: mpsc::Sender<NetIn>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    tokio::spawn(async move {
        if to_core
            .send(NetIn::TcpOpen { conn, addr, tx })
            .await
            .is_err()
        {
            return;
        }
        let mut de = TcpDeframer::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            de.push(&buf[..n]);
            let mut bad = false;
            while let Some(p) = de.next_packet() {
                match p {
                    Ok(data) => {
                        if to_core.send(NetIn::Tcp { conn, addr, data }).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => {
                        bad = true;
                        break;
                    }
                }
            }
            if bad {
                break;
            }
        }
        let _ = to_core.send(NetIn::TcpClosed { conn, addr }).await;
    });
    tokio::spawn(async move {
        let mut out = Vec::with_capacity(70000);
        while let Some(p) = rx.recv().await {
            out.clear();
            if crate::proto::wire::frame(&p, &mut out).is_err() {
                continue;
            }
            // Batch what is already queued into one write.
            while out.len() < 60000 {
                match rx.try_recv() {
                    Ok(p) => {
                        let _ = crate::proto::wire::frame(&p, &mut out);
                    }
                    Err(_) => break,
                }
            }
            if wr.write_all(&out).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
}
