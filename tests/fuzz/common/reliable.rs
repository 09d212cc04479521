//! The reliability layer: a sender and a receiver over a link the input controls (transmit,
//! deliver, drop, duplicate, ack, fake ack, time steps), as a structured `arbitrary` script.
//!
//! Invariants: messages come out in order, each exactly once, with the opcode and payload they
//! were pushed with; the sender never has more than the window in flight; and unless the script
//! forged acks, a loss-free drain afterwards delivers every pushed message and empties the
//! sender.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use ferrovpn::proto::reliable::{RecvOutcome, ReliableRecv, ReliableSend, SEND_WINDOW};
use ferrovpn::proto::wire::{MAX_ACKS, Opcode};

#[derive(Arbitrary, Debug)]
enum Op {
    /// Push a message if the window allows.
    Push {
        reliable_reset: bool,
        payload: Vec<u8>,
    },
    /// Everything the sender has due goes onto the link.
    Transmit,
    /// The packet at this index of the link arrives.
    Deliver(u8),
    /// It is lost.
    Drop(u8),
    /// It arrives and stays on the link (a duplicate follows).
    Duplicate(u8),
    /// The receiver sends an ack block of this size.
    SendAcks(u8),
    /// An ack block on the way back arrives / is lost.
    DeliverAcks(u8),
    DropAcks(u8),
    /// An ack for an id the receiver never acked.
    ForgedAck(u32),
    /// A message the sender never sent (id, payload) reaches the receiver.
    Inject(u32, Vec<u8>),
    /// Time passes.
    Advance(u16),
}

const PAYLOADS: [Opcode; 2] = [Opcode::ControlV1, Opcode::HardResetClientV2];

/// The body; see the module doc.
pub fn run(data: &[u8]) {
    let u = Unstructured::new(data);
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(u) else {
        return;
    };
    let start = Instant::now();
    let mut now = start;
    let mut send = ReliableSend::new(Duration::from_secs(2));
    let mut recv = ReliableRecv::new();
    let mut pushed: Vec<(Opcode, Vec<u8>)> = Vec::new();
    let mut delivered = 0usize;
    let mut link: VecDeque<(u32, Opcode, Vec<u8>)> = VecDeque::new();
    let mut acks: VecDeque<Vec<u32>> = VecDeque::new();
    let mut forged = false;

    let take_delivered = |recv: &mut ReliableRecv, delivered: &mut usize, pushed: &[_]| {
        while let Some((op, payload)) = recv.poll_in_order() {
            let expect: &(Opcode, Vec<u8>) =
                pushed.get(*delivered).expect("delivered more than pushed");
            assert_eq!(
                &(op, payload),
                expect,
                "message {delivered} out of order or changed"
            );
            *delivered += 1;
            assert_eq!(recv.next_id() as usize, *delivered);
        }
    };

    for op in ops.into_iter().take(512) {
        match op {
            Op::Push {
                reliable_reset,
                payload,
            } => {
                if send.can_push() && pushed.len() < 64 {
                    let opcode = PAYLOADS[usize::from(reliable_reset)];
                    let id = send.push(opcode, payload.clone(), now);
                    assert_eq!(id as usize, pushed.len());
                    pushed.push((opcode, payload));
                }
            }
            Op::Transmit => {
                while let Some(o) = send.poll_transmit(now) {
                    if link.len() < 64 {
                        link.push_back((o.id, o.opcode, o.payload.to_vec()));
                    }
                }
            }
            Op::Deliver(i) | Op::Duplicate(i) => {
                let Some(i) = index(i, link.len()) else {
                    continue;
                };
                let (id, opcode, payload) = if matches!(op, Op::Deliver(_)) {
                    link.remove(i).expect("index checked")
                } else {
                    link[i].clone()
                };
                let out = recv.handle(id, opcode, &payload);
                if out == RecvOutcome::New {
                    assert!(id as usize >= delivered, "an old id counted as new");
                }
                take_delivered(&mut recv, &mut delivered, &pushed);
            }
            Op::Drop(i) => {
                if let Some(i) = index(i, link.len()) {
                    link.remove(i);
                }
            }
            Op::SendAcks(n) => {
                let block = recv.take_acks(usize::from(n) % (MAX_ACKS + 1));
                if !block.is_empty() && acks.len() < 64 {
                    acks.push_back(block);
                }
            }
            Op::DeliverAcks(i) => {
                if let Some(i) = index(i, acks.len()) {
                    for id in acks.remove(i).expect("index checked") {
                        send.handle_ack(id);
                    }
                }
            }
            Op::DropAcks(i) => {
                if let Some(i) = index(i, acks.len()) {
                    acks.remove(i);
                }
            }
            Op::ForgedAck(id) => {
                if (id as usize) < pushed.len() && id as usize >= delivered {
                    forged = true;
                }
                send.handle_ack(id);
            }
            Op::Inject(id, payload) => {
                // A forged message would be delivered like a real one: only ids already
                // delivered (replays) keep the delivery check meaningful.
                if (id as usize) < delivered {
                    assert_ne!(
                        recv.handle(id, Opcode::ControlV1, &payload),
                        RecvOutcome::New,
                        "replayed id {id} taken as new"
                    );
                }
            }
            Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
        }
        assert!(send.in_flight() <= SEND_WINDOW, "window exceeded");
    }
    if forged {
        return;
    }
    // Loss-free drain: everything pushed must arrive.
    for _ in 0..200 {
        if delivered == pushed.len() && send.is_empty() {
            break;
        }
        link.clear();
        while let Some(o) = send.poll_transmit(now) {
            link.push_back((o.id, o.opcode, o.payload.to_vec()));
        }
        for (id, opcode, payload) in link.drain(..) {
            recv.handle(id, opcode, &payload);
        }
        take_delivered(&mut recv, &mut delivered, &pushed);
        loop {
            for id in recv.take_acks(MAX_ACKS) {
                send.handle_ack(id);
            }
            if !recv.has_pending_acks() {
                break;
            }
        }
        now = send.next_timeout().map_or(now, |t| t.max(now));
    }
    assert_eq!(delivered, pushed.len(), "messages lost on a loss-free link");
    assert!(send.is_empty(), "sender still has un-acked messages");
}

fn index(i: u8, len: usize) -> Option<usize> {
    (len > 0).then(|| usize::from(i) % len)
}
