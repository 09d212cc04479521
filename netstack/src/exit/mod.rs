//! The server's userspace exit: VPN clients' IP packets in, real host sockets out.
//!
//! The server hands every decrypted packet from a client to [`PacketPipe::inbound`] and
//! routes what comes out of [`PacketPipe::outbound`] to the client that owns the destination
//! address. No TUN device and no privileges are involved: client TCP connections end in
//! smoltcp and are relayed over `tokio::net::TcpStream`s; UDP datagrams go out through one
//! connected `tokio::net::UdpSocket` per (client, destination) flow.
//!
//! # TCP
//! A SYN to a destination the [policy](AllowRule) allows starts the host connection first;
//! only when it succeeds does a smoltcp listening socket for exactly that destination take the
//! SYN and answer it. So a refused or unreachable destination answers the client with a RST
//! (its connect fails with "connection refused"), as does a denied one, at once. A pending
//! host connection swallows the client's SYN retransmissions. Bytes are then relayed in both
//! directions by one task per connection, straight between the kernel socket and the smoltcp
//! buffers (full buffers stop reading the other side: back-pressure, no unbounded queue);
//! FIN is passed on as a half-close, RST as a RST (zero linger towards the host).
//!
//! # UDP
//! Handled without smoltcp: the datagram's payload is sent on the flow's host socket, replies
//! come back as IP/UDP packets from the destination to the client. Flows idle for
//! [`ExitLimits::udp_idle_timeout`] close. Replies larger than the MTU are dropped.
//!
//! # Addresses of the server itself
//! TCP to one of [`ExitConfig::addresses`] reaches [`ExitConfig::local_services`] (whatever the
//! allow rules say) or is refused; ICMP echo to them is answered; other ICMP is dropped.
//!
//! # The task
//! One tokio task owns the smoltcp `Interface` behind a mutex shared with the flow tasks; each
//! turn it feeds the received packets one at a time (so a SYN is taken by the socket made for
//! it), polls egress within the room left in `outbound`, and sleeps until a packet, a flow
//! task's nudge, a smoltcp deadline or room in `outbound`.

mod packet;
mod policy;
mod tcp_flow;
mod udp_flow;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use ipnet::IpNet;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::device::MemDevice;
use crate::stack::{PacketPipe, close_when_drained, random_seed, send_pending};
use packet::Class;
use policy::Policy;
pub use policy::{AllowRule, ParseAllowRuleError};

/// Inbound packets handled per turn of the loop.
const RX_BATCH: usize = 256;
/// Replies made while receiving that may wait for room in `outbound` (see `stack.rs`).
const PENDING_CAP: usize = 4 * RX_BATCH;
const MIN_TCP_BUF: usize = 16 * 1024;
const MAX_TCP_BUF: usize = 1 << 30;
const ACK_DELAY: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(5);
/// A finished connection gets this long to complete its close handshake before a RST.
const ORPHAN_LINGER: Duration = Duration::from_secs(30);

/// What the exit serves and how much it may hold.
#[derive(Clone, Debug)]
pub struct ExitConfig {
    /// The server's own tunnel addresses with prefix (e.g. 198.18.100.1/24,
    /// 2001:db8:100::1/64). Clients' addresses are inside these prefixes (others are reached
    /// through a default route via the first address of their family). smoltcp keeps two
    /// interface addresses: list one per family.
    pub addresses: Vec<IpNet>,
    /// Largest IP packet the exit emits (the tunnel's `tun-mtu`).
    pub mtu: usize,
    /// Destinations clients may reach. Empty: everything but loopback (and unspecified,
    /// multicast, broadcast addresses). Otherwise only what a rule matches; loopback only when a
    /// rule names it.
    pub allow: Vec<AllowRule>,
    /// TCP ports on the server's own tunnel addresses mapped to host socket addresses (e.g. a
    /// status page on 127.0.0.1). Reached whatever `allow` says.
    pub local_services: Vec<(u16, SocketAddr)>,
    pub limits: ExitLimits,
}

impl Default for ExitConfig {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            mtu: 1500,
            allow: Vec::new(),
            local_services: Vec::new(),
            limits: ExitLimits::default(),
        }
    }
}

/// Bounds on what the exit holds. TCP buffers are rounded up to a power of two and halved
/// (down to 16 KiB) for new connections while the total budget is short.
#[derive(Clone, Debug)]
pub struct ExitLimits {
    /// TCP connections at most (pending host connects included); beyond, SYNs get a RST.
    pub max_tcp_flows: usize,
    /// UDP flows at most; beyond, datagrams of new flows are dropped.
    pub max_udp_flows: usize,
    /// Per connection: client-to-host buffer (the window advertised to the client).
    pub tcp_rx_buf: usize,
    /// Per connection: host-to-client buffer.
    pub tcp_tx_buf: usize,
    /// All TCP buffers together.
    pub max_total_buffer_bytes: usize,
    /// A UDP flow with no datagram either way for this long is closed.
    pub udp_idle_timeout: Duration,
    /// How long a host TCP connect (and then the client's handshake) may take.
    pub tcp_connect_timeout: Duration,
    /// A client that stops acknowledging is dropped (host side reset) after this long;
    /// keep-alives go out at a third of it. `None`: never.
    pub client_timeout: Option<Duration>,
    /// Capacity, in packets, of the `inbound` and `outbound` channels.
    pub packet_queue: usize,
}

impl Default for ExitLimits {
    fn default() -> Self {
        Self {
            max_tcp_flows: 4096,
            max_udp_flows: 4096,
            tcp_rx_buf: 256 * 1024,
            tcp_tx_buf: 256 * 1024,
            max_total_buffer_bytes: 1 << 30,
            udp_idle_timeout: Duration::from_secs(60),
            tcp_connect_timeout: Duration::from_secs(10),
            client_timeout: Some(Duration::from_secs(180)),
            packet_queue: 1024,
        }
    }
}

/// Counters, for `status` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    /// TCP connections whose host side connected and whose SYN was answered.
    pub tcp_flows_opened: u64,
    /// TCP connections held now (host connects in progress included).
    pub tcp_flows_active: usize,
    pub udp_flows_active: usize,
    /// SYNs and datagrams to destinations the policy does not allow.
    pub denied: u64,
    /// Host connects that failed (refused, unreachable, timed out) and UDP sockets that could
    /// not be opened.
    pub connect_failed: u64,
    /// SYNs refused and datagrams dropped because `max_tcp_flows`/`max_udp_flows` was reached
    /// or the buffer budget was spent.
    pub limit_refused: u64,
    /// Payload bytes written to host sockets.
    pub bytes_to_host: u64,
    /// Payload bytes read from host sockets.
    pub bytes_from_host: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Inbound packets not carried (malformed, fragments, ICMP not for the server, UDP that
    /// met a full host socket) and replies dropped (UDP larger than the MTU, control replies
    /// while `outbound` stayed full).
    pub packets_dropped: u64,
}

#[derive(Default)]
struct Counters {
    tcp_flows_opened: AtomicU64,
    udp_flows_active: AtomicUsize,
    denied: AtomicU64,
    connect_failed: AtomicU64,
    limit_refused: AtomicU64,
    bytes_to_host: AtomicU64,
    bytes_from_host: AtomicU64,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    packets_dropped: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Handle to the exit task. Dropping it does not stop the exit; [`shutdown`](Self::shutdown)
/// or dropping the [`PacketPipe`] ends do.
#[derive(Clone)]
pub struct ExitHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ExitHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExitHandle").finish_non_exhaustive()
    }
}

impl ExitHandle {
    pub fn stats(&self) -> ExitStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let tcp_flows_active = self.shared.lock().tcp.len();
        ExitStats {
            tcp_flows_opened: get(&c.tcp_flows_opened),
            tcp_flows_active,
            udp_flows_active: c.udp_flows_active.load(Ordering::Relaxed),
            denied: get(&c.denied),
            connect_failed: get(&c.connect_failed),
            limit_refused: get(&c.limit_refused),
            bytes_to_host: get(&c.bytes_to_host),
            bytes_from_host: get(&c.bytes_from_host),
            packets_in: get(&c.packets_in),
            packets_out: get(&c.packets_out),
            packets_dropped: get(&c.packets_dropped),
        }
    }

    /// Stops the exit: client connections are reset (host sides too), UDP flows close, the
    /// pipe's `outbound` ends.
    pub fn shutdown(&self) {
        self.shared.stop.send_replace(true);
    }
}

/// Spawns the exit task on the current tokio runtime.
///
/// # Panics
/// Outside a tokio runtime.
pub fn spawn_exit(cfg: ExitConfig) -> (ExitHandle, PacketPipe) {
    let queue = cfg.limits.packet_queue.max(1);
    let (in_tx, in_rx) = mpsc::channel(queue);
    let (out_tx, out_rx) = mpsc::channel(queue);
    let shared = Arc::new(Shared::new(cfg, out_tx.clone()));
    tokio::spawn(run(shared.clone(), in_rx, out_tx));
    (
        ExitHandle { shared },
        PacketPipe {
            outbound: out_rx,
            inbound: in_tx,
        },
    )
}

/// What the exit task and the flow tasks share.
struct Shared {
    inner: Mutex<Inner>,
    /// Asks the exit task for a poll (a flow task moved data in or out of a socket buffer).
    wake: Notify,
    counters: Counters,
    epoch: Instant,
    /// `true` once the exit stops; every flow task watches it.
    stop: watch::Sender<bool>,
    /// UDP flows that ended and still sit in the table.
    udp_dead: AtomicUsize,
    cfg: ExitConfig,
    policy: Policy,
}

impl Shared {
    fn new(cfg: ExitConfig, outbound: mpsc::Sender<BytesMut>) -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            inner: Mutex::new(Inner::new(&cfg, outbound)),
            wake: Notify::new(),
            counters: Counters::default(),
            epoch: Instant::now(),
            stop,
            udp_dead: AtomicUsize::new(0),
            policy: Policy::new(cfg.allow.clone()),
            cfg,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> SmolInstant {
        let d = Instant::now().saturating_duration_since(self.epoch);
        SmolInstant::from_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    fn is_own(&self, ip: IpAddr) -> bool {
        self.cfg.addresses.iter().any(|n| n.addr() == ip)
    }

    /// Resolves when the exit stops.
    async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// A client's TCP connection by (client, destination) endpoints.
type FlowKey = (SocketAddr, SocketAddr);

enum TcpFlow {
    /// The host connect runs; the latest SYN waits to be answered.
    Connecting { syn: BytesMut },
    /// A smoltcp socket took the SYN; a relay task owns it.
    Open,
}

struct Orphan {
    handle: SocketHandle,
    deadline: SmolInstant,
}

struct Inner {
    iface: Interface,
    sockets: SocketSet<'static>,
    device: MemDevice,
    tcp: HashMap<FlowKey, TcpFlow>,
    udp: HashMap<FlowKey, Arc<udp_flow::UdpFlow>>,
    /// Buffer bytes of each TCP socket.
    buffers: HashMap<SocketHandle, usize>,
    buffer_bytes: usize,
    /// Sockets whose relay ended, finishing their close.
    orphans: Vec<Orphan>,
    /// For UDP flow tasks, which send their replies directly; gone once stopped.
    outbound: Option<mpsc::Sender<BytesMut>>,
    stopped: bool,
}

impl Inner {
    fn new(cfg: &ExitConfig, outbound: mpsc::Sender<BytesMut>) -> Self {
        let mut device = MemDevice::new(cfg.mtu);
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = random_seed();
        let mut iface = Interface::new(config, &mut device, SmolInstant::ZERO);
        // Accept packets to any address: every destination ends here.
        iface.set_any_ip(true);
        let (mut v4, mut v6) = (None, None);
        iface.update_ip_addrs(|addrs| {
            for net in &cfg.addresses {
                let cidr = IpCidr::new(IpAddress::from(net.addr()), net.prefix_len());
                if addrs.push(cidr).is_err() {
                    tracing::warn!("exit: interface address {net} ignored (two at most)");
                    continue;
                }
                match net.addr() {
                    IpAddr::V4(a) => _ = v4.get_or_insert(a),
                    IpAddr::V6(a) => _ = v6.get_or_insert(a),
                }
            }
        });
        // Medium::Ip has no neighbours; replies to clients outside the prefixes (iroute) need a
        // route, whose gateway only has to be ours.
        if let Some(a) = v4 {
            let _ = iface.routes_mut().add_default_ipv4_route(a);
        }
        if let Some(a) = v6 {
            let _ = iface.routes_mut().add_default_ipv6_route(a);
        }
        Self {
            iface,
            sockets: SocketSet::new(Vec::new()),
            device,
            tcp: HashMap::new(),
            udp: HashMap::new(),
            buffers: HashMap::new(),
            buffer_bytes: 0,
            orphans: Vec::new(),
            outbound: Some(outbound),
            stopped: false,
        }
    }

    /// Hands one packet to smoltcp.
    fn feed(&mut self, p: BytesMut, now: SmolInstant) {
        self.device.rx.push_back(p);
        let _ = self
            .iface
            .poll_ingress_single(now, &mut self.device, &mut self.sockets);
        // Not taken (cannot happen with an empty queue, but never leave it behind).
        self.device.rx.clear();
    }

    /// One inbound packet.
    fn ingest(&mut self, shared: &Arc<Shared>, p: BytesMut, now: SmolInstant) {
        let c = &shared.counters;
        match packet::classify(&p) {
            Class::Tcp => self.feed(p, now),
            Class::TcpSyn { src, dst } => self.tcp_syn(shared, p, src, dst, now),
            Class::Udp { src, dst, payload } => self.udp_datagram(shared, &p[payload], src, dst),
            Class::Icmp { dst } if shared.is_own(dst) => self.feed(p, now),
            Class::Icmp { .. } | Class::Drop => Counters::add(&c.packets_dropped, 1),
        }
    }

    fn tcp_syn(
        &mut self,
        shared: &Arc<Shared>,
        p: BytesMut,
        src: SocketAddr,
        dst: SocketAddr,
        now: SmolInstant,
    ) {
        let c = &shared.counters;
        match self.tcp.get_mut(&(src, dst)) {
            Some(TcpFlow::Connecting { syn }) => {
                *syn = p;
                return;
            }
            Some(TcpFlow::Open) => return self.feed(p, now),
            None => {}
        }
        let target = if shared.is_own(dst.ip()) {
            let service = shared
                .cfg
                .local_services
                .iter()
                .find(|(port, _)| *port == dst.port());
            match service {
                Some((_, target)) => *target,
                // No listener: smoltcp answers with a RST.
                None => return self.feed(p, now),
            }
        } else if shared.policy.allows(dst) {
            dst
        } else {
            tracing::debug!("exit: {src} -> {dst} denied");
            Counters::add(&c.denied, 1);
            return self.feed(p, now);
        };
        if self.tcp.len() >= shared.cfg.limits.max_tcp_flows {
            Counters::add(&c.limit_refused, 1);
            return self.feed(p, now);
        }
        self.tcp.insert((src, dst), TcpFlow::Connecting { syn: p });
        tokio::spawn(tcp_flow::run(shared.clone(), (src, dst), target));
    }

    fn udp_datagram(
        &mut self,
        shared: &Arc<Shared>,
        payload: &[u8],
        src: SocketAddr,
        dst: SocketAddr,
    ) {
        let c = &shared.counters;
        if let Some(flow) = self.udp.get(&(src, dst)) {
            if flow.alive() {
                return flow.send(shared, payload);
            }
            self.udp.remove(&(src, dst));
        }
        if shared.is_own(dst.ip()) {
            // No UDP services on the server's tunnel addresses.
            Counters::add(&c.packets_dropped, 1);
            return;
        }
        if !shared.policy.allows(dst) {
            tracing::debug!("exit: UDP {src} -> {dst} denied");
            Counters::add(&c.denied, 1);
            return;
        }
        if self.udp.len() >= shared.cfg.limits.max_udp_flows {
            self.sweep_udp(shared);
            if self.udp.len() >= shared.cfg.limits.max_udp_flows {
                Counters::add(&c.limit_refused, 1);
                return;
            }
        }
        let Some(outbound) = self.outbound.clone() else {
            return;
        };
        match udp_flow::UdpFlow::open(shared, outbound, src, dst) {
            Ok(flow) => {
                flow.send(shared, payload);
                self.udp.insert((src, dst), flow);
            }
            Err(e) => {
                tracing::debug!("exit: UDP socket for {dst}: {e}");
                Counters::add(&c.connect_failed, 1);
            }
        }
    }

    /// Drops ended UDP flows from the table.
    fn sweep_udp(&mut self, shared: &Shared) {
        if shared.udp_dead.swap(0, Ordering::Relaxed) > 0 {
            self.udp.retain(|_, f| f.alive());
        }
    }

    /// Buffer sizes for a new connection, `None` when the budget is spent.
    fn reserve_buffers(&self, l: &ExitLimits) -> Option<(usize, usize)> {
        let mut rx = l
            .tcp_rx_buf
            .clamp(MIN_TCP_BUF, MAX_TCP_BUF)
            .next_power_of_two();
        let mut tx = l
            .tcp_tx_buf
            .clamp(MIN_TCP_BUF, MAX_TCP_BUF)
            .next_power_of_two();
        let room = l.max_total_buffer_bytes.saturating_sub(self.buffer_bytes);
        while rx + tx > room && (rx > MIN_TCP_BUF || tx > MIN_TCP_BUF) {
            rx = (rx / 2).max(MIN_TCP_BUF);
            tx = (tx / 2).max(MIN_TCP_BUF);
        }
        (rx + tx <= room).then_some((rx, tx))
    }

    /// The host side of `key` connected: a socket listening on exactly the destination takes
    /// the waiting SYN. `None` (and a RST to the client) when that fails.
    fn open_tcp(
        &mut self,
        shared: &Shared,
        key: FlowKey,
        now: SmolInstant,
    ) -> Option<SocketHandle> {
        if self.stopped {
            return None;
        }
        let Some(TcpFlow::Connecting { syn }) = self.tcp.remove(&key) else {
            return None;
        };
        let limits = &shared.cfg.limits;
        let Some((rx, tx)) = self.reserve_buffers(limits) else {
            Counters::add(&shared.counters.limit_refused, 1);
            self.feed(syn, now);
            return None;
        };
        // A connection with the same endpoints that is still closing would take the SYN: it
        // goes silently (a RST from it would hit the new connection).
        let sockets = &self.sockets;
        let same: Vec<SocketHandle> = self
            .orphans
            .iter()
            .map(|o| o.handle)
            .filter(|h| {
                let s = sockets.get::<tcp::Socket>(*h);
                s.local_endpoint().map(SocketAddr::from) == Some(key.1)
                    && s.remote_endpoint().map(SocketAddr::from) == Some(key.0)
            })
            .collect();
        for h in same {
            self.orphans.retain(|o| o.handle != h);
            self.remove_socket(h);
        }
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; rx]),
            tcp::SocketBuffer::new(vec![0u8; tx]),
        );
        s.set_nagle_enabled(false);
        s.set_ack_delay(Some(ACK_DELAY));
        s.set_congestion_control(tcp::CongestionControl::Cubic);
        // The client's handshake gets the connect timeout; the relay arms the idle one.
        s.set_timeout(Some(limits.tcp_connect_timeout.into()));
        let endpoint = smoltcp::wire::IpEndpoint::from(key.1);
        if s.listen(endpoint).is_err() {
            self.feed(syn, now);
            return None;
        }
        let h = self.sockets.add(s);
        self.buffers.insert(h, rx + tx);
        self.buffer_bytes += rx + tx;
        self.feed(syn, now);
        if self.sockets.get::<tcp::Socket>(h).state() == tcp::State::SynReceived {
            self.tcp.insert(key, TcpFlow::Open);
            Some(h)
        } else {
            self.remove_socket(h);
            None
        }
    }

    /// The host connect failed: the waiting SYN meets no listener and smoltcp answers RST.
    fn refuse_tcp(&mut self, key: FlowKey, now: SmolInstant) {
        if let Some(TcpFlow::Connecting { syn }) = self.tcp.remove(&key) {
            if !self.stopped {
                self.feed(syn, now);
            }
        }
    }

    /// The relay of `key` ended; `abort` sends a RST, otherwise the close completes.
    fn finish_tcp(&mut self, key: FlowKey, h: SocketHandle, abort: bool, now: SmolInstant) {
        self.tcp.remove(&key);
        if self.stopped || !self.buffers.contains_key(&h) {
            return;
        }
        let s = self.sockets.get_mut::<tcp::Socket>(h);
        if abort {
            s.abort();
        } else {
            close_when_drained(s);
        }
        self.orphans.push(Orphan {
            handle: h,
            deadline: now + ORPHAN_LINGER.into(),
        });
    }

    fn remove_socket(&mut self, h: SocketHandle) {
        if let Some(bytes) = self.buffers.remove(&h) {
            self.sockets.remove(h);
            self.buffer_bytes -= bytes;
        }
    }

    fn reap_orphans(&mut self, now: SmolInstant) {
        let mut i = 0;
        while i < self.orphans.len() {
            let h = self.orphans[i].handle;
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            let done = match s.state() {
                tcp::State::Closed => s.local_endpoint().is_none(),
                tcp::State::TimeWait => true,
                _ => false,
            };
            if done {
                self.orphans.swap_remove(i);
                self.remove_socket(h);
                continue;
            }
            close_when_drained(s);
            if now >= self.orphans[i].deadline {
                s.abort();
                self.orphans[i].deadline = now + ORPHAN_LINGER.into();
            }
            i += 1;
        }
    }

    /// Egress (while `budget` lasts) and timers.
    fn poll(&mut self, now: SmolInstant, budget: usize) {
        self.device.tx_budget = budget;
        self.iface.poll_maintenance(now);
        if budget > 0 {
            let _ = self
                .iface
                .poll_egress(now, &mut self.device, &mut self.sockets);
        }
        self.reap_orphans(now);
    }

    fn stop(&mut self) {
        self.stopped = true;
        let handles: Vec<SocketHandle> = self.buffers.keys().copied().collect();
        for h in handles {
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            self.remove_socket(h);
        }
        self.orphans.clear();
        self.tcp.clear();
        self.udp.clear();
        self.outbound = None;
    }
}

fn flush(
    pending: &mut VecDeque<BytesMut>,
    outbound: &mpsc::Sender<BytesMut>,
    c: &Counters,
) -> Result<(), ()> {
    send_pending(pending, outbound, |_| Counters::add(&c.packets_out, 1))
}

async fn run(
    shared: Arc<Shared>,
    mut inbound: mpsc::Receiver<BytesMut>,
    outbound: mpsc::Sender<BytesMut>,
) {
    let mut batch: Vec<BytesMut> = Vec::with_capacity(RX_BATCH);
    let mut pending: VecDeque<BytesMut> = VecDeque::new();
    let mut stop = shared.stop.subscribe();
    loop {
        let mut closed = false;
        while batch.len() < RX_BATCH {
            match inbound.try_recv() {
                Ok(p) => batch.push(p),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed || *stop.borrow() || flush(&mut pending, &outbound, &shared.counters).is_err() {
            break;
        }
        let budget = outbound.capacity().saturating_sub(pending.len());
        let delay = {
            let mut inner = shared.lock();
            let now = shared.now();
            Counters::add(&shared.counters.packets_in, batch.len() as u64);
            // Replies made while taking packets in (ICMP echo, RSTs) need room to go out too.
            inner.device.tx_budget = budget;
            for p in batch.drain(..) {
                inner.ingest(&shared, p, now);
            }
            inner.poll(now, budget);
            inner.sweep_udp(&shared);
            let inner = &mut *inner;
            for p in inner.device.tx.drain(..) {
                if budget > 0 || pending.len() < PENDING_CAP {
                    pending.push_back(p);
                } else {
                    Counters::add(&shared.counters.packets_dropped, 1);
                }
            }
            inner.iface.poll_delay(now, &inner.sockets)
        };
        if flush(&mut pending, &outbound, &shared.counters).is_err() {
            break;
        }
        let blocked = !pending.is_empty() || outbound.capacity() == 0 || budget == 0;
        let sleep = tokio::time::sleep(delay.map_or(Duration::from_secs(3600), Duration::from));
        tokio::pin!(sleep);
        tokio::select! {
            p = inbound.recv() => match p {
                Some(p) => batch.push(p),
                None => break,
            },
            () = shared.wake.notified() => {}
            _ = stop.changed() => {}
            () = &mut sleep, if !blocked && delay.is_some() => {}
            permit = outbound.reserve(), if blocked => match permit {
                Ok(permit) => {
                    if let Some(p) = pending.pop_front() {
                        Counters::add(&shared.counters.packets_out, 1);
                        permit.send(p);
                    }
                }
                Err(_) => break,
            },
        }
    }
    tracing::debug!("exit task stopping");
    shared.lock().stop();
    shared.stop.send_replace(true);
}
