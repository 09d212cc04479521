//! Proxies on the host side of proxy mode: SOCKS5 ([`socks5`]), an HTTP proxy ([`http`]) and
//! port forwards ([`forward`]), all generic over a [`Dialer`].
//!
//! A dialer decides how a destination is reached: [`TunnelDialer`] through the [`Stack`],
//! [`DirectDialer`] from the host, [`RoutingDialer`] by the pushed routes, failing closed while
//! the tunnel is down (it waits for the tunnel, then errors; it never falls back to direct for a
//! destination the tunnel covers).

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::Stack;
use crate::dns::ip_literal;

pub mod forward;
pub mod http;
pub mod socks5;

/// A boxed `Send` future, so that [`Dialer`] stays object-safe without `async_trait`.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A byte stream, whatever carries it.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// A connected stream from a [`Dialer`].
pub type BoxedStream = Box<dyn AsyncStream>;

/// Where to connect: an address, or a name to resolve (by the dialer's rules) and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Addr(SocketAddr),
    Name(String, u16),
}

impl Target {
    /// `host` may be an IP literal (IPv6 with or without brackets) or a name.
    pub fn new(host: &str, port: u16) -> Self {
        match ip_literal(host) {
            Some(ip) => Self::Addr(SocketAddr::new(ip, port)),
            None => Self::Name(host.to_owned(), port),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Self::Addr(a) => a.port(),
            Self::Name(_, p) => *p,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(a) => write!(f, "{a}"),
            Self::Name(n, p) => write!(f, "{n}:{p}"),
        }
    }
}

/// A datagram socket, whatever carries it. One task may poll sends and one task receives at
/// the same time (each direction keeps one waker).
pub trait DatagramSocket: Send + Sync {
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>>;
    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>>;
}

/// `send_to` on any [`DatagramSocket`].
pub async fn send_to(
    sock: &dyn DatagramSocket,
    buf: &[u8],
    target: SocketAddr,
) -> io::Result<usize> {
    poll_fn(|cx| sock.poll_send_to(cx, buf, target)).await
}

/// `recv_from` on any [`DatagramSocket`].
pub async fn recv_from(
    sock: &dyn DatagramSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr)> {
    let mut rb = ReadBuf::new(buf);
    let from = poll_fn(|cx| sock.poll_recv_from(cx, &mut rb)).await?;
    Ok((rb.filled().len(), from))
}

impl DatagramSocket for crate::UdpSocket {
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        crate::UdpSocket::poll_send_to(self, cx, buf, target)
    }
    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        crate::UdpSocket::poll_recv_from(self, cx, buf)
    }
}

/// Host UDP: one socket per address family (an IPv6 socket cannot send to IPv4 addresses).
pub struct HostDatagram {
    v4: tokio::net::UdpSocket,
    v6: Option<tokio::net::UdpSocket>,
}

impl HostDatagram {
    pub async fn bind() -> io::Result<Self> {
        let v4 = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
        let v6 = tokio::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
            .await
            .ok();
        Ok(Self { v4, v6 })
    }
}

impl DatagramSocket for HostDatagram {
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        match (target, &self.v6) {
            (SocketAddr::V4(_), _) => self.v4.poll_send_to(cx, buf, target),
            (SocketAddr::V6(_), Some(v6)) => v6.poll_send_to(cx, buf, target),
            (SocketAddr::V6(_), None) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NetworkUnreachable,
                "no IPv6 on this host",
            ))),
        }
    }
    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        if let Poll::Ready(r) = self.v4.poll_recv_from(cx, buf) {
            return Poll::Ready(r);
        }
        match &self.v6 {
            Some(v6) => v6.poll_recv_from(cx, buf),
            None => Poll::Pending,
        }
    }
}

/// How proxies reach their destinations.
pub trait Dialer: Send + Sync + 'static {
    /// A TCP connection to `target`.
    fn connect(&self, target: Target) -> BoxFuture<io::Result<BoxedStream>>;
    /// A datagram socket able to send to any target this dialer serves.
    fn udp(&self) -> BoxFuture<io::Result<Arc<dyn DatagramSocket>>>;
    /// One address for `target` (names resolved by the dialer's rules).
    fn resolve(&self, target: Target) -> BoxFuture<io::Result<SocketAddr>>;
}

/// Tries each address in turn; the last error if none connects.
async fn connect_any<S, F, Fut>(addrs: Vec<SocketAddr>, what: &Target, mut dial: F) -> io::Result<S>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<S>>,
{
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{what}: no address"));
    for a in addrs {
        match dial(a).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                tracing::debug!(addr = %a, error = %e, "connect attempt failed");
                last = e;
            }
        }
    }
    Err(last)
}

/// Through the tunnel: TCP and UDP over the [`Stack`], names through the tunnel's DNS.
#[derive(Clone, Debug)]
pub struct TunnelDialer {
    pub stack: Stack,
}

impl TunnelDialer {
    pub fn new(stack: Stack) -> Self {
        Self { stack }
    }

    async fn addrs(stack: &Stack, target: &Target) -> io::Result<Vec<SocketAddr>> {
        match target {
            Target::Addr(a) => Ok(vec![*a]),
            Target::Name(n, p) => Ok(stack
                .resolve(n)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, *p))
                .collect()),
        }
    }
}

impl Dialer for TunnelDialer {
    fn connect(&self, target: Target) -> BoxFuture<io::Result<BoxedStream>> {
        let stack = self.stack.clone();
        Box::pin(async move {
            let addrs = Self::addrs(&stack, &target).await?;
            let s = connect_any(addrs, &target, |a| stack.tcp_connect(a)).await?;
            Ok(Box::new(s) as BoxedStream)
        })
    }

    fn udp(&self) -> BoxFuture<io::Result<Arc<dyn DatagramSocket>>> {
        let stack = self.stack.clone();
        Box::pin(async move { Ok(Arc::new(stack.udp_bind().await?) as Arc<dyn DatagramSocket>) })
    }

    fn resolve(&self, target: Target) -> BoxFuture<io::Result<SocketAddr>> {
        let stack = self.stack.clone();
        Box::pin(async move { first(Self::addrs(&stack, &target).await?, &target) })
    }
}

fn first(addrs: Vec<SocketAddr>, target: &Target) -> io::Result<SocketAddr> {
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{target}: no address")))
}

/// From the host: tokio sockets and the host's resolver.
#[derive(Clone, Debug)]
pub struct DirectDialer {
    pub connect_timeout: Duration,
}

impl Default for DirectDialer {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(20),
        }
    }
}

impl DirectDialer {
    async fn addrs(target: &Target) -> io::Result<Vec<SocketAddr>> {
        match target {
            Target::Addr(a) => Ok(vec![*a]),
            Target::Name(n, p) => Ok(tokio::net::lookup_host((n.as_str(), *p)).await?.collect()),
        }
    }

    async fn tcp(addr: SocketAddr, timeout: Duration) -> io::Result<tokio::net::TcpStream> {
        let s = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {addr} timed out"),
                )
            })??;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

impl Dialer for DirectDialer {
    fn connect(&self, target: Target) -> BoxFuture<io::Result<BoxedStream>> {
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let addrs = Self::addrs(&target).await?;
            let s = connect_any(addrs, &target, |a| Self::tcp(a, timeout)).await?;
            Ok(Box::new(s) as BoxedStream)
        })
    }

    fn udp(&self) -> BoxFuture<io::Result<Arc<dyn DatagramSocket>>> {
        Box::pin(
            async move { Ok(Arc::new(HostDatagram::bind().await?) as Arc<dyn DatagramSocket>) },
        )
    }

    fn resolve(&self, target: Target) -> BoxFuture<io::Result<SocketAddr>> {
        Box::pin(async move { first(Self::addrs(&target).await?, &target) })
    }
}

/// Which way a destination goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Tunnel,
    Direct,
}

/// Picks the tunnel or the host per destination, by the pushed routes.
///
/// - Addresses: through the tunnel when a route covers them (or `all_through_tunnel`).
/// - Names: resolved by the tunnel's DNS when the tunnel carries the default route (a /0, or
///   the two /1 halves of `redirect-gateway def1`), when `all_through_tunnel`, or when the name
///   is in or under one of `domains` (pushed `dhcp-option DOMAIN`/`DOMAIN-SEARCH`); by the
///   host's resolver otherwise. Each resolved address is then routed as above.
/// - Anything for the tunnel waits up to `wait_timeout` for `tunnel_up` to be true, then fails
///   with `NotConnected`. Nothing meant for the tunnel is ever sent directly.
#[derive(Clone, Debug)]
pub struct RoutingDialer {
    pub routes: Vec<IpNet>,
    pub all_through_tunnel: bool,
    pub domains: Vec<String>,
    pub tunnel: TunnelDialer,
    pub direct: DirectDialer,
    pub tunnel_up: watch::Receiver<bool>,
    pub wait_timeout: Duration,
}

impl RoutingDialer {
    /// The way to `ip`.
    pub fn via(&self, ip: IpAddr) -> Via {
        if self.all_through_tunnel || self.routes.iter().any(|r| r.contains(&ip)) {
            Via::Tunnel
        } else {
            Via::Direct
        }
    }

    fn carries_default(&self) -> bool {
        let covers = |ip: IpAddr| {
            self.routes
                .iter()
                .any(|r| r.contains(&ip) && r.prefix_len() <= 1)
        };
        let v4 =
            covers(Ipv4Addr::new(0, 0, 0, 1).into()) && covers(Ipv4Addr::new(128, 0, 0, 1).into());
        let v6 = covers(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1).into())
            && covers(Ipv6Addr::new(0x8000, 0, 0, 0, 0, 0, 0, 1).into());
        v4 || v6
    }

    /// Which resolver answers for `name`.
    pub fn name_via(&self, name: &str) -> Via {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let in_domain = self.domains.iter().any(|d| {
            let d = d.trim_matches('.').to_ascii_lowercase();
            !d.is_empty() && (name == d || name.ends_with(&format!(".{d}")))
        });
        if self.all_through_tunnel || in_domain || self.carries_default() {
            Via::Tunnel
        } else {
            Via::Direct
        }
    }

    async fn wait_up(mut up: watch::Receiver<bool>, timeout: Duration) -> io::Result<()> {
        let down = || io::Error::new(io::ErrorKind::NotConnected, "the tunnel is down");
        match tokio::time::timeout(timeout, up.wait_for(|v| *v)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(down()),
        }
    }

    /// Resolves `target` by the rules above, each address paired with its way.
    async fn plan(&self, target: &Target) -> io::Result<Vec<(SocketAddr, Via)>> {
        let addrs = match target {
            Target::Addr(a) => vec![*a],
            Target::Name(n, _) if self.name_via(n) == Via::Tunnel => {
                Self::wait_up(self.tunnel_up.clone(), self.wait_timeout).await?;
                TunnelDialer::addrs(&self.tunnel.stack, target).await?
            }
            Target::Name(..) => DirectDialer::addrs(target).await?,
        };
        Ok(addrs.into_iter().map(|a| (a, self.via(a.ip()))).collect())
    }
}

impl Dialer for RoutingDialer {
    fn connect(&self, target: Target) -> BoxFuture<io::Result<BoxedStream>> {
        let this = self.clone();
        Box::pin(async move {
            let plan = this.plan(&target).await?;
            let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{target}: no address"));
            for (a, via) in plan {
                let r = match via {
                    Via::Tunnel => {
                        match Self::wait_up(this.tunnel_up.clone(), this.wait_timeout).await {
                            Ok(()) => this
                                .tunnel
                                .stack
                                .tcp_connect(a)
                                .await
                                .map(|s| Box::new(s) as BoxedStream),
                            Err(e) => Err(e),
                        }
                    }
                    Via::Direct => DirectDialer::tcp(a, this.direct.connect_timeout)
                        .await
                        .map(|s| Box::new(s) as BoxedStream),
                };
                match r {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }

    fn udp(&self) -> BoxFuture<io::Result<Arc<dyn DatagramSocket>>> {
        let this = self.clone();
        Box::pin(async move {
            let direct = HostDatagram::bind().await?;
            let tunnel = this.tunnel.stack.udp_bind().await.ok();
            Ok(Arc::new(RoutedDatagram {
                routes: this,
                tunnel,
                direct,
            }) as Arc<dyn DatagramSocket>)
        })
    }

    fn resolve(&self, target: Target) -> BoxFuture<io::Result<SocketAddr>> {
        let this = self.clone();
        Box::pin(async move {
            let plan = this.plan(&target).await?;
            plan.into_iter().map(|(a, _)| a).next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{target}: no address"))
            })
        })
    }
}

/// UDP that follows the routes; datagrams for the tunnel are dropped (with an error) while it
/// is down.
struct RoutedDatagram {
    routes: RoutingDialer,
    tunnel: Option<crate::UdpSocket>,
    direct: HostDatagram,
}

impl DatagramSocket for RoutedDatagram {
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        match self.routes.via(target.ip()) {
            Via::Direct => self.direct.poll_send_to(cx, buf, target),
            Via::Tunnel => match &self.tunnel {
                Some(t) if *self.routes.tunnel_up.borrow() => t.poll_send_to(cx, buf, target),
                _ => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the tunnel is down",
                ))),
            },
        }
    }

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        if let Some(t) = &self.tunnel {
            if let Poll::Ready(r) = t.poll_recv_from(cx, buf) {
                return Poll::Ready(r);
            }
        }
        self.direct.poll_recv_from(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialer(routes: &[&str], all: bool, domains: &[&str]) -> RoutingDialer {
        let (stack, _pipe) = {
            // A stack is needed only as a value here; no runtime work happens.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async { crate::spawn(crate::StackConfig::default()) })
        };
        let (_tx, rx) = watch::channel(true);
        RoutingDialer {
            routes: routes.iter().map(|r| r.parse().unwrap()).collect(),
            all_through_tunnel: all,
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            tunnel: TunnelDialer::new(stack),
            direct: DirectDialer::default(),
            tunnel_up: rx,
            wait_timeout: Duration::from_millis(10),
        }
    }

    #[test]
    fn routes_pick_the_way() {
        let d = dialer(&["10.8.0.0/24", "2001:db8::/32"], false, &["corp.example"]);
        assert_eq!(d.via("10.8.0.5".parse().unwrap()), Via::Tunnel);
        assert_eq!(d.via("10.9.0.5".parse().unwrap()), Via::Direct);
        assert_eq!(d.via("2001:db8::5".parse().unwrap()), Via::Tunnel);
        assert_eq!(d.name_via("intranet.corp.example."), Via::Tunnel);
        assert_eq!(d.name_via("CORP.example"), Via::Tunnel);
        assert_eq!(d.name_via("notcorp.example"), Via::Direct);
        assert_eq!(d.name_via("example.com"), Via::Direct);
    }

    #[test]
    fn default_route_sends_names_through_the_tunnel() {
        let d = dialer(&["0.0.0.0/1", "128.0.0.0/1"], false, &[]);
        assert_eq!(d.name_via("example.com"), Via::Tunnel);
        assert_eq!(d.via("1.1.1.1".parse().unwrap()), Via::Tunnel);
        let d = dialer(&["::/0"], false, &[]);
        assert_eq!(d.name_via("example.com"), Via::Tunnel);
        let d = dialer(&["0.0.0.0/1"], false, &[]);
        assert_eq!(d.name_via("example.com"), Via::Direct);
        let d = dialer(&[], true, &[]);
        assert_eq!(d.via("192.0.2.1".parse().unwrap()), Via::Tunnel);
        assert_eq!(d.name_via("example.com"), Via::Tunnel);
    }

    #[test]
    fn target_from_host() {
        assert_eq!(
            Target::new("[2001:db8::1]", 80),
            Target::Addr("[2001:db8::1]:80".parse().unwrap())
        );
        assert_eq!(
            Target::new("198.18.0.1", 80),
            Target::Addr("198.18.0.1:80".parse().unwrap())
        );
        assert_eq!(Target::new("example.com", 80).to_string(), "example.com:80");
    }
}
