//! Receiving side: reordering buffer, duplicate detection, acks with MRU re-acks.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use crate::proto::wire::Opcode;

/// Messages buffered ahead of the next expected id (`TLS_RELIABLE_N_REC_BUFFERS`).
pub const RECV_WINDOW: u32 = 12;
/// Recently acked ids remembered for re-acking.
pub const MRU_ACKS: usize = 8;
/// Pending acks kept at most; further ack requests are dropped (the peer retransmits).
const MAX_PENDING_ACKS: usize = 2 * RECV_WINDOW as usize;

/// What [`ReliableRecv::handle`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvOutcome {
    /// Stored for in-order delivery; ack queued.
    New,
    /// Already received (delivered or buffered); ack queued again.
    Duplicate,
    /// Too far ahead of the next expected id: dropped, not acked.
    OutOfWindow,
}

/// The receiving half of one key_state's reliability layer.
#[derive(Debug, Default)]
pub struct ReliableRecv {
    /// Next id to deliver.
    next_id: u32,
    /// Received messages with id in `next_id..next_id + RECV_WINDOW`.
    buf: BTreeMap<u32, (Opcode, Vec<u8>)>,
    /// Ids to ack, oldest first, distinct.
    pending: VecDeque<u32>,
    /// Recently acked ids, most recent first, distinct.
    mru: VecDeque<u32>,
}

impl ReliableRecv {
    /// Expects message id 0 first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles a reliable message (any control opcode except `P_ACK_V1`).
    pub fn handle(&mut self, id: u32, opcode: Opcode, payload: &[u8]) -> RecvOutcome {
        let ahead = id.wrapping_sub(self.next_id);
        let outcome = if ahead >= RECV_WINDOW {
            if ahead < 1 << 31 {
                return RecvOutcome::OutOfWindow;
            }
            // Behind `next_id`: already delivered.
            RecvOutcome::Duplicate
        } else {
            match self.buf.entry(id) {
                Entry::Occupied(_) => RecvOutcome::Duplicate,
                Entry::Vacant(v) => {
                    v.insert((opcode, payload.to_vec()));
                    RecvOutcome::New
                }
            }
        };
        self.queue_ack(id);
        outcome
    }

    /// The next message in id order, if it has arrived.
    pub fn poll_in_order(&mut self) -> Option<(Opcode, Vec<u8>)> {
        let msg = self.buf.remove(&self.next_id)?;
        self.next_id = self.next_id.wrapping_add(1);
        Some(msg)
    }

    /// Whether acks are waiting to be sent.
    pub fn has_pending_acks(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Up to `max` ids to put in an ack block: pending acks first (they are then no longer
    /// pending), remaining slots filled with recently acked ids (re-acks). Empty when there is
    /// nothing to ack at all.
    pub fn take_acks(&mut self, max: usize) -> Vec<u32> {
        let n = max.min(self.pending.len());
        let mut acks: Vec<u32> = self.pending.drain(..n).collect();
        for &id in &self.mru {
            if acks.len() >= max {
                break;
            }
            if !acks.contains(&id) {
                acks.push(id);
            }
        }
        for &id in acks.iter().rev() {
            self.mru.retain(|&m| m != id);
            self.mru.push_front(id);
        }
        self.mru.truncate(MRU_ACKS);
        acks
    }

    /// The next id [`Self::poll_in_order`] will deliver.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    fn queue_ack(&mut self, id: u32) {
        if !self.pending.contains(&id) && self.pending.len() < MAX_PENDING_ACKS {
            self.pending.push_back(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut ReliableRecv) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some((op, p)) = r.poll_in_order() {
            assert_eq!(op, Opcode::ControlV1);
            v.push(p[0]);
        }
        v
    }

    #[test]
    fn in_order() {
        let mut r = ReliableRecv::new();
        assert!(!r.has_pending_acks());
        assert!(r.take_acks(8).is_empty());
        for id in 0..3u32 {
            assert_eq!(
                r.handle(id, Opcode::ControlV1, &[id as u8]),
                RecvOutcome::New
            );
        }
        assert_eq!(drain(&mut r), vec![0, 1, 2]);
        assert!(r.has_pending_acks());
        assert_eq!(r.take_acks(8), vec![0, 1, 2]);
        assert!(!r.has_pending_acks());
        assert_eq!(r.next_id(), 3);
    }

    #[test]
    fn reordered() {
        let mut r = ReliableRecv::new();
        assert_eq!(r.handle(2, Opcode::ControlV1, &[2]), RecvOutcome::New);
        assert_eq!(r.handle(1, Opcode::ControlV1, &[1]), RecvOutcome::New);
        assert!(r.poll_in_order().is_none());
        assert_eq!(
            r.handle(0, Opcode::HardResetServerV2, &[]),
            RecvOutcome::New
        );
        assert_eq!(r.poll_in_order(), Some((Opcode::HardResetServerV2, vec![])));
        assert_eq!(drain(&mut r), vec![1, 2]);
        assert_eq!(r.take_acks(8), vec![2, 1, 0]);
    }

    #[test]
    fn duplicates_are_reacked() {
        let mut r = ReliableRecv::new();
        assert_eq!(r.handle(0, Opcode::ControlV1, &[0]), RecvOutcome::New);
        assert_eq!(r.handle(2, Opcode::ControlV1, &[2]), RecvOutcome::New);
        assert_eq!(r.take_acks(8), vec![0, 2]);
        // Buffered duplicate and delivered duplicate.
        assert_eq!(r.handle(2, Opcode::ControlV1, &[9]), RecvOutcome::Duplicate);
        assert_eq!(drain(&mut r), vec![0]);
        assert_eq!(r.handle(0, Opcode::ControlV1, &[9]), RecvOutcome::Duplicate);
        assert!(r.has_pending_acks());
        assert_eq!(r.take_acks(2), vec![2, 0]);
        // The first copy wins.
        assert_eq!(r.handle(1, Opcode::ControlV1, &[1]), RecvOutcome::New);
        assert_eq!(drain(&mut r), vec![1, 2]);
    }

    #[test]
    fn window_full() {
        let mut r = ReliableRecv::new();
        assert_eq!(
            r.handle(12, Opcode::ControlV1, &[12]),
            RecvOutcome::OutOfWindow
        );
        assert_eq!(
            r.handle(u32::MAX / 2, Opcode::ControlV1, &[0]),
            RecvOutcome::OutOfWindow
        );
        assert!(
            !r.has_pending_acks(),
            "out-of-window messages are not acked"
        );
        for id in 1..12u32 {
            assert_eq!(
                r.handle(id, Opcode::ControlV1, &[id as u8]),
                RecvOutcome::New
            );
        }
        assert!(r.poll_in_order().is_none());
        assert_eq!(r.handle(0, Opcode::ControlV1, &[0]), RecvOutcome::New);
        assert_eq!(drain(&mut r), (0..12).collect::<Vec<u8>>());
        // The window moved.
        assert_eq!(r.handle(12, Opcode::ControlV1, &[12]), RecvOutcome::New);
        assert_eq!(r.handle(23, Opcode::ControlV1, &[23]), RecvOutcome::New);
        assert_eq!(
            r.handle(24, Opcode::ControlV1, &[24]),
            RecvOutcome::OutOfWindow
        );
    }

    #[test]
    fn mru_reacks_fill_free_slots() {
        let mut r = ReliableRecv::new();
        for id in 0..6u32 {
            r.handle(id, Opcode::ControlV1, &[id as u8]);
            // One ack per packet, as a P_ACK_V1 each time.
            let acks = r.take_acks(8);
            assert_eq!(acks[0], id);
            // Then the previously acked ids, most recent first (a14 of capture a: [5,4,3,2,1,0]).
            let expect: Vec<u32> = (0..=id).rev().collect();
            assert_eq!(acks, expect);
        }
        // Piggy-backed: at most 4, pending first.
        r.handle(6, Opcode::ControlV1, &[6]);
        assert_eq!(r.take_acks(4), vec![6, 5, 4, 3]);
        // Nothing pending: only re-acks, and no pending flag.
        assert!(!r.has_pending_acks());
        assert_eq!(r.take_acks(4), vec![6, 5, 4, 3]);
        assert_eq!(r.take_acks(8), vec![6, 5, 4, 3, 2, 1, 0]);
        // The MRU keeps 8 distinct ids.
        for id in 7..20u32 {
            assert_eq!(r.handle(id, Opcode::ControlV1, &[0]), RecvOutcome::New);
            r.poll_in_order().unwrap();
            r.take_acks(1);
        }
        assert_eq!(r.take_acks(16), (12..20).rev().collect::<Vec<u32>>());
        assert_eq!(r.take_acks(0), Vec::<u32>::new());
    }

    #[test]
    fn pending_acks_are_bounded() {
        let mut r = ReliableRecv::new();
        for id in 0..30u32 {
            assert_eq!(r.handle(id, Opcode::ControlV1, &[0]), RecvOutcome::New);
            r.poll_in_order().unwrap();
        }
        let mut all = Vec::new();
        while r.has_pending_acks() {
            all.extend(r.take_acks(8));
        }
        assert_eq!(all, (0..24).collect::<Vec<u32>>());
        // The dropped ones are acked when the peer retransmits them.
        assert_eq!(
            r.handle(29, Opcode::ControlV1, &[0]),
            RecvOutcome::Duplicate
        );
        assert_eq!(r.take_acks(1), vec![29]);
    }
}
