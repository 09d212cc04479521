//! Sending side: window, retransmission timers, fast retransmit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::wire::Opcode;

/// Messages in flight at most (`TLS_RELIABLE_N_SEND_BUFFERS`).
pub const SEND_WINDOW: usize = 6;
/// Acks of later messages after which an un-acked message is resent at once
/// (`N_ACK_RETRANSMIT`).
pub const FAST_RETRANSMIT_ACKS: u32 = 3;
/// Upper bound of the doubled retransmission timeout.
pub const MAX_RETRANSMIT_TIMEOUT: Duration = Duration::from_secs(64);

/// A message to put on the wire now (first transmission or retransmission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// Message id (the `message packet-id` field).
    pub id: u32,
    /// Opcode the message was pushed with.
    pub opcode: Opcode,
    /// Payload (TLS records, or empty for resets).
    pub payload: &'a [u8],
    /// Whether this is a retransmission.
    pub retransmission: bool,
}

#[derive(Debug)]
struct Entry {
    id: u32,
    opcode: Opcode,
    payload: Vec<u8>,
    /// When the entry is next due (the push time until first sent).
    next_at: Instant,
    /// Delay applied at the next transmission.
    timeout: Duration,
    /// Transmissions so far.
    sends: u32,
    /// Last transmission time (for fast retransmit).
    last_sent: Option<Instant>,
    /// Acks of later ids seen since the last transmission.
    later_acks: u32,
    /// Fast retransmit already used.
    fast_done: bool,
}

/// The sending half of one key_state's reliability layer.
#[derive(Debug)]
pub struct ReliableSend {
    /// Un-acked messages in id order.
    entries: VecDeque<Entry>,
    next_id: u32,
    initial_timeout: Duration,
}

impl ReliableSend {
    /// Empty sender; `initial_timeout` is `--tls-timeout` (default 2 s).
    pub fn new(initial_timeout: Duration) -> Self {
        Self {
            entries: VecDeque::with_capacity(SEND_WINDOW),
            next_id: 0,
            initial_timeout,
        }
    }

    /// Queues a new message; it is due immediately. Returns its message id.
    ///
    /// Callers should check [`Self::can_push`] first: a message pushed beyond the window is
    /// still queued but may be dropped by the peer.
    pub fn push(&mut self, opcode: Opcode, payload: Vec<u8>, now: Instant) -> u32 {
        debug_assert!(self.can_push(), "push beyond the send window");
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.entries.push_back(Entry {
            id,
            opcode,
            payload,
            next_at: now,
            timeout: self.initial_timeout,
            sends: 0,
            last_sent: None,
            later_acks: 0,
            fast_done: false,
        });
        id
    }

    /// Handles one acked message id from the peer. Unknown or already acked ids are ignored.
    pub fn handle_ack(&mut self, id: u32) {
        let Some(pos) = self.entries.iter().position(|e| e.id == id) else {
            return;
        };
        self.entries.remove(pos);
        // Entries before `pos` have lower ids: one more later message acked.
        for e in self.entries.iter_mut().take(pos) {
            if e.sends == 0 {
                continue;
            }
            e.later_acks += 1;
            if e.later_acks >= FAST_RETRANSMIT_ACKS && !e.fast_done {
                e.fast_done = true;
                if let Some(t) = e.last_sent {
                    e.next_at = e.next_at.min(t);
                }
            }
        }
    }

    /// The lowest-id message that is due at `now`, rescheduled for its next retransmission
    /// (`now + timeout`, then the timeout doubles). `None` if nothing is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Outgoing<'_>> {
        let e = self.entries.iter_mut().find(|e| e.next_at <= now)?;
        let retransmission = e.sends > 0;
        e.sends = e.sends.saturating_add(1);
        e.last_sent = Some(now);
        e.later_acks = 0;
        e.next_at = now + e.timeout;
        e.timeout = (e.timeout * 2).min(MAX_RETRANSMIT_TIMEOUT);
        Some(Outgoing {
            id: e.id,
            opcode: e.opcode,
            payload: &e.payload,
            retransmission,
        })
    }

    /// Whether a new message fits the window (its id within [`SEND_WINDOW`] of the oldest
    /// un-acked id).
    pub fn can_push(&self) -> bool {
        self.entries
            .front()
            .is_none_or(|e| (self.next_id.wrapping_sub(e.id) as usize) < SEND_WINDOW)
    }

    /// When [`Self::poll_transmit`] will next have something (may be in the past: due now).
    pub fn next_timeout(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.next_at).min()
    }

    /// Whether every pushed message has been acked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Un-acked messages.
    pub fn in_flight(&self) -> usize {
        self.entries.len()
    }

    /// The id the next pushed message gets.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Makes every un-acked message due at `now` (timeouts are kept).
    pub fn schedule_now(&mut self, now: Instant) {
        for e in &mut self.entries {
            e.next_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn base() -> Instant {
        Instant::now()
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn sent(r: &mut ReliableSend, now: Instant) -> Vec<(u32, bool)> {
        let mut v = Vec::new();
        while let Some(o) = r.poll_transmit(now) {
            v.push((o.id, o.retransmission));
        }
        v
    }

    #[test]
    fn ids_window_and_acks() {
        let t0 = base();
        let mut r = ReliableSend::new(s(2));
        assert!(r.is_empty() && r.can_push());
        assert_eq!(r.next_timeout(), None);
        for i in 0..6 {
            assert!(r.can_push());
            assert_eq!(r.push(Opcode::ControlV1, vec![i as u8], t0), i);
        }
        assert!(!r.can_push());
        assert_eq!(r.next_timeout(), Some(t0));
        let o = r.poll_transmit(t0).unwrap();
        assert_eq!(
            (o.id, o.opcode, o.payload, o.retransmission),
            (0, Opcode::ControlV1, &[0u8][..], false)
        );
        assert_eq!(
            sent(&mut r, t0),
            vec![(1, false), (2, false), (3, false), (4, false), (5, false)]
        );
        assert_eq!(r.next_timeout(), Some(t0 + s(2)));
        // Acking a later id does not open the window; acking the oldest does.
        r.handle_ack(3);
        assert!(!r.can_push());
        r.handle_ack(0);
        assert!(r.can_push());
        assert_eq!(r.push(Opcode::ControlV1, vec![], t0), 6);
        assert!(!r.can_push());
        r.handle_ack(0); // duplicate ack: ignored
        r.handle_ack(99); // unknown: ignored
        assert_eq!(r.in_flight(), 5);
        for id in [1, 2, 4, 5, 6] {
            r.handle_ack(id);
        }
        assert!(r.is_empty());
        assert_eq!(r.next_id(), 7);
        assert_eq!(r.next_timeout(), None);
    }

    #[test]
    fn retransmit_backoff_doubles() {
        let t0 = base();
        let mut r = ReliableSend::new(s(2));
        r.push(Opcode::HardResetClientV2, vec![], t0);
        assert_eq!(sent(&mut r, t0), vec![(0, false)]);
        assert!(r.poll_transmit(t0 + Duration::from_millis(1999)).is_none());
        // Retransmissions at 2, 2+4, 6+8, 14+16, ... capped at 64 s.
        let mut t = t0;
        let mut gap = s(2);
        for _ in 0..8 {
            t += gap;
            assert_eq!(r.next_timeout(), Some(t));
            assert!(r.poll_transmit(t - Duration::from_millis(1)).is_none());
            let o = r.poll_transmit(t).unwrap();
            assert_eq!((o.id, o.retransmission), (0, true));
            assert!(r.poll_transmit(t).is_none());
            gap = (gap * 2).min(MAX_RETRANSMIT_TIMEOUT);
        }
        assert_eq!(r.next_timeout(), Some(t + s(64)));
        r.handle_ack(0);
        assert!(r.is_empty());
    }

    #[test]
    fn fast_retransmit_after_three_later_acks() {
        let t0 = base();
        let mut r = ReliableSend::new(s(2));
        for _ in 0..5 {
            r.push(Opcode::ControlV1, vec![], t0);
        }
        assert_eq!(sent(&mut r, t0).len(), 5);
        let t1 = t0 + Duration::from_millis(300);
        r.handle_ack(1);
        r.handle_ack(2);
        assert!(r.poll_transmit(t1).is_none());
        r.handle_ack(3);
        // 0 has seen 3 later acks: resent at once; 4 has not.
        assert_eq!(r.next_timeout(), Some(t0));
        assert_eq!(sent(&mut r, t1), vec![(0, true)]);
        // The normal timer continues with the doubled timeout, and fast retransmit is used once.
        assert_eq!(r.next_timeout(), Some(t0 + s(2)));
        r.handle_ack(4);
        assert_eq!(sent(&mut r, t0 + s(2)), vec![]);
        assert_eq!(r.next_timeout(), Some(t1 + s(4)));
        assert_eq!(sent(&mut r, t1 + s(4)), vec![(0, true)]);
    }

    #[test]
    fn fast_retransmit_ignores_unsent_and_reacks() {
        let t0 = base();
        let mut r = ReliableSend::new(s(2));
        for _ in 0..4 {
            r.push(Opcode::ControlV1, vec![], t0);
        }
        assert_eq!(sent(&mut r, t0).len(), 4);
        r.handle_ack(1);
        r.handle_ack(1);
        r.handle_ack(1);
        r.handle_ack(2);
        assert!(
            r.poll_transmit(t0 + s(1)).is_none(),
            "re-acks of 1 count once"
        );
        r.handle_ack(3);
        assert_eq!(sent(&mut r, t0 + s(1)), vec![(0, true)]);
    }

    #[test]
    fn schedule_now_makes_everything_due() {
        let t0 = base();
        let mut r = ReliableSend::new(s(2));
        r.push(Opcode::ControlV1, vec![1], t0);
        r.push(Opcode::ControlV1, vec![2], t0);
        assert_eq!(sent(&mut r, t0).len(), 2);
        let t1 = t0 + s(1);
        r.schedule_now(t1);
        assert_eq!(r.next_timeout(), Some(t1));
        assert_eq!(sent(&mut r, t1), vec![(0, true), (1, true)]);
        assert_eq!(r.next_timeout(), Some(t1 + s(4)));
    }
}
