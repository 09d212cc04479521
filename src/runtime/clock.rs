//! The one place that reads the clocks. Everything else gets `now` passed in.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic now.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock seconds since the epoch (truncated to u32, as OpenVPN's packet-id time field).
#[allow(clippy::disallowed_methods)]
pub fn unix_seconds() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Wall-clock time (for logs, status output and script variables).
#[allow(clippy::disallowed_methods)]
pub fn wall() -> SystemTime {
    SystemTime::now()
}
