//! The stack: one tokio task that owns the smoltcp `Interface`, the `SocketSet` and the
//! in-memory device, and cloneable handles that share them behind a mutex.
//!
//! # How the task runs
//!
//! Each turn of the loop:
//! 1. takes up to [`RX_BATCH`] packets from `inbound` without waiting;
//! 2. sets the device's transmit budget to the free room in `outbound`;
//! 3. polls smoltcp (ingress, then egress while the budget lasts; ingress only when there is
//!    no room at all), reaps closed sockets whose handles are gone;
//! 4. hands the produced packets to `outbound`;
//! 5. sleeps until a packet arrives, a handle asks for a poll (after a read, a write, a new
//!    socket), smoltcp's next deadline passes or, when blocked, `outbound` has room again.
//!
//! Handles read and write the smoltcp socket buffers directly under the mutex and register
//! smoltcp's per-socket wakers; the task wakes them while polling.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::device::MemDevice;
use crate::dns::DnsCache;

/// At most this many inbound packets are handed to smoltcp per turn of the loop.
const RX_BATCH: usize = 256;
/// Packets waiting for room in `outbound`. Only replies generated while receiving (RSTs,
/// challenge and duplicate ACKs) can exceed the budget; past this many they are dropped (and
/// counted) rather than stop the stack from reading `inbound`: a caller that feeds `inbound`
/// and drains `outbound` from one task must never find both blocked.
const PENDING_CAP: usize = 4 * RX_BATCH;
/// Smallest TCP buffer used when the memory budget forces smaller buffers.
const MIN_TCP_BUF: usize = 16 * 1024;
/// Largest buffer smoltcp accepts (window scale 14).
const MAX_TCP_BUF: usize = 1 << 30;
const UDP_RX_PAYLOAD: usize = 256 * 1024;
const UDP_RX_PACKETS: usize = 256;
const UDP_TX_PAYLOAD: usize = 128 * 1024;
const UDP_TX_PACKETS: usize = 128;
/// Buffers of the stack's own short-lived sockets (DNS queries).
const UDP_SMALL_PAYLOAD: usize = 16 * 1024;
const UDP_SMALL_PACKETS: usize = 16;
const EPHEMERAL: std::ops::RangeInclusive<u16> = 49152..=65535;
/// A socket whose handle was dropped gets this long to finish its close handshake.
const ORPHAN_LINGER: Duration = Duration::from_secs(30);
/// Connections a listener holds for `accept` (beyond that, SYNs are answered with RST).
const MAX_ACCEPT_QUEUE: usize = 1024;
const ACK_DELAY: smoltcp::time::Duration = smoltcp::time::Duration::from_millis(5);

/// Addresses, MTU and DNS servers the tunnel pushed, plus resource limits.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// The VPN address and prefix length from `ifconfig` (net30/p2p: use 30/32 as pushed).
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// The VPN address and prefix length from `ifconfig-ipv6`.
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// IP MTU of the tunnel (`tun-mtu`): the largest packet the stack emits.
    pub mtu: u16,
    /// DNS servers pushed with `dhcp-option DNS`/`DNS6` (usually port 53).
    pub dns_servers: Vec<SocketAddr>,
    pub limits: Limits,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self {
            ipv4: None,
            ipv6: None,
            mtu: 1500,
            dns_servers: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// Bounds on what the stack may hold. Buffers are rounded up to a power of two; when the total
/// budget is short, new connections get smaller buffers (halved down to 16 KiB) before they are
/// refused.
#[derive(Clone, Debug)]
pub struct Limits {
    /// TCP sockets at most (connections, listening sockets, sockets still closing).
    pub max_tcp: usize,
    /// Receive buffer per TCP socket: the advertised window (> 64 KiB uses window scaling).
    pub tcp_rx_buf: usize,
    /// Send buffer per TCP socket.
    pub tcp_tx_buf: usize,
    /// All socket buffers together (TCP and UDP).
    pub max_total_buffer_bytes: usize,
    /// How long `tcp_connect` waits for the handshake.
    pub connect_timeout: Duration,
    /// A connection whose peer stops answering is aborted after this long (keep-alives are
    /// sent at a third of it while idle). `None`: never.
    pub tcp_timeout: Option<Duration>,
    /// Capacity, in packets, of the `inbound` and `outbound` channels.
    pub packet_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tcp: 4096,
            tcp_rx_buf: 256 * 1024,
            tcp_tx_buf: 256 * 1024,
            max_total_buffer_bytes: 256 * 1024 * 1024,
            connect_timeout: Duration::from_secs(20),
            tcp_timeout: Some(Duration::from_secs(180)),
            packet_queue: 1024,
        }
    }
}

/// The stack's side of the tunnel: IP packets in both directions.
///
/// The stack task stops when `inbound`'s sender or `outbound` is dropped; every socket then
/// fails with `NotConnected`.
pub struct PacketPipe {
    /// IP packets the stack emits, to be encrypted and sent into the tunnel. Bounded: when it
    /// is full the stack stops emitting (TCP data waits in the socket buffers); nothing is
    /// dropped by the stack.
    pub outbound: mpsc::Receiver<BytesMut>,
    /// IP packets decrypted from the tunnel, for the stack.
    pub inbound: mpsc::Sender<BytesMut>,
}

/// Counters, for `status` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// TCP sockets in the set: connections (including those still closing) and listening ones.
    pub tcp_sockets: usize,
    /// TCP connections: `tcp_sockets` less the listening sockets.
    pub tcp_connections: usize,
    pub udp_sockets: usize,
    /// Bytes of socket buffers allocated.
    pub buffer_bytes: usize,
    /// Control replies (RST, challenge ACK) dropped because `outbound` stayed full.
    pub replies_dropped: u64,
}

/// A cloneable handle to the stack task.
#[derive(Clone)]
pub struct Stack {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").finish_non_exhaustive()
    }
}

/// Spawns the stack task on the current tokio runtime.
///
/// # Panics
/// Outside a tokio runtime.
pub fn spawn(cfg: StackConfig) -> (Stack, PacketPipe) {
    let queue = cfg.limits.packet_queue.max(1);
    let (in_tx, in_rx) = mpsc::channel(queue);
    let (out_tx, out_rx) = mpsc::channel(queue);
    let shared = Arc::new(Shared::new(cfg));
    tokio::spawn(run(shared.clone(), in_rx, out_tx));
    (
        Stack { shared },
        PacketPipe {
            outbound: out_rx,
            inbound: in_tx,
        },
    )
}

impl Stack {
    /// Applies new addresses, MTU, DNS servers and limits (after a reconnect). Connections bound
    /// to an address that is gone are reset (without sending a RST from the stale address) and
    /// fail with `ConnectionReset`; listeners and UDP sockets stay bound to their ports.
    pub async fn reconfigure(&self, cfg: StackConfig) {
        {
            let mut inner = self.shared.lock();
            inner.reconfigure(cfg, self.shared.now());
        }
        self.shared.dns_cache.clear();
        self.shared.wake.notify_one();
    }

    /// Counters and socket numbers.
    pub fn stats(&self) -> StackStats {
        let s = &self.shared.counters;
        let inner = self.shared.lock();
        StackStats {
            packets_in: s.packets_in.load(Ordering::Relaxed),
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            packets_out: s.packets_out.load(Ordering::Relaxed),
            bytes_out: s.bytes_out.load(Ordering::Relaxed),
            tcp_sockets: inner.tcp_count,
            tcp_connections: inner.tcp_count
                - inner
                    .listeners
                    .values()
                    .map(|l| l.armed.len())
                    .sum::<usize>(),
            udp_sockets: inner.udp_count,
            buffer_bytes: inner.buffer_bytes,
            replies_dropped: s.replies_dropped.load(Ordering::Relaxed),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> StackConfig {
        self.shared.lock().cfg.clone()
    }

    /// Whether the stack has an address of `ip`'s family.
    pub fn can_reach(&self, ip: IpAddr) -> bool {
        let inner = self.shared.lock();
        match ip {
            IpAddr::V4(_) => inner.cfg.ipv4.is_some(),
            IpAddr::V6(_) => inner.cfg.ipv6.is_some(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    replies_dropped: AtomicU64,
}

/// What handles and the task share.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Asks the task for a poll.
    pub(crate) wake: Notify,
    counters: Counters,
    epoch: Instant,
    pub(crate) dns_cache: DnsCache,
}

impl Shared {
    fn new(cfg: StackConfig) -> Self {
        let epoch = Instant::now();
        Self {
            inner: Mutex::new(Inner::new(cfg, SmolInstant::ZERO)),
            wake: Notify::new(),
            counters: Counters::default(),
            epoch,
            dns_cache: DnsCache::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// smoltcp time from tokio's clock (the shell's one clock; paused in tests that pause it).
    pub(crate) fn now(&self) -> SmolInstant {
        let d = Instant::now().saturating_duration_since(self.epoch);
        SmolInstant::from_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
}

struct SockMeta {
    kind: Kind,
    port: u16,
    bytes: usize,
}

/// A listener's sockets.
pub(crate) struct ListenState {
    backlog: usize,
    /// Sockets in LISTEN.
    armed: Vec<SocketHandle>,
    /// Sockets past LISTEN (handshaking or established), oldest first, not yet accepted.
    pub(crate) queue: VecDeque<SocketHandle>,
    /// The task waiting in `accept`.
    pub(crate) waker: Option<std::task::Waker>,
}

struct Orphan {
    handle: SocketHandle,
    deadline: SmolInstant,
}

pub(crate) struct Inner {
    iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    device: MemDevice,
    pub(crate) cfg: StackConfig,
    meta: HashMap<SocketHandle, SockMeta>,
    /// Local TCP ports in use, with the number of sockets on each.
    tcp_ports: HashMap<u16, usize>,
    /// Listeners by port.
    pub(crate) listeners: HashMap<u16, ListenState>,
    udp_ports: HashSet<u16>,
    buffer_bytes: usize,
    tcp_count: usize,
    udp_count: usize,
    orphans: Vec<Orphan>,
    rng: u64,
    pub(crate) stopped: bool,
}

pub(crate) fn random_seed() -> u64 {
    // std's RandomState is seeded from the OS; no extra dependency for a port/seed choice.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6665_7272_6f76_706e);
    h.finish() | 1
}

fn build_iface(cfg: &StackConfig, device: &mut MemDevice, now: SmolInstant) -> Interface {
    device.mtu = usize::from(cfg.mtu);
    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = random_seed();
    let mut iface = Interface::new(config, device, now);
    iface.update_ip_addrs(|addrs| {
        if let Some((a, len)) = cfg.ipv4 {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(a), len.min(32)));
        }
        if let Some((a, len)) = cfg.ipv6 {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(a), len.min(128)));
        }
    });
    // Medium::Ip has no neighbours: every destination leaves through the tunnel, the gateway
    // address only has to exist for smoltcp's route lookup.
    let routes = iface.routes_mut();
    if let Some((a, _)) = cfg.ipv4 {
        let _ = routes.add_default_ipv4_route(a);
    }
    if let Some((a, _)) = cfg.ipv6 {
        let _ = routes.add_default_ipv6_route(a);
    }
    iface
}

impl Inner {
    fn new(cfg: StackConfig, now: SmolInstant) -> Self {
        let mut device = MemDevice::new(usize::from(cfg.mtu));
        let iface = build_iface(&cfg, &mut device, now);
        Self {
            iface,
            sockets: SocketSet::new(Vec::new()),
            device,
            cfg,
            meta: HashMap::new(),
            tcp_ports: HashMap::new(),
            listeners: HashMap::new(),
            udp_ports: HashSet::new(),
            buffer_bytes: 0,
            tcp_count: 0,
            udp_count: 0,
            orphans: Vec::new(),
            rng: random_seed(),
            stopped: false,
        }
    }

    fn reconfigure(&mut self, cfg: StackConfig, now: SmolInstant) {
        // Rebuilding the interface is how smoltcp takes a new MTU; sockets live in the
        // SocketSet and survive. Those bound to a vanished address reset on their next dispatch.
        self.iface = build_iface(&cfg, &mut self.device, now);
        self.cfg = cfg;
    }

    pub(crate) fn check_running(&self) -> io::Result<()> {
        if self.stopped {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "netstack stopped",
            ));
        }
        Ok(())
    }

    /// Whether the stack has an address of this family; `NetworkUnreachable` if not.
    pub(crate) fn check_family(&self, ip: IpAddr) -> io::Result<()> {
        let ok = match ip {
            IpAddr::V4(_) => self.cfg.ipv4.is_some(),
            IpAddr::V6(_) => self.cfg.ipv6.is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NetworkUnreachable,
                format!("the tunnel has no address for {ip}"),
            ))
        }
    }

    pub(crate) fn mtu(&self) -> usize {
        usize::from(self.cfg.mtu)
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick_port(&mut self, used: impl Fn(&Self, u16) -> bool) -> io::Result<u16> {
        let (lo, hi) = (*EPHEMERAL.start(), *EPHEMERAL.end());
        let span = u64::from(hi - lo) + 1;
        for _ in 0..64 {
            let p = lo + u16::try_from(self.next_rand() % span).unwrap_or(0);
            if !used(self, p) {
                return Ok(p);
            }
        }
        EPHEMERAL
            .clone()
            .find(|p| !used(self, *p))
            .ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free ephemeral port"))
    }

    fn tcp_port_used(&self, p: u16) -> bool {
        self.tcp_ports.get(&p).is_some_and(|n| *n > 0) || self.listeners.contains_key(&p)
    }

    /// Reserves buffer memory: the configured sizes, halved while the total budget is short.
    fn reserve_tcp_buffers(&mut self) -> io::Result<(usize, usize)> {
        let l = &self.cfg.limits;
        if self.tcp_count >= l.max_tcp {
            return Err(io::Error::other(format!(
                "TCP socket limit ({}) reached",
                l.max_tcp
            )));
        }
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
        if rx + tx > room {
            return Err(io::Error::other("netstack buffer memory limit reached"));
        }
        Ok((rx, tx))
    }

    fn new_tcp_socket(&mut self) -> io::Result<(tcp::Socket<'static>, usize)> {
        let (rx, tx) = self.reserve_tcp_buffers()?;
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; rx]),
            tcp::SocketBuffer::new(vec![0u8; tx]),
        );
        s.set_nagle_enabled(false);
        s.set_ack_delay(Some(ACK_DELAY));
        s.set_congestion_control(tcp::CongestionControl::Cubic);
        // Keep-alives from the start (set later, smoltcp would send one at once): an idle
        // connection stays alive, a dead peer is noticed within `tcp_timeout`.
        if let Some(t) = self.cfg.limits.tcp_timeout {
            s.set_timeout(Some(t.into()));
            s.set_keep_alive(Some((t / 3).into()));
        }
        Ok((s, rx + tx))
    }

    fn add(
        &mut self,
        socket: smoltcp::socket::Socket<'static>,
        kind: Kind,
        port: u16,
        bytes: usize,
    ) -> SocketHandle {
        let h = self.sockets.add(socket);
        self.meta.insert(h, SockMeta { kind, port, bytes });
        self.buffer_bytes += bytes;
        match kind {
            Kind::Tcp => {
                self.tcp_count += 1;
                *self.tcp_ports.entry(port).or_insert(0) += 1;
            }
            Kind::Udp => {
                self.udp_count += 1;
                self.udp_ports.insert(port);
            }
        }
        h
    }

    /// Removes a socket and releases its port and memory.
    pub(crate) fn remove(&mut self, h: SocketHandle) {
        let Some(m) = self.meta.remove(&h) else {
            return;
        };
        self.sockets.remove(h);
        self.buffer_bytes -= m.bytes;
        match m.kind {
            Kind::Tcp => {
                self.tcp_count -= 1;
                if let Some(n) = self.tcp_ports.get_mut(&m.port) {
                    *n -= 1;
                    if *n == 0 {
                        self.tcp_ports.remove(&m.port);
                    }
                }
            }
            Kind::Udp => {
                self.udp_count -= 1;
                self.udp_ports.remove(&m.port);
            }
        }
    }

    /// Opens a connecting socket (SYN goes out on the next poll).
    pub(crate) fn tcp_connect(&mut self, dst: SocketAddr) -> io::Result<SocketHandle> {
        self.check_running()?;
        if dst.ip().is_unspecified() || dst.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connect to an unspecified address",
            ));
        }
        self.check_family(dst.ip())?;
        let port = self.pick_port(Self::tcp_port_used)?;
        let (mut s, bytes) = self.new_tcp_socket()?;
        // `tcp_connect` times the handshake itself (a smoltcp timeout would look like a RST).
        s.set_timeout(None);
        s.connect(self.iface.context(), dst, port).map_err(|e| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("connect {dst}: {e}"),
            )
        })?;
        Ok(self.add(smoltcp::socket::Socket::Tcp(s), Kind::Tcp, port, bytes))
    }

    /// Registers a listener on `port` with `backlog` listening sockets armed.
    pub(crate) fn listen(&mut self, port: u16, backlog: usize) -> io::Result<()> {
        self.check_running()?;
        if port == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "listen port 0"));
        }
        if self.listeners.contains_key(&port) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("TCP port {port} already has a listener"),
            ));
        }
        let mut l = ListenState {
            backlog,
            armed: Vec::with_capacity(backlog),
            queue: VecDeque::new(),
            waker: None,
        };
        for _ in 0..backlog {
            match self.tcp_listen_socket(port) {
                Ok(h) => l.armed.push(h),
                Err(e) => {
                    for h in l.armed {
                        self.remove(h);
                    }
                    return Err(e);
                }
            }
        }
        self.listeners.insert(port, l);
        Ok(())
    }

    /// Drops a listener: armed sockets go, connections not yet accepted are reset.
    pub(crate) fn unlisten(&mut self, port: u16, now: SmolInstant) {
        let Some(l) = self.listeners.remove(&port) else {
            return;
        };
        for h in l.armed {
            self.remove(h);
        }
        for h in l.queue {
            self.abort_tcp(h, now);
        }
    }

    /// A listening socket on `port`, any of our addresses.
    fn tcp_listen_socket(&mut self, port: u16) -> io::Result<SocketHandle> {
        let timeout = self.cfg.limits.connect_timeout;
        let (mut s, bytes) = self.new_tcp_socket()?;
        s.listen(port).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("listen on {port}: {e}"),
            )
        })?;
        // A handshake that never completes gives its socket back after this long.
        s.set_timeout(Some(timeout.into()));
        Ok(self.add(smoltcp::socket::Socket::Tcp(s), Kind::Tcp, port, bytes))
    }

    /// After a poll: sockets that left LISTEN join the accept queue, `backlog` listening
    /// sockets are re-armed while the queue has room, failed handshakes are dropped.
    fn service_listeners(&mut self) {
        let mut listeners = std::mem::take(&mut self.listeners);
        for (port, l) in &mut listeners {
            let mut moved = false;
            let sockets = &mut self.sockets;
            l.armed
                .retain(|h| match sockets.get::<tcp::Socket>(*h).state() {
                    tcp::State::Listen => true,
                    tcp::State::Closed => {
                        let _ = sockets.get_mut::<tcp::Socket>(*h).listen(*port);
                        true
                    }
                    _ => {
                        l.queue.push_back(*h);
                        moved = true;
                        false
                    }
                });
            let mut dead = Vec::new();
            let idle = self.cfg.limits.tcp_timeout;
            l.queue.retain(|h| {
                let s = sockets.get_mut::<tcp::Socket>(*h);
                if s.state() != tcp::State::SynReceived {
                    arm_idle_timeout(s, idle);
                }
                let gone = s.state() == tcp::State::Closed
                    && s.local_endpoint().is_none()
                    && !s.can_recv();
                if gone {
                    dead.push(*h);
                }
                !gone
            });
            for h in dead {
                self.remove(h);
            }
            while l.armed.len() < l.backlog && l.queue.len() < MAX_ACCEPT_QUEUE {
                match self.tcp_listen_socket(*port) {
                    Ok(h) => l.armed.push(h),
                    Err(_) => break,
                }
            }
            if moved {
                if let Some(w) = l.waker.take() {
                    w.wake();
                }
            }
        }
        self.listeners = listeners;
    }

    /// The connection is established: arm the idle timeout and keep-alives.
    pub(crate) fn tcp_established(&mut self, h: SocketHandle) {
        let t = self.cfg.limits.tcp_timeout;
        arm_idle_timeout(self.sockets.get_mut::<tcp::Socket>(h), t);
    }

    /// The handle of a TCP socket is gone: close gracefully and reap it later.
    pub(crate) fn orphan_tcp(&mut self, h: SocketHandle, now: SmolInstant) {
        if !self.meta.contains_key(&h) {
            return;
        }
        if self.stopped {
            self.remove(h);
            return;
        }
        let s = self.sockets.get_mut::<tcp::Socket>(h);
        close_when_drained(s);
        if s.state() == tcp::State::Closed && s.local_endpoint().is_none() {
            self.remove(h);
            return;
        }
        self.orphans.push(Orphan {
            handle: h,
            deadline: now + ORPHAN_LINGER.into(),
        });
    }

    /// Aborts (RST) a TCP socket whose handle is gone, then reaps it.
    pub(crate) fn abort_tcp(&mut self, h: SocketHandle, now: SmolInstant) {
        if !self.meta.contains_key(&h) {
            return;
        }
        self.sockets.get_mut::<tcp::Socket>(h).abort();
        self.orphans.push(Orphan {
            handle: h,
            deadline: now + ORPHAN_LINGER.into(),
        });
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
            if done || self.stopped {
                self.orphans.swap_remove(i);
                self.remove(h);
                continue;
            }
            close_when_drained(s);
            if now >= self.orphans[i].deadline {
                // Give up on a graceful close; the RST goes out on the next dispatch.
                s.abort();
                self.orphans[i].deadline = now + ORPHAN_LINGER.into();
            }
            i += 1;
        }
    }

    /// A UDP socket on `port` (None or 0: ephemeral); `small` for the stack's own queries.
    pub(crate) fn udp_bind(
        &mut self,
        port: Option<u16>,
        small: bool,
    ) -> io::Result<(SocketHandle, u16)> {
        self.check_running()?;
        let port = match port {
            Some(0) | None => self.pick_port(|s, p| s.udp_ports.contains(&p))?,
            Some(p) if self.udp_ports.contains(&p) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("UDP port {p} in use"),
                ));
            }
            Some(p) => p,
        };
        let (rx_bytes, rx_packets, tx_bytes, tx_packets) = if small {
            (
                UDP_SMALL_PAYLOAD,
                UDP_SMALL_PACKETS,
                UDP_SMALL_PAYLOAD,
                UDP_SMALL_PACKETS,
            )
        } else {
            (
                UDP_RX_PAYLOAD,
                UDP_RX_PACKETS,
                UDP_TX_PAYLOAD,
                UDP_TX_PACKETS,
            )
        };
        let bytes = rx_bytes + tx_bytes;
        if self.buffer_bytes + bytes > self.cfg.limits.max_total_buffer_bytes {
            return Err(io::Error::other("netstack buffer memory limit reached"));
        }
        let rx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; rx_packets],
            vec![0u8; rx_bytes],
        );
        let tx = udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; tx_packets],
            vec![0u8; tx_bytes],
        );
        let mut s = udp::Socket::new(rx, tx);
        s.bind(port).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("bind UDP {port}: {e}"))
        })?;
        Ok((
            self.add(smoltcp::socket::Socket::Udp(s), Kind::Udp, port, bytes),
            port,
        ))
    }

    /// One poll of smoltcp; egress only while the device has budget.
    fn poll(&mut self, now: SmolInstant, budget: usize) {
        self.device.tx_budget = budget;
        if budget > 0 {
            self.iface.poll(now, &mut self.device, &mut self.sockets);
        } else {
            self.iface.poll_maintenance(now);
            while self
                .iface
                .poll_ingress_single(now, &mut self.device, &mut self.sockets)
                != smoltcp::iface::PollIngressSingleResult::None
            {}
        }
        self.reap_orphans(now);
        self.service_listeners();
    }

    /// The task is ending: abort everything so pending operations fail.
    fn stop(&mut self) {
        self.stopped = true;
        let handles: Vec<_> = self.meta.iter().map(|(h, m)| (*h, m.kind)).collect();
        for (h, kind) in handles {
            match kind {
                Kind::Tcp => self.sockets.get_mut::<tcp::Socket>(h).abort(),
                Kind::Udp => self.sockets.get_mut::<udp::Socket>(h).close(),
            }
        }
        self.reap_orphans(SmolInstant::ZERO);
        for (_, l) in self.listeners.drain() {
            if let Some(w) = l.waker {
                w.wake();
            }
        }
    }
}

/// Replaces the handshake timeout by the idle timeout (with keep-alives at a third of it).
fn arm_idle_timeout(s: &mut tcp::Socket<'_>, t: Option<Duration>) {
    let t: Option<smoltcp::time::Duration> = t.map(Into::into);
    if s.timeout() != t {
        s.set_timeout(t);
    }
}

/// Closes the sending half, but only once everything queued has been acknowledged (until
/// then: `false`, call again). Sending the FIN behind unacknowledged data trips two smoltcp
/// 0.14 behaviours that stall a close until a retransmission timer (1 s, doubling):
/// a FIN that arrives while the receiver still has a hole is dropped, not queued; and in
/// LAST-ACK window updates are answered with a challenge ACK instead of being applied, so a
/// zero window there is only reopened by the persist timer. Costs one round trip per close.
pub(crate) fn close_when_drained(s: &mut tcp::Socket<'_>) -> bool {
    if matches!(s.state(), tcp::State::Established | tcp::State::CloseWait) && s.send_queue() > 0 {
        return false;
    }
    s.close();
    true
}

/// Sends what fits into `outbound` without waiting, calling `sent` with each packet's length.
/// `Err` when the receiver is gone. Shared by the stack and the server's exit.
pub(crate) fn send_pending(
    pending: &mut VecDeque<BytesMut>,
    outbound: &mpsc::Sender<BytesMut>,
    mut sent: impl FnMut(u64),
) -> Result<(), ()> {
    while let Some(p) = pending.pop_front() {
        let len = p.len() as u64;
        match outbound.try_send(p) {
            Ok(()) => sent(len),
            Err(mpsc::error::TrySendError::Full(p)) => {
                pending.push_front(p);
                return Ok(());
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(()),
        }
    }
    Ok(())
}

fn flush(
    pending: &mut VecDeque<BytesMut>,
    outbound: &mpsc::Sender<BytesMut>,
    c: &Counters,
) -> Result<(), ()> {
    send_pending(pending, outbound, |len| {
        c.packets_out.fetch_add(1, Ordering::Relaxed);
        c.bytes_out.fetch_add(len, Ordering::Relaxed);
    })
}

async fn run(
    shared: Arc<Shared>,
    mut inbound: mpsc::Receiver<BytesMut>,
    outbound: mpsc::Sender<BytesMut>,
) {
    let mut rx_batch: Vec<BytesMut> = Vec::with_capacity(RX_BATCH);
    let mut pending: VecDeque<BytesMut> = VecDeque::new();
    let mut inbound_open = true;
    'run: loop {
        while inbound_open && rx_batch.len() < RX_BATCH {
            match inbound.try_recv() {
                Ok(p) => rx_batch.push(p),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => inbound_open = false,
            }
        }
        if !inbound_open || flush(&mut pending, &outbound, &shared.counters).is_err() {
            break;
        }
        let budget = outbound.capacity().saturating_sub(pending.len());
        let delay = {
            let mut inner = shared.lock();
            let now = shared.now();
            for p in rx_batch.drain(..) {
                shared.counters.packets_in.fetch_add(1, Ordering::Relaxed);
                shared
                    .counters
                    .bytes_in
                    .fetch_add(p.len() as u64, Ordering::Relaxed);
                inner.device.rx.push_back(p);
            }
            inner.poll(now, budget);
            let inner = &mut *inner;
            for p in inner.device.tx.drain(..) {
                // With a budget, egress stayed within it: keep everything. Without one only
                // replies were produced.
                if budget > 0 || pending.len() < PENDING_CAP {
                    pending.push_back(p);
                } else {
                    shared
                        .counters
                        .replies_dropped
                        .fetch_add(1, Ordering::Relaxed);
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
                Some(p) => rx_batch.push(p),
                None => break 'run,
            },
            () = shared.wake.notified() => {}
            () = &mut sleep, if !blocked && delay.is_some() => {}
            permit = outbound.reserve(), if blocked => match permit {
                Ok(permit) => {
                    if let Some(p) = pending.pop_front() {
                        shared.counters.packets_out.fetch_add(1, Ordering::Relaxed);
                        shared.counters.bytes_out.fetch_add(p.len() as u64, Ordering::Relaxed);
                        permit.send(p);
                    }
                }
                Err(_) => break 'run,
            },
        }
    }
    tracing::debug!("netstack task stopping");
    shared.lock().stop();
}
