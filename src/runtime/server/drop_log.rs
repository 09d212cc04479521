//! The server's report of what it dropped before any session existed (bogus resets, packets
//! that fail tls-auth/tls-crypt, bad cookies, rate-limited resets): one warning at most every
//! [`DROP_LOG_INTERVAL`] with the counts since the last one, never one line per packet (a flood
//! must not flood the log too).

use std::time::{Duration, Instant};

use crate::proto::server::ServerStats;

/// Minimum spacing of the drop warnings.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The counters as of the last warning.
#[derive(Debug, Default)]
pub struct DropLog {
    reported: ServerStats,
    last_log: Option<Instant>,
}

impl DropLog {
    pub fn new() -> DropLog {
        DropLog::default()
    }

    /// Called about once a second with the server's counters: the warning to log, if drops
    /// happened since the last one and that one is at least [`DROP_LOG_INTERVAL`] old.
    pub fn update(&mut self, now: Instant, s: ServerStats) -> Option<String> {
        let r = &self.reported;
        let parts: Vec<String> = [
            (
                s.bad_control - r.bad_control.min(s.bad_control),
                "control packets from unknown addresses that failed to unwrap or parse",
            ),
            (
                s.rate_limited - r.rate_limited.min(s.rate_limited),
                "resets not answered (connect-freq-initial)",
            ),
            (
                s.bad_cookie - r.bad_cookie.min(s.bad_cookie),
                "packets with a wrong or stale cookie",
            ),
            (
                s.bad_data - r.bad_data.min(s.bad_data),
                "data packets for no session or failing to decrypt",
            ),
            (
                s.bad_source - r.bad_source.min(s.bad_source),
                "packets from a client's wrong source address",
            ),
            (
                s.over_max_clients - r.over_max_clients.min(s.over_max_clients),
                "new sessions over max-clients",
            ),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            return None;
        }
        if self
            .last_log
            .is_some_and(|t| now.saturating_duration_since(t) < DROP_LOG_INTERVAL)
        {
            return None;
        }
        let since = match self.last_log {
            Some(t) => format!(
                "in the last {}s",
                now.saturating_duration_since(t).as_secs()
            ),
            None => "so far".to_owned(),
        };
        self.last_log = Some(now);
        self.reported = s;
        Some(format!("dropped {since}: {}", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_counts_since_the_last() {
        let t0 = crate::runtime::clock::now();
        let mut d = DropLog::new();
        let mut s = ServerStats::default();
        assert_eq!(d.update(t0, s), None, "nothing dropped, nothing said");
        s.bad_control = 5000;
        s.rate_limited = 40;
        let first = d
            .update(t0, s)
            .expect("the first drops are reported at once");
        assert!(first.contains("5000 control packets"), "{first}");
        assert!(first.contains("40 resets not answered"), "{first}");
        assert!(!first.contains("cookie"), "{first}");
        // A flood goes on: one tick per second, silent within the interval.
        for i in 1..10 {
            s.bad_control += 1000;
            assert_eq!(d.update(t0 + Duration::from_secs(i), s), None);
        }
        s.bad_cookie = 2;
        let next = d
            .update(t0 + DROP_LOG_INTERVAL, s)
            .expect("reported again after the interval");
        assert!(next.contains("9000 control packets"), "{next}");
        assert!(
            next.contains("2 packets with a wrong or stale cookie"),
            "{next}"
        );
        assert!(!next.contains("resets not answered"), "{next}");
        assert_eq!(d.update(t0 + DROP_LOG_INTERVAL * 3, s), None, "nothing new");
    }
}
