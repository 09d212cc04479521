//! Port forwards, both ways, and the `-L`/`-R`/`--udp-forward` spec parser.
//!
//! - [`forward_local`]: a host listener; each connection is dialed to a target (through the
//!   tunnel or not, as the dialer decides).
//! - [`forward_remote`]: a listener on the VPN address inside the tunnel; each connection is
//!   handed to a local service.
//! - [`forward_udp`]: a host UDP socket; each client source gets its own relay socket, replies
//!   go back to that source.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::{DatagramSocket, Dialer, DirectDialer, Target};
use crate::Stack;

/// `[bind:]port:host:hostport`, hosts possibly as `[v6]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardSpec {
    /// Where to listen: the bind address (None: the default for the direction) and port.
    pub bind: Option<IpAddr>,
    pub port: u16,
    /// Where connections go.
    pub target: Target,
}

/// Why a forward spec was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("forward spec {spec:?}: {why} (expected [bind:]port:host:hostport)")]
pub struct SpecError {
    pub spec: String,
    pub why: &'static str,
}

/// Splits on ':' outside brackets.
fn fields(s: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return None;
        }
    }
    if depth != 0 {
        return None;
    }
    out.push(&s[start..]);
    Some(out)
}

impl std::str::FromStr for ForwardSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let err = |why| SpecError {
            spec: s.to_owned(),
            why,
        };
        let f = fields(s).ok_or_else(|| err("unbalanced brackets"))?;
        let (bind, rest) = match f.len() {
            3 => (None, &f[..]),
            4 => {
                let b = f[0]
                    .strip_prefix('[')
                    .and_then(|b| b.strip_suffix(']'))
                    .unwrap_or(f[0]);
                let ip = b
                    .parse::<IpAddr>()
                    .map_err(|_| err("bind must be an IP address"))?;
                (Some(ip), &f[1..])
            }
            _ => return Err(err("wrong number of fields")),
        };
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
        let listen = port(rest[0]).ok_or_else(|| err("bad port"))?;
        let hostport = port(rest[2]).ok_or_else(|| err("bad host port"))?;
        let host = rest[1];
        if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
            return Err(err("bad host"));
        }
        Ok(Self {
            bind,
            port: listen,
            target: Target::new(host, hostport),
        })
    }
}

impl ForwardSpec {
    /// The host address for a local listener: the bind address or 127.0.0.1.
    pub fn local_bind(&self) -> SocketAddr {
        SocketAddr::new(
            self.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            self.port,
        )
    }
}

async fn splice(mut a: super::BoxedStream, mut b: super::BoxedStream) {
    if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut b).await {
        tracing::debug!(error = %e, "forwarded connection ended");
    }
}

/// `-L`: connections accepted on the host `listener` are dialed to `target`. Runs until
/// accepting fails.
pub async fn forward_local(
    listener: TcpListener,
    dialer: Arc<dyn Dialer>,
    target: Target,
) -> io::Result<()> {
    loop {
        let (client, peer) = listener.accept().await?;
        let _ = client.set_nodelay(true);
        let (dialer, target) = (dialer.clone(), target.clone());
        tokio::spawn(async move {
            match dialer.connect(target.clone()).await {
                Ok(up) => splice(Box::new(client), up).await,
                Err(e) => {
                    tracing::info!(%peer, %target, error = %e, "forward: cannot reach target")
                }
            }
        });
    }
}

/// `-R`: listens on `port` of the VPN address (with `backlog` pending handshakes) and hands
/// every connection to the local service `local`. Runs until accepting fails (the stack
/// stopped).
pub async fn forward_remote(
    stack: Stack,
    port: u16,
    backlog: usize,
    local: Target,
) -> io::Result<()> {
    let listener = stack.tcp_listen(port, backlog).await?;
    let direct = DirectDialer::default();
    loop {
        let (conn, peer) = listener.accept().await?;
        let fut = direct.connect(local.clone());
        let local = local.clone();
        tokio::spawn(async move {
            match fut.await {
                Ok(up) => splice(Box::new(conn), up).await,
                Err(e) => {
                    tracing::info!(%peer, %local, error = %e, "remote forward: local service unreachable")
                }
            }
        });
    }
}

/// A UDP forward session ends after this long without a datagram either way.
pub const UDP_IDLE: Duration = Duration::from_secs(120);
/// Most client sources served at once by one UDP forward.
const MAX_UDP_SESSIONS: usize = 1024;

/// `--udp-forward`: datagrams arriving on the host `socket` are sent to `target` from a relay
/// socket per client source; replies go back to that source. Runs until receiving fails.
pub async fn forward_udp(
    socket: UdpSocket,
    dialer: Arc<dyn Dialer>,
    target: Target,
) -> io::Result<()> {
    let socket = Arc::new(socket);
    let mut sessions: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, src) = socket.recv_from(&mut buf).await?;
        sessions.retain(|_, tx| !tx.is_closed());
        if !sessions.contains_key(&src) {
            if sessions.len() >= MAX_UDP_SESSIONS {
                tracing::debug!(%src, "UDP forward: too many sessions, datagram dropped");
                continue;
            }
            let (tx, rx) = mpsc::channel(256);
            tokio::spawn(udp_session(
                socket.clone(),
                src,
                dialer.clone(),
                target.clone(),
                rx,
            ));
            sessions.insert(src, tx);
        }
        if let Some(tx) = sessions.get(&src) {
            // A full queue means the relay is slower than the client: drop, as UDP would.
            let _ = tx.try_send(buf[..n].to_vec());
        }
    }
}

async fn udp_session(
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    dialer: Arc<dyn Dialer>,
    target: Target,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let setup = async {
        let dst = dialer.resolve(target.clone()).await?;
        let relay = dialer.udp().await?;
        Ok::<_, io::Error>((dst, relay))
    };
    let (dst, relay): (SocketAddr, Arc<dyn DatagramSocket>) = match setup.await {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(%client, %target, error = %e, "UDP forward: cannot reach target");
            return;
        }
    };
    let mut back = vec![0u8; 65536];
    loop {
        tokio::select! {
            d = tokio::time::timeout(UDP_IDLE, rx.recv()) => match d {
                Ok(Some(d)) => {
                    if let Err(e) = super::send_to(&*relay, &d, dst).await {
                        tracing::debug!(%dst, error = %e, "UDP forward: datagram dropped");
                    }
                }
                Ok(None) | Err(_) => return,
            },
            r = super::recv_from(&*relay, &mut back) => match r {
                Ok((n, from)) if from == dst => {
                    let _ = socket.send_to(&back[..n], client).await;
                }
                Ok(_) => {}
                Err(_) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<ForwardSpec, SpecError> {
        s.parse()
    }

    #[test]
    fn specs() {
        assert_eq!(
            spec("8080:example.com:80").unwrap(),
            ForwardSpec {
                bind: None,
                port: 8080,
                target: Target::Name("example.com".into(), 80)
            }
        );
        let s = spec("0.0.0.0:2222:10.8.0.1:22").unwrap();
        assert_eq!(s.bind, Some("0.0.0.0".parse().unwrap()));
        assert_eq!(s.target, Target::Addr("10.8.0.1:22".parse().unwrap()));
        let s = spec("[::1]:53:[2001:db8::53]:53").unwrap();
        assert_eq!(s.bind, Some("::1".parse().unwrap()));
        assert_eq!(s.target, Target::Addr("[2001:db8::53]:53".parse().unwrap()));
        assert_eq!(s.local_bind(), "[::1]:53".parse().unwrap());
        assert_eq!(
            spec("80:h:81").unwrap().local_bind(),
            "127.0.0.1:80".parse().unwrap()
        );
        for bad in [
            "",
            "80",
            "80:h",
            "0:h:80",
            "80:h:0",
            "80:h:x",
            "host:80:h:80",
            "1:2:3:4:5",
            "80:[::1:80",
            "80::80",
            "80:::1:80",
        ] {
            assert!(spec(bad).is_err(), "{bad}");
        }
    }
}
