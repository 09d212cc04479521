//! The management session loop both sides share: password prompt, greeting, command lines,
//! `bytecount` ticks, real-time `>LOG:` lines and the side's own notifications. Commands common
//! to both sides are answered here ([`common_command`]); the rest goes to a [`Handler`].

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use super::listen::{Accepted, ManagementListener};
use super::log_ring::{LogEntry, LogRing};
use crate::runtime::server::scripts::split_words;
use crate::runtime::server::status::TITLE;

/// The greeting every session gets after the password (if any).
pub const GREETING: &str =
    ">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info";
/// `version`'s management version.
pub const MANAGEMENT_VERSION: u32 = 5;
const PASSWORD_TRIES: u32 = 3;
const MAX_LINE: usize = 4096;
const MAX_VERB: u32 = 11;

/// A real-time notification from the side's core to every session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A state line (without `>STATE:`), shown only to sessions with `state on`.
    State(String),
    /// A complete line (`>HOLD:...`, `>PASSWORD:...`) shown to every session.
    Line(String),
}

/// One side's command set and notifications.
pub trait Handler: Send + Sync + 'static {
    /// The `help` lines after `Commands:`.
    fn help(&self) -> &'static [&'static str];
    /// Runs an authenticated command the common set does not know; unknown commands print
    /// [`UNKNOWN`].
    fn command(&self, ctx: &Ctx<'_>, s: &mut Session, cmd: &str, args: &[String], out: &mut String);
    /// The lines of one `bytecount` tick.
    fn bytecount(&self, out: &mut String);
    /// Real-time notifications, if the side has any.
    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        None
    }
    /// Lines sent after the greeting (a pending `>HOLD:` or `>PASSWORD:` query).
    fn on_connect(&self, _out: &mut String) {}
    /// A session ended by the management client (not by the interface stopping).
    fn on_disconnect(&self) {}
    /// The state line shown to `state on` sessions when the interface stops.
    fn exiting_line(&self) -> Option<String> {
        None
    }
}

/// What commands may use besides the session: the log history and shared levels.
pub struct Ctx<'a> {
    /// The log history.
    pub log: &'a LogRing,
}

/// Settings of one management connection.
pub struct Session {
    authenticated: bool,
    password_tries: u32,
    bytecount: Option<tokio::time::Interval>,
    log_rx: Option<broadcast::Receiver<LogEntry>>,
    /// `state on`.
    pub state_realtime: bool,
    quit: bool,
}

struct Shared<H> {
    password: Option<String>,
    handler: Arc<H>,
    log: LogRing,
    verb: AtomicU32,
    mute: AtomicU32,
}

/// Serves `listener` until `stop` turns true (or its sender is dropped); then open sessions are
/// closed (after the handler's exiting line) and a Unix socket file is removed.
pub async fn serve<H: Handler>(
    listener: ManagementListener,
    password: Option<String>,
    verb: u32,
    handler: Arc<H>,
    log: LogRing,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        password,
        handler,
        log,
        verb: AtomicU32::new(verb),
        mute: AtomicU32::new(0),
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
            accepted = listener.accept() => accepted,
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
    listener.cleanup();
    result
}

/// One management client, until it quits, disconnects, fails the password three times, or the
/// interface stops.
async fn session<S, H>(stream: S, shared: Arc<Shared<H>>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    H: Handler,
{
    let (rd, mut wr) = tokio::io::split(stream);
    // Lines are read by a separate task so the select below stays cancel-safe.
    let (line_tx, mut lines) = mpsc::channel::<String>(16);
    let reader = tokio::spawn(read_lines(rd, line_tx));
    let mut notices = shared.handler.notices();
    let mut s = Session {
        authenticated: shared.password.is_none(),
        password_tries: 0,
        bytecount: None,
        log_rx: None,
        state_realtime: false,
        quit: false,
    };
    let mut out = String::new();
    if s.authenticated {
        push_line(&mut out, GREETING);
        shared.handler.on_connect(&mut out);
    } else {
        out.push_str("ENTER PASSWORD:");
    }
    let mut by_client = false;
    while !s.quit {
        if !out.is_empty() {
            if wr.write_all(out.as_bytes()).await.is_err() {
                by_client = true;
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
                    if s.state_realtime && let Some(l) = shared.handler.exiting_line() {
                        push_line(&mut out, &format!(">STATE:{l}"));
                    }
                    break;
                }
            }
            line = lines.recv() => match line {
                Some(line) => handle_line(&shared, &mut s, &line, &mut out),
                None => {
                    by_client = true;
                    break;
                }
            },
            _ = tick(&mut s.bytecount) => shared.handler.bytecount(&mut out),
            entry = next_log(&mut s.log_rx) => match entry {
                Ok(e) => push_line(&mut out, &format!(">LOG:{}", e.render())),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => s.log_rx = None,
            },
            notice = next_notice(&mut notices) => match notice {
                Ok(Notice::State(l)) if s.state_realtime && s.authenticated => {
                    push_line(&mut out, &format!(">STATE:{l}"));
                }
                Ok(Notice::Line(l)) if s.authenticated => push_line(&mut out, &l),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => notices = None,
            },
        }
    }
    let _ = wr.write_all(out.as_bytes()).await;
    let _ = wr.shutdown().await;
    reader.abort();
    tracing::info!("MANAGEMENT: Client disconnected");
    if by_client || s.quit {
        shared.handler.on_disconnect();
    }
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

async fn next_notice(
    rx: &mut Option<broadcast::Receiver<Notice>>,
) -> Result<Notice, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Appends `line` with OpenVPN's CRLF.
pub fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

fn handle_line<H: Handler>(shared: &Shared<H>, s: &mut Session, line: &str, out: &mut String) {
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
    // As OpenVPN: the password itself never reaches the log.
    if cmd == "password" {
        tracing::debug!("MANAGEMENT: CMD 'password [...]'");
    } else {
        tracing::debug!("MANAGEMENT: CMD '{line}'");
    }
    if !common_command(shared, s, cmd, args, out) {
        let ctx = Ctx { log: &shared.log };
        shared.handler.command(&ctx, s, cmd, args, out);
    }
}

fn check_password<H: Handler>(shared: &Shared<H>, s: &mut Session, line: &str, out: &mut String) {
    let expected = shared.password.as_deref().unwrap_or_default();
    if aws_lc_rs::constant_time::verify_slices_are_equal(line.as_bytes(), expected.as_bytes())
        .is_ok()
    {
        s.authenticated = true;
        push_line(out, "SUCCESS: password is correct");
        push_line(out, GREETING);
        shared.handler.on_connect(out);
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

/// The reply to an unknown command.
pub const UNKNOWN: &str = "ERROR: unknown command, enter 'help' for more options";

/// Commands both sides answer the same way; false when `cmd` is not one of them.
fn common_command<H: Handler>(
    shared: &Shared<H>,
    s: &mut Session,
    cmd: &str,
    args: &[String],
    out: &mut String,
) -> bool {
    let arg = |i: usize| args.get(i).map(String::as_str);
    match cmd {
        "help" => {
            push_line(out, &format!("Management Interface for {TITLE}"));
            push_line(out, "Commands:");
            for l in shared.handler.help() {
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
        "log" => {
            if args.is_empty() {
                need(out, cmd, 1, true);
                return true;
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
                return true;
            }
            for a in args.iter().take(2) {
                history(s, &shared.log, "echo", a, &[], out);
            }
        }
        "bytecount" => {
            let Some(n) = arg(0) else {
                need(out, cmd, 1, false);
                return true;
            };
            s.bytecount = u64::try_from(atoi(n)).ok().filter(|&n| n > 0).map(|n| {
                let period = Duration::from_secs(n);
                tokio::time::interval_at(tokio::time::Instant::now() + period, period)
            });
            push_line(out, "SUCCESS: bytecount interval changed");
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
        "quit" | "exit" => s.quit = true,
        _ => return false,
    }
    true
}

/// OpenVPN's shared handler for `log`/`state`/`echo` parameters: `on`, `off`, `all` or `N`.
pub fn history(
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

/// `state [on|off] [N|all]` over `lines` (no argument: the current state).
pub fn state_command(
    s: &mut Session,
    log: &LogRing,
    args: &[String],
    lines: &[String],
    out: &mut String,
) {
    if args.is_empty() {
        history(s, log, "state", "1", lines, out);
    }
    for a in args.iter().take(2) {
        history(s, log, "state", a, lines, out);
    }
}

fn render_log(entries: Vec<LogEntry>) -> Vec<String> {
    entries.iter().map(LogEntry::render).collect()
}

/// OpenVPN's "requires N parameter(s)" error.
pub fn need(out: &mut String, cmd: &str, n: usize, at_least: bool) {
    let at_least = if at_least { "at least " } else { "" };
    let plural = if n > 1 { "s" } else { "" };
    push_line(
        out,
        &format!("ERROR: the '{cmd}' command requires {at_least}{n} parameter{plural}"),
    );
}

/// `hold [on|off|release]` replies; `flag` is the hold flag, `release` is called for `release`.
pub fn hold_command(args: &[String], flag: &mut bool, release: impl FnOnce(), out: &mut String) {
    match args.first().map(String::as_str) {
        None => push_line(out, &format!("SUCCESS: hold={}", u8::from(*flag))),
        Some("on") => {
            *flag = true;
            push_line(out, "SUCCESS: hold flag set to ON");
        }
        Some("off") => {
            *flag = false;
            push_line(out, "SUCCESS: hold flag set to OFF");
        }
        Some("release") => {
            release();
            push_line(out, "SUCCESS: hold release succeeded");
        }
        Some(_) => push_line(out, "ERROR: bad hold command parameter"),
    }
}

/// C `atoi`: leading digits (with sign), 0 if none.
pub fn atoi(s: &str) -> i64 {
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

/// A fresh authenticated session, for command tests.
#[cfg(test)]
pub(crate) fn test_session() -> Session {
    Session {
        authenticated: true,
        password_tries: 0,
        bytecount: None,
        log_rx: None,
        state_realtime: false,
        quit: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn hold_replies() {
        let mut flag = false;
        let mut released = 0;
        let mut out = String::new();
        hold_command(&[], &mut flag, || released += 1, &mut out);
        hold_command(&words(&["on"]), &mut flag, || released += 1, &mut out);
        assert!(flag);
        hold_command(&[], &mut flag, || released += 1, &mut out);
        hold_command(&words(&["release"]), &mut flag, || released += 1, &mut out);
        assert!(flag, "release leaves the flag alone");
        hold_command(&words(&["off"]), &mut flag, || released += 1, &mut out);
        hold_command(&words(&["x"]), &mut flag, || released += 1, &mut out);
        assert!(!flag);
        assert_eq!(released, 1);
        assert_eq!(
            out,
            "SUCCESS: hold=0\r\nSUCCESS: hold flag set to ON\r\nSUCCESS: hold=1\r\n\
             SUCCESS: hold release succeeded\r\nSUCCESS: hold flag set to OFF\r\n\
             ERROR: bad hold command parameter\r\n"
        );
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("12abc"), 12);
        assert_eq!(atoi("x"), 0);
        assert_eq!(atoi("-3"), -3);
        let mut out = String::new();
        need(&mut out, "kill", 1, false);
        assert_eq!(out, "ERROR: the 'kill' command requires 1 parameter\r\n");
    }
}
