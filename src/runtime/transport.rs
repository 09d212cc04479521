//! Transports to the server: UDP (one OpenVPN packet per datagram) and TCP (u16 length framing).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::proto::wire::{TcpDeframer, frame};

static REFUSED_LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Returns whether the ICMP-refused warning was already logged (and marks it logged).
fn self_refused_logged(flag: &std::sync::atomic::AtomicBool) -> bool {
    flag.swap(true, std::sync::atomic::Ordering::Relaxed)
}

/// A connected transport.
pub enum Transport {
    /// UDP, connected to the server's address.
    Udp(UdpSocket),
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
            Ok(Self::Udp(sock))
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
            Self::Udp(s) => match s.send(packet).await {
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
            Self::Udp(s) => loop {
                buf.resize(65536, 0);
                match s.recv(buf).await {
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
            Self::Udp(s) => {
                buf.resize(65536, 0);
                match s.try_recv(buf) {
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
}
