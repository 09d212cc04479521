//! The client's management interface: its command set (`state`, `status`, `hold`, `signal`,
//! `username`/`password`, ...) and [`ClientEvents`], the handle through which the session loop
//! (`runtime::client_driver`) reports states and byte counts, waits for `hold release`, asks for
//! credentials (`management-query-passwords`) and hears about `signal` commands.
//!
//! Without a management interface configured, [`ClientEvents::inert`] does nothing, so the
//! session loop calls it unconditionally.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, oneshot, watch};
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::client_state::{Counters, State, StateLine, restart_reason};
use super::listen::{ManagementListen, ManagementListener};
use super::log_ring::LogRing;
use super::session::{
    self, Ctx, Handler, Notice, Session, UNKNOWN, atoi, hold_command, need, push_line,
    state_command,
};
use crate::proto::client::Credentials;
use crate::runtime::server::status::{format_local_time, unix_secs, wall_now};

/// What the client's management interface was asked for (profile and command line merged).
#[derive(Clone, Debug)]
pub struct ClientManagementConfig {
    /// Where it listens.
    pub listen: ManagementListen,
    /// The password from the pw-file's first line.
    pub password: Option<String>,
    /// `management-hold`: wait for `hold release` before connecting and reconnecting.
    pub hold: bool,
    /// `management-query-passwords`: ask for `auth-user-pass` credentials over the interface.
    pub query_passwords: bool,
    /// `management-signal`: a management client disconnecting restarts the connection.
    pub signal_on_disconnect: bool,
    /// `management-forget-disconnect`: forget entered passwords when a session ends.
    pub forget_on_disconnect: bool,
    /// The log history behind `log` (fed by the logging set-up).
    pub log: LogRing,
    /// `verb`, as `verb` shows it.
    pub verb: u32,
}

/// A handle to the client's management interface; cheap to clone. All methods do nothing when
/// no interface is configured.
#[derive(Clone, Default)]
pub struct ClientEvents {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for ClientEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEvents")
            .field("active", &self.inner.is_some())
            .finish()
    }
}

/// What a `signal` command (or `management-signal`) asked of the session loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGUSR1: a new session.
    Usr1,
    /// SIGHUP: like SIGUSR1 (the profile is not re-read).
    Hup,
}

struct Inner {
    cfg: ClientManagementConfig,
    notices: broadcast::Sender<Notice>,
    states: Mutex<VecDeque<StateLine>>,
    hold: Mutex<HoldState>,
    hold_changed: Notify,
    /// The `>HOLD:`/`>PASSWORD:` query in progress, repeated to management clients that connect.
    pending: Mutex<Option<String>>,
    query: Mutex<Option<PasswordQuery>>,
    cached: Mutex<Option<Credentials>>,
    restart: Mutex<Option<Signal>>,
    restart_notify: Notify,
    stop_tx: watch::Sender<Option<&'static str>>,
    counters: Counters,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The hold flag and a release that arrived.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HoldState {
    /// `hold on`/`management-hold`.
    pub flag: bool,
    /// `hold release` seen and not yet used by a hold.
    pub released: bool,
    /// A hold is in progress.
    pub waiting: bool,
}

impl HoldState {
    /// Whether a hold starting now must wait (consuming a release that came early).
    pub fn must_wait(&mut self) -> bool {
        if !self.flag {
            return false;
        }
        if self.released {
            self.released = false;
            return false;
        }
        true
    }
}

struct PasswordQuery {
    username: Option<String>,
    password: Option<String>,
    need_username: bool,
    reply: Option<oneshot::Sender<Credentials>>,
}

const STATE_HISTORY: usize = 100;

impl ClientEvents {
    /// No management interface: every report is dropped.
    pub fn inert() -> Self {
        Self::default()
    }

    /// Binds the interface and starts serving it (with `None`: [`ClientEvents::inert`]).
    pub async fn start(cfg: Option<ClientManagementConfig>) -> Result<Self, String> {
        let Some(cfg) = cfg else {
            return Ok(Self::inert());
        };
        let listener = ManagementListener::bind(&cfg.listen)
            .await
            .map_err(|e| format!("management interface on {}: {e}", describe(&cfg.listen)))?;
        match (&cfg.listen, listener.local_addr()) {
            (ManagementListen::Unix(p), _) => {
                info!(
                    "MANAGEMENT: unix domain socket listening on {}",
                    p.display()
                )
            }
            (_, Some(a)) => info!("MANAGEMENT: TCP Socket listening on [AF_INET]{a}"),
            _ => {}
        }
        let events = Self::new(cfg.clone());
        let inner = events.inner.clone().expect("active");
        let (password, verb, log) = (cfg.password.clone(), cfg.verb, cfg.log.clone());
        let stop = inner.shutdown.subscribe();
        let handler = Arc::new(ClientCommands {
            inner: inner.clone(),
        });
        let task = tokio::spawn(async move {
            if let Err(e) = session::serve(listener, password, verb, handler, log, stop).await {
                warn!("management interface: {e}");
            }
        });
        *lock(&inner.task) = Some(task);
        Ok(events)
    }

    /// An active handle without a listener (the listener is started by [`ClientEvents::start`]).
    fn new(cfg: ClientManagementConfig) -> Self {
        let (notices, _) = broadcast::channel(256);
        let (stop_tx, _) = watch::channel(None);
        let (shutdown, _) = watch::channel(false);
        let hold = HoldState {
            flag: cfg.hold,
            ..HoldState::default()
        };
        let inner = Arc::new(Inner {
            cfg,
            notices,
            states: Mutex::new(VecDeque::new()),
            hold: Mutex::new(hold),
            hold_changed: Notify::new(),
            pending: Mutex::new(None),
            query: Mutex::new(None),
            cached: Mutex::new(None),
            restart: Mutex::new(None),
            restart_notify: Notify::new(),
            stop_tx,
            counters: Counters::default(),
            shutdown,
            task: Mutex::new(None),
        });
        let events = Self { inner: Some(inner) };
        events.state(State::Connecting, "");
        events
    }

    /// Whether an interface is configured.
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// A stop flag that turns true when `stop` does or a `signal SIGTERM`/`SIGINT` arrives.
    pub fn merge_stop(&self, stop: watch::Receiver<bool>) -> watch::Receiver<bool> {
        let Some(inner) = &self.inner else {
            return stop;
        };
        let (tx, rx) = watch::channel(*stop.borrow());
        let mut a = stop;
        let mut b = inner.stop_tx.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = a.wait_for(|s| *s) => {}
                _ = b.wait_for(|s| s.is_some()) => {}
                _ = tx.closed() => return,
            }
            let _ = tx.send(true);
            tx.closed().await;
        });
        rx
    }

    /// Records a state with only a description.
    pub fn state(&self, state: State, description: &str) {
        self.push_state(StateLine::new(unix_secs(wall_now()), state, description));
    }

    /// ASSIGN_IP with the tunnel addresses.
    pub fn assign_ip(&self, v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) {
        let mut l = StateLine::new(unix_secs(wall_now()), State::AssignIp, "");
        (l.tun_v4, l.tun_v6) = (v4, v6);
        self.push_state(l);
    }

    /// CONNECTED,SUCCESS with the tunnel addresses, the server and the local address (`None` for
    /// unbound UDP, as OpenVPN leaves it empty).
    pub fn connected(
        &self,
        v4: Option<Ipv4Addr>,
        v6: Option<Ipv6Addr>,
        remote: SocketAddr,
        local: Option<SocketAddr>,
    ) {
        let mut l = StateLine::new(unix_secs(wall_now()), State::Connected, "SUCCESS");
        (l.tun_v4, l.tun_v6, l.remote, l.local) = (v4, v6, Some(remote), local);
        self.push_state(l);
    }

    /// RECONNECTING with OpenVPN's word for `reason`.
    pub fn reconnecting(&self, reason: &str) {
        self.state(State::Reconnecting, restart_reason(reason));
    }

    fn push_state(&self, line: StateLine) {
        let Some(inner) = &self.inner else {
            return;
        };
        let _ = inner.notices.send(Notice::State(line.render()));
        let mut states = lock(&inner.states);
        if states.len() == STATE_HISTORY {
            states.pop_front();
        }
        states.push_back(line);
    }

    /// Counts an OpenVPN packet received from the server (`>BYTECOUNT` in).
    pub fn link_in(&self, n: usize) {
        self.count(n, |c| &c.link_read);
    }

    /// Counts an OpenVPN packet sent to the server (`>BYTECOUNT` out).
    pub fn link_out(&self, n: usize) {
        self.count(n, |c| &c.link_write);
    }

    /// Counts a packet read from the device (sent into the tunnel).
    pub fn tun_read(&self, n: usize) {
        self.count(n, |c| &c.tun_read);
    }

    /// Counts a decrypted packet written to the device, and its datagram as authenticated.
    pub fn tun_write(&self, n: usize, datagram: usize) {
        self.count(n, |c| &c.tun_write);
        self.count(datagram, |c| &c.auth_read);
    }

    fn count(&self, n: usize, which: impl FnOnce(&Counters) -> &std::sync::atomic::AtomicU64) {
        if let Some(i) = &self.inner {
            Counters::add(which(&i.counters), n);
        }
    }

    /// Waits for `hold release` when the hold flag is set (`>HOLD:Waiting for hold
    /// release:SECS`, SECS being the pause OpenVPN would otherwise make). True when it held (the
    /// caller then skips its own pause); false without a hold or when `stop` turned true.
    pub async fn hold(&self, secs: u64, stop: &mut watch::Receiver<bool>) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        if !lock(&inner.hold).must_wait() {
            return false;
        }
        lock(&inner.hold).waiting = true;
        let line = format!(">HOLD:Waiting for hold release:{secs}");
        *lock(&inner.pending) = Some(line.clone());
        let _ = inner.notices.send(Notice::Line(line));
        info!("Need hold release from management interface, waiting...");
        let released = loop {
            let notified = inner.hold_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut h = lock(&inner.hold);
                if h.released || !h.flag {
                    h.released = false;
                    break true;
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = stop.wait_for(|s| *s) => break false,
            }
        };
        lock(&inner.hold).waiting = false;
        *lock(&inner.pending) = None;
        released
    }

    /// The credentials for this attempt when `management-query-passwords` is on and the profile
    /// lacks some: the ones entered before (unless forgotten) or asked now with
    /// `>PASSWORD:Need 'Auth' username/password` (`... password` when `username` is known).
    /// `None` when stopped or when the interface does not ask.
    ///
    /// With a `static-challenge` the line carries `SC:ECHO,TEXT` and the management client
    /// answers with the password already encoded (`SCRV1:base64(password):base64(response)`),
    /// as OpenVPN 2.6 expects of its GUIs.
    pub async fn query_credentials(
        &self,
        username: Option<String>,
        challenge: Option<&crate::config::StaticChallenge>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Credentials> {
        let inner = self.inner.as_ref()?;
        if !inner.cfg.query_passwords {
            return None;
        }
        if let Some(c) = lock(&inner.cached).clone() {
            return Some(c);
        }
        let (tx, rx) = oneshot::channel();
        let need_username = username.is_none();
        *lock(&inner.query) = Some(PasswordQuery {
            username,
            password: None,
            need_username,
            reply: Some(tx),
        });
        let what = if need_username {
            "username/password"
        } else {
            "password"
        };
        let sc = challenge
            .map(|c| format!(" SC:{},{}", u8::from(c.echo), c.text))
            .unwrap_or_default();
        let line = format!(">PASSWORD:Need 'Auth' {what}{sc}");
        *lock(&inner.pending) = Some(line.clone());
        let _ = inner.notices.send(Notice::Line(line));
        info!("Need password(s) from management interface, waiting...");
        let creds = tokio::select! {
            c = rx => c.ok(),
            _ = stop.wait_for(|s| *s) => None,
        };
        *lock(&inner.query) = None;
        *lock(&inner.pending) = None;
        if let Some(c) = &creds {
            *lock(&inner.cached) = Some(c.clone());
        }
        creds
    }

    /// The server refused the credentials: `>PASSWORD:Verification Failed: 'Auth'` (when they
    /// were asked over the interface) and they are forgotten.
    pub fn auth_failed(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        if inner.cfg.query_passwords {
            let _ = inner
                .notices
                .send(Notice::Line(">PASSWORD:Verification Failed: 'Auth'".into()));
        }
        *lock(&inner.cached) = None;
    }

    /// Resolves when a `signal SIGUSR1`/`SIGHUP` (or `management-signal`) asks for a restart.
    pub async fn restart_requested(&self) -> Signal {
        let Some(inner) = &self.inner else {
            return std::future::pending().await;
        };
        loop {
            let notified = inner.restart_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(s) = lock(&inner.restart).take() {
                return s;
            }
            notified.await;
        }
    }

    /// The reason a management `signal` gave for stopping (`SIGTERM`/`SIGINT`), if it did.
    pub fn stop_reason(&self) -> Option<&'static str> {
        self.inner.as_ref().and_then(|i| *i.stop_tx.borrow())
    }

    /// Records EXITING with `reason`, then closes the interface (sessions see the line first).
    pub async fn exiting(&self, reason: &str) {
        let Some(inner) = &self.inner else {
            return;
        };
        self.state(State::Exiting, reason);
        // Let the sessions write the notification before they are told to stop.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = inner.shutdown.send(true);
        let task = lock(&inner.task).take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn describe(listen: &ManagementListen) -> String {
    match listen {
        ManagementListen::Tcp(a) => a.to_string(),
        ManagementListen::Unix(p) => p.display().to_string(),
    }
}

struct ClientCommands {
    inner: Arc<Inner>,
}

impl Handler for ClientCommands {
    fn help(&self) -> &'static [&'static str] {
        HELP
    }

    fn command(
        &self,
        ctx: &Ctx<'_>,
        s: &mut Session,
        cmd: &str,
        args: &[String],
        out: &mut String,
    ) {
        let inner = &self.inner;
        match cmd {
            "state" => {
                let lines: Vec<String> =
                    lock(&inner.states).iter().map(StateLine::render).collect();
                state_command(s, ctx.log, args, &lines, out);
            }
            "status" => {
                let n = args.first().map_or(1, |a| atoi(a));
                if !(0..=3).contains(&n) {
                    push_line(out, "ERROR: bad status format version number");
                    return;
                }
                for l in inner.counters.status_lines(&format_local_time(wall_now())) {
                    push_line(out, &l);
                }
            }
            "hold" => {
                let mut h = lock(&inner.hold);
                let mut flag = h.flag;
                let mut released = false;
                hold_command(args, &mut flag, || released = true, out);
                h.flag = flag;
                if released {
                    h.released = true;
                }
                drop(h);
                inner.hold_changed.notify_waiters();
            }
            "signal" => self.signal(args, out),
            "username" | "password" => self.user_pass(cmd, args, out),
            "forget-passwords" => {
                *lock(&inner.cached) = None;
                push_line(out, "SUCCESS: Passwords were forgotten");
            }
            _ => push_line(out, UNKNOWN),
        }
    }

    fn bytecount(&self, out: &mut String) {
        push_line(out, &self.inner.counters.bytecount_line());
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(self.inner.notices.subscribe())
    }

    fn on_connect(&self, out: &mut String) {
        if let Some(l) = lock(&self.inner.pending).clone() {
            push_line(out, &l);
        }
    }

    fn on_disconnect(&self) {
        if self.inner.cfg.forget_on_disconnect {
            *lock(&self.inner.cached) = None;
        }
        if self.inner.cfg.signal_on_disconnect {
            info!("MANAGEMENT: Triggering management signal");
            self.restart(Signal::Usr1);
        }
    }
}

impl ClientCommands {
    fn restart(&self, s: Signal) {
        *lock(&self.inner.restart) = Some(s);
        self.inner.restart_notify.notify_one();
    }

    fn signal(&self, args: &[String], out: &mut String) {
        let Some(name) = args.first().map(String::as_str) else {
            need(out, "signal", 1, false);
            return;
        };
        match name {
            "SIGUSR1" => self.restart(Signal::Usr1),
            "SIGHUP" => self.restart(Signal::Hup),
            "SIGTERM" | "SIGINT" => {
                let reason = if name == "SIGTERM" {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                let _ = self.inner.stop_tx.send(Some(reason));
            }
            "SIGUSR2" => {
                for l in self
                    .inner
                    .counters
                    .status_lines(&format_local_time(wall_now()))
                {
                    info!("{l}");
                }
            }
            _ => {
                push_line(
                    out,
                    &format!("ERROR: signal '{name}' is not a known signal type"),
                );
                return;
            }
        }
        push_line(out, &format!("SUCCESS: signal {name} thrown"));
    }

    /// `username "Auth" NAME` / `password "Auth" PASS` while a query is pending.
    fn user_pass(&self, cmd: &str, args: &[String], out: &mut String) {
        let (Some(kind), Some(value)) = (args.first(), args.get(1)) else {
            need(out, cmd, 2, false);
            return;
        };
        let mut q = lock(&self.inner.query);
        let slot = match q.as_mut() {
            Some(q) if kind == "Auth" => q,
            _ => {
                push_line(
                    out,
                    &format!("ERROR: no {cmd} is currently needed at this time"),
                );
                return;
            }
        };
        if cmd == "username" {
            if !slot.need_username {
                push_line(out, "ERROR: no username is currently needed at this time");
                return;
            }
            slot.username = Some(value.clone());
        } else {
            slot.password = Some(value.clone());
        }
        push_line(
            out,
            &format!("SUCCESS: '{kind}' {cmd} entered, but not yet verified"),
        );
        if let (Some(u), Some(p)) = (&slot.username, &slot.password)
            && let Some(tx) = slot.reply.take()
        {
            let _ = tx.send(Credentials {
                username: Zeroizing::new(u.clone()),
                password: Zeroizing::new(p.clone()),
            });
        }
    }
}

const HELP: &[&str] = &[
    "bytecount n            : Show bytes in/out, update every n secs (0=off).",
    "echo [on|off] [N|all]  : Like log, but only show messages in echo buffer.",
    "exit|quit              : Close management session.",
    "forget-passwords       : Forget passwords entered so far.",
    "help                   : Print this message.",
    "hold [on|off|release]  : Set/show hold flag to on/off state, or",
    "                         release current hold and start tunnel.",
    "log [on|off] [N|all]   : Turn on/off realtime log display",
    "                         + show last N lines or 'all' for entire history.",
    "mute [n]               : Set log mute level to n, or show level if n is absent.",
    "password type p        : Enter password p for a queried OpenVPN password.",
    "pid                    : Show process ID of the current OpenVPN process.",
    "signal s               : Send signal s to daemon,",
    "                         s = SIGHUP|SIGTERM|SIGUSR1|SIGUSR2.",
    "state [on|off] [N|all] : Like log, but show state history.",
    "status [n]             : Show current daemon status info using format #n.",
    "username type u        : Enter username u for a queried OpenVPN username.",
    "verb [n]               : Set log verbosity level to n, or show if n is absent.",
    "version                : Show current version of daemon.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_waits_only_with_the_flag_and_uses_an_early_release_once() {
        let mut h = HoldState::default();
        assert!(!h.must_wait());
        h.flag = true;
        assert!(h.must_wait());
        h.released = true;
        assert!(!h.must_wait(), "a release before the hold lets it pass");
        assert!(h.must_wait(), "the release is used up");
    }

    fn test_events(query: bool) -> ClientEvents {
        ClientEvents::new(ClientManagementConfig {
            listen: ManagementListen::Tcp("127.0.0.1:0".parse().unwrap()),
            password: None,
            hold: true,
            query_passwords: query,
            signal_on_disconnect: false,
            forget_on_disconnect: false,
            log: LogRing::new(10),
            verb: 1,
        })
    }

    fn run(ev: &ClientEvents, line: &str) -> String {
        let inner = ev.inner.clone().unwrap();
        let h = ClientCommands { inner };
        let words = crate::runtime::server::scripts::split_words(line).unwrap();
        let mut s = session::test_session();
        let mut out = String::new();
        let log = LogRing::new(1);
        h.command(&Ctx { log: &log }, &mut s, &words[0], &words[1..], &mut out);
        out
    }

    #[tokio::test]
    async fn hold_release_and_signals() {
        let ev = test_events(false);
        let (_stop_tx, mut stop) = watch::channel(false);
        let mut notices = ev.inner.as_ref().unwrap().notices.subscribe();
        let ev2 = ev.clone();
        let held = tokio::spawn(async move { ev2.hold(0, &mut stop).await });
        assert_eq!(
            notices.recv().await.unwrap(),
            Notice::Line(">HOLD:Waiting for hold release:0".into())
        );
        assert_eq!(run(&ev, "hold"), "SUCCESS: hold=1\r\n");
        assert_eq!(
            run(&ev, "hold release"),
            "SUCCESS: hold release succeeded\r\n"
        );
        assert!(held.await.unwrap());
        assert_eq!(
            run(&ev, "signal SIGUSR1"),
            "SUCCESS: signal SIGUSR1 thrown\r\n"
        );
        assert_eq!(ev.restart_requested().await, Signal::Usr1);
        assert_eq!(
            run(&ev, "signal SIGFOO"),
            "ERROR: signal 'SIGFOO' is not a known signal type\r\n"
        );
        let (_tx, stop) = watch::channel(false);
        let mut merged = ev.merge_stop(stop);
        assert_eq!(
            run(&ev, "signal SIGTERM"),
            "SUCCESS: signal SIGTERM thrown\r\n"
        );
        merged.wait_for(|s| *s).await.unwrap();
        assert_eq!(ev.stop_reason(), Some("SIGTERM"));
        // The state history starts with CONNECTING.
        assert!(run(&ev, "state").contains(",CONNECTING,,,,,,\r\nEND\r\n"));
        assert!(run(&ev, "status 2").starts_with("OpenVPN STATISTICS\r\nUpdated,"));
    }

    #[tokio::test]
    async fn password_query() {
        let ev = test_events(true);
        assert_eq!(
            run(&ev, "username \"Auth\" alice"),
            "ERROR: no username is currently needed at this time\r\n"
        );
        let (_stop_tx, mut stop) = watch::channel(false);
        let ev2 = ev.clone();
        let q = tokio::spawn(async move { ev2.query_credentials(None, None, &mut stop).await });
        while lock(&ev.inner.as_ref().unwrap().query).is_none() {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            run(&ev, "username \"Auth\" alice"),
            "SUCCESS: 'Auth' username entered, but not yet verified\r\n"
        );
        assert_eq!(
            run(&ev, "password \"Private Key\" x"),
            "ERROR: no password is currently needed at this time\r\n"
        );
        assert_eq!(
            run(&ev, "password Auth \"se cret\""),
            "SUCCESS: 'Auth' password entered, but not yet verified\r\n"
        );
        let c = q.await.unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "se cret")
        );
        // Cached for the next attempt, until the server refuses them.
        let (_stop_tx, mut stop) = watch::channel(false);
        assert!(ev.query_credentials(None, None, &mut stop).await.is_some());
        ev.auth_failed();
        assert!(lock(&ev.inner.as_ref().unwrap().cached).is_none());
    }
}
