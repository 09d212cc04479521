//! The log history behind the `log` command: a bounded ring with real-time subscribers, and the
//! tracing layer that feeds it every logged line.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::runtime::server::status::unix_secs;

/// A bounded, cheaply cloneable log history with real-time subscribers, feeding the `log`
/// command.
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

#[derive(Debug)]
struct LogRingInner {
    capacity: usize,
    entries: Mutex<VecDeque<LogEntry>>,
    tx: broadcast::Sender<LogEntry>,
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

/// A tracing layer writing every event's message into a [`LogRing`].
pub struct RingLayer {
    ring: LogRing,
}

impl RingLayer {
    /// A layer feeding `ring`.
    pub fn new(ring: LogRing) -> Self {
        Self { ring }
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        self.ring.push(
            crate::runtime::clock::wall(),
            LogRing::flag_for(event.metadata().level()),
            m.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

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
        let e = LogEntry {
            time: UNIX_EPOCH + Duration::from_secs(7),
            flags: ' ',
            message: "a\nb".into(),
        };
        assert_eq!(e.render(), "7,,a b");
    }
}
