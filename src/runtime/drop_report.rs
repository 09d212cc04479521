//! What the client shell says about packets it dropped (bad tag, replay, truncated, unknown key):
//! a warning at most every [`DROP_LOG_INTERVAL`] while drops keep coming, the process-wide
//! `ferrovpn_dropped_packets_total` metric, and one summary line when the session ends.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::proto::client::Stats;

/// Minimum spacing of the "dropped N packets" warnings (never one line per packet).
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The counters of one session, as last seen, and when drops were last reported.
#[derive(Debug, Default)]
pub struct DropReport {
    stats: Stats,
    /// `stats.dropped` when the last warning was logged.
    reported: u64,
    last_log: Option<Instant>,
}

impl DropReport {
    pub fn new() -> DropReport {
        DropReport::default()
    }

    /// Records the session's latest counters (and adds new drops to the metric). Returns the
    /// warning to log when there are unreported drops and the last warning is old enough.
    pub fn update(&mut self, now: Instant, stats: Stats) -> Option<String> {
        let new = stats.dropped.saturating_sub(self.stats.dropped);
        if new > 0 {
            super::health::METRICS
                .dropped
                .fetch_add(new, Ordering::Relaxed);
        }
        self.stats = stats;
        let pending = stats.dropped - self.reported.min(stats.dropped);
        if pending == 0 {
            return None;
        }
        if self
            .last_log
            .is_some_and(|t| now.saturating_duration_since(t) < DROP_LOG_INTERVAL)
        {
            return None;
        }
        self.last_log = Some(now);
        self.reported = stats.dropped;
        Some(format!(
            "dropped {pending} packets from the server that failed authentication, replay or \
             format checks ({} in this session)",
            stats.dropped
        ))
    }

    /// The end-of-session line.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "session summary: received {} packets ({} bytes), sent {} packets ({} bytes), \
             dropped {} packets, {} renegotiations",
            s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes, s.dropped, s.renegotiations
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped(n: u64) -> Stats {
        Stats {
            dropped: n,
            ..Stats::default()
        }
    }

    #[test]
    fn warns_once_per_interval_and_counts_everything() {
        let t0 = crate::runtime::clock::now();
        let mut r = DropReport::new();
        assert_eq!(r.update(t0, dropped(0)), None, "no drops, no warning");
        let first = r
            .update(t0, dropped(3))
            .expect("first drops are reported at once");
        assert!(first.contains("dropped 3 packets"), "{first}");
        // More drops within the interval: counted, not logged.
        for (i, n) in [5, 9, 20].into_iter().enumerate() {
            let t = t0 + Duration::from_secs(i as u64 + 1);
            assert_eq!(r.update(t, dropped(n)), None);
        }
        let later = r
            .update(t0 + DROP_LOG_INTERVAL, dropped(21))
            .expect("reported again after the interval");
        assert!(later.contains("dropped 18 packets"), "{later}");
        assert!(later.contains("21 in this session"), "{later}");
        // Nothing new: silent even after a long time.
        assert_eq!(r.update(t0 + DROP_LOG_INTERVAL * 5, dropped(21)), None);
        assert!(
            r.summary().contains("dropped 21 packets"),
            "{}",
            r.summary()
        );
    }

    #[test]
    fn adds_new_drops_to_the_metric() {
        let before = super::super::health::METRICS
            .dropped
            .load(Ordering::Relaxed);
        let mut r = DropReport::new();
        let t0 = crate::runtime::clock::now();
        r.update(t0, dropped(4));
        r.update(t0, dropped(4));
        r.update(t0, dropped(7));
        let after = super::super::health::METRICS
            .dropped
            .load(Ordering::Relaxed);
        // Other tests may add to the process-wide counter at the same time: at least ours.
        assert!(after - before >= 7, "metric grew by {}", after - before);
    }
}
