//! Transports to the server: UDP (one OpenVPN packet per datagram) and TCP (u16 length framing).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UdpSocket};

use super::datagram_batch::{RxQueue, TxQueue};
use crate::proto::wire::{TcpDeframer, frame};

/// `EIO`: what Linux returns when the device cannot do UDP GSO.
const EIO: i32 = 5;

static REFUSED_LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Returns whether the ICMP-refused warning was already logged (and marks it logged).
fn self_refused_logged(flag: &std::sync::atomic::AtomicBool) -> bool {
    flag.swap(true, std::sync::atomic::Ordering::Relaxed)
}

/// A UDP socket connected to the server, with quinn-udp's state for GSO sends and
/// `recvmmsg`/GRO receives.
pub struct UdpPath {
    sock: UdpSocket,
    state: quinn_udp::UdpSocketState,
    peer: SocketAddr,
}

/// A connected transport.
pub enum Transport {
    /// UDP, connected to the server's address.
    Udp(UdpPath),
    /// TCP stream with its de-framer.
    Tcp {
        /// The stream.
        stream: TcpStream,
        /// Reassembly of length-prefixed packets.
        deframer: TcpDeframer,
        /// Framing buffer for sends.
        out: Vec<u8>,
    },
    /// UDP through a SOCKS5 relay (`socks-proxy` with `proto udp`).
    SocksUdp(super::upstream::SocksUdpPath),
}

impl Transport {
    /// Opens a transport to `addr`.
    pub async fn connect(addr: SocketAddr, tcp: bool, timeout: Duration) -> io::Result<Self> {
        if tcp {
            let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out"))??;
            stream.set_nodelay(true)?;
            Ok(Self::Tcp {
                stream,
                deframer: TcpDeframer::new(),
                out: Vec::with_capacity(2048),
            })
        } else {
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse().expect("literal")
            } else {
                "[::]:0".parse().expect("literal")
            };
            let sock = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            // Bigger buffers than the defaults: the reference loses datagrams here under load.
            let _ = sock.set_recv_buffer_size(4 << 20);
            let _ = sock.set_send_buffer_size(4 << 20);
            sock.set_nonblocking(true)?;
            sock.bind(&bind.into())?;
            let sock = UdpSocket::from_std(sock.into())?;
            sock.connect(addr).await?;
            let state = quinn_udp::UdpSocketState::new((&sock).into())?;
            tracing::debug!(
                "UDP batching: up to {} segments per send, {} per receive",
                state.max_gso_segments(),
                state.gro_segments()
            );
            Ok(Self::Udp(UdpPath {
                sock,
                state,
                peer: addr,
            }))
        }
    }

    /// A TCP transport over an established stream (through a proxy); `early` holds bytes
    /// already read from it.
    pub fn from_tcp(stream: TcpStream, early: &[u8]) -> Result<Self, String> {
        let _ = stream.set_nodelay(true);
        let mut deframer = TcpDeframer::new();
        deframer.push(early);
        Ok(Self::Tcp {
            stream,
            deframer,
            out: Vec::with_capacity(2048),
        })
    }

    /// Sends one OpenVPN packet.
    pub async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        match self {
            Self::Udp(u) => match u.sock.send(packet).await {
                Ok(_) => Ok(()),
                // ICMP unreachable from an earlier send: not fatal for UDP, the peer may come back.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
                Err(e) => Err(e),
            },
            Self::Tcp { stream, out, .. } => {
                out.clear();
                frame(packet, out).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                stream.write_all(out).await
            }
            Self::SocksUdp(p) => p.send(packet).await,
        }
    }

    /// Receives one OpenVPN packet into `buf`. Cancel-safe.
    pub async fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Self::Udp(u) => loop {
                buf.resize(65536, 0);
                match u.sock.recv(buf).await {
                    Ok(n) => {
                        buf.truncate(n);
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        // The server's port is closed right now (ICMP port unreachable); keep
                        // listening, the server may be restarting.
                        if !self_refused_logged(&REFUSED_LOGGED) {
                            tracing::warn!(
                                "the server answered with ICMP port unreachable: nothing listens on that UDP port right now (wrong port or proto, or the server is down)"
                            );
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            },
            Self::Tcp {
                stream, deframer, ..
            } => loop {
                if let Some(p) = deframer.next_packet() {
                    let p = p.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    buf.clear();
                    buf.extend_from_slice(&p);
                    return Ok(());
                }
                let mut chunk = [0u8; 16384];
                let n = stream.read(&mut chunk).await?;
                // Delayed ACKs meet the server's Nagle during the handshake's small writes
                // (40 ms stalls per round trip): acknowledge at once. Linux resets quick-ack
                // mode by itself, so it is renewed after every read.
                #[cfg(target_os = "linux")]
                let _ = socket2::SockRef::from(&*stream).set_quickack(true);
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the TCP connection",
                    ));
                }
                deframer.push(&chunk[..n]);
            },
            Self::SocksUdp(p) => p.recv(buf).await,
        }
    }

    /// Non-blocking receive of one more packet (UDP only), for batching.
    pub fn try_recv(&mut self, buf: &mut Vec<u8>) -> Option<()> {
        match self {
            Self::Udp(u) => {
                buf.resize(65536, 0);
                match u.sock.try_recv(buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        Some(())
                    }
                    Err(_) => None,
                }
            }
            Self::Tcp { deframer, .. } => {
                let p = deframer.next_packet()?.ok()?;
                buf.clear();
                buf.extend_from_slice(&p);
                Some(())
            }
            Self::SocksUdp(p) => p.try_recv(buf),
        }
    }

    /// Sends every queued packet (UDP: GSO runs of equal-size packets, one system call each;
    /// TCP: one write) and empties the queue.
    pub async fn send_queue(&mut self, q: &mut TxQueue) -> io::Result<()> {
        let r = match self {
            Self::Udp(u) => u.send_queue(q).await,
            Self::Tcp { stream, out, .. } => {
                out.clear();
                for p in q.packets() {
                    frame(p, out).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                }
                stream.write_all(out).await
            }
            Self::SocksUdp(p) => {
                let mut r = Ok(());
                for pkt in q.packets() {
                    if let Err(e) = p.send(pkt).await {
                        r = Err(e);
                        break;
                    }
                }
                r
            }
        };
        q.clear();
        r
    }

    /// Waits for at least one packet, then takes what else is ready (UDP: one `recvmmsg`, GRO
    /// runs kept whole), into `q` (emptied first). Cancel-safe.
    pub async fn recv_queue(&mut self, q: &mut RxQueue, one: &mut Vec<u8>) -> io::Result<()> {
        q.clear();
        if let Self::Udp(u) = self {
            return u.recv_queue(q).await;
        }
        self.recv(one).await?;
        q.push(one);
        loop {
            while self.try_recv(one).is_some() {
                if !q.push(one) {
                    return Ok(());
                }
            }
            // TCP: take whatever else the stream already holds, so one wake-up carries many
            // packets even when the server writes them one by one.
            let Self::Tcp {
                stream, deframer, ..
            } = self
            else {
                return Ok(());
            };
            let mut chunk = [0u8; 16384];
            match stream.try_read(&mut chunk) {
                Ok(n) if n > 0 => deframer.push(&chunk[..n]),
                // EOF or nothing ready: the next `recv` reports or waits.
                _ => return Ok(()),
            }
        }
    }
}

impl UdpPath {
    async fn send_queue(&mut self, q: &TxQueue) -> io::Result<()> {
        for (contents, seg) in q.runs(self.state.max_gso_segments()) {
            let t = quinn_udp::Transmit {
                destination: self.peer,
                ecn: None,
                contents,
                segment_size: (contents.len() > seg).then_some(seg),
                src_ip: None,
            };
            loop {
                self.sock.writable().await?;
                let r = self.sock.try_io(Interest::WRITABLE, || {
                    self.state.try_send((&self.sock).into(), &t)
                });
                match r {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    // ICMP unreachable from an earlier send: the peer may come back.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                    // GSO refused by the device (quinn-udp then turns it off): resend one by one.
                    Err(e) if t.segment_size.is_some() && e.raw_os_error() == Some(EIO) => {
                        for p in contents.chunks(seg) {
                            let _ = self.sock.send(p).await;
                        }
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn recv_queue(&mut self, q: &mut RxQueue) -> io::Result<()> {
        let n = q.slots.len().min(quinn_udp::BATCH_SIZE);
        let mut meta = [quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE];
        loop {
            self.sock.readable().await?;
            let mut iovs: Vec<std::io::IoSliceMut<'_>> = q.slots[..n]
                .iter_mut()
                .map(|b| std::io::IoSliceMut::new(b))
                .collect();
            let r = self.sock.try_io(Interest::READABLE, || {
                self.state
                    .recv((&self.sock).into(), &mut iovs, &mut meta[..n])
            });
            match r {
                Ok(got) => {
                    drop(iovs);
                    for m in &meta[..got] {
                        q.filled.push((m.len, m.stride.max(1)));
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if !self_refused_logged(&REFUSED_LOGGED) {
                        tracing::warn!(
                            "the server answered with ICMP port unreachable: nothing listens on that UDP port right now (wrong port or proto, or the server is down)"
                        );
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
