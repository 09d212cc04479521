//! The control channel shared by both roles: session ids, the wrapping (tls-auth/tls-crypt), the
//! key states with their reliability layers, and turning them into packets and back.

use std::time::Instant;

use crate::proto::client::key_state::KeyState;
use crate::proto::reliable::RecvOutcome;
use crate::proto::wire::{
    ControlPacket, ControlWrap, MAX_ACKS, MAX_PIGGYBACK_ACKS, Opcode, SessionId,
};

/// The control-channel datagram budget (`tls-mtu`, including 28 bytes of IPv4+UDP headers).
const CONTROL_DATAGRAM_BUDGET: usize = 1250 - 28;

/// A received control packet, copied out of the datagram.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub opcode: Opcode,
    pub key_id: u8,
    pub session_id: SessionId,
    pub acks: Vec<u32>,
    pub ack_peer_session_id: Option<SessionId>,
    pub message_id: Option<u32>,
    pub payload: Vec<u8>,
}

pub(crate) struct ControlChannel {
    pub sid: SessionId,
    pub peer_sid: Option<SessionId>,
    pub wrap: ControlWrap,
    /// Key states, oldest first.
    pub keys: Vec<KeyState>,
    scratch: Vec<u8>,
    plain: Vec<u8>,
    /// Packets that failed authentication or parsing.
    pub dropped: u64,
    /// When the session started, and the wall-clock seconds then (for replay-id times).
    started: Instant,
    unix_at_start: u32,
}

impl ControlChannel {
    pub(crate) fn new(
        sid: SessionId,
        wrap: ControlWrap,
        started: Instant,
        unix_at_start: u32,
    ) -> Self {
        Self {
            sid,
            peer_sid: None,
            wrap,
            keys: Vec::new(),
            scratch: Vec::with_capacity(2048),
            plain: Vec::with_capacity(2048),
            dropped: 0,
            started,
            unix_at_start,
        }
    }

    /// Wall-clock seconds at `now`, derived from the session start (no clock is read here).
    fn unix_now(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.started).as_secs() as u32;
        self.unix_at_start.wrapping_add(elapsed)
    }

    pub(crate) fn key_index(&self, key_id: u8) -> Option<usize> {
        self.keys.iter().position(|k| k.key_id == key_id)
    }

    /// The largest TLS payload per control packet, and per `P_CONTROL_WKC_V1`.
    pub(crate) fn max_payloads(&self) -> (usize, usize) {
        let fixed = 1 + 8 + 1 + 4 * MAX_PIGGYBACK_ACKS + 8 + 4;
        let base = CONTROL_DATAGRAM_BUDGET
            .saturating_sub(self.wrap.overhead() + fixed)
            .max(256);
        let wkc = base.saturating_sub(self.wrap.wkc_len()).max(128);
        (base, wkc)
    }

    /// Unwraps and parses a control datagram. Bad packets are counted and dropped.
    pub(crate) fn receive(&mut self, datagram: &[u8]) -> Option<Incoming> {
        self.plain.clear();
        if self.wrap.unwrap(datagram, &mut self.plain).is_err() {
            self.dropped += 1;
            return None;
        }
        let Ok(pkt) = ControlPacket::parse(&self.plain) else {
            self.dropped += 1;
            return None;
        };
        Some(Incoming {
            opcode: pkt.opcode,
            key_id: pkt.key_id,
            session_id: pkt.session_id,
            acks: pkt.acks,
            ack_peer_session_id: pkt.ack_peer_session_id,
            message_id: pkt.message_id,
            payload: pkt.payload.to_vec(),
        })
    }

    /// Applies the acks and the reliable message of `inc` to key state `idx`, and returns the
    /// messages now deliverable in order.
    pub(crate) fn deliver(&mut self, idx: usize, inc: &Incoming) -> Vec<(Opcode, Vec<u8>)> {
        let sid = self.sid;
        let ks = &mut self.keys[idx];
        if inc.ack_peer_session_id == Some(sid) {
            for &id in &inc.acks {
                ks.send.handle_ack(id);
            }
        }
        if let Some(id) = inc.message_id
            && ks.recv.handle(id, inc.opcode, &inc.payload) == RecvOutcome::OutOfWindow
        {
            self.dropped += 1;
        }
        let mut out = Vec::new();
        while let Some(m) = ks.recv.poll_in_order() {
            out.push(m);
        }
        out
    }

    /// Writes the next control datagram (a message with piggy-backed acks, or a bare ack).
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let now_unix = self.unix_now(now);
        let sid = self.sid;
        let peer_sid = self.peer_sid;
        for ks in self.keys.iter_mut() {
            let key_id = ks.key_id;
            if let Some(msg) = ks.send.poll_transmit(now) {
                let acks = if peer_sid.is_some() {
                    ks.recv.take_acks(MAX_PIGGYBACK_ACKS)
                } else {
                    Vec::new()
                };
                let pkt = ControlPacket {
                    opcode: msg.opcode,
                    key_id,
                    session_id: sid,
                    ack_peer_session_id: if acks.is_empty() { None } else { peer_sid },
                    acks,
                    message_id: Some(msg.id),
                    payload: msg.payload,
                };
                self.scratch.clear();
                pkt.emit(&mut self.scratch);
                if self.wrap.wrap(&self.scratch, now_unix, out).is_ok() {
                    return true;
                }
                out.clear();
                continue;
            }
            if ks.recv.has_pending_acks() {
                let Some(peer) = peer_sid else { continue };
                let acks = ks.recv.take_acks(MAX_ACKS);
                let pkt = ControlPacket {
                    opcode: Opcode::AckV1,
                    key_id,
                    session_id: sid,
                    acks,
                    ack_peer_session_id: Some(peer),
                    message_id: None,
                    payload: &[],
                };
                self.scratch.clear();
                pkt.emit(&mut self.scratch);
                if self.wrap.wrap(&self.scratch, now_unix, out).is_ok() {
                    return true;
                }
                out.clear();
            }
        }
        false
    }

    /// Sends a NUL-terminated control message over key state `idx`'s TLS session.
    pub(crate) fn send_text(
        &mut self,
        now: Instant,
        idx: usize,
        text: &str,
    ) -> Result<(), crate::proto::tls::TlsError> {
        let (max_payload, max_wkc) = self.max_payloads();
        let mut msg = Vec::with_capacity(text.len() + 1);
        msg.extend_from_slice(text.as_bytes());
        msg.push(0);
        let ks = &mut self.keys[idx];
        ks.tls.write_plain(&msg)?;
        ks.flush(now, max_payload, max_wkc);
        Ok(())
    }

    /// Earliest retransmission.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.keys.iter().filter_map(|k| k.send.next_timeout()).min()
    }
}
