//! `ferrovpn serve`: the server's async shell around [`crate::proto::server::Server`].
//!
//! One core task owns the state machine, the client table, the pool and the device sink;
//! socket readers, the device reader, client checks (scripts, CCD) and the management interface
//! talk to it through channels.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::control::{
    ClientSnapshot, KillTarget, RouteSnapshot, ServerControl, Transport as CtlTransport,
};
use super::device::ServerDevice;
use super::listen::{self, NetIn, UdpListener};
use super::management::{LogRing, ManagementConfig, ManagementListen, serve_management};
use super::pool::{Lease, Pool};
use super::scripts::{ScriptCmd, ScriptRunner, ServerScriptInfo};
use super::setup::{self, Decision, SetupContext};
use super::status::{StatusFile, StatusVersion, render_status, run_status_file};
use crate::config::{
    ServerProfile, TlsWrap, Topology, Transport, VerifyClientCert, load_server_profile,
};
use crate::proto::server::{
    AuthRequest, Link, Received, Server, ServerConfig, ServerEvent, ServerWrap, TlsCryptV2ServerKey,
};
use crate::proto::tls::{ServerTlsSettings, server_config};
use crate::runtime::datagram_batch::TxQueue;
use crate::runtime::{clock, rng};

/// What `ferrovpn serve` was asked for.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// The server configuration file.
    pub config: PathBuf,
    /// No TUN device: the userspace exit.
    pub userspace: bool,
    /// `--allow CIDR[:PORTS]` rules for the userspace exit.
    pub allow: Vec<String>,
    /// TCP services inside the userspace exit: port on the server's tunnel address → host.
    pub local_services: Vec<(u16, SocketAddr)>,
}

/// Addresses the server listens on, once it is up (for embedding: demo, tests).
#[derive(Clone, Debug)]
pub struct ServeInfo {
    /// Bound listeners.
    pub listeners: Vec<(Transport, SocketAddr)>,
}

/// Why `serve` stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ServeExit {
    /// SIGTERM/SIGINT or the stop flag.
    Stopped,
    /// SIGHUP or management `signal SIGHUP`: re-read the configuration and start again.
    Restart,
}

/// A client check's outcome, back to the core.
type Decided = (u32, Result<Decision, (String, String)>);

enum Cmd {
    Kill(KillTarget, Option<String>),
    Signal(String),
}

struct ClientMeta {
    client_id: u64,
    name: String,
    since: SystemTime,
    lease: Option<Lease>,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    req: Option<Arc<AuthRequest>>,
}

#[derive(Default)]
struct Snapshot {
    clients: Vec<ClientSnapshot>,
    routes: Vec<RouteSnapshot>,
}

struct Control {
    snap: Mutex<Snapshot>,
    cmd: mpsc::UnboundedSender<Cmd>,
    started: SystemTime,
}

impl ServerControl for Control {
    fn clients(&self) -> Vec<ClientSnapshot> {
        self.snap
            .lock()
            .map(|s| s.clients.clone())
            .unwrap_or_default()
    }
    fn routes(&self) -> Vec<RouteSnapshot> {
        self.snap
            .lock()
            .map(|s| s.routes.clone())
            .unwrap_or_default()
    }
    fn kill(&self, target: KillTarget, message: Option<String>) -> usize {
        let n = self
            .clients()
            .iter()
            .filter(|c| match &target {
                KillTarget::ClientId(id) => c.client_id == *id,
                KillTarget::CommonName(cn) => &c.common_name == cn,
                KillTarget::Addr(a) => c.real_addr == *a,
            })
            .count();
        if n > 0 {
            let _ = self.cmd.send(Cmd::Kill(target, message));
        }
        n
    }
    fn signal(&self, name: &str) -> bool {
        let ok = matches!(
            name,
            "SIGHUP" | "SIGUSR1" | "SIGUSR2" | "SIGTERM" | "SIGINT"
        );
        if ok {
            let _ = self.cmd.send(Cmd::Signal(name.to_string()));
        }
        ok
    }
    fn started(&self) -> SystemTime {
        self.started
    }
}

fn server_wrap(p: &ServerProfile) -> ServerWrap {
    if let Some(v2) = &p.tls_crypt_v2 {
        return ServerWrap::CryptV2 {
            server_key: Arc::new(TlsCryptV2ServerKey::from_bytes(v2.key.as_bytes())),
        };
    }
    match &p.tls_wrap {
        Some(TlsWrap::Auth { key, direction }) => ServerWrap::Auth {
            key: key.clone(),
            direction: *direction,
        },
        Some(TlsWrap::Crypt { key }) => ServerWrap::Crypt { key: key.clone() },
        Some(TlsWrap::CryptV2 { .. }) | None => ServerWrap::None,
    }
}

fn tls_config(p: &ServerProfile) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut tls = p.tls.clone();
    if let Some(path) = &p.crl_path {
        tls.crl =
            Some(std::fs::read(path).map_err(|e| format!("crl-verify {}: {e}", path.display()))?);
    }
    server_config(&ServerTlsSettings {
        tls,
        client_cert_optional: p.verify_client_cert != VerifyClientCert::Require,
    })
    .map_err(|e| format!("{}: TLS settings: {e}", p.source.display()))
}

fn core_config(p: &ServerProfile) -> Result<ServerConfig, String> {
    let mut c = ServerConfig::new(tls_config(p)?, server_wrap(p), rng::system_rng());
    c.auth = p.auth;
    c.ciphers = p.data_ciphers.clone();
    c.fallback_cipher = p.data_ciphers_fallback;
    c.tls_timeout = p.tls_timeout;
    c.hand_window = p.hand_window;
    c.reneg_sec = (!p.reneg_sec.is_zero()).then_some(p.reneg_sec);
    c.ping = p.ping;
    c.ping_restart = p.ping_restart;
    c.replay_window = p.replay_window.size;
    c.client_to_client = p.client_to_client;
    c.max_clients = p.max_clients as usize;
    c.connect_freq_initial = (p.connect_freq_initial.count, p.connect_freq_initial.per);
    c.unix_time_at_start = clock::unix_seconds();
    c.compression = p.compression;
    c.decompress = p.allow_compression != crate::config::AllowCompression::No;
    c.tun_mtu = p.tun_mtu;
    Ok(c)
}

/// Runs the server until a stop signal (or `stop` turns true); returns whether to restart.
pub async fn run(
    opts: &ServeOptions,
    log: LogRing,
    mut stop: watch::Receiver<bool>,
    ready: Option<tokio::sync::oneshot::Sender<ServeInfo>>,
) -> Result<ServeExit, String> {
    let profile = Arc::new(load_server_profile(&opts.config).map_err(|e| e.to_string())?);
    for w in &profile.warnings {
        warn!("{w}");
    }
    let cfg = core_config(&profile)?;
    let crl_mtime = |p: &ServerProfile| {
        p.crl_path
            .as_ref()
            .and_then(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
    };
    let mut crl_seen = crl_mtime(&profile);

    let (dev_tx, mut dev_rx) = mpsc::channel::<Vec<u8>>(4096);
    let device = if opts.userspace {
        let mut allow = Vec::new();
        for r in opts.allow.iter().chain(profile.userspace_allow.iter()) {
            allow.push(
                r.parse()
                    .map_err(|e| format!("--allow / userspace-allow '{r}': {e}"))?,
            );
        }
        info!("userspace mode: no device; clients' connections leave through this host's sockets");
        ServerDevice::open_exit(&profile, allow, opts.local_services.clone(), dev_tx)
    } else {
        drop(dev_tx);
        ServerDevice::open_tun(&profile).await?
    };
    let mut tun_reader = device.tun_reader();

    // A UDP message carries a whole `recvmmsg` batch (up to 32 datagrams or GRO runs): a short
    // queue bounds memory and latency when the core falls behind.
    let (net_tx, mut net_rx) = mpsc::channel::<NetIn>(256);
    let (udp, bound) = listen::start(&profile.listeners, net_tx).await?;
    let started = clock::wall();
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    let control = Arc::new(Control {
        snap: Mutex::new(Snapshot::default()),
        cmd: cmd_tx,
        started,
    });
    let (stop_aux_tx, stop_aux) = watch::channel(false);
    if let Some(m) = &profile.management {
        let listen = match &m.listen {
            crate::config::ManagementListen::Unix(path) => ManagementListen::Unix(path.clone()),
            crate::config::ManagementListen::Tcp { host, port } => {
                let ip: std::net::IpAddr = if host == "localhost" {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    host.parse()
                        .map_err(|_| format!("management address '{host}' is not an IP address"))?
                };
                ManagementListen::Tcp(SocketAddr::new(ip, *port))
            }
        };
        let password = match &m.password_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("management password file {}: {e}", f.display()))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            None => None,
        };
        let mut mc = ManagementConfig::new(listen, password);
        mc.verb = u32::from(profile.verb);
        mc.state.tun_ip = profile.tunnel_v4.map(|t| t.local);
        mc.state.tun_ipv6 = profile.tunnel_v6.map(|t| t.local);
        mc.state.local = bound.first().map(|b| b.1);
        let ctl: Arc<dyn ServerControl> = control.clone();
        let log = log.clone();
        let stop = stop_aux.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_management(mc, ctl, log, stop).await {
                warn!("management interface: {e}");
            }
        });
    }
    if let Some(s) = &profile.status {
        let cfg = StatusFile {
            path: s.path.clone(),
            interval: s.interval,
            version: StatusVersion::from_number(u32::from(profile.status_version))
                .unwrap_or_default(),
        };
        let ctl: Arc<dyn ServerControl> = control.clone();
        tokio::spawn(run_status_file(cfg, ctl, stop_aux.clone()));
    }

    let mut pool = Pool::new(profile.tunnel_v4, profile.tunnel_v6);
    if let Some(pp) = &profile.ifconfig_pool_persist
        && let Ok(text) = std::fs::read_to_string(&pp.path)
    {
        pool.load_persist(&text);
    }
    let persist_names = profile.ifconfig_pool_persist.is_some();
    let scripts = ScriptRunner::new(profile.script_security, Duration::from_secs(30));
    let tokens = profile
        .auth_gen_token
        .map(|_| match &profile.auth_gen_token_secret {
            Some(k) => crate::proto::server::auth_token::TokenKey::new(k.hmac()),
            None => {
                let mut secret = zeroize::Zeroizing::new([0u8; 32]);
                (rng::system_rng())(&mut secret[..]);
                crate::proto::server::auth_token::TokenKey::new(&secret[..])
            }
        });
    let ctx = Arc::new(SetupContext {
        tokens,
        profile: profile.clone(),
        scripts: scripts.clone(),
        info: ServerScriptInfo {
            config: opts.config.display().to_string(),
            verb: u32::from(profile.verb),
            dev: match &device {
                ServerDevice::Tun { tun, .. } => {
                    use ferrovpn_platform::Tun as _;
                    tun.name().to_string()
                }
                ServerDevice::Exit { .. } => "userspace".into(),
            },
            dev_type: "tun".into(),
            ifconfig_local: profile.tunnel_v4.map(|t| t.local),
            ifconfig_netmask: profile
                .tunnel_v4
                .filter(|t| t.topology == Topology::Subnet)
                .map(|t| t.netmask()),
            ifconfig_ipv6_local: profile.tunnel_v6.map(|t| (t.local, t.prefix_len)),
            proto: CtlTransport::Udp,
            local: profile.listeners.first().and_then(|l| l.addr),
            port: profile.listeners.first().map_or(1194, |l| l.port),
            tun_mtu: profile.tun_mtu,
            start_time: started,
        },
    });
    let (setup_tx, mut setup_rx) = mpsc::channel::<Decided>(256);

    let mut core = Core {
        server: Server::new(cfg, clock::now()),
        profile: profile.clone(),
        udp,
        udp_of: HashMap::new(),
        udp_tx: TxQueue::new(),
        udp_tx_to: None,
        tcp: HashMap::new(),
        device,
        pool,
        persist_names,
        meta: HashMap::new(),
        next_client_id: 1,
        ctx,
        setup_tx,
        out: Vec::with_capacity(2048),
        pkt: Vec::with_capacity(2048),
        snapshot_dirty: false,
    };

    if profile.user.is_some() || profile.group.is_some() {
        drop_privileges(&profile, !opts.userspace)?;
    }
    info!("Initialization Sequence Completed");
    if let Some(r) = ready {
        let _ = r.send(ServeInfo {
            listeners: bound.clone(),
        });
    }
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(|e| e.to_string())?;
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drop_log = super::drop_log::DropLog::new();
    let exit;
    loop {
        let timeout = core.server.poll_timeout();
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(m) = net_rx.recv() => {
                core.net_in(m).await;
                for _ in 0..64 {
                    match net_rx.try_recv() {
                        Ok(m) => core.net_in(m).await,
                        Err(_) => break,
                    }
                }
            }
            r = async {
                match &mut tun_reader {
                    Some((tun, batch)) => tun.recv_batch(batch).await,
                    None => std::future::pending().await,
                }
            } => {
                match r {
                    Ok(n) => {
                        if let Some((_, batch)) = &mut tun_reader {
                            for i in 0..n {
                                core.device_packet(batch.packet_mut(i)).await;
                            }
                        }
                    }
                    Err(e) => {
                        warn!("reading the TUN device: {e}");
                        tun_reader = None;
                    }
                }
            }
            Some(p) = dev_rx.recv() => {
                core.device_packet(&p).await;
                for _ in 0..64 {
                    match dev_rx.try_recv() {
                        Ok(p) => core.device_packet(&p).await,
                        Err(_) => break,
                    }
                }
            }
            Some((peer_id, r)) = setup_rx.recv() => core.decided(peer_id, r),
            Some(c) = cmd_rx.recv() => match c {
                Cmd::Kill(t, msg) => core.kill(t, msg),
                Cmd::Signal(s) if s == "SIGHUP" || s == "SIGUSR1" => { exit = ServeExit::Restart; break; }
                Cmd::Signal(s) if s == "SIGUSR2" => info!("\n{}", core.status_text()),
                Cmd::Signal(_) => { exit = ServeExit::Stopped; break; }
            },
            () = sleep => core.server.handle_timeout(clock::now()),
            _ = hup.recv() => { info!("SIGHUP: re-reading the configuration"); exit = ServeExit::Restart; break; }
            _ = usr1.recv() => { info!("SIGUSR1: restarting"); exit = ServeExit::Restart; break; }
            _ = usr2.recv() => info!("status:\n{}", core.status_text()),
            _ = stop.changed() => { exit = ServeExit::Stopped; break; }
            _ = tick.tick() => {
                core.publish(&control);
                if let Some(w) = drop_log.update(clock::now(), core.server.stats()) {
                    warn!("{w}");
                }
                let m = crl_mtime(&profile);
                if m != crl_seen {
                    crl_seen = m;
                    match tls_config(&profile) {
                        Ok(t) => { info!("crl-verify file changed: reloaded"); core.server.set_tls(t); }
                        Err(e) => warn!("crl-verify file changed but cannot be used: {e}"),
                    }
                }
            }
        }
        core.flush().await;
        if core.snapshot_dirty {
            core.snapshot_dirty = false;
            core.publish(&control);
        }
    }
    // Tell clients to come back (as explicit-exit-notify on a server), then go.
    core.server.shutdown(clock::now());
    core.flush().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    core.flush().await;
    core.save_pool();
    let _ = stop_aux_tx.send(true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    core.device.teardown().await;
    Ok(exit)
}

/// `user`/`group`: after the device and sockets are set up, the process stops running as root;
/// `CAP_NET_ADMIN` is kept so the routes and addresses can be removed at exit.
fn drop_privileges(p: &ServerProfile, keep_net_admin: bool) -> Result<(), String> {
    use ferrovpn_platform::sys::privileges;
    let (uid, gid) =
        privileges::drop_privileges(p.user.as_deref(), p.group.as_deref(), keep_net_admin)
            .map_err(|e| format!("user/group: cannot drop privileges: {e}"))?;
    if !privileges::all_threads_run_as(uid) {
        return Err(
            "user/group: some threads still run with the old user id; refusing to go on".into(),
        );
    }
    info!(
        "running as user {} (uid {uid}, gid {gid}){}",
        privileges::user_name(uid).unwrap_or_default(),
        if keep_net_admin {
            ", keeping CAP_NET_ADMIN for the clean-up at exit"
        } else {
            ""
        }
    );
    Ok(())
}

/// Sends `q` to `to` through listener `l` in GSO runs (one packet per send without GSO).
async fn send_runs(l: &UdpListener, to: SocketAddr, q: &TxQueue) -> std::io::Result<()> {
    for (contents, seg) in q.runs(l.state.max_gso_segments()) {
        let t = quinn_udp::Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: (contents.len() > seg).then_some(seg),
            src_ip: None,
        };
        loop {
            l.sock.writable().await?;
            match l.sock.try_io(tokio::io::Interest::WRITABLE, || {
                l.state.try_send((&*l.sock).into(), &t)
            }) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if t.segment_size.is_some() => {
                    // GSO refused (quinn-udp turns it off for later sends): one by one.
                    debug!("udp GSO send to {to}: {e}; sending one by one");
                    for p in contents.chunks(seg) {
                        let _ = l.sock.send_to(p, to).await;
                    }
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Where to send a datagram for `client` from a socket bound to `local`: dual-stack (IPv6)
/// sockets reach IPv4 clients through IPv4-mapped addresses.
fn udp_destination(client: SocketAddr, local: Option<SocketAddr>) -> SocketAddr {
    match (client, local) {
        (SocketAddr::V4(a), Some(SocketAddr::V6(_))) => {
            SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port())
        }
        (a, _) => a,
    }
}

struct Core {
    server: Server,
    profile: Arc<ServerProfile>,
    udp: Vec<UdpListener>,
    udp_of: HashMap<SocketAddr, usize>,
    /// UDP packets waiting for [`Core::flush_udp`], all for one destination: `(socket, to)`.
    udp_tx: TxQueue,
    udp_tx_to: Option<(usize, SocketAddr)>,
    tcp: HashMap<u64, mpsc::Sender<Vec<u8>>>,
    device: ServerDevice,
    pool: Pool,
    persist_names: bool,
    meta: HashMap<u32, ClientMeta>,
    next_client_id: u64,
    ctx: Arc<SetupContext>,
    setup_tx: mpsc::Sender<Decided>,
    out: Vec<u8>,
    pkt: Vec<u8>,
    /// The client table changed since the management/status snapshot was taken.
    snapshot_dirty: bool,
}

impl Core {
    async fn net_in(&mut self, m: NetIn) {
        let now = clock::now();
        let (link, data) = match m {
            NetIn::Udp(batch) => {
                let mut pkt = std::mem::take(&mut self.pkt);
                let mut last = None;
                for (from, d) in batch.datagrams() {
                    if last != Some(from) {
                        self.udp_of.insert(from, batch.sock);
                        last = Some(from);
                    }
                    self.received(now, Link::udp(from), d, &mut pkt).await;
                }
                self.pkt = pkt;
                self.events();
                return;
            }
            NetIn::TcpOpen { conn, addr, tx } => {
                debug!("tcp connection {conn} from {addr}");
                self.tcp.insert(conn, tx);
                return;
            }
            NetIn::Tcp { conn, addr, data } => (Link::tcp(addr, conn), data),
            NetIn::TcpClosed { conn, addr } => {
                self.tcp.remove(&conn);
                self.server.link_closed(now, Link::tcp(addr, conn));
                self.events();
                return;
            }
        };
        let mut pkt = std::mem::take(&mut self.pkt);
        self.received(now, link, &data, &mut pkt).await;
        self.pkt = pkt;
        self.events();
    }

    async fn received(
        &mut self,
        now: std::time::Instant,
        link: Link,
        data: &[u8],
        pkt: &mut Vec<u8>,
    ) {
        match self.server.handle_datagram(now, link, data, pkt) {
            Received::Nothing => {}
            Received::ToDevice => self.device.send(pkt).await,
            Received::ToPeer(to) => self.send(to, pkt).await,
        }
    }

    async fn device_packet(&mut self, p: &[u8]) {
        let mut out = std::mem::take(&mut self.out);
        if let Some(link) = self.server.handle_packet(clock::now(), p, &mut out) {
            self.send(link, &out).await;
        }
        self.out = out;
    }

    async fn send(&mut self, link: Link, data: &[u8]) {
        match link.tcp {
            Some(conn) => {
                if let Some(tx) = self.tcp.get(&conn) {
                    let _ = tx.send(data.to_vec()).await;
                }
            }
            None => {
                let idx = self.udp_of.get(&link.addr).copied().unwrap_or(0);
                let Some(l) = self.udp.get(idx) else {
                    return;
                };
                let to = udp_destination(link.addr, Some(l.local));
                if self.udp_tx_to != Some((idx, to)) || self.udp_tx.len() >= 64 {
                    self.flush_udp().await;
                    self.udp_tx_to = Some((idx, to));
                }
                self.udp_tx.push(data);
            }
        }
    }

    /// Sends the queued UDP packets: GSO runs of equal-size packets, one system call each.
    async fn flush_udp(&mut self) {
        let Some((idx, to)) = self.udp_tx_to.take() else {
            return;
        };
        if let Some(l) = self.udp.get(idx)
            && let Err(e) = send_runs(l, to, &self.udp_tx).await
        {
            debug!("udp send to {to}: {e}");
        }
        self.udp_tx.clear();
    }

    async fn flush(&mut self) {
        let now = clock::now();
        let mut out = std::mem::take(&mut self.out);
        while let Some(link) = self.server.poll_transmit(now, &mut out) {
            self.send(link, &out).await;
        }
        self.out = out;
        self.flush_udp().await;
        self.device.flush().await;
        self.events();
    }

    fn events(&mut self) {
        while let Some(e) = self.server.poll_event() {
            match e {
                ServerEvent::Authenticate(req) => {
                    let req: Arc<AuthRequest> = Arc::from(req);
                    let name = setup::client_name(&self.profile, &req);
                    info!(
                        "{} [{name}] key exchange done ({}, {})",
                        req.link,
                        req.cipher.name(),
                        req.iv("IV_VER")
                            .map_or_else(|| "unknown version".into(), |v| format!("client {v}"))
                    );
                    self.meta.insert(
                        req.peer_id,
                        ClientMeta {
                            client_id: 0,
                            name,
                            since: clock::wall(),
                            lease: None,
                            v4: None,
                            v6: None,
                            req: Some(req.clone()),
                        },
                    );
                    let ctx = self.ctx.clone();
                    let tx = self.setup_tx.clone();
                    tokio::spawn(async move {
                        let id = req.peer_id;
                        let r = setup::decide(ctx, req).await;
                        let _ = tx.send((id, r)).await;
                    });
                }
                ServerEvent::Connected { peer_id } => {
                    self.snapshot_dirty = true;
                    if let Some(m) = self.meta.get(&peer_id) {
                        info!(
                            "[{}] connected{}{}",
                            m.name,
                            m.v4.map(|a| format!(", address {a}")).unwrap_or_default(),
                            m.v6.map(|a| format!(", {a}")).unwrap_or_default()
                        );
                    }
                }
                ServerEvent::Renegotiated { peer_id, key_id } => {
                    debug!("peer {peer_id}: new data keys (key id {key_id})");
                }
                ServerEvent::Floated { peer_id, from, to } => {
                    info!("peer {peer_id} moved from {from} to {to}");
                }
                ServerEvent::Info { peer_id, text } => info!("peer {peer_id}: {text}"),
                ServerEvent::Closed {
                    peer_id,
                    link,
                    common_name,
                    reason,
                    was_connected,
                } => {
                    self.snapshot_dirty = true;
                    let meta = self.meta.remove(&peer_id);
                    let name = meta
                        .as_ref()
                        .map(|m| m.name.clone())
                        .or(common_name)
                        .unwrap_or_else(|| "?".into());
                    if was_connected {
                        info!("{link} [{name}] disconnected: {reason}");
                    } else {
                        warn!("{link} [{name}] not connected: {reason}");
                    }
                    if let Some(m) = meta {
                        if let Some(l) = m.lease {
                            self.pool.release(l.slot);
                        }
                        if was_connected {
                            self.client_gone(&m);
                        }
                    }
                }
            }
        }
    }

    fn client_gone(&self, m: &ClientMeta) {
        let Some(req) = m.req.clone() else { return };
        let p = &self.profile;
        if p.client_disconnect.is_none() && p.learn_address.is_none() {
            return;
        }
        let ctx = self.ctx.clone();
        let name = m.name.clone();
        let addrs: Vec<String> =
            m.v4.map(|a| a.to_string())
                .into_iter()
                .chain(m.v6.map(|a| a.to_string()))
                .collect();
        let lease = m.lease;
        tokio::spawn(async move {
            let env = setup::client_env(&ctx, &req, &name, lease.as_ref());
            if let Some(cmd) = &ctx.profile.client_disconnect
                && let Ok(cmd) = ScriptCmd::parse(cmd)
                && let Err(e) = ctx.scripts.client_disconnect(&cmd, &env).await
            {
                warn!("client-disconnect: {e}");
            }
            if let Some(cmd) = &ctx.profile.learn_address
                && let Ok(cmd) = ScriptCmd::parse(cmd)
            {
                for a in addrs {
                    if let Err(e) = ctx
                        .scripts
                        .learn_address(&cmd, "delete", &a, None, &env)
                        .await
                    {
                        warn!("learn-address: {e}");
                    }
                }
            }
        });
    }

    fn decided(&mut self, peer_id: u32, r: Result<Decision, (String, String)>) {
        let now = clock::now();
        let Some(meta) = self.meta.get(&peer_id) else {
            return;
        };
        let name = meta.name.clone();
        let decision = match r {
            Ok(d) => d,
            Err((reason, log)) => {
                warn!("[{name}] refused: {log}");
                self.server.refuse(now, peer_id, &reason);
                return;
            }
        };
        // duplicate-cn off: the new connection replaces an older one with the same name.
        if !self.profile.duplicate_cn {
            let old: Vec<u32> = self
                .meta
                .iter()
                .filter(|(id, m)| {
                    **id != peer_id && m.name == decision.common_name && m.client_id != 0
                })
                .map(|(id, _)| *id)
                .collect();
            for id in old {
                info!(
                    "[{}] connected again: the older session goes (no duplicate-cn)",
                    decision.common_name
                );
                self.server.kill(now, id, "RESTART");
            }
        }
        let lease = if decision.ccd.ifconfig_push.is_none()
            || self.profile.tunnel_v6.is_some() && decision.ccd.ifconfig_ipv6_push.is_none()
        {
            match self
                .pool
                .allocate(&decision.common_name, self.persist_names)
            {
                Some(l) => Some(l),
                None if decision.ccd.ifconfig_push.is_none()
                    && self.profile.tunnel_v4.and_then(|t| t.pool).is_some() =>
                {
                    warn!("[{name}] refused: the address pool is exhausted");
                    self.server.refuse(now, peer_id, "no free address");
                    return;
                }
                None => None,
            }
        } else {
            None
        };
        let (v4, v6) = setup::addresses(&decision.ccd, lease.as_ref());
        let ps = setup::peer_setup(&self.profile, &decision, v4, v6);
        let client_id = self.next_client_id;
        self.next_client_id += 1;
        if let Some(m) = self.meta.get_mut(&peer_id) {
            m.client_id = client_id;
            m.name = decision.common_name.clone();
            m.lease = lease;
            m.v4 = ps.v4;
            m.v6 = ps.v6;
            m.since = clock::wall();
        }
        if let Some(cmd) = self.profile.learn_address.clone()
            && let Some(req) = self.meta.get(&peer_id).and_then(|m| m.req.clone())
        {
            let ctx = self.ctx.clone();
            let name = decision.common_name.clone();
            let addrs: Vec<String> = ps
                .v4
                .map(|a| a.to_string())
                .into_iter()
                .chain(ps.v6.map(|a| a.to_string()))
                .chain(ps.iroutes.iter().map(|n| n.to_string()))
                .collect();
            tokio::spawn(async move {
                let env = setup::client_env(&ctx, &req, &name, lease.as_ref());
                if let Ok(cmd) = ScriptCmd::parse(&cmd) {
                    for a in addrs {
                        if let Err(e) = ctx
                            .scripts
                            .learn_address(&cmd, "add", &a, Some(&name), &env)
                            .await
                        {
                            warn!("learn-address: {e}");
                        }
                    }
                }
            });
        }
        self.server.accept(now, peer_id, ps);
    }

    fn kill(&mut self, t: KillTarget, msg: Option<String>) {
        let now = clock::now();
        let ids: Vec<u32> = self
            .meta
            .iter()
            .filter(|(id, m)| {
                m.client_id != 0
                    && match &t {
                        KillTarget::ClientId(c) => m.client_id == *c,
                        KillTarget::CommonName(cn) => &m.name == cn,
                        KillTarget::Addr(a) => self
                            .server
                            .peer_status(**id)
                            .is_some_and(|s| s.link.addr == *a),
                    }
            })
            .map(|(id, _)| *id)
            .collect();
        let text = msg.unwrap_or_else(|| "RESTART".into());
        for id in ids {
            info!("management: killing peer {id}");
            self.server.kill(now, id, &text);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut clients = Vec::new();
        for (id, m) in &self.meta {
            if m.client_id == 0 {
                continue;
            }
            let Some(s) = self.server.peer_status(*id) else {
                continue;
            };
            if s.connected_at.is_none() {
                continue;
            }
            clients.push(ClientSnapshot {
                client_id: m.client_id,
                peer_id: *id,
                common_name: m.name.clone(),
                username: s.username.clone(),
                real_addr: s.link.addr,
                proto: if s.link.is_tcp() {
                    CtlTransport::Tcp
                } else {
                    CtlTransport::Udp
                },
                virtual_v4: s.v4,
                virtual_v6: s.v6,
                bytes_received: s.bytes_in,
                bytes_sent: s.bytes_out,
                connected_since: m.since,
                cipher: s.cipher.map_or_else(String::new, |c| c.name().to_string()),
            });
        }
        clients.sort_by_key(|c| c.client_id);
        let routes = self
            .server
            .routes()
            .into_iter()
            .filter_map(|(addr, id)| {
                let m = self.meta.get(&id)?;
                let s = self.server.peer_status(id)?;
                Some(RouteSnapshot {
                    virtual_addr: addr,
                    common_name: m.name.clone(),
                    real_addr: s.link.addr,
                    last_ref: clock::wall(),
                })
            })
            .collect();
        Snapshot { clients, routes }
    }

    fn publish(&self, control: &Control) {
        let s = self.snapshot();
        if let Ok(mut g) = control.snap.lock() {
            *g = s;
        }
    }

    fn status_text(&self) -> String {
        let s = self.snapshot();
        render_status(StatusVersion::V1, &s.clients, &s.routes, clock::wall())
    }

    fn save_pool(&self) {
        if let Some(pp) = &self.profile.ifconfig_pool_persist
            && !pp.interval.is_zero()
            && let Err(e) = std::fs::write(&pp.path, self.pool.persist_text())
        {
            warn!("ifconfig-pool-persist {}: {e}", pp.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_clients_of_a_dual_stack_socket_get_mapped_addresses() {
        let v4: SocketAddr = "198.18.0.2:5000".parse().unwrap();
        let any6: SocketAddr = "[::]:1194".parse().unwrap();
        let any4: SocketAddr = "0.0.0.0:1194".parse().unwrap();
        assert_eq!(
            udp_destination(v4, Some(any6)),
            "[::ffff:198.18.0.2]:5000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(udp_destination(v4, Some(any4)), v4);
        let v6: SocketAddr = "[2001:db8::2]:5000".parse().unwrap();
        assert_eq!(udp_destination(v6, Some(any6)), v6);
    }
}
