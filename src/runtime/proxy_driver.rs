//! Proxy mode (`ferrovpn proxy`, `ferrovpn exec`): the same client sessions as tunnel mode, with
//! the embedded userspace stack as the packet device and SOCKS5, HTTP and port-forward
//! listeners on the host. No TUN device, no privileges.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferrovpn_netstack::proxy::{
    BoxFuture, BoxedStream, DatagramSocket, Dialer, DirectDialer, Target, TunnelDialer,
    forward::{ForwardSpec, forward_local, forward_remote, forward_udp},
    http::serve_http,
    socks5::serve_socks5,
};
use ferrovpn_netstack::{IpNet, StackConfig};
use tokio::sync::watch;
use tracing::{info, warn};

use super::client_driver::{ConnectOptions, Outcome, TunnelState, run_with};
use super::device::Device;
use super::health;
use crate::config::Profile;
use crate::proto::client::Credentials;

/// Options of `ferrovpn proxy`.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// `--socks5 ADDR` (repeatable).
    pub socks5: Vec<SocketAddr>,
    /// `--http ADDR` (repeatable).
    pub http: Vec<SocketAddr>,
    /// `-L [bind:]port:host:hostport`.
    pub local_forwards: Vec<String>,
    /// `-R [vpnaddr:]port:host:hostport`.
    pub remote_forwards: Vec<String>,
    /// `--udp-forward [bind:]port:host:hostport`.
    pub udp_forwards: Vec<String>,
    /// `--dns IP[:PORT]`: resolvers inside the tunnel instead of the pushed ones.
    pub dns: Vec<SocketAddr>,
    /// `--all-through-tunnel`.
    pub all_through_tunnel: bool,
    /// `--proxy-user USER:PASS` for SOCKS5 and HTTP.
    pub auth: Option<(String, String)>,
    /// `--health ADDR`.
    pub health: Option<SocketAddr>,
    /// How long a connection to a tunnel destination waits for the tunnel.
    pub wait_timeout: Duration,
    /// Tunnel-mode options that apply too (EKU, key derivation).
    pub connect: ConnectOptions,
}

/// What the pushed configuration says goes through the tunnel.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    nets: Vec<IpNet>,
    domains: Vec<String>,
    default_route: bool,
}

/// Picks the tunnel or the host for each destination, failing closed for tunnel destinations
/// while the tunnel is down.
struct ProxyDialer {
    routing: Arc<RwLock<Routing>>,
    all_through_tunnel: bool,
    tunnel: TunnelDialer,
    direct: DirectDialer,
    state: watch::Receiver<TunnelState>,
    wait_timeout: Duration,
}

impl ProxyDialer {
    fn via_tunnel_ip(&self, ip: IpAddr) -> bool {
        let r = self.routing.read().expect("routing lock");
        self.all_through_tunnel || r.default_route || r.nets.iter().any(|n| n.contains(&ip))
    }

    fn via_tunnel_name(&self, name: &str) -> bool {
        let r = self.routing.read().expect("routing lock");
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.all_through_tunnel
            || r.default_route
            || r.domains.iter().any(|d| {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                name == d || name.ends_with(&format!(".{d}"))
            })
    }

    fn wants_tunnel(&self, target: &Target) -> bool {
        match target {
            Target::Addr(a) => self.via_tunnel_ip(a.ip()),
            Target::Name(n, _) => self.via_tunnel_name(n),
        }
    }

    async fn wait_up(mut state: watch::Receiver<TunnelState>, timeout: Duration) -> io::Result<()> {
        match tokio::time::timeout(timeout, state.wait_for(|s| *s == TunnelState::Up)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the VPN tunnel is down (reconnecting); not connecting around it",
            )),
        }
    }
}

impl Dialer for ProxyDialer {
    fn connect(&self, target: Target) -> BoxFuture<io::Result<BoxedStream>> {
        if self.wants_tunnel(&target)
            || *self.state.borrow() != TunnelState::Up && self.all_through_tunnel
        {
            let (state, timeout, tunnel) =
                (self.state.clone(), self.wait_timeout, self.tunnel.clone());
            return Box::pin(async move {
                Self::wait_up(state, timeout).await?;
                tunnel.connect(target).await
            });
        }
        // A name may resolve to an address the tunnel carries: resolve on the host, then decide.
        if let Target::Name(name, port) = &target {
            let (name, port) = (name.clone(), *port);
            let routing = self.routing.clone();
            let all = self.all_through_tunnel;
            let (state, timeout, tunnel, direct) = (
                self.state.clone(),
                self.wait_timeout,
                self.tunnel.clone(),
                self.direct.clone(),
            );
            return Box::pin(async move {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
                    .await?
                    .collect();
                let Some(addr) = addrs.first().copied() else {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{name}: no address"),
                    ));
                };
                let tunnel_dest = {
                    let r = routing.read().expect("routing lock");
                    all || r.nets.iter().any(|n| n.contains(&addr.ip()))
                };
                if tunnel_dest {
                    Self::wait_up(state, timeout).await?;
                    tunnel.connect(Target::Addr(addr)).await
                } else {
                    direct.connect(Target::Addr(addr)).await
                }
            });
        }
        self.direct.connect(target)
    }

    fn udp(&self) -> BoxFuture<io::Result<Arc<dyn DatagramSocket>>> {
        // UDP ASSOCIATE relays go through the tunnel: the common use is DNS and VPN-side services.
        let (state, timeout, tunnel) = (self.state.clone(), self.wait_timeout, self.tunnel.clone());
        Box::pin(async move {
            Self::wait_up(state, timeout).await?;
            tunnel.udp().await
        })
    }

    fn resolve(&self, target: Target) -> BoxFuture<io::Result<SocketAddr>> {
        if self.wants_tunnel(&target) {
            let (state, timeout, tunnel) =
                (self.state.clone(), self.wait_timeout, self.tunnel.clone());
            return Box::pin(async move {
                Self::wait_up(state, timeout).await?;
                tunnel.resolve(target).await
            });
        }
        self.direct.resolve(target)
    }
}

/// The addresses the proxies listen on, once bound.
#[derive(Debug, Clone, Default)]
pub struct Listening {
    /// SOCKS5 listeners.
    pub socks5: Vec<SocketAddr>,
    /// HTTP proxy listeners.
    pub http: Vec<SocketAddr>,
}

async fn bind(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            format!("cannot listen for {what} on {addr}: the port is already in use (pick another with the option's ADDR)")
        } else {
            format!("cannot listen for {what} on {addr}: {e}")
        }
    })
}

/// Starts the stack and the listeners; returns the device for the session loop.
pub async fn start(
    opts: &ProxyOptions,
    state_rx: watch::Receiver<TunnelState>,
) -> Result<(Device, Listening), String> {
    let (stack, pipe) = ferrovpn_netstack::spawn(StackConfig::default());
    let routing = Arc::new(RwLock::new(Routing::default()));
    let dialer: Arc<dyn Dialer> = Arc::new(ProxyDialer {
        routing: routing.clone(),
        all_through_tunnel: opts.all_through_tunnel,
        tunnel: TunnelDialer::new(stack.clone()),
        direct: DirectDialer::default(),
        state: state_rx.clone(),
        wait_timeout: opts.wait_timeout,
    });
    let mut listening = Listening::default();
    for addr in &opts.socks5 {
        let l = bind(*addr, "SOCKS5").await?;
        let local = l.local_addr().map_err(|e| e.to_string())?;
        info!("SOCKS5 proxy listening on {local}");
        listening.socks5.push(local);
        let (d, a) = (dialer.clone(), opts.auth.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_socks5(l, d, a).await {
                warn!("SOCKS5 listener on {local} stopped: {e}");
            }
        });
    }
    for addr in &opts.http {
        let l = bind(*addr, "the HTTP proxy").await?;
        let local = l.local_addr().map_err(|e| e.to_string())?;
        info!("HTTP proxy listening on {local}");
        listening.http.push(local);
        let (d, a) = (dialer.clone(), opts.auth.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_http(l, d, a).await {
                warn!("HTTP proxy listener on {local} stopped: {e}");
            }
        });
    }
    for spec in &opts.local_forwards {
        let f = spec
            .parse::<ForwardSpec>()
            .map_err(|e| format!("-L: {e}"))?;
        let bind_ip = f.bind.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let l = bind(SocketAddr::new(bind_ip, f.port), "-L").await?;
        info!(
            "forwarding {} to {} through the tunnel",
            l.local_addr().map_err(|e| e.to_string())?,
            f.target
        );
        let d = dialer.clone();
        tokio::spawn(async move {
            if let Err(e) = forward_local(l, d, f.target).await {
                warn!("-L forward stopped: {e}");
            }
        });
    }
    for spec in &opts.udp_forwards {
        let f = spec
            .parse::<ForwardSpec>()
            .map_err(|e| format!("--udp-forward: {e}"))?;
        let bind_ip = f.bind.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let s = tokio::net::UdpSocket::bind(SocketAddr::new(bind_ip, f.port))
            .await
            .map_err(|e| format!("--udp-forward: cannot bind {bind_ip}:{}: {e}", f.port))?;
        info!(
            "forwarding UDP {bind_ip}:{} to {} through the tunnel",
            f.port, f.target
        );
        let d = dialer.clone();
        tokio::spawn(async move {
            if let Err(e) = forward_udp(s, d, f.target).await {
                warn!("--udp-forward stopped: {e}");
            }
        });
    }
    for spec in &opts.remote_forwards {
        let f = spec
            .parse::<ForwardSpec>()
            .map_err(|e| format!("-R: {e}"))?;
        info!("forwarding tunnel port {} to {}", f.port, f.target);
        let st = stack.clone();
        tokio::spawn(async move {
            if let Err(e) = forward_remote(st, f.port, 16, f.target).await {
                warn!("-R forward stopped: {e}");
            }
        });
    }
    if let Some(addr) = opts.health {
        let l = bind(addr, "--health").await?;
        info!(
            "health endpoint listening on {}",
            l.local_addr().map_err(|e| e.to_string())?
        );
        tokio::spawn(health::serve(l, stack.clone(), state_rx));
    }
    let device = Device::stack(stack, pipe, routing, opts.dns.clone());
    Ok((device, listening))
}

/// The userspace stack speaks IP, not Ethernet: a `dev tap` profile needs tunnel mode; so does
/// a static-key point-to-point profile (no server to pull a configuration from).
fn layer3_only(profile: &Profile) -> Result<(), String> {
    if profile.static_key.is_some() {
        return Err(format!(
            "{}: static-key point-to-point profiles ('secret') run in tunnel mode only; use \
             'ferrovpn connect'",
            profile.source.display()
        ));
    }
    if profile.layer2 {
        return Err(format!(
            "{}: 'dev tap' (layer 2) works in tunnel mode only; use 'ferrovpn connect' for this \
             server, or ask for a 'dev tun' server",
            profile.source.display()
        ));
    }
    Ok(())
}

/// Runs `ferrovpn proxy` until stopped.
pub async fn run(
    profile: Profile,
    credentials: Option<Credentials>,
    mut opts: ProxyOptions,
) -> Outcome {
    if let Err(e) = layer3_only(&profile) {
        return Outcome::Failed(e);
    }
    if opts.socks5.is_empty() && opts.http.is_empty() {
        opts.socks5.push(SocketAddr::from(([127, 0, 0, 1], 1080)));
        opts.http.push(SocketAddr::from(([127, 0, 0, 1], 8080)));
    }
    let stop = match super::signals::stop_on_signals() {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e),
    };
    let (state_tx, state_rx) = watch::channel(TunnelState::Down);
    let (device, _) = match start(&opts, state_rx).await {
        Ok(x) => x,
        Err(e) => return Outcome::Failed(e),
    };
    run_with(
        profile,
        credentials,
        opts.connect.clone(),
        device,
        stop,
        Some(state_tx),
    )
    .await
}

/// Updates the routing table from the pushed configuration.
pub(crate) fn update_routing(routing: &RwLock<Routing>, plan: &super::netcfg::NetPlan) {
    let mut nets = Vec::new();
    let mut default_route = false;
    for (n, p, _) in &plan.routes_v4 {
        if *p <= 1 {
            default_route = true;
        }
        if let Ok(net) = IpNet::new(IpAddr::V4(*n), *p) {
            nets.push(net);
        }
    }
    for (n, p, _) in &plan.routes_v6 {
        if let Ok(net) = IpNet::new(IpAddr::V6(*n), *p) {
            nets.push(net);
        }
    }
    if let Some((a, p, peer)) = plan.v4 {
        if let Ok(net) = IpNet::new(IpAddr::V4(a), p) {
            nets.push(net.trunc());
        }
        if let Some(peer) = peer {
            nets.push(IpNet::from(IpAddr::V4(peer)));
        }
    }
    if let Some((a, p)) = plan.v6
        && let Ok(net) = IpNet::new(IpAddr::V6(a), p)
    {
        nets.push(net.trunc());
    }
    for ip in &plan.dns.servers {
        nets.push(IpNet::from(*ip));
    }
    let mut r = routing.write().expect("routing lock");
    r.nets = nets;
    r.domains = plan.dns.search_domains.clone();
    r.default_route = default_route;
}

/// Runs `ferrovpn exec`: a private proxy on ephemeral loopback ports, `command` started once the
/// tunnel is up with the proxy variables set, the tunnel stopped when it exits. Returns the
/// command's exit status (or 1 when the tunnel failed first).
pub async fn exec(
    profile: Profile,
    credentials: Option<Credentials>,
    mut opts: ProxyOptions,
    command: Vec<String>,
) -> Result<u8, String> {
    layer3_only(&profile)?;
    opts.socks5 = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    opts.http = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let signals = super::signals::stop_on_signals()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (state_tx, mut state_rx) = watch::channel(TunnelState::Down);
    let (device, listening) = start(&opts, state_rx.clone()).await?;
    let session = run_with(
        profile,
        credentials,
        opts.connect.clone(),
        device,
        stop_rx,
        Some(state_tx),
    );
    tokio::pin!(session);
    let mut sig = signals.clone();
    tokio::select! {
        outcome = &mut session => {
            return Err(match outcome {
                Outcome::Failed(m) => m,
                Outcome::Stopped => "the tunnel stopped before it came up".into(),
            });
        }
        _ = state_rx.wait_for(|s| *s == TunnelState::Up) => {}
        _ = sig.wait_for(|s| *s) => {
            let _ = stop_tx.send(true);
            let _ = session.await;
            return Ok(130);
        }
    }
    let socks = format!("socks5h://{}", listening.socks5[0]);
    let http = format!("http://{}", listening.http[0]);
    let (prog, args) = command.split_first().ok_or("no command given")?;
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .env("ALL_PROXY", &socks)
        .env("all_proxy", &socks)
        .env("HTTP_PROXY", &http)
        .env("http_proxy", &http)
        .env("HTTPS_PROXY", &http)
        .env("https_proxy", &http)
        .spawn()
        .map_err(|e| format!("cannot run '{prog}': {e}"))?;
    info!("running {prog} with ALL_PROXY={socks} HTTP(S)_PROXY={http}");
    let status = tokio::select! {
        s = child.wait() => s.map_err(|e| format!("waiting for '{prog}': {e}"))?,
        outcome = &mut session => {
            let _ = child.kill().await;
            return Err(match outcome {
                Outcome::Failed(m) => m,
                Outcome::Stopped => "the tunnel stopped".into(),
            });
        }
    };
    let _ = stop_tx.send(true);
    let _ = session.await;
    Ok(status.code().map(|c| c.clamp(0, 255) as u8).unwrap_or(1))
}
