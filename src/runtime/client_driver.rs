//! The tunnel-mode client shell: resolves remotes, opens transports, drives
//! [`crate::proto::client::Client`] sessions, reconnects with backoff, and configures the TUN
//! device from the push.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::sync::watch;
use tracing::{error, info, warn};

use ferrovpn_platform::RecvBatch;

use super::client_scripts::{ClientScripts, TunnelFacts};
use super::clock;
use super::datagram_batch::{RxQueue, TxQueue};
use super::device::Device;
use super::drop_report::DropReport;
use super::management::client_state::State;
use super::management::{ClientEvents, ClientManagementConfig};
use super::netcfg::NetPlan;
use super::rng::system_rng;
use super::transport::Transport;
use crate::config::{AuthRetry, Profile, Proto, Remote};
use crate::proto::client::{Client, ClientConfig, ClientError, Credentials, Event};
use crate::proto::tls::ClientTlsOptions;

/// Options of `ferrovpn connect` that are not in the profile.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--no-server-eku-check`.
    pub no_server_eku_check: bool,
    /// `--legacy-key-derivation`.
    pub legacy_key_derivation: bool,
    /// `--dev NAME`: TUN device name.
    pub dev: Option<String>,
    /// Where the DNS backup lives (crash recovery).
    pub state_dir: Option<PathBuf>,
    /// The management interface to start (`management ...`), if any.
    pub management: Option<ClientManagementConfig>,
    /// Its handle once started (set by [`run_with`]).
    pub events: ClientEvents,
    /// The profile's `up`/`route-up`/`down` scripts (set by [`run_with`], tunnel mode only).
    pub scripts: Option<std::sync::Arc<ScriptState>>,
}

/// The hook scripts and what the last `up` was told (for `down`).
#[derive(Debug)]
pub struct ScriptState {
    scripts: ClientScripts,
    last: std::sync::Mutex<Option<TunnelFacts>>,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// SIGINT/SIGTERM or HALT: clean stop.
    Stopped,
    /// A fatal error: exit non-zero with this message.
    Failed(String),
}

enum SessionEnd {
    /// Stop the program (signal, HALT, AUTH_FAILED...).
    Stop(Outcome),
    /// Reconnect (to the next remote when `advance`).
    Reconnect { reason: String, advance: bool },
    /// Reconnect after `wait` (`AUTH_FAILED,TEMP` with a backoff).
    RetryAfter {
        reason: String,
        wait: std::time::Duration,
        advance: bool,
    },
    /// `AUTH_FAILED,CRV1`: answer the question, then reconnect at once with these credentials.
    Challenge {
        username: String,
        state: String,
        text: String,
        echo: bool,
    },
    /// `AUTH_FAILED` with `auth-retry nointeract|interact`: try again (asking for the
    /// credentials again when `ask`).
    AuthRetry { reason: String, ask: bool },
}

/// Per-network-namespace state directory, so clients in different namespaces never share a
/// DNS backup.
fn default_state_dir() -> PathBuf {
    let ns = std::fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|p| {
            p.to_str().map(|s| {
                s.trim_start_matches("net:[")
                    .trim_end_matches(']')
                    .to_owned()
            })
        })
        .unwrap_or_else(|| "default".into());
    let base = if is_root() {
        PathBuf::from("/run/ferrovpn")
    } else {
        std::env::temp_dir().join("ferrovpn")
    };
    base.join(format!("net-{ns}"))
}

fn is_root() -> bool {
    // The real uid from /proc, so no libc call is needed.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs `ferrovpn connect` until stopped (SIGINT/SIGTERM).
pub async fn run(
    profile: Profile,
    credentials: Option<Credentials>,
    opts: ConnectOptions,
) -> Outcome {
    let state_dir = opts.state_dir.clone().unwrap_or_else(default_state_dir);
    match ferrovpn_platform::recover_dns(&state_dir) {
        Ok(true) => warn!(
            "restored /etc/resolv.conf left modified by an earlier run that did not exit cleanly"
        ),
        Ok(false) => {}
        Err(e) => warn!("checking for DNS left by an earlier run: {e}"),
    }
    if profile.static_key.is_some() {
        return super::p2p_driver::run(profile, opts, state_dir).await;
    }
    let stop = match super::signals::stop_on_signals() {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e),
    };
    let device = Device::tun(opts.dev.clone(), profile.layer2, true, state_dir);
    run_with(profile, credentials, opts, device, stop, None).await
}

/// Tunnel state published to whoever serves traffic over it (proxy mode, `exec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelState {
    /// Connecting or reconnecting.
    Down,
    /// Initialization Sequence Completed.
    Up,
}

/// Runs sessions over `device` until `stop` turns true or a fatal error.
pub async fn run_with(
    profile: Profile,
    mut credentials: Option<Credentials>,
    mut opts: ConnectOptions,
    mut device: Device,
    stop: watch::Receiver<bool>,
    state_tx: Option<watch::Sender<TunnelState>>,
) -> Outcome {
    let events = match ClientEvents::start(opts.management.clone()).await {
        Ok(e) => e,
        Err(e) => return Outcome::Failed(e),
    };
    opts.events = events.clone();
    match ClientScripts::from_profile(&profile) {
        Ok(Some(s)) if matches!(device, Device::Tun(_)) => {
            opts.scripts = Some(std::sync::Arc::new(ScriptState {
                scripts: s,
                last: std::sync::Mutex::new(None),
            }));
        }
        Ok(Some(_)) => warn!("up/route-up/down scripts are not run in proxy mode (no device)"),
        Ok(None) => {}
        Err(e) => return Outcome::Failed(format!("{}: {e}", profile.source.display())),
    }
    let mut stop = events.merge_stop(stop);
    if let Some((path, every)) = profile.status.clone() {
        tokio::spawn(super::health::client_status_file(path, every, stop.clone()));
    }
    if !events.hold(0, &mut stop).await && *stop.borrow() {
        events.exiting("SIGTERM").await;
        return Outcome::Stopped;
    }
    let mut remote_idx = 0usize;
    let mut backoff = super::backoff::Backoff::new();
    let mut auth_token: Option<String> = None;
    let mut credentials_once: Option<Credentials> = None;
    let mut remotes = profile.remotes.clone();
    if profile.remote_random {
        // Fisher-Yates with the system generator.
        let rng = system_rng();
        for i in (1..remotes.len()).rev() {
            let mut b = [0u8; 4];
            rng(&mut b);
            let j = u32::from_le_bytes(b) as usize % (i + 1);
            remotes.swap(i, j);
        }
    }
    let outcome = loop {
        if credentials.is_none() && profile.auth_user_pass.is_some() && events.is_active() {
            let user = match &profile.auth_user_pass {
                Some(crate::config::AuthUserPass::File { username, .. }) => Some(username.clone()),
                _ => None,
            };
            match events
                .query_credentials(user, profile.static_challenge.as_ref(), &mut stop)
                .await
            {
                Some(c) if !profile.auth_nocache => credentials = Some(c),
                Some(c) => credentials_once = Some(c),
                None if *stop.borrow() => break Outcome::Stopped,
                None => {}
            }
        }
        let remote = &remotes[remote_idx % remotes.len()];
        let mut drops = DropReport::new();
        let connects = super::health::METRICS
            .connects
            .load(std::sync::atomic::Ordering::Relaxed);
        let end = session(
            &profile,
            remote,
            credentials_once.take().or(credentials.clone()),
            auth_token.take(),
            &opts,
            &mut device,
            &mut stop,
            state_tx.as_ref(),
            &mut drops,
        )
        .await;
        info!("{}", drops.summary());
        if let Some(tx) = &state_tx {
            let _ = tx.send(TunnelState::Down);
        }
        device.on_down();
        let end = match end {
            (
                SessionEnd::RetryAfter {
                    reason,
                    wait,
                    advance,
                },
                _,
            ) => {
                warn!("{reason}; trying again in {wait:?} as the server asked");
                events.reconnecting("auth-failure");
                if advance {
                    remote_idx += 1;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => break Outcome::Stopped,
                }
                continue;
            }
            (
                SessionEnd::Challenge {
                    username,
                    state,
                    text,
                    echo,
                },
                _,
            ) => {
                info!("the server asks a challenge question (CRV1): {text}");
                match ask(text, echo).await {
                    Ok(answer) => {
                        credentials_once = Some(Credentials {
                            username: zeroize::Zeroizing::new(username),
                            password: zeroize::Zeroizing::new(format!("CRV1::{state}::{answer}")),
                        });
                        continue;
                    }
                    Err(e) => break Outcome::Failed(e),
                }
            }
            (SessionEnd::AuthRetry { reason, ask }, _) => {
                if ask {
                    credentials = None;
                    if !events.is_active() {
                        warn!("{reason}; asking for the credentials again (auth-retry interact)");
                        let p = profile.clone();
                        match tokio::task::spawn_blocking(move || super::credentials::resolve(&p))
                            .await
                        {
                            Ok(Ok(c)) => credentials = c,
                            Ok(Err(e)) => break Outcome::Failed(e),
                            Err(e) => break Outcome::Failed(e.to_string()),
                        }
                    }
                }
                (
                    SessionEnd::Reconnect {
                        reason,
                        advance: false,
                    },
                    None,
                )
            }
            other => other,
        };
        match end {
            (
                SessionEnd::RetryAfter { .. }
                | SessionEnd::AuthRetry { .. }
                | SessionEnd::Challenge { .. },
                _,
            ) => unreachable!(),
            (SessionEnd::Stop(o), _) => break o,
            (SessionEnd::Reconnect { reason, advance }, token) => {
                auth_token = token;
                events.reconnecting(&reason);
                // A restart asked for by a signal is not a failure and has no pause.
                let asked = reason == "SIGUSR1" || reason == "SIGHUP";
                if asked {
                    if !events.hold(1, &mut stop).await && *stop.borrow() {
                        break Outcome::Stopped;
                    }
                    continue;
                }
                // Only one session runs at a time: a new connect is this session's.
                let connected = super::health::METRICS
                    .connects
                    .load(std::sync::atomic::Ordering::Relaxed)
                    > connects;
                backoff.session_ended(connected);
                let failures = backoff.failures();
                if let Some(max) = profile.connect_retry_max
                    && failures >= max * remotes.len() as u32
                {
                    break Outcome::Failed(format!(
                        "giving up after {failures} attempts (connect-retry-max {max}); last error: {reason}"
                    ));
                }
                if advance {
                    remote_idx += 1;
                }
                let delay = backoff.delay(
                    remotes.len(),
                    profile.connect_retry,
                    profile.connect_retry_backoff_max,
                );
                warn!("{reason}; reconnecting in {delay:?}");
                if events.hold(delay.as_secs(), &mut stop).await {
                    continue;
                }
                if *stop.borrow() {
                    break Outcome::Stopped;
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => break Outcome::Stopped,
                }
            }
        }
    };
    device.teardown().await;
    if let Some(ss) = &opts.scripts {
        let last = ss.last.lock().ok().and_then(|mut l| l.take());
        if let Some(f) = last
            && let Err(e) = ss.scripts.down(&f).await
        {
            warn!("{e}");
        }
    }
    let reason = match &outcome {
        Outcome::Failed(m) if m.contains("AUTH_FAILED") => "auth-failure",
        _ => events.stop_reason().unwrap_or("SIGTERM"),
    };
    events.exiting(reason).await;
    outcome
}

/// Asks a challenge question without blocking the runtime's other tasks.
async fn ask(text: String, echo: bool) -> Result<String, String> {
    tokio::task::spawn_blocking(move || super::credentials::challenge_response(&text, echo))
        .await
        .map_err(|e| e.to_string())?
}

/// `remote-random-hostname`: `host` with a random 12-hex-digit label in front (IP addresses
/// are left alone), as OpenVPN does for servers behind wildcard DNS.
fn random_hostname(host: &str, random: &mut dyn FnMut(&mut [u8])) -> String {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return host.to_owned();
    }
    let mut b = [0u8; 6];
    random(&mut b);
    let label: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{label}.{host}")
}

async fn resolve(remote: &Remote, random_label: bool) -> Result<SocketAddr, String> {
    let want_v4 = matches!(remote.proto, Proto::Udp4 | Proto::Tcp4);
    let want_v6 = matches!(remote.proto, Proto::Udp6 | Proto::Tcp6);
    let host = if random_label {
        let rng = system_rng();
        let name = random_hostname(&remote.host, &mut |b| rng(b));
        tracing::debug!("remote-random-hostname: resolving {name}");
        name
    } else {
        remote.host.clone()
    };
    let addrs = tokio::net::lookup_host((host.as_str(), remote.port))
        .await
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?;
    addrs
        .into_iter()
        .find(|a| (!want_v4 || a.is_ipv4()) && (!want_v6 || a.is_ipv6()))
        .ok_or_else(|| format!("'{host}' has no address of the requested family"))
}

#[allow(clippy::too_many_arguments)]
async fn session(
    profile: &Profile,
    remote: &Remote,
    credentials: Option<Credentials>,
    auth_token: Option<String>,
    opts: &ConnectOptions,
    device: &mut Device,
    stop: &mut watch::Receiver<bool>,
    state_tx: Option<&watch::Sender<TunnelState>>,
    drops: &mut DropReport,
) -> (SessionEnd, Option<String>) {
    let reconnect = |reason: String| {
        (
            SessionEnd::Reconnect {
                reason,
                advance: true,
            },
            None,
        )
    };
    let tcp = remote.proto.is_tcp();
    // Through a proxy, `addr` is the proxy's: the peer of the packets and the route exception.
    let (addr, mut transport) = if let Some(proxy) = &remote.proxy {
        info!(
            "connecting to {}:{} through {proxy}",
            remote.host, remote.port
        );
        tokio::select! {
            t = super::upstream::connect(proxy, remote, profile.server_poll_timeout) => match t {
                Ok(t) => t,
                Err(super::upstream::Failure::Retry(e)) => return reconnect(e),
                Err(super::upstream::Failure::Fatal(e)) => {
                    return (SessionEnd::Stop(Outcome::Failed(e)), None)
                }
            },
            _ = stop.wait_for(|s| *s) => return (SessionEnd::Stop(Outcome::Stopped), None),
        }
    } else {
        let addr = match resolve(remote, profile.remote_random_hostname).await {
            Ok(a) => a,
            Err(e) => return reconnect(e),
        };
        tracing::debug!("resolved {addr}");
        info!(
            "connecting to {addr} over {}",
            if tcp { "TCP" } else { "UDP" }
        );
        let transport = tokio::select! {
            t = Transport::connect(addr, tcp, profile.server_poll_timeout) => match t {
                Ok(t) => t,
                Err(e) => return reconnect(format!("cannot reach the server {addr}: {e}")),
            },
            _ = stop.wait_for(|s| *s) => return (SessionEnd::Stop(Outcome::Stopped), None),
        };
        (addr, transport)
    };
    let mev = &opts.events;
    mev.state(State::Wait, "");
    let local = match &transport {
        Transport::Tcp { stream, .. } => stream.local_addr().ok(),
        Transport::Udp(_) | Transport::SocksUdp(_) => None,
    };
    let mut heard = false;
    let mut cfg = match ClientConfig::from_profile(
        profile,
        credentials,
        ClientTlsOptions {
            no_server_eku_check: opts.no_server_eku_check,
            legacy_key_derivation: opts.legacy_key_derivation,
        },
        addr.is_ipv6(),
        tcp,
        clock::unix_seconds(),
        system_rng(),
    ) {
        Ok(c) => c,
        Err(e) => {
            return (
                SessionEnd::Stop(Outcome::Failed(format!(
                    "{}: {e}",
                    profile.source.display()
                ))),
                None,
            );
        }
    };
    cfg.auth_token = auth_token;
    tracing::debug!("session configuration ready");
    let start = clock::now();
    let mut client = match Client::new(cfg, start) {
        Ok(c) => c,
        Err(e) => return (SessionEnd::Stop(Outcome::Failed(e.to_string())), None),
    };
    let mut out = Vec::with_capacity(2048);
    let mut rbuf = Vec::with_capacity(65536);
    let mut pkt = Vec::with_capacity(65536);
    let mut rxq = RxQueue::new(quinn_udp::BATCH_SIZE);
    let mut txq = TxQueue::new();
    let mut tun_rx = RecvBatch::new(client.tun_mtu().max(1500));
    let mut closing = false;
    let mut restarts = super::signals::restart_requests();
    restarts.mark_unchanged();
    // `inactive` / `session-timeout`: checked once a second while the tunnel is up.
    let timed = profile.inactive.is_some() || profile.session_timeout.is_some();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut up_since = None;
    let (mut window_start, mut moved) = (start, 0u64);
    loop {
        let now = clock::now();
        if let Some(w) = drops.update(now, client.stats()) {
            warn!("{w}");
        }
        while client.poll_transmit(now, &mut out) {
            if let Err(e) = transport.send(&out).await
                && !closing
            {
                return reconnect(format!("sending to {addr}: {e}"));
            }
            mev.link_out(out.len());
            super::health::METRICS
                .link_write
                .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        while let Some(ev) = client.poll_event() {
            match ev {
                Event::Connected(push) => {
                    let plan = NetPlan::build(&push, profile, addr.ip());
                    let (v4, v6) = (plan.v4.map(|t| t.0), plan.v6.map(|t| t.0));
                    let routes = !plan.routes_v4.is_empty() || !plan.routes_v6.is_empty();
                    mev.assign_ip(v4, v6);
                    let created = match device.configure(plan, client.tun_mtu()).await {
                        Ok(c) => c,
                        Err(e) => {
                            client.close(clock::now());
                            return (SessionEnd::Stop(Outcome::Failed(e)), None);
                        }
                    };
                    if let (Some(ss), Some(dev)) = (&opts.scripts, device.tun_name()) {
                        let restart = ss.last.lock().is_ok_and(|l| l.is_some());
                        let facts = TunnelFacts {
                            dev,
                            dev_type: if profile.layer2 { "tap" } else { "tun" },
                            tun_mtu: client.tun_mtu(),
                            trusted: addr,
                            push: (*push).clone(),
                            restart,
                        };
                        if created && let Err(e) = ss.scripts.up(&facts).await {
                            client.close(clock::now());
                            return (SessionEnd::Stop(Outcome::Failed(e)), None);
                        }
                        if let Err(e) = ss.scripts.route_up(&facts).await {
                            warn!("{e}");
                        }
                        if let Ok(mut l) = ss.last.lock() {
                            *l = Some(facts);
                        }
                    }
                    if routes {
                        mev.state(State::AddRoutes, "");
                    }
                    info!(
                        "data channel: cipher {}{}, keys from {}, peer-id {:?}",
                        client.cipher().map(|c| c.name()).unwrap_or("?"),
                        client
                            .data_auth()
                            .map(|d| format!(", auth {}", d.name()))
                            .unwrap_or_default(),
                        client.key_derivation(),
                        push.peer_id
                    );
                    info!("Initialization Sequence Completed");
                    up_since = Some(clock::now());
                    (window_start, moved) = (clock::now(), 0);
                    mev.connected(v4, v6, addr, local);
                    let m = &super::health::METRICS;
                    if m.connects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        > 0
                    {
                        m.reconnects
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    m.handshake_ms.store(
                        clock::now().saturating_duration_since(start).as_millis() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    if let Some(tx) = state_tx {
                        let _ = tx.send(TunnelState::Up);
                    }
                }
                Event::Renegotiated { key_id } => {
                    info!("renegotiation complete, new data key id {key_id}")
                }
                Event::TlsEstablished(d) => info!("control channel: {d}"),
                Event::Info(m) => info!("server: {m}"),
                Event::OpenUrl(url) => {
                    warn!(
                        "authentication pending: open {url} in a browser and log in there; the connection goes on once the server accepts"
                    );
                }
                Event::CrText { echo, text } => {
                    info!("authentication pending: the server asks '{text}'");
                    match ask(text, echo).await {
                        Ok(answer) => client.send_cr_response(clock::now(), &answer),
                        Err(e) => {
                            client.close(clock::now());
                            return (SessionEnd::Stop(Outcome::Failed(e)), None);
                        }
                    }
                }
                Event::Warning(w) => warn!("{w}"),
                Event::Closed(e) => {
                    log_session_counters(&client);
                    if matches!(e, ClientError::AuthFailed(_)) {
                        mev.auth_failed();
                    }
                    let token = client.auth_token().map(|(_, t)| t.to_owned());
                    return end_of_session(e, closing, token, profile.auth_retry);
                }
            }
        }
        let deadline = client.poll_timeout().map(tokio::time::Instant::from_std);
        let connected = client.is_connected();
        let stopping = *stop.borrow();
        if stopping && !closing {
            info!("stopping, sending exit notification");
            client.close(clock::now());
            closing = true;
            continue;
        }
        tokio::select! {
            r = transport.recv_queue(&mut rxq, &mut rbuf) => {
                match r {
                    Ok(()) => {
                        let now = clock::now();
                        if !heard {
                            heard = true;
                            mev.state(State::Auth, "");
                        }
                        let m = &super::health::METRICS;
                        for d in rxq.datagrams() {
                            mev.link_in(d.len());
                            m.link_read.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                            if client.handle_datagram(now, d, &mut pkt) {
                                moved += pkt.len() as u64;
                                m.tun_write.fetch_add(pkt.len() as u64, std::sync::atomic::Ordering::Relaxed);
                                m.auth_read.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                                mev.tun_write(pkt.len(), d.len());
                                device.push(&pkt).await;
                            }
                        }
                        device.flush().await;
                    }
                    Err(e) => {
                        log_session_counters(&client);
                        if closing { return end_of_session(ClientError::LocallyClosed, true, None, profile.auth_retry) }
                        let token = client.auth_token().map(|(_, t)| t.to_owned());
                        return (SessionEnd::Reconnect { reason: format!("connection to {addr} lost: {e}"), advance: false }, token);
                    }
                }
            }
            r = device.recv_batch(&mut tun_rx), if connected && !closing => {
                match r {
                    Ok(n) => {
                        let now = clock::now();
                        let mut moved_now = 0u64;
                        for i in 0..n {
                            let p = tun_rx.packet_mut(i);
                            moved += p.len() as u64;
                            moved_now += p.len() as u64;
                            mev.tun_read(p.len());
                            if client.encapsulate(now, p, &mut out) {
                                txq.push(&out);
                            }
                        }
                        let bytes = txq.bytes();
                        let m = &super::health::METRICS;
                        m.link_write.fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
                        m.tun_read.fetch_add(moved_now, std::sync::atomic::Ordering::Relaxed);
                        if let Err(e) = transport.send_queue(&mut txq).await {
                            let token = client.auth_token().map(|(_, t)| t.to_owned());
                            return (SessionEnd::Reconnect { reason: format!("sending to {addr}: {e}"), advance: false }, token);
                        }
                        mev.link_out(bytes);
                    }
                    Err(e) => {
                        error!("reading the packet device: {e}");
                        client.close(clock::now());
                        closing = true;
                    }
                }
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                client.handle_timeout(clock::now());
            }
            _ = stop.wait_for(|s| *s), if !closing => {}
            _ = tick.tick(), if timed && connected && !closing => {
                let now = clock::now();
                let expired = up_since.zip(profile.session_timeout).is_some_and(|(t0, limit)| now.saturating_duration_since(t0) >= limit);
                let idle = profile.inactive.is_some_and(|(secs, bytes)| {
                    if now.saturating_duration_since(window_start) < secs {
                        return false;
                    }
                    let idle = moved < bytes.max(1);
                    (window_start, moved) = (now, 0);
                    idle
                });
                if expired || idle {
                    info!("{}, disconnecting and exiting", if expired { "session-timeout reached" } else { "no traffic for the 'inactive' period" });
                    client.close(now);
                    closing = true;
                }
            }
            Ok(()) = restarts.changed(), if !closing => {
                let reason = restarts.borrow_and_update().1;
                let token = client.auth_token().map(|(_, t)| t.to_owned());
                return (SessionEnd::Reconnect { reason: reason.into(), advance: false }, token);
            }
            sig = mev.restart_requested(), if !closing => {
                let reason = if sig == super::management::client::Signal::Hup { "SIGHUP" } else { "SIGUSR1" };
                info!("{reason} received from the management interface, restarting");
                let token = client.auth_token().map(|(_, t)| t.to_owned());
                return (SessionEnd::Reconnect { reason: reason.into(), advance: false }, token);
            }
        }
    }
}

/// Logs what a test or an admin wants to know at the end of a session: compressed traffic.
fn log_session_counters(client: &Client) {
    let c = client.stats().compression;
    if c.any() {
        info!("compression: {c}");
    }
}

fn end_of_session(
    e: ClientError,
    closing: bool,
    token: Option<String>,
    auth_retry: AuthRetry,
) -> (SessionEnd, Option<String>) {
    if closing || matches!(e, ClientError::LocallyClosed) {
        return (SessionEnd::Stop(Outcome::Stopped), None);
    }
    match &e {
        ClientError::AuthFailed(_) if auth_retry != AuthRetry::None => (
            SessionEnd::AuthRetry {
                reason: e.to_string(),
                ask: auth_retry == AuthRetry::Interact,
            },
            None,
        ),
        ClientError::AuthFailed(_) => (SessionEnd::Stop(Outcome::Failed(e.to_string())), None),
        ClientError::Challenge {
            echo,
            state,
            username,
            text,
        } => (
            SessionEnd::Challenge {
                username: username.clone(),
                state: state.clone(),
                text: text.clone(),
                echo: *echo,
            },
            None,
        ),
        ClientError::AuthFailedTemp {
            backoff: Some(wait),
            advance,
            ..
        } => (
            SessionEnd::RetryAfter {
                reason: e.to_string(),
                wait: *wait,
                advance: *advance,
            },
            None,
        ),
        ClientError::AuthFailedTemp { advance, .. } => (
            SessionEnd::Reconnect {
                reason: e.to_string(),
                advance: *advance,
            },
            None,
        ),
        ClientError::ServerHalt(_) => {
            error!("{e}");
            (SessionEnd::Stop(Outcome::Stopped), None)
        }
        ClientError::PingExit(_) => (SessionEnd::Stop(Outcome::Failed(e.to_string())), None),
        ClientError::Tls(_) | ClientError::NoCipher(_) | ClientError::Push(_) => {
            // Configuration mismatches: log loudly, keep retrying like OpenVPN does.
            error!("{e}");
            (
                SessionEnd::Reconnect {
                    reason: e.to_string(),
                    advance: true,
                },
                None,
            )
        }
        ClientError::TokenExpired(_) => (
            SessionEnd::Reconnect {
                reason: e.to_string(),
                advance: false,
            },
            None,
        ),
        ClientError::NoResponse(_) | ClientError::HandshakeTimeout(..) => (
            SessionEnd::Reconnect {
                reason: e.to_string(),
                advance: true,
            },
            None,
        ),
        _ => (
            SessionEnd::Reconnect {
                reason: e.to_string(),
                advance: false,
            },
            token,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::random_hostname;

    #[test]
    fn random_hostname_prefixes_names_not_addresses() {
        let mut n = 0u8;
        let mut fake = |b: &mut [u8]| {
            for x in b.iter_mut() {
                n += 1;
                *x = n;
            }
        };
        assert_eq!(
            random_hostname("vpn.example.org", &mut fake),
            "010203040506.vpn.example.org"
        );
        assert_eq!(random_hostname("198.18.0.1", &mut fake), "198.18.0.1");
        assert_eq!(random_hostname("2001:db8::1", &mut fake), "2001:db8::1");
    }
}
