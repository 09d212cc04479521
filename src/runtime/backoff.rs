//! The client's reconnect backoff: `connect-retry` doubled per round of failed attempts over all
//! remotes, capped by the `connect-retry` maximum; `connect-retry-max` counts attempts. Both start
//! over after a session that got connected, as in OpenVPN: a client that lived through many
//! server restarts still comes back after the base delay, and does not give up because of
//! failures long past.

use std::time::Duration;

/// Failed attempts since the last session that reached "connected".
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff::default()
    }

    /// A session ended and another will be attempted; `connected` if it had got connected.
    pub fn session_ended(&mut self, connected: bool) {
        if connected {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
    }

    /// Attempts since the last connected session (for `connect-retry-max`).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long to wait before the next attempt.
    pub fn delay(&self, remotes: usize, base: Duration, max: Duration) -> Duration {
        let remotes = remotes.max(1) as u32;
        let round = (self.failures.saturating_sub(1) / remotes).min(16);
        let base = base.max(Duration::from_millis(200));
        (base * 2u32.saturating_pow(round)).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn doubles_per_round_of_failures_and_caps() {
        let mut b = Backoff::new();
        let mut delays = Vec::new();
        for _ in 0..6 {
            b.session_ended(false);
            delays.push(b.delay(2, BASE, MAX).as_secs());
        }
        assert_eq!(delays, [1, 1, 2, 2, 4, 4]);
        for _ in 0..40 {
            b.session_ended(false);
        }
        assert_eq!(b.delay(2, BASE, MAX), MAX);
        assert_eq!(b.failures(), 46);
    }

    #[test]
    fn a_connected_session_starts_over() {
        let mut b = Backoff::new();
        // Many server restarts, each followed by a successful reconnect after a failed attempt
        // or two: every first retry still comes after the base delay.
        for _ in 0..10 {
            b.session_ended(true);
            assert_eq!(b.failures(), 1);
            assert_eq!(b.delay(1, BASE, MAX), BASE);
            b.session_ended(false);
            assert_eq!(b.delay(1, BASE, MAX), BASE * 2);
        }
    }
}
