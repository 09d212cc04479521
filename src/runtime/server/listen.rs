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

/// Something from the network for the core.
pub enum NetIn {
    /// A UDP datagram on listener `sock`.
    Udp {
        /// Index of the UDP socket.
        sock: usize,
        /// Sender.
        from: SocketAddr,
        /// Datagram.
        data: Vec<u8>,
    },
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
) -> Result<(Vec<Arc<UdpSocket>>, Vec<(Transport, SocketAddr)>), String> {
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
                bound.push((Transport::Udp, local));
                let idx = udp.len();
                udp.push(sock.clone());
                let tx = to_core.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        match sock.recv_from(&mut buf).await {
                            Ok((n, from)) => {
                                let msg = NetIn::Udp {
                                    sock: idx,
                                    from: canonical(from),
                                    data: buf[..n].to_vec(),
                                };
                                if tx.send(msg).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => debug!("udp receive: {e}"),
                        }
                    }
                });
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
