//! Server load generator: N simulated clients (the `ferrovpn` client state machine, all in this
//! one process) connect to one server at a given rate, hold their sessions and ping the server's
//! tunnel address once a second.
//!
//! ```text
//! cargo bench --bench server_load -- --profile client.ovpn --clients 500 --rate 200 --duration 20
//! ```
//!
//! Every simulated client has its own UDP socket (the server tells sessions apart by source
//! address) and its own session; the TLS session cache is off, so every handshake is a full one.
//! The clients are split over `--shards` tokio tasks (one worker thread each); a task owns its
//! clients, a timer heap of their `poll_timeout`s (plus ping, start and connect-timeout timers)
//! and the channel its sockets' reader tasks feed. Nothing polls idle clients.
//!
//! Once a client is connected it sends an ICMP echo request from its pushed tunnel address to
//! the server's (the `route-gateway`, else the first address of the pushed subnet, or
//! `--target`) every `--ping-interval` and counts the echo replies.
//!
//! The run: clients start at `--rate` per second; when every client is connected (or
//! `--connect-timeout` after the last start) the hold phase of `--duration` seconds begins. A
//! handshake attempt that fails (the session closes, or no `Connected` within
//! `--connect-timeout`) is counted and, unless `--no-retry`, the client starts a new session a
//! second later; a connected session that closes is counted as lost and restarted the same way.
//!
//! Output: progress lines on stderr and one summary line on stdout,
//! `RESULT impl=.. clients=.. rate=.. connected=.. hs_per_s=.. time_to_all_s=.. p50_ms=..
//! p99_ms=.. max_ms=.. held=.. failed=.. lost=.. pings=.. replies=.. client_cpu_s=..`:
//! - `connected`: clients that connected at least once;
//! - `hs_per_s`: first connects / (time of the last first connect - first start);
//! - `time_to_all_s`: first start -> last client connected (`NA` unless all did);
//! - `p50_ms`/`p99_ms`/`max_ms`: per client, first start -> first `Connected` (so a client that
//!   needed a retry counts with its retries);
//! - `held`: clients connected at the end that got an echo reply in the last
//!   `max(3, 3 x ping-interval)` seconds;
//! - `failed`: failed handshake attempts; `lost`: sessions closed after they connected;
//! - `pings`/`replies`: echo requests sent and replies received over the whole run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrovpn::config::load_profile;
use ferrovpn::proto::client::{Client, ClientConfig, Event};
use ferrovpn::proto::tls::ClientTlsOptions;
use ferrovpn::runtime::clock;
use ferrovpn::runtime::rng::system_rng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

struct Args {
    profile: PathBuf,
    clients: usize,
    rate: f64,
    duration: Duration,
    connect_timeout: Duration,
    ping_interval: Duration,
    impl_name: String,
    target: Option<Ipv4Addr>,
    bind: IpAddr,
    shards: usize,
    retry: bool,
}

const USAGE: &str = "usage: server_load --profile FILE.ovpn [--clients N (100)] [--rate PER_S (50)]
       [--duration HOLD_S (20)] [--connect-timeout S (30)] [--ping-interval S (1)]
       [--impl LABEL (server)] [--target TUNNEL_IP] [--bind LOCAL_IP (0.0.0.0)]
       [--shards N (1)] [--no-retry]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        profile: PathBuf::new(),
        clients: 100,
        rate: 50.0,
        duration: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(30),
        ping_interval: Duration::from_secs(1),
        impl_name: "server".into(),
        target: None,
        bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        shards: 1,
        retry: true,
    };
    let mut it = std::env::args().skip(1);
    let secs = |v: String| -> Result<Duration, String> {
        let f: f64 = v.parse().map_err(|_| format!("not a number: {v}"))?;
        if !(f > 0.0 && f.is_finite()) {
            return Err(format!("must be positive: {v}"));
        }
        Ok(Duration::from_secs_f64(f))
    };
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "--profile" => a.profile = PathBuf::from(val()?),
            "--clients" => a.clients = val()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--rate" => a.rate = secs(val()?).map(|d| d.as_secs_f64())?,
            "--duration" => a.duration = secs(val()?)?,
            "--connect-timeout" => a.connect_timeout = secs(val()?)?,
            "--ping-interval" => a.ping_interval = secs(val()?)?,
            "--impl" => a.impl_name = val()?,
            "--target" => a.target = Some(val()?.parse().map_err(|e| format!("--target: {e}"))?),
            "--bind" => a.bind = val()?.parse().map_err(|e| format!("--bind: {e}"))?,
            "--shards" => a.shards = val()?.parse().map_err(|e| format!("--shards: {e}"))?,
            "--no-retry" => a.retry = false,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if a.profile.as_os_str().is_empty() {
        return Err(format!("--profile is required\n{USAGE}"));
    }
    if a.clients == 0 || a.shards == 0 {
        return Err("--clients and --shards must be positive".into());
    }
    a.shards = a.shards.min(a.clients);
    Ok(a)
}

/// Raises the soft open-file limit to the hard one (one socket per client).
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// User+system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct passed in.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return f64::NAN;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    }
}

// ---------------------------------------------------------------------------------------------
// ICMP echo

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 ICMP echo request with a 32-byte payload.
fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16, buf: &mut Vec<u8>) {
    const PAYLOAD: usize = 32;
    let total = 20 + 8 + PAYLOAD;
    buf.clear();
    buf.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8]);
    buf.extend_from_slice(&seq.to_be_bytes()); // IP id
    buf.extend_from_slice(&[0x40, 0, 64, 1, 0, 0]); // DF, ttl 64, ICMP, checksum later
    buf.extend_from_slice(&src.octets());
    buf.extend_from_slice(&dst.octets());
    let c = checksum(&buf[..20]);
    buf[10..12].copy_from_slice(&c.to_be_bytes());
    buf.extend_from_slice(&[8, 0, 0, 0]);
    buf.extend_from_slice(&ident.to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend((0..PAYLOAD).map(|i| i as u8));
    let c = checksum(&buf[20..]);
    buf[22..24].copy_from_slice(&c.to_be_bytes());
}

/// Whether `pkt` is an ICMP echo reply with identifier `ident`.
fn is_echo_reply(pkt: &[u8], ident: u16) -> bool {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || pkt[9] != 1 {
        return false;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    pkt.len() >= ihl + 8 && pkt[ihl] == 0 && pkt[ihl + 4..ihl + 6] == ident.to_be_bytes()
}

// ---------------------------------------------------------------------------------------------
// the simulated clients

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Start (or restart) the client's session.
    Start,
    /// The session's own `poll_timeout`.
    Proto,
    /// Send the next echo request.
    Ping,
    /// The handshake attempt `gen` must be connected by now.
    ConnectDeadline,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    slot: u32,
    kind: Kind,
    generation: u32,
}

struct Slot {
    sock: Arc<UdpSocket>,
    client: Option<Client>,
    /// Bumped per session; timers of older sessions are ignored.
    generation: u32,
    /// The deadline of the Proto timer in the heap that counts (older entries are stale).
    scheduled: Option<Instant>,
    first_start: Option<Instant>,
    attempt_start: Instant,
    first_connect: Option<Instant>,
    /// The current session is connected.
    up: bool,
    tun_ip: Ipv4Addr,
    target: Ipv4Addr,
    ident: u16,
    seq: u16,
    last_reply: Option<Instant>,
}

#[derive(Default)]
struct ShardResult {
    /// Per client that connected: (first start, first connect).
    connects: Vec<(Instant, Instant)>,
    first_start: Option<Instant>,
    held: usize,
    failed: u64,
    lost: u64,
    pings: u64,
    replies: u64,
    send_errors: u64,
}

struct Shared {
    /// Clients that connected at least once (all shards).
    connected_once: AtomicUsize,
    /// Clients connected right now.
    connected_now: AtomicUsize,
    failed: AtomicUsize,
    stop: AtomicBool,
}

struct Shard {
    cfg: ClientConfig,
    slots: Vec<Slot>,
    heap: BinaryHeap<Reverse<Timer>>,
    shared: Arc<Shared>,
    args: Arc<Args>,
    res: ShardResult,
    out: Vec<u8>,
    pkt: Vec<u8>,
}

impl Shard {
    fn push(&mut self, at: Instant, slot: usize, kind: Kind) {
        let generation = self.slots[slot].generation;
        self.heap.push(Reverse(Timer {
            at,
            slot: slot as u32,
            kind,
            generation,
        }));
    }

    fn start(&mut self, i: usize, now: Instant) {
        let s = &mut self.slots[i];
        s.generation = s.generation.wrapping_add(1);
        s.scheduled = None;
        s.attempt_start = now;
        if s.first_start.is_none() {
            s.first_start = Some(now);
            if self.res.first_start.is_none_or(|f| now < f) {
                self.res.first_start = Some(now);
            }
        }
        let mut cfg = self.cfg.clone();
        cfg.unix_time_at_start = clock::unix_seconds();
        match Client::new(cfg, now) {
            Ok(c) => s.client = Some(c),
            Err(e) => {
                eprintln!("client {i}: cannot start a session: {e}");
                s.client = None;
                self.res.failed += 1;
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let deadline = now + self.args.connect_timeout;
        self.push(deadline, i, Kind::ConnectDeadline);
        self.service(i, now);
    }

    /// After any input to client `i`: send what it has, handle its events, re-arm its timer.
    fn service(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        let Some(client) = slot.client.as_mut() else {
            return;
        };
        while client.poll_transmit(now, &mut self.out) {
            send(&slot.sock, &self.out, &mut self.res.send_errors);
        }
        let mut closed = None;
        let mut connected = None;
        while let Some(ev) = client.poll_event() {
            match ev {
                Event::Connected(push) => connected = Some(push),
                Event::Closed(e) => closed = Some(e),
                _ => {}
            }
        }
        let next = client.poll_timeout();
        if let Some(push) = connected {
            let s = &mut self.slots[i];
            s.up = true;
            if let Some((local, mask)) = push.ifconfig {
                s.tun_ip = local;
                s.target =
                    self.args.target.or(push.route_gateway).unwrap_or_else(|| {
                        Ipv4Addr::from((u32::from(local) & u32::from(mask)) + 1)
                    });
            } else if let Some(t) = self.args.target {
                s.target = t;
            }
            if s.first_connect.is_none() {
                s.first_connect = Some(now);
                let first = s.first_start.unwrap_or(now);
                self.res.connects.push((first, now));
                self.shared.connected_once.fetch_add(1, Ordering::Relaxed);
            }
            self.shared.connected_now.fetch_add(1, Ordering::Relaxed);
            self.push(now, i, Kind::Ping);
        }
        if let Some(e) = closed {
            let was_connected = self.slots[i].up;
            self.end_session(i, now, was_connected, &e.to_string());
            return;
        }
        let s = &mut self.slots[i];
        if let Some(t) = next
            && s.scheduled != Some(t)
        {
            s.scheduled = Some(t);
            self.push(t, i, Kind::Proto);
        }
    }

    fn was_connected(&self, i: usize) -> bool {
        self.slots[i].up
    }

    fn end_session(&mut self, i: usize, now: Instant, was_connected: bool, why: &str) {
        let s = &mut self.slots[i];
        s.client = None;
        s.scheduled = None;
        s.up = false;
        s.generation = s.generation.wrapping_add(1);
        if was_connected {
            self.res.lost += 1;
            self.shared.connected_now.fetch_sub(1, Ordering::Relaxed);
            if self.res.lost <= 5 {
                eprintln!("client {i}: session lost: {why}");
            }
        } else {
            self.res.failed += 1;
            let n = self.shared.failed.fetch_add(1, Ordering::Relaxed);
            if n < 5 {
                eprintln!("client {i}: handshake failed: {why}");
            }
        }
        if self.args.retry && !self.shared.stop.load(Ordering::Relaxed) {
            self.push(now + Duration::from_secs(1), i, Kind::Start);
        }
    }

    fn on_timer(&mut self, t: Timer, now: Instant) {
        let i = t.slot as usize;
        let s = &self.slots[i];
        match t.kind {
            Kind::Start => {
                if t.generation == s.generation && s.client.is_none() {
                    self.start(i, now);
                }
            }
            Kind::Proto => {
                if t.generation != s.generation || s.scheduled != Some(t.at) {
                    return;
                }
                self.slots[i].scheduled = None;
                if let Some(c) = self.slots[i].client.as_mut() {
                    c.handle_timeout(now);
                }
                self.service(i, now);
            }
            Kind::Ping => {
                if t.generation != s.generation || !self.was_connected(i) {
                    return;
                }
                let s = &mut self.slots[i];
                let Some(c) = s.client.as_mut() else { return };
                s.seq = s.seq.wrapping_add(1);
                echo_request(s.tun_ip, s.target, s.ident, s.seq, &mut self.pkt);
                if c.encapsulate(now, &mut self.pkt, &mut self.out) {
                    send(&s.sock, &self.out, &mut self.res.send_errors);
                    self.res.pings += 1;
                }
                let next = now + self.args.ping_interval;
                self.push(next, i, Kind::Ping);
                self.service(i, now);
            }
            Kind::ConnectDeadline => {
                if t.generation != s.generation || s.client.is_none() || self.was_connected(i) {
                    return;
                }
                self.end_session(i, now, false, "no connect within --connect-timeout");
            }
        }
    }

    fn on_datagram(&mut self, i: usize, data: &[u8], now: Instant) {
        let s = &mut self.slots[i];
        let Some(c) = s.client.as_mut() else { return };
        if c.handle_datagram(now, data, &mut self.pkt) && is_echo_reply(&self.pkt, s.ident) {
            self.res.replies += 1;
            s.last_reply = Some(now);
        }
        self.service(i, now);
    }

    async fn run(mut self, mut rx: mpsc::Receiver<(u32, Vec<u8>)>) -> ShardResult {
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let now = clock::now();
            while let Some(Reverse(t)) = self.heap.peek().copied() {
                if t.at > now {
                    break;
                }
                self.heap.pop();
                self.on_timer(t, now);
            }
            let next = self
                .heap
                .peek()
                .map(|Reverse(t)| t.at)
                .unwrap_or(now + Duration::from_millis(100))
                .min(now + Duration::from_millis(100));
            tokio::select! {
                m = rx.recv() => {
                    let Some((i, data)) = m else { break };
                    let now = clock::now();
                    self.on_datagram(i as usize, &data, now);
                    let mut n = 0;
                    while n < 256 {
                        let Ok((i, data)) = rx.try_recv() else { break };
                        self.on_datagram(i as usize, &data, now);
                        n += 1;
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
            }
        }
        let now = clock::now();
        let window = Duration::from_secs(3).max(self.args.ping_interval * 3);
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if self.was_connected(i)
                && s.client.as_ref().is_some_and(|c| c.is_connected())
                && s.last_reply
                    .is_some_and(|r| now.saturating_duration_since(r) <= window)
            {
                self.res.held += 1;
            }
        }
        self.res
    }
}

fn send(sock: &UdpSocket, data: &[u8], errors: &mut u64) {
    // Datagrams to one veth peer: the socket buffer does not fill at these rates; a full one
    // counts as a lost datagram, which the protocol's retransmissions cover.
    if sock.try_send(data).is_err() {
        *errors += 1;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))
}

async fn run(args: Args) -> Result<(), String> {
    let args = Arc::new(args);
    let profile = load_profile(&args.profile).map_err(|e| e.to_string())?;
    let remote = profile
        .remotes
        .first()
        .ok_or("the profile has no remote")?
        .clone();
    if remote.proto.is_tcp() {
        return Err("only UDP remotes are supported".into());
    }
    let server = resolve(&remote.host, remote.port).await?;
    let mut cfg = ClientConfig::from_profile(
        &profile,
        None,
        ClientTlsOptions::default(),
        server.is_ipv6(),
        false,
        clock::unix_seconds(),
        system_rng(),
    )
    .map_err(|e| format!("{}: {e}", args.profile.display()))?;
    // Every simulated client is a different client: no TLS session resumption between them.
    let mut tls = (*cfg.tls).clone();
    tls.resumption = rustls::client::Resumption::disabled();
    cfg.tls = Arc::new(tls);

    raise_nofile();
    let shared = Arc::new(Shared {
        connected_once: AtomicUsize::new(0),
        connected_now: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let t0 = clock::now() + Duration::from_millis(200);
    let n = args.clients;
    let mut handles = Vec::new();
    for shard_idx in 0..args.shards {
        let (tx, rx) = mpsc::channel::<(u32, Vec<u8>)>(8192);
        let mut shard = Shard {
            cfg: cfg.clone(),
            slots: Vec::new(),
            heap: BinaryHeap::new(),
            shared: shared.clone(),
            args: args.clone(),
            res: ShardResult::default(),
            out: Vec::with_capacity(2048),
            pkt: Vec::with_capacity(2048),
        };
        // Client k (global order) belongs to shard k % shards and starts at t0 + k / rate.
        for k in (shard_idx..n).step_by(args.shards) {
            let sock = std::net::UdpSocket::bind(SocketAddr::new(args.bind, 0))
                .map_err(|e| format!("binding client socket {k}: {e}"))?;
            sock.connect(server)
                .map_err(|e| format!("connect client socket {k}: {e}"))?;
            sock.set_nonblocking(true).map_err(|e| e.to_string())?;
            let sock = Arc::new(UdpSocket::from_std(sock).map_err(|e| e.to_string())?);
            let local = shard.slots.len() as u32;
            let reader = sock.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(len) = reader.recv(&mut buf).await {
                    if tx.send((local, buf[..len].to_vec())).await.is_err() {
                        break;
                    }
                }
            });
            shard.slots.push(Slot {
                sock,
                client: None,
                generation: 0,
                scheduled: None,
                first_start: None,
                attempt_start: t0,
                first_connect: None,
                up: false,
                tun_ip: Ipv4Addr::UNSPECIFIED,
                target: Ipv4Addr::UNSPECIFIED,
                ident: (k as u16).wrapping_add(1),
                seq: 0,
                last_reply: None,
            });
            let at = t0 + Duration::from_secs_f64(k as f64 / args.rate);
            let slot = shard.slots.len() - 1;
            shard.push(at, slot, Kind::Start);
        }
        drop(tx);
        handles.push(tokio::spawn(shard.run(rx)));
    }

    // Ramp, then wait for everyone (bounded), then hold.
    let ramp_end = t0 + Duration::from_secs_f64((n as f64 - 1.0).max(0.0) / args.rate);
    let connect_end = ramp_end + args.connect_timeout;
    eprintln!(
        "server_load: {} clients to {server}, {} handshakes/s ({:.1} s ramp), hold {:?}",
        n,
        args.rate,
        ramp_end.saturating_duration_since(t0).as_secs_f64(),
        args.duration
    );
    let cpu0 = cpu_seconds();
    let progress = |phase: &str| {
        eprintln!(
            "  {:>6.1}s {phase}: connected once {} / now {} / failed attempts {}",
            clock::now().saturating_duration_since(t0).as_secs_f64(),
            shared.connected_once.load(Ordering::Relaxed),
            shared.connected_now.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed)
        )
    };
    let mut last_report = clock::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = clock::now();
        let all = shared.connected_once.load(Ordering::Relaxed) >= n;
        if all || now >= connect_end {
            break;
        }
        if now.saturating_duration_since(last_report) >= Duration::from_secs(2) {
            last_report = now;
            progress("connecting");
        }
    }
    progress("ramp over");
    let hold_end = clock::now() + args.duration;
    while clock::now() < hold_end {
        tokio::time::sleep(Duration::from_secs(2).min(hold_end - clock::now())).await;
        progress("holding");
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut total = ShardResult::default();
    for h in handles {
        let r = h.await.map_err(|e| e.to_string())?;
        total.connects.extend(r.connects);
        total.first_start = match (total.first_start, r.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        total.held += r.held;
        total.failed += r.failed;
        total.lost += r.lost;
        total.pings += r.pings;
        total.replies += r.replies;
        total.send_errors += r.send_errors;
    }
    let cpu = cpu_seconds() - cpu0;

    let connected = total.connects.len();
    let first = total.first_start.unwrap_or(t0);
    let last_connect = total.connects.iter().map(|&(_, c)| c).max();
    let mut lat: Vec<f64> = total
        .connects
        .iter()
        .map(|&(s, c)| c.saturating_duration_since(s).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    let span = last_connect
        .map(|l| l.saturating_duration_since(first).as_secs_f64())
        .unwrap_or(0.0);
    let hs_per_s = if span > 0.0 {
        connected as f64 / span
    } else {
        0.0
    };
    let time_to_all = if connected == n {
        format!("{span:.2}")
    } else {
        "NA".into()
    };
    println!(
        "RESULT impl={} clients={n} rate={} connected={connected} hs_per_s={hs_per_s:.1} \
         time_to_all_s={time_to_all} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} held={} failed={} \
         lost={} pings={} replies={} send_errors={} client_cpu_s={cpu:.2}",
        args.impl_name,
        args.rate,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        total.held,
        total.failed,
        total.lost,
        total.pings,
        total.replies,
        total.send_errors,
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.shards)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server_load: {e}");
            ExitCode::FAILURE
        }
    }
}
