//! SOCKS5: CONNECT for TCP, UDP ASSOCIATE for UDP (the control connection stays open for the
//! whole session; each datagram carries the SOCKS5 UDP header).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::{debug, info};

use super::credentials;
use super::{Failure, dial, read_message};
use crate::config::SocksProxy;
use crate::proto::upstream::TargetAddr;
use crate::proto::upstream::socks5::{self, UdpDatagram, UdpSource};

/// A TCP stream to `target` through the proxy at `addr`.
pub(super) async fn connect(
    s: &SocksProxy,
    addr: SocketAddr,
    target: &TargetAddr,
    timeout: Duration,
) -> Result<TcpStream, Failure> {
    let mut stream = dial(addr, timeout).await?;
    let bound = handshake(s, &mut stream, socks5::CMD_CONNECT, target, timeout).await?;
    info!(
        "SOCKS proxy {}:{} connected to {target} (bound {bound})",
        s.host, s.port
    );
    Ok(stream)
}

/// A UDP path to `target` through the proxy's relay.
pub(super) async fn associate(
    s: &SocksProxy,
    addr: SocketAddr,
    target: TargetAddr,
    timeout: Duration,
) -> Result<SocksUdpPath, Failure> {
    let mut control = dial(addr, timeout).await?;
    let local = control
        .local_addr()
        .map_err(|e| format!("SOCKS control connection: {e}"))?;
    let sock = UdpSocket::bind(SocketAddr::new(local.ip(), 0))
        .await
        .map_err(|e| format!("binding a UDP socket for the SOCKS relay: {e}"))?;
    let me = sock.local_addr().map_err(|e| e.to_string())?;
    let mut relay = handshake(
        s,
        &mut control,
        socks5::CMD_UDP_ASSOCIATE,
        &TargetAddr::Ip(me),
        timeout,
    )
    .await?;
    if relay.ip().is_unspecified() {
        relay.set_ip(addr.ip());
    }
    sock.connect(relay)
        .await
        .map_err(|e| format!("connecting to the SOCKS UDP relay {relay}: {e}"))?;
    info!(
        "SOCKS proxy {}:{} relays UDP to {target} (relay {relay})",
        s.host, s.port
    );
    let mut header = Vec::new();
    socks5::udp_header(&target, &mut header).map_err(|e| e.to_string())?;
    Ok(SocksUdpPath {
        sock,
        control,
        target,
        learned: None,
        header,
        out: Vec::with_capacity(2048),
    })
}

async fn handshake(
    s: &SocksProxy,
    stream: &mut TcpStream,
    cmd: u8,
    target: &TargetAddr,
    timeout: Duration,
) -> Result<SocketAddr, Failure> {
    let key = format!("{}:{}", s.host, s.port);
    let with_password = s.credentials.is_some();
    let mut msg = Vec::new();
    socks5::greeting(with_password, &mut msg);
    send(stream, &msg).await?;
    let (method, _) = read_message(stream, timeout, "the SOCKS greeting", |b| {
        socks5::parse_method_choice(b, with_password).map(|o| o.map(|m| (m, 2)))
    })
    .await
    .map_err(|e| format!("SOCKS proxy {key}: {e}"))?;
    if method == socks5::METHOD_USER_PASS {
        let c = credentials::get(&key, s.credentials.as_ref(), "socks-proxy")
            .await
            .map_err(Failure::Fatal)?;
        msg.clear();
        socks5::user_pass_request(&c.user, &c.pass, &mut msg).map_err(|e| e.to_string())?;
        send(stream, &msg).await?;
        msg.fill(0);
        // A refused login is final: the same credentials would be refused again.
        read_message(stream, timeout, "the SOCKS login", |b| {
            socks5::parse_user_pass_reply(b).map(|o| o.map(|()| ((), 2)))
        })
        .await
        .map_err(|e| Failure::Fatal(format!("SOCKS proxy {key}: {e}")))?;
    }
    msg.clear();
    socks5::request(cmd, target, &mut msg).map_err(|e| e.to_string())?;
    send(stream, &msg).await?;
    let what = if cmd == socks5::CMD_CONNECT {
        "connect to the server"
    } else {
        "relay UDP"
    };
    let (bound, _) = read_message(stream, timeout, "the SOCKS request", |b| {
        socks5::parse_reply(b, what)
    })
    .await
    .map_err(|e| format!("SOCKS proxy {key}: {e} (server {target})"))?;
    Ok(bound)
}

async fn send(stream: &mut TcpStream, msg: &[u8]) -> Result<(), String> {
    stream
        .write_all(msg)
        .await
        .map_err(|e| format!("writing to the SOCKS proxy: {e}"))
}

/// A UDP path through a SOCKS5 relay.
pub struct SocksUdpPath {
    /// Connected to the relay, so the kernel drops datagrams from anywhere else.
    sock: UdpSocket,
    /// The UDP ASSOCIATE connection: the association lives as long as it does.
    control: TcpStream,
    target: TargetAddr,
    /// For a named target: the address the relay reported on the first datagram.
    learned: Option<SocketAddr>,
    header: Vec<u8>,
    out: Vec<u8>,
}

impl SocksUdpPath {
    /// Sends one datagram to the server.
    pub async fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.out.clear();
        self.out.extend_from_slice(&self.header);
        self.out.extend_from_slice(packet);
        self.sock.send(&self.out).await.map(|_| ())
    }

    /// Receives one datagram from the server into `buf`. Cancel-safe. Fails when the proxy
    /// closes the control connection.
    pub async fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        loop {
            buf.resize(65536, 0);
            let mut one = [0u8; 64];
            tokio::select! {
                r = self.sock.recv(buf) => {
                    let n = r?;
                    if self.unwrap(buf, n) {
                        return Ok(());
                    }
                }
                r = self.control.read(&mut one) => {
                    if r? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the SOCKS proxy closed the UDP ASSOCIATE control connection",
                        ));
                    }
                }
            }
        }
    }

    /// Non-blocking receive of one more datagram, for batching.
    pub fn try_recv(&mut self, buf: &mut Vec<u8>) -> Option<()> {
        loop {
            buf.resize(65536, 0);
            let n = self.sock.try_recv(buf).ok()?;
            if self.unwrap(buf, n) {
                return Some(());
            }
        }
    }

    /// Strips the header in place; false (drop) for datagrams not from the server.
    fn unwrap(&mut self, buf: &mut Vec<u8>, n: usize) -> bool {
        let (start, len) = match socks5::parse_udp(&buf[..n]) {
            UdpDatagram::Data { from, data } => {
                if let (UdpSource::Ip(a), TargetAddr::Domain(..), None) =
                    (&from, &self.target, self.learned)
                {
                    // The relay resolved the name: the first answer fixes the server's address.
                    self.learned = Some(*a);
                }
                if !from.matches(&self.target, self.learned) {
                    debug!("SOCKS relay: dropped a datagram from {from:?}");
                    return false;
                }
                (n - data.len(), data.len())
            }
            UdpDatagram::Fragment | UdpDatagram::Malformed => {
                debug!("SOCKS relay: dropped a fragmented or malformed datagram");
                return false;
            }
        };
        buf.copy_within(start..start + len, 0);
        buf.truncate(len);
        true
    }
}
