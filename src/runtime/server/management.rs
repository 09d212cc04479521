//! The OpenVPN management interface (`management IP port` / `management path unix`), server mode.
//!
//! Line-oriented text protocol, replies end with `\r\n`, wording as OpenVPN 2.6 (see its
//! `doc/management-notes.txt`). Several management clients may be connected at once (OpenVPN
//! allows one); each has its own `log`/`state`/`bytecount` settings.
//!
//! Supported: `help`, `version`, `pid`, `status [n]`, `state [on|off] [N|all]`,
//! `log [on|off] [N|all]`, `echo …` (always empty), `kill cn`, `kill IP:port`,
//! `client-kill CID [msg]`, `bytecount n`, `load-stats`, `signal s`, `verb [n]`, `mute [n]`,
//! `hold [on|off|release]`, `quit`/`exit`.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use super::control::{KillTarget, ServerControl};
use super::scripts::split_words;
use super::status::{StatusVersion, TITLE, render_status, unix_secs, wall_now};

/// Where the management interface listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagementListen {
    /// A TCP address, bound exactly as given (normally `127.0.0.1:port`).
    Tcp(SocketAddr),
    /// A Unix-domain socket path (`management /path unix`).
    Unix(PathBuf),
}

/// Management interface settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagementConfig {
    /// Listening address.
    pub listen: ManagementListen,
    /// Password clients must enter first (the management pw-file's first line).
    pub password: Option<String>,
    /// Initial `verb` level reported by `verb`.
    pub verb: u32,
    /// Addresses shown in the `state` line.
    pub state: StateInfo,
}

/// The addresses in the server's `CONNECTED` state line:
/// `time,CONNECTED,SUCCESS,tun_ip,,,local_ip,local_port,tun_ipv6`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateInfo {
    /// The server's tunnel IPv4 address.
    pub tun_ip: Option<Ipv4Addr>,
    /// The transport address the server listens on.
    pub local: Option<SocketAddr>,
    /// The server's tunnel IPv6 address.
    pub tun_ipv6: Option<Ipv6Addr>,
}

/// A bound management listener; [`serve_management_on`] serves it.
#[derive(Debug)]
pub struct ManagementListener {
    inner: Listener,
}

/// A bounded, cheaply cloneable log history with real-time subscribers, feeding the `log`
/// command. The server driver pushes every log line into it.
#[derive(Clone, Debug)]
pub struct LogRing {
    inner: Arc<LogRingInner>,
}

/// One log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// When it was logged.
    pub time: SystemTime,
    /// OpenVPN's flag: `F` fatal, `N` non-fatal error, `W` warning, `I` info, `D` debug; any
    /// other character (e.g. `' '`) prints as an empty flag field.
    pub flags: char,
    /// The message (line breaks are printed as spaces).
    pub message: String,
}

impl ManagementConfig {
    /// Settings with `verb 1` and no state addresses.
    pub fn new(listen: ManagementListen, password: Option<String>) -> Self {
        Self {
            listen,
            password,
            verb: 1,
            state: StateInfo::default(),
        }
    }
}

impl ManagementListener {
    /// Binds the configured address. A stale Unix socket file is removed first (anything else
    /// at that path is an error).
    pub async fn bind(listen: &ManagementListen) -> io::Result<Self> {
        let inner = match listen {
            ManagementListen::Tcp(addr) => Listener::Tcp(TcpListener::bind(addr).await?),
            ManagementListen::Unix(path) => {
                use std::os::unix::fs::FileTypeExt as _;
                match std::fs::symlink_metadata(path) {
                    Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
                    Ok(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{} exists and is not a socket", path.display()),
                        ));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                Listener::Unix(UnixListener::bind(path)?, path.clone())
            }
        };
        Ok(Self { inner })
    }

    /// The bound TCP address (`None` for a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.inner {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }
}

/// Binds `cfg.listen` and serves management clients until `stop` turns true (or its sender is
/// dropped). Open sessions are closed and a Unix socket file is removed at stop.
pub async fn serve_management(
    cfg: ManagementConfig,
    control: Arc<dyn ServerControl>,
    log: LogRing,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = ManagementListener::bind(&cfg.listen).await?;
    serve_management_on(listener, cfg, control, log, stop).await
}

/// Serves an already bound listener (see [`ManagementListener::bind`]); otherwise as
/// [`serve_management`].
pub async fn serve_management_on(
    listener: ManagementListener,
    cfg: ManagementConfig,
    control: Arc<dyn ServerControl>,
    log: LogRing,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        verb: AtomicU32::new(cfg.verb),
        mute: AtomicU32::new(0),
        cfg,
        control,
        log,
    });
    let mut sessions = JoinSet::new();
    let result = loop {
        while sessions.try_join_next().is_some() {}
        if *stop.borrow_and_update() {
            break Ok(());
        }
        let accepted = tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    break Ok(());
                }
                continue;
            }
            accepted = listener.inner.accept() => accepted,
        };
        match accepted {
            Ok(Accepted::Tcp(stream, peer)) => {
                tracing::info!("MANAGEMENT: Client connected from {peer}");
                sessions.spawn(session(stream, shared.clone(), stop.clone()));
            }
            Ok(Accepted::Unix(stream)) => {
                tracing::info!("MANAGEMENT: Client connected from unix socket");
                sessions.spawn(session(stream, shared.clone(), stop.clone()));
            }
            // Per-connection failures (aborted handshakes, fd exhaustion) must not end the
            // interface; back off briefly so a persistent error does not spin.
            Err(e) => {
                tracing::warn!("MANAGEMENT: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Sessions see `stop` too; give them a moment to say goodbye before aborting them.
    let drain = async { while sessions.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    sessions.shutdown().await;
    if let Listener::Unix(_, path) = &listener.inner {
        let _ = std::fs::remove_file(path);
    }
    result
}

impl LogRing {
    /// A ring keeping the last `capacity` lines (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(LogRingInner {
                capacity,
                entries: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
                tx,
            }),
        }
    }

    /// Appends a line and forwards it to real-time subscribers.
    pub fn push(&self, time: SystemTime, flags: char, message: impl Into<String>) {
        let entry = LogEntry {
            time,
            flags,
            message: message.into(),
        };
        {
            let mut entries = self.entries();
            if entries.len() == self.inner.capacity {
                entries.pop_front();
            }
            entries.push_back(entry.clone());
        }
        // No subscribers is not an error.
        let _ = self.inner.tx.send(entry);
    }

    /// The newest `n` lines, oldest first (`None`: all of them).
    pub fn history(&self, n: Option<usize>) -> Vec<LogEntry> {
        let entries = self.entries();
        let skip = n.map_or(0, |n| entries.len().saturating_sub(n));
        entries.iter().skip(skip).cloned().collect()
    }

    /// A receiver of lines pushed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogEntry> {
        self.inner.tx.subscribe()
    }

    /// OpenVPN's flag for a tracing level.
    pub fn flag_for(level: &tracing::Level) -> char {
        match *level {
            tracing::Level::ERROR => 'N',
            tracing::Level::WARN => 'W',
            tracing::Level::INFO => 'I',
            tracing::Level::DEBUG => 'D',
            _ => ' ',
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, VecDeque<LogEntry>> {
        // A panic while holding the lock leaves a consistent deque; keep using it.
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl LogEntry {
    /// `time,flags,message` as in `log` history (real-time lines prefix `>LOG:`).
    pub fn render(&self) -> String {
        let flags = if self.flags.is_ascii_alphabetic() {
            self.flags.to_string()
        } else {
            String::new()
        };
        let message = self.message.replace(['\r', '\n'], " ");
        format!("{},{flags},{message}", unix_secs(self.time))
    }
}

#[derive(Debug)]
struct LogRingInner {
    capacity: usize,
    entries: Mutex<VecDeque<LogEntry>>,
    tx: broadcast::Sender<LogEntry>,
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

impl Listener {
    async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Self::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
            Self::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

struct Shared {
    cfg: ManagementConfig,
    control: Arc<dyn ServerControl>,
    log: LogRing,
    verb: AtomicU32,
    mute: AtomicU32,
}

/// Per-connection settings.
struct Session {
    authenticated: bool,
    password_tries: u32,
    bytecount: Option<tokio::time::Interval>,
    log_rx: Option<broadcast::Receiver<LogEntry>>,
    state_realtime: bool,
    quit: bool,
}

/// One management client, until it quits, disconnects, fails the password three times, or the
/// interface stops.
async fn session<S>(stream: S, shared: Arc<Shared>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(stream);
    // Lines are read by a separate task so the select below stays cancel-safe.
    let (line_tx, mut lines) = mpsc::channel::<String>(16);
    let reader = tokio::spawn(read_lines(rd, line_tx));
    let mut s = Session {
        authenticated: shared.cfg.password.is_none(),
        password_tries: 0,
        bytecount: None,
        log_rx: None,
        state_realtime: false,
        quit: false,
    };
    let mut out = String::new();
    if s.authenticated {
        push_line(&mut out, GREETING);
    } else {
        out.push_str("ENTER PASSWORD:");
    }
    while !s.quit {
        if !out.is_empty() {
            if wr.write_all(out.as_bytes()).await.is_err() {
                break;
            }
            out.clear();
        }
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    if s.state_realtime {
                        let t = unix_secs(wall_now());
                        push_line(&mut out, &format!(">STATE:{t},EXITING,SIGTERM,,,,,"));
                    }
                    break;
                }
            }
            line = lines.recv() => match line {
                Some(line) => handle_line(&shared, &mut s, &line, &mut out),
                None => break,
            },
            _ = tick(&mut s.bytecount) => {
                for c in shared.control.clients() {
                    push_line(
                        &mut out,
                        &format!(">BYTECOUNT_CLI:{},{},{}", c.client_id, c.bytes_received, c.bytes_sent),
                    );
                }
            }
            entry = next_log(&mut s.log_rx) => match entry {
                Ok(e) => push_line(&mut out, &format!(">LOG:{}", e.render())),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => s.log_rx = None,
            },
        }
    }
    let _ = wr.write_all(out.as_bytes()).await;
    let _ = wr.shutdown().await;
    reader.abort();
    tracing::info!("MANAGEMENT: Client disconnected");
}

async fn read_lines<R: AsyncRead + Unpin>(rd: R, tx: mpsc::Sender<String>) {
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
        match (&mut rd).take(limit).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) if buf.last() != Some(&b'\n') && buf.len() >= MAX_LINE => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if tx.send(line).await.is_err() {
            return;
        }
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn next_log(
    rx: &mut Option<broadcast::Receiver<LogEntry>>,
) -> Result<LogEntry, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

fn handle_line(shared: &Shared, s: &mut Session, line: &str, out: &mut String) {
    if !s.authenticated {
        check_password(shared, s, line, out);
        return;
    }
    let words = match split_words(line) {
        Ok(w) => w,
        Err(_) => {
            push_line(out, "ERROR: unterminated quote");
            return;
        }
    };
    let Some((cmd, args)) = words.split_first() else {
        return;
    };
    tracing::debug!("MANAGEMENT: CMD '{line}'");
    command(shared, s, cmd, args, out);
}

fn check_password(shared: &Shared, s: &mut Session, line: &str, out: &mut String) {
    let expected = shared.cfg.password.as_deref().unwrap_or_default();
    if aws_lc_rs::constant_time::verify_slices_are_equal(line.as_bytes(), expected.as_bytes())
        .is_ok()
    {
        s.authenticated = true;
        push_line(out, "SUCCESS: password is correct");
        push_line(out, GREETING);
        return;
    }
    push_line(out, "ERROR: bad password");
    s.password_tries += 1;
    if s.password_tries >= PASSWORD_TRIES {
        tracing::warn!(
            "MAN: client connection rejected after {PASSWORD_TRIES} failed password attempts"
        );
        s.quit = true;
    } else {
        out.push_str("ENTER PASSWORD:");
    }
}

fn command(shared: &Shared, s: &mut Session, cmd: &str, args: &[String], out: &mut String) {
    let arg = |i: usize| args.get(i).map(String::as_str);
    match cmd {
        "help" => {
            push_line(out, &format!("Management Interface for {TITLE}"));
            push_line(out, "Commands:");
            for l in HELP {
                push_line(out, l);
            }
            push_line(out, "END");
        }
        "version" => {
            // `version n` (the client announcing its version) gets no reply in OpenVPN 2.6.
            if args.is_empty() {
                push_line(out, &format!("OpenVPN Version: {TITLE}"));
                push_line(out, &format!("Management Version: {MANAGEMENT_VERSION}"));
                push_line(out, "END");
            }
        }
        "pid" => push_line(out, &format!("SUCCESS: pid={}", std::process::id())),
        "status" => {
            let n = arg(0).map_or(1, atoi);
            let version = if n == 0 {
                Some(StatusVersion::V1)
            } else {
                u32::try_from(n).ok().and_then(StatusVersion::from_number)
            };
            let Some(version) = version else {
                push_line(out, "ERROR: bad status format version number");
                return;
            };
            let text = render_status(
                version,
                &shared.control.clients(),
                &shared.control.routes(),
                wall_now(),
            );
            for line in text.lines() {
                push_line(out, line);
            }
        }
        "state" => {
            let lines = state_history(shared);
            if args.is_empty() {
                history(s, &shared.log, "state", "1", &lines, out);
            }
            for a in args.iter().take(2) {
                history(s, &shared.log, "state", a, &lines, out);
            }
        }
        "log" => {
            if args.is_empty() {
                need(out, cmd, 1, true);
                return;
            }
            for a in args.iter().take(2) {
                let lines = match a.as_str() {
                    "on" | "off" => Vec::new(),
                    "all" => render_log(shared.log.history(None)),
                    n => render_log(shared.log.history(usize::try_from(atoi(n)).ok())),
                };
                history(s, &shared.log, "log", a, &lines, out);
            }
        }
        "echo" => {
            if args.is_empty() {
                need(out, cmd, 1, true);
                return;
            }
            for a in args.iter().take(2) {
                history(s, &shared.log, "echo", a, &[], out);
            }
        }
        "kill" => match arg(0) {
            Some(target) => kill(shared, target, out),
            None => need(out, cmd, 1, false),
        },
        "client-kill" => {
            let Some(cid) = arg(0) else {
                need(out, cmd, 1, true);
                return;
            };
            let Ok(cid) = cid.parse::<u64>() else {
                push_line(out, "ERROR: cannot parse CID");
                return;
            };
            let message = arg(1).map(str::to_owned);
            if shared.control.kill(KillTarget::ClientId(cid), message) > 0 {
                push_line(out, "SUCCESS: client-kill command succeeded");
            } else {
                push_line(out, "ERROR: client-kill command failed");
            }
        }
        "bytecount" => {
            let Some(n) = arg(0) else {
                need(out, cmd, 1, false);
                return;
            };
            s.bytecount = u64::try_from(atoi(n)).ok().filter(|&n| n > 0).map(|n| {
                let period = Duration::from_secs(n);
                tokio::time::interval_at(tokio::time::Instant::now() + period, period)
            });
            push_line(out, "SUCCESS: bytecount interval changed");
        }
        "load-stats" => {
            let clients = shared.control.clients();
            let bytes_in: u64 = clients.iter().map(|c| c.bytes_received).sum();
            let bytes_out: u64 = clients.iter().map(|c| c.bytes_sent).sum();
            push_line(
                out,
                &format!(
                    "SUCCESS: nclients={},bytesin={bytes_in},bytesout={bytes_out}",
                    clients.len()
                ),
            );
        }
        "signal" => {
            let Some(name) = arg(0) else {
                need(out, cmd, 1, false);
                return;
            };
            if !SIGNALS.contains(&name) {
                push_line(
                    out,
                    &format!("ERROR: signal '{name}' is not a known signal type"),
                );
            } else if shared.control.signal(name) {
                push_line(out, &format!("SUCCESS: signal {name} thrown"));
            } else {
                push_line(out, &format!("ERROR: signal '{name}' is currently ignored"));
            }
        }
        "verb" => match arg(0) {
            None => push_line(
                out,
                &format!("SUCCESS: verb={}", shared.verb.load(Ordering::Relaxed)),
            ),
            Some(n) => match u32::try_from(atoi(n)) {
                Ok(level) if level <= MAX_VERB => {
                    shared.verb.store(level, Ordering::Relaxed);
                    push_line(out, "SUCCESS: verb level changed");
                }
                _ => push_line(out, "ERROR: verb level is out of range"),
            },
        },
        "mute" => match arg(0) {
            None => push_line(
                out,
                &format!("SUCCESS: mute={}", shared.mute.load(Ordering::Relaxed)),
            ),
            Some(n) => match u32::try_from(atoi(n)) {
                Ok(level) => {
                    shared.mute.store(level, Ordering::Relaxed);
                    push_line(out, "SUCCESS: mute level changed");
                }
                Err(_) => push_line(out, "ERROR: mute level is out of range"),
            },
        },
        // The server never holds; accept the commands so GUIs do not stall.
        "hold" => match arg(0) {
            None => push_line(out, "SUCCESS: hold=0"),
            Some("on") => push_line(out, "SUCCESS: hold flag set to ON"),
            Some("off") => push_line(out, "SUCCESS: hold flag set to OFF"),
            Some("release") => push_line(out, "SUCCESS: hold release succeeded"),
            Some(_) => push_line(out, "ERROR: bad hold command parameter"),
        },
        "quit" | "exit" => s.quit = true,
        _ => push_line(out, "ERROR: unknown command, enter 'help' for more options"),
    }
}

/// OpenVPN's shared handler for `log`/`state`/`echo` parameters: `on`, `off`, `all` or `N`.
fn history(
    s: &mut Session,
    log: &LogRing,
    kind: &str,
    parm: &str,
    lines: &[String],
    out: &mut String,
) {
    match parm {
        "on" | "off" => {
            let on = parm == "on";
            match kind {
                "log" => s.log_rx = on.then(|| log.subscribe()),
                "state" => s.state_realtime = on,
                _ => {}
            }
            let word = if on { "ON" } else { "OFF" };
            push_line(
                out,
                &format!("SUCCESS: real-time {kind} notification set to {word}"),
            );
        }
        _ if parm == "all" || atoi(parm) > 0 => {
            let n = if parm == "all" {
                lines.len()
            } else {
                usize::try_from(atoi(parm)).unwrap_or(0)
            };
            for l in &lines[lines.len().saturating_sub(n)..] {
                push_line(out, l);
            }
            push_line(out, "END");
        }
        _ => push_line(
            out,
            &format!("ERROR: {kind} parameter must be 'on' or 'off' or some number n or 'all'"),
        ),
    }
}

fn state_history(shared: &Shared) -> Vec<String> {
    let t = unix_secs(shared.control.started());
    let st = &shared.cfg.state;
    let tun_ip = st.tun_ip.map(|a| a.to_string()).unwrap_or_default();
    let tun_ipv6 = st.tun_ipv6.map(|a| a.to_string()).unwrap_or_default();
    let (local_ip, local_port) = match st.local {
        Some(a) => (a.ip().to_string(), a.port().to_string()),
        None => (String::new(), String::new()),
    };
    vec![
        format!("{t},CONNECTING,,,,,,"),
        format!("{t},ASSIGN_IP,,{tun_ip},,,,,{tun_ipv6}"),
        format!("{t},CONNECTED,SUCCESS,{tun_ip},,,{local_ip},{local_port},{tun_ipv6}"),
    ]
}

fn render_log(entries: Vec<LogEntry>) -> Vec<String> {
    entries.iter().map(LogEntry::render).collect()
}

fn kill(shared: &Shared, target: &str, out: &mut String) {
    let Some((host, port)) = target.rsplit_once(':') else {
        let n = shared
            .control
            .kill(KillTarget::CommonName(target.to_owned()), None);
        if n > 0 {
            push_line(
                out,
                &format!("SUCCESS: common name '{target}' found, {n} client(s) killed"),
            );
        } else {
            push_line(out, &format!("ERROR: common name '{target}' not found"));
        }
        return;
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let Ok(ip) = host.parse::<IpAddr>() else {
        push_line(out, &format!("ERROR: error parsing IP address: {host}"));
        return;
    };
    let Ok(port) = port.parse::<u16>() else {
        push_line(out, &format!("ERROR: port number is out of range: {port}"));
        return;
    };
    let addr = SocketAddr::new(ip, port);
    let n = shared.control.kill(KillTarget::Addr(addr), None);
    if n > 0 {
        push_line(
            out,
            &format!("SUCCESS: {n} client(s) at address {ip}:{port} killed"),
        );
    } else {
        push_line(
            out,
            &format!("ERROR: client at address {ip}:{port} not found"),
        );
    }
}

fn need(out: &mut String, cmd: &str, n: usize, at_least: bool) {
    let at_least = if at_least { "at least " } else { "" };
    let plural = if n > 1 { "s" } else { "" };
    push_line(
        out,
        &format!("ERROR: the '{cmd}' command requires {at_least}{n} parameter{plural}"),
    );
}

/// C `atoi`: leading digits (with sign), 0 if none.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let v = digits[..end].parse::<i64>().unwrap_or(0);
    if neg { -v } else { v }
}

const MANAGEMENT_VERSION: u32 = 5;
const GREETING: &str = ">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info";
const PASSWORD_TRIES: u32 = 3;
const MAX_LINE: usize = 4096;
const MAX_VERB: u32 = 11;
const SIGNALS: [&str; 4] = ["SIGHUP", "SIGTERM", "SIGUSR1", "SIGUSR2"];
const HELP: &[&str] = &[
    "bytecount n            : Show bytes in/out, update every n secs (0=off).",
    "echo [on|off] [N|all]  : Like log, but only show messages in echo buffer.",
    "exit|quit              : Close management session.",
    "help                   : Print this message.",
    "hold [on|off|release]  : Set/show hold flag to on/off state, or",
    "                         release current hold and start tunnel.",
    "kill cn                : Kill the client instance(s) having common name cn.",
    "kill IP:port           : Kill the client instance connecting from IP:port.",
    "load-stats             : Show global server load stats.",
    "log [on|off] [N|all]   : Turn on/off realtime log display",
    "                         + show last N lines or 'all' for entire history.",
    "mute [n]               : Set log mute level to n, or show level if n is absent.",
    "pid                    : Show process ID of the current OpenVPN process.",
    "client-kill CID [M]    : Kill client instance CID with message M (def=RESTART)",
    "signal s               : Send signal s to daemon,",
    "                         s = SIGHUP|SIGTERM|SIGUSR1|SIGUSR2.",
    "state [on|off] [N|all] : Like log, but show state history.",
    "status [n]             : Show current daemon status info using format #n.",
    "verb [n]               : Set log verbosity level to n, or show if n is absent.",
    "version                : Show current version of daemon.",
];

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::UNIX_EPOCH;

    use tokio::net::{TcpStream, UnixStream};

    use super::*;
    use crate::runtime::server::control::{ClientSnapshot, RouteSnapshot, Transport};

    #[derive(Default)]
    struct FakeServer {
        clients: Mutex<Vec<ClientSnapshot>>,
        kills: Mutex<Vec<(KillTarget, Option<String>)>>,
        signals: Mutex<Vec<String>>,
    }

    impl FakeServer {
        fn with_two_clients() -> Arc<Self> {
            let c = |cid: u64, cn: &str, addr: &str, last: u8| ClientSnapshot {
                client_id: cid,
                peer_id: u32::try_from(cid).unwrap(),
                common_name: cn.into(),
                username: None,
                real_addr: addr.parse().unwrap(),
                proto: Transport::Udp,
                virtual_v4: Some(Ipv4Addr::new(198, 18, 50, last)),
                virtual_v6: None,
                bytes_received: 100 + cid,
                bytes_sent: 200 + cid,
                connected_since: UNIX_EPOCH + Duration::from_secs(1_795_321_701),
                cipher: "AES-256-GCM".into(),
            };
            Arc::new(Self {
                clients: Mutex::new(vec![
                    c(3, "client1", "198.18.0.1:49672", 2),
                    c(7, "client2", "198.18.0.1:49046", 3),
                ]),
                ..Self::default()
            })
        }
    }

    impl ServerControl for FakeServer {
        fn clients(&self) -> Vec<ClientSnapshot> {
            self.clients.lock().unwrap().clone()
        }

        fn routes(&self) -> Vec<RouteSnapshot> {
            self.clients()
                .iter()
                .map(|c| RouteSnapshot {
                    virtual_addr: c.virtual_v4.unwrap().to_string(),
                    common_name: c.common_name.clone(),
                    real_addr: c.real_addr,
                    last_ref: c.connected_since,
                })
                .collect()
        }

        fn kill(&self, target: KillTarget, message: Option<String>) -> usize {
            self.kills.lock().unwrap().push((target.clone(), message));
            let mut clients = self.clients.lock().unwrap();
            let before = clients.len();
            clients.retain(|c| match &target {
                KillTarget::ClientId(id) => c.client_id != *id,
                KillTarget::CommonName(cn) => c.common_name != *cn,
                KillTarget::Addr(a) => c.real_addr != *a,
            });
            before - clients.len()
        }

        fn signal(&self, name: &str) -> bool {
            self.signals.lock().unwrap().push(name.to_owned());
            name != "SIGUSR2"
        }

        fn started(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(1_795_321_699)
        }
    }

    struct Client<S> {
        io: BufReader<S>,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
        async fn line(&mut self) -> String {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read_line(&mut line))
                .await
                .expect("reply within 5 s")
                .unwrap();
            assert!(n > 0, "connection closed");
            assert!(line.ends_with("\r\n"), "line not CRLF-terminated: {line:?}");
            line.truncate(line.len() - 2);
            line
        }

        async fn send(&mut self, cmd: &str) {
            self.io
                .get_mut()
                .write_all(format!("{cmd}\n").as_bytes())
                .await
                .unwrap();
        }

        async fn ask(&mut self, cmd: &str) -> String {
            self.send(cmd).await;
            self.line().await
        }

        /// Sends `cmd` and collects lines up to and including `END`.
        async fn ask_block(&mut self, cmd: &str) -> Vec<String> {
            self.send(cmd).await;
            let mut lines = Vec::new();
            loop {
                let l = self.line().await;
                let end = l == "END";
                lines.push(l);
                if end {
                    return lines;
                }
            }
        }

        async fn expect_closed(&mut self) {
            let mut rest = Vec::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read_to_end(&mut rest))
                .await
                .expect("close within 5 s")
                .unwrap();
            assert_eq!(
                n,
                0,
                "unexpected data: {:?}",
                String::from_utf8_lossy(&rest)
            );
        }
    }

    struct Running {
        addr: SocketAddr,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start(control: Arc<FakeServer>, log: LogRing, password: Option<&str>) -> Running {
        let listen = ManagementListen::Tcp("127.0.0.1:0".parse().unwrap());
        let listener = ManagementListener::bind(&listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut cfg = ManagementConfig::new(listen, password.map(str::to_owned));
        cfg.state = StateInfo {
            tun_ip: Some(Ipv4Addr::new(198, 18, 50, 1)),
            local: Some("198.18.0.1:1194".parse().unwrap()),
            tun_ipv6: None,
        };
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(serve_management_on(listener, cfg, control, log, rx));
        Running { addr, stop, task }
    }

    async fn connect(addr: SocketAddr) -> Client<TcpStream> {
        Client {
            io: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    #[tokio::test]
    async fn commands_over_tcp() {
        let control = FakeServer::with_two_clients();
        let log = LogRing::new(100);
        log.push(UNIX_EPOCH + Duration::from_secs(10), 'I', "first");
        log.push(UNIX_EPOCH + Duration::from_secs(11), ' ', "second\nline");
        let srv = start(control.clone(), log.clone(), None).await;
        let mut c = connect(srv.addr).await;

        assert_eq!(c.line().await, GREETING);
        let help = c.ask_block("help").await;
        assert!(
            help[0].starts_with("Management Interface for ferrovpn"),
            "{help:?}"
        );
        assert!(help.iter().any(|l| l.starts_with("kill cn ")), "{help:?}");
        let version = c.ask_block("version").await;
        assert!(
            version[0].starts_with("OpenVPN Version: ferrovpn "),
            "{version:?}"
        );
        assert_eq!(version[1..], ["Management Version: 5", "END"]);
        assert_eq!(
            c.ask("pid").await,
            format!("SUCCESS: pid={}", std::process::id())
        );

        let status = c.ask_block("status 2").await;
        assert!(status[0].starts_with("TITLE,ferrovpn "), "{status:?}");
        assert!(status[2].starts_with("HEADER,CLIENT_LIST,Common Name,Real Address,"));
        assert!(
            status[3].starts_with("CLIENT_LIST,client1,198.18.0.1:49672,198.18.50.2,,103,203,"),
            "{status:?}"
        );
        assert!(
            status[3].ends_with(",1795321701,UNDEF,3,3,AES-256-GCM"),
            "{status:?}"
        );
        assert_eq!(status.len(), 11, "{status:?}");
        let status1 = c.ask_block("status").await;
        assert_eq!(status1[0], "OpenVPN CLIENT LIST");
        assert_eq!(
            c.ask("status 9").await,
            "ERROR: bad status format version number"
        );

        assert_eq!(
            c.ask_block("state").await,
            [
                "1795321699,CONNECTED,SUCCESS,198.18.50.1,,,198.18.0.1,1194,",
                "END"
            ]
        );

        assert_eq!(
            c.ask("kill client1").await,
            "SUCCESS: common name 'client1' found, 1 client(s) killed"
        );
        assert_eq!(
            control.kills.lock().unwrap().last(),
            Some(&(KillTarget::CommonName("client1".into()), None))
        );
        assert_eq!(control.clients().len(), 1);
        assert_eq!(
            c.ask("kill nobody").await,
            "ERROR: common name 'nobody' not found"
        );
        assert_eq!(
            c.ask("kill 1.2.3.4:5").await,
            "ERROR: client at address 1.2.3.4:5 not found"
        );
        assert_eq!(
            c.ask("kill 999.1.1.1:5").await,
            "ERROR: error parsing IP address: 999.1.1.1"
        );
        assert_eq!(
            c.ask("kill").await,
            "ERROR: the 'kill' command requires 1 parameter"
        );
        assert_eq!(
            c.ask("client-kill 3").await,
            "ERROR: client-kill command failed"
        );
        assert_eq!(c.ask("client-kill x").await, "ERROR: cannot parse CID");

        assert_eq!(
            c.ask("bytecount 1").await,
            "SUCCESS: bytecount interval changed"
        );
        let started = tokio::time::Instant::now();
        assert_eq!(c.line().await, ">BYTECOUNT_CLI:7,107,207");
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert_eq!(c.line().await, ">BYTECOUNT_CLI:7,107,207");
        assert_eq!(
            c.ask("bytecount 0").await,
            "SUCCESS: bytecount interval changed"
        );

        assert_eq!(
            c.ask("frobnicate").await,
            "ERROR: unknown command, enter 'help' for more options"
        );
        assert_eq!(
            c.ask("signal SIGHUP").await,
            "SUCCESS: signal SIGHUP thrown"
        );
        assert_eq!(
            c.ask("signal SIGUSR2").await,
            "ERROR: signal 'SIGUSR2' is currently ignored"
        );
        assert_eq!(
            c.ask("signal SIGFOO").await,
            "ERROR: signal 'SIGFOO' is not a known signal type"
        );
        assert_eq!(*control.signals.lock().unwrap(), ["SIGHUP", "SIGUSR2"]);
        assert_eq!(c.ask("verb").await, "SUCCESS: verb=1");
        assert_eq!(c.ask("verb 4").await, "SUCCESS: verb level changed");
        assert_eq!(c.ask("verb").await, "SUCCESS: verb=4");
        assert_eq!(c.ask("mute").await, "SUCCESS: mute=0");
        assert_eq!(c.ask("hold").await, "SUCCESS: hold=0");
        assert_eq!(
            c.ask("load-stats").await,
            "SUCCESS: nclients=1,bytesin=107,bytesout=207"
        );

        assert_eq!(
            c.ask_block("log all").await,
            ["10,I,first", "11,,second line", "END"]
        );
        assert_eq!(c.ask_block("log 1").await, ["11,,second line", "END"]);
        assert_eq!(
            c.ask("log on").await,
            "SUCCESS: real-time log notification set to ON"
        );
        log.push(UNIX_EPOCH + Duration::from_secs(12), 'W', "live");
        assert_eq!(c.line().await, ">LOG:12,W,live");
        assert_eq!(
            c.ask("log off").await,
            "SUCCESS: real-time log notification set to OFF"
        );
        assert_eq!(
            c.ask("log bogus").await,
            "ERROR: log parameter must be 'on' or 'off' or some number n or 'all'"
        );

        c.send("client-kill 7 HALT").await;
        assert_eq!(c.line().await, "SUCCESS: client-kill command succeeded");
        assert_eq!(
            control.kills.lock().unwrap().last(),
            Some(&(KillTarget::ClientId(7), Some("HALT".into())))
        );

        c.send("quit").await;
        c.expect_closed().await;
        srv.stop.send(true).unwrap();
        srv.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn password_and_stop() {
        let srv = start(
            FakeServer::with_two_clients(),
            LogRing::new(4),
            Some("pw 1"),
        )
        .await;
        let mut c = connect(srv.addr).await;
        let mut prompt = [0u8; 15];
        c.io.read_exact(&mut prompt).await.unwrap();
        assert_eq!(&prompt, b"ENTER PASSWORD:");
        c.send("wrong").await;
        assert_eq!(c.line().await, "ERROR: bad password");
        c.io.read_exact(&mut prompt).await.unwrap();
        assert_eq!(&prompt, b"ENTER PASSWORD:");
        // Commands are not run before authentication.
        c.send("pid").await;
        assert_eq!(c.line().await, "ERROR: bad password");
        c.io.read_exact(&mut prompt).await.unwrap();
        c.send("pw 1").await;
        assert_eq!(c.line().await, "SUCCESS: password is correct");
        assert_eq!(c.line().await, GREETING);
        assert!(c.ask("pid").await.starts_with("SUCCESS: pid="));

        // A second client at the same time, failing three times, is dropped.
        let mut d = connect(srv.addr).await;
        d.io.read_exact(&mut prompt).await.unwrap();
        for _ in 0..2 {
            assert_eq!(d.ask("x").await, "ERROR: bad password");
            d.io.read_exact(&mut prompt).await.unwrap();
        }
        assert_eq!(d.ask("x").await, "ERROR: bad password");
        d.expect_closed().await;

        assert_eq!(
            c.ask("state on").await,
            "SUCCESS: real-time state notification set to ON"
        );
        srv.stop.send(true).unwrap();
        let exiting = c.line().await;
        assert!(exiting.starts_with(">STATE:") && exiting.ends_with(",EXITING,SIGTERM,,,,,"));
        c.expect_closed().await;
        srv.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn unix_socket_replaces_stale_file_and_cleans_up() {
        let path = std::env::temp_dir().join(format!("fv-mgmt-{}.sock", std::process::id()));
        // A stale socket from an earlier run.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let cfg = ManagementConfig::new(ManagementListen::Unix(path.clone()), None);
        let (stop, rx) = watch::channel(false);
        let control = FakeServer::with_two_clients();
        let task = tokio::spawn(serve_management(cfg, control, LogRing::new(4), rx));
        let stream = loop {
            if let Ok(s) = UnixStream::connect(&path).await {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut c = Client {
            io: BufReader::new(stream),
        };
        assert_eq!(c.line().await, GREETING);
        assert_eq!(
            c.ask("kill 198.18.0.1:49046").await,
            "SUCCESS: 1 client(s) at address 198.18.0.1:49046 killed"
        );
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
        assert!(!path.exists(), "socket file left behind");

        // A regular file at the path is not deleted.
        std::fs::write(&path, b"keep").unwrap();
        let err = ManagementListener::bind(&ManagementListen::Unix(path.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn log_ring_is_bounded() {
        let ring = LogRing::new(2);
        for i in 0..5u64 {
            ring.push(UNIX_EPOCH + Duration::from_secs(i), 'I', format!("m{i}"));
        }
        let all: Vec<_> = ring.history(None).into_iter().map(|e| e.message).collect();
        assert_eq!(all, ["m3", "m4"]);
        assert_eq!(ring.history(Some(1))[0].message, "m4");
        assert_eq!(LogRing::flag_for(&tracing::Level::WARN), 'W');
        assert_eq!(atoi("12abc"), 12);
        assert_eq!(atoi("x"), 0);
        assert_eq!(atoi("-3"), -3);
    }
}
