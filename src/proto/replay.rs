//! Packet-id replay protection: a sliding window over 32-bit packet ids, as OpenVPN's
//! `--replay-window n` (default 64 packets). Id 0 is never valid. Call [`ReplayWindow::check`] before
//! doing work and [`ReplayWindow::accept`] only after the packet authenticated.

/// Why a packet id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Id 0 is never sent by a conforming peer.
    #[error("packet id 0 is invalid")]
    Zero,
    /// Already seen.
    #[error("packet id {0} was already received (replay)")]
    Replayed(u32),
    /// Older than the window.
    #[error("packet id {0} is older than the replay window")]
    TooOld(u32),
    /// The long-form time went backwards.
    #[error("packet time went backwards")]
    TimeBackwards,
}

/// Default `--replay-window` size.
pub const DEFAULT_WINDOW: u32 = 64;

/// Largest window we support (bits in the bitmap).
const MAX_WINDOW: u32 = 1024;
const WORDS: usize = (MAX_WINDOW / 64) as usize;

/// A sliding replay window.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    size: u32,
    /// Highest id accepted so far (0 = none yet).
    highest: u32,
    /// Bit `i` set = id `highest - i` seen. Ring-indexed by id.
    bits: [u64; WORDS],
    /// Time field of long-form ids (0 = none yet).
    time: u32,
}

impl ReplayWindow {
    /// A window remembering the last `size` ids (clamped to 1..=1024).
    pub fn new(size: u32) -> Self {
        Self {
            size: size.clamp(1, MAX_WINDOW),
            highest: 0,
            bits: [0; WORDS],
            time: 0,
        }
    }

    /// Whether `id` would be accepted (does not record it).
    pub fn check(&self, id: u32) -> Result<(), ReplayError> {
        if id == 0 {
            return Err(ReplayError::Zero);
        }
        if id > self.highest {
            return Ok(());
        }
        let age = self.highest - id;
        if age >= self.size {
            return Err(ReplayError::TooOld(id));
        }
        if self.bit(id) {
            return Err(ReplayError::Replayed(id));
        }
        Ok(())
    }

    /// Checks and records `id` (call after authentication).
    pub fn accept(&mut self, id: u32) -> Result<(), ReplayError> {
        self.check(id)?;
        if id > self.highest {
            let shift = id - self.highest;
            if shift >= MAX_WINDOW {
                self.bits = [0; WORDS];
            } else {
                // Clear the slots of ids (highest, id] that now enter the window.
                for k in (self.highest + 1)..=id {
                    self.set_bit(k, false);
                }
            }
            self.highest = id;
        }
        self.set_bit(id, true);
        Ok(())
    }

    /// Long-form ids (`counter || time`) as used by tls-auth/tls-crypt: a new time value resets
    /// the window; an older one is refused.
    pub fn accept_long(&mut self, id: u32, time: u32) -> Result<(), ReplayError> {
        if self.time != 0 && time < self.time {
            return Err(ReplayError::TimeBackwards);
        }
        if time > self.time {
            if id == 0 {
                return Err(ReplayError::Zero);
            }
            self.time = time;
            self.highest = 0;
            self.bits = [0; WORDS];
        }
        self.accept(id)
    }

    /// Whether a long-form id would be accepted.
    pub fn check_long(&self, id: u32, time: u32) -> Result<(), ReplayError> {
        if self.time != 0 && time < self.time {
            return Err(ReplayError::TimeBackwards);
        }
        if time > self.time {
            return if id == 0 {
                Err(ReplayError::Zero)
            } else {
                Ok(())
            };
        }
        self.check(id)
    }

    fn bit(&self, id: u32) -> bool {
        let i = (id % MAX_WINDOW) as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, id: u32, on: bool) {
        let i = (id % MAX_WINDOW) as usize;
        if on {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_reorder_replay_and_age() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(w.accept(0), Err(ReplayError::Zero));
        assert_eq!(w.accept(1), Ok(()));
        assert_eq!(w.accept(3), Ok(()));
        assert_eq!(w.accept(2), Ok(()));
        assert_eq!(w.accept(2), Err(ReplayError::Replayed(2)));
        assert_eq!(w.accept(100), Ok(()));
        assert_eq!(w.accept(36), Err(ReplayError::TooOld(36)));
        assert_eq!(w.accept(37), Ok(()));
        assert_eq!(w.accept(37), Err(ReplayError::Replayed(37)));
        // A big jump clears everything, and old slots do not leak into new ids.
        assert_eq!(w.accept(5000), Ok(()));
        assert_eq!(w.accept(4999), Ok(()));
        assert_eq!(
            w.check(5000 - 1024 + 100),
            Err(ReplayError::TooOld(5000 - 1024 + 100))
        );
    }

    #[test]
    fn slots_reused_after_wrap_are_cleared() {
        let mut w = ReplayWindow::new(1024);
        for id in 1..=3000u32 {
            assert_eq!(w.accept(id), Ok(()), "id {id}");
        }
        assert_eq!(w.accept(2990), Err(ReplayError::Replayed(2990)));
    }

    #[test]
    fn long_form_time() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(w.accept_long(1, 100), Ok(()));
        assert_eq!(w.accept_long(1, 100), Err(ReplayError::Replayed(1)));
        assert_eq!(w.accept_long(1, 99), Err(ReplayError::TimeBackwards));
        assert_eq!(w.accept_long(1, 101), Ok(()));
    }
}
