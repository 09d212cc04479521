//! Control-channel reliability layer (ARQ), one [`ReliableSend`] and one [`ReliableRecv`] per
//! key_state.
//!
//! * Message ids start at 0 and grow by one per new message; a retransmission keeps its id.
//! * At most [`SEND_WINDOW`] messages are in flight: a new one may only be sent if its id is
//!   within the window of the oldest un-acked id.
//! * Retransmission after the initial timeout (`--tls-timeout`, default 2 s), doubled after every
//!   (re)transmission up to [`MAX_RETRANSMIT_TIMEOUT`]; fast retransmit once
//!   [`FAST_RETRANSMIT_ACKS`] later messages have been acked.
//! * Acks are individual. The receiver acks every reliable packet it accepts, duplicates
//!   included, and re-sends recently acked ids (an MRU list) to fill spare ack slots.
//!
//! Time is always a parameter: nothing here reads a clock.

mod recv;
mod send;

pub use recv::{MRU_ACKS, RECV_WINDOW, RecvOutcome, ReliableRecv};
pub use send::{FAST_RETRANSMIT_ACKS, MAX_RETRANSMIT_TIMEOUT, Outgoing, ReliableSend, SEND_WINDOW};
