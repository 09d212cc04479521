//! The plain ("tls-plain") control packet:
//!
//! ```text
//! [op|kid:1] [own session id:8] [n_acks:1] [acked msg-ids: n*4] [peer session id:8 if n > 0]
//! [message id:4, absent in P_ACK_V1] [payload]
//! ```
//!
//! tls-auth / tls-crypt wrapping is done by [`super::wrap::ControlWrap`] around these bytes; the
//! tls-crypt-v2 WKc trailer is handled there too, never here.

use super::error::WireError;
use super::opcode::{Opcode, first_byte, split_first_byte};

/// An 8-byte OpenVPN session id.
pub type SessionId = [u8; 8];

/// Length of a session id.
pub const SID_LEN: usize = 8;
/// Most acks a control packet may carry (`RELIABLE_ACK_SIZE`), the limit for `P_ACK_V1`.
pub const MAX_ACKS: usize = 8;
/// Most acks piggy-backed on a packet that also carries a message (`CONTROL_SEND_ACK_MAX`).
pub const MAX_PIGGYBACK_ACKS: usize = 4;
/// `[op|kid] [sid]`: the part every wrapping mode keeps in front.
pub const CONTROL_HEADER_LEN: usize = 1 + SID_LEN;

/// A parsed control packet; `payload` borrows from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket<'a> {
    /// Any control opcode (never a data opcode).
    pub opcode: Opcode,
    /// 0..=7.
    pub key_id: u8,
    /// The sender's session id.
    pub session_id: SessionId,
    /// Acked message ids, at most [`MAX_ACKS`].
    pub acks: Vec<u32>,
    /// The receiver's session id echoed by the sender; present iff `acks` is non-empty.
    pub ack_peer_session_id: Option<SessionId>,
    /// Message id; present iff the opcode is not `P_ACK_V1`.
    pub message_id: Option<u32>,
    /// TLS records (or TLVs in a server reset); empty for `P_ACK_V1`.
    pub payload: &'a [u8],
}

impl<'a> ControlPacket<'a> {
    /// Parses a plain control packet (after unwrapping, without any WKc trailer).
    pub fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader { b, pos: 0 };
        let (opcode, key_id) = split_first_byte(r.array::<1>()?[0])?;
        if !opcode.is_control() {
            return Err(WireError::NotControl(opcode));
        }
        let session_id = r.array::<SID_LEN>()?;
        let n = r.array::<1>()?[0];
        if usize::from(n) > MAX_ACKS {
            return Err(WireError::TooManyAcks(n));
        }
        let mut acks = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            acks.push(u32::from_be_bytes(r.array::<4>()?));
        }
        let ack_peer_session_id = if n > 0 {
            Some(r.array::<SID_LEN>()?)
        } else {
            None
        };
        let message_id = if opcode == Opcode::AckV1 {
            None
        } else {
            Some(u32::from_be_bytes(r.array::<4>()?))
        };
        let payload = &b[r.pos..];
        if opcode == Opcode::AckV1 && !payload.is_empty() {
            return Err(WireError::TrailingBytes(payload.len()));
        }
        Ok(Self {
            opcode,
            key_id,
            session_id,
            acks,
            ack_peer_session_id,
            message_id,
            payload,
        })
    }

    /// Appends the packet to `out`.
    ///
    /// The layout is driven by the opcode and the ack count: at most [`MAX_ACKS`] acks are
    /// written; with acks the peer session id is written (zeros if it is missing, a caller bug);
    /// a message id is written for every opcode except `P_ACK_V1` (0 if missing, a caller bug).
    pub fn emit(&self, out: &mut Vec<u8>) {
        debug_assert!(self.acks.len() <= MAX_ACKS, "too many acks");
        debug_assert_eq!(self.acks.is_empty(), self.ack_peer_session_id.is_none());
        debug_assert_eq!(self.opcode == Opcode::AckV1, self.message_id.is_none());
        out.reserve(self.emitted_len());
        out.push(first_byte(self.opcode, self.key_id));
        out.extend_from_slice(&self.session_id);
        let acks = &self.acks[..self.acks.len().min(MAX_ACKS)];
        // `acks.len() <= 8`, so the cast cannot truncate.
        out.push(acks.len() as u8);
        for id in acks {
            out.extend_from_slice(&id.to_be_bytes());
        }
        if !acks.is_empty() {
            out.extend_from_slice(&self.ack_peer_session_id.unwrap_or_default());
        }
        if self.opcode != Opcode::AckV1 {
            out.extend_from_slice(&self.message_id.unwrap_or_default().to_be_bytes());
            out.extend_from_slice(self.payload);
        }
    }

    /// Number of bytes [`Self::emit`] appends.
    pub fn emitted_len(&self) -> usize {
        let n = self.acks.len().min(MAX_ACKS);
        let mut len = CONTROL_HEADER_LEN + 1 + 4 * n;
        if n > 0 {
            len += SID_LEN;
        }
        if self.opcode != Opcode::AckV1 {
            len += 4 + self.payload.len();
        }
        len
    }
}

/// Bytes taken by the ack block for `n_acks` acks (count byte, ids, peer session id).
pub fn ack_block_len(n_acks: usize) -> usize {
    1 + 4 * n_acks + if n_acks > 0 { SID_LEN } else { 0 }
}

/// A bounds-checked cursor.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let end = self.pos + N;
        let field = self
            .b
            .get(self.pos..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(WireError::Truncated {
                needed: end,
                have: self.b.len(),
            })?;
        self.pos = end;
        Ok(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn f_frame1_client_reset() {
        let b = h("38 98bb9fda7596b995 00 00000000");
        let p = ControlPacket::parse(&b).unwrap();
        assert_eq!(p.opcode, Opcode::HardResetClientV2);
        assert_eq!(p.key_id, 0);
        assert_eq!(
            p.session_id,
            <[u8; 8]>::try_from(&h("98bb9fda7596b995")[..]).unwrap()
        );
        assert!(p.acks.is_empty());
        assert_eq!(p.ack_peer_session_id, None);
        assert_eq!(p.message_id, Some(0));
        assert!(p.payload.is_empty());
        let mut out = Vec::new();
        p.emit(&mut out);
        assert_eq!(out, b);
        assert_eq!(p.emitted_len(), 14);
    }

    #[test]
    fn f_frame2_server_reset() {
        let b = h("40 3cee46bcb717295c 01 00000000 98bb9fda7596b995 00000000");
        let p = ControlPacket::parse(&b).unwrap();
        assert_eq!(p.opcode, Opcode::HardResetServerV2);
        assert_eq!(
            p.session_id,
            <[u8; 8]>::try_from(&h("3cee46bcb717295c")[..]).unwrap()
        );
        assert_eq!(p.acks, vec![0]);
        assert_eq!(
            p.ack_peer_session_id,
            Some(<[u8; 8]>::try_from(&h("98bb9fda7596b995")[..]).unwrap())
        );
        assert_eq!(p.message_id, Some(0));
        let mut out = vec![0xaa];
        p.emit(&mut out);
        assert_eq!(&out[1..], &b[..]);
        assert_eq!(p.emitted_len(), 26);
    }

    #[test]
    fn ack_v1_has_no_msg_id() {
        let p = ControlPacket {
            opcode: Opcode::AckV1,
            key_id: 2,
            session_id: [1; 8],
            acks: vec![5, 4, 3],
            ack_peer_session_id: Some([2; 8]),
            message_id: None,
            payload: &[],
        };
        let mut out = Vec::new();
        p.emit(&mut out);
        assert_eq!(out.len(), 1 + 8 + 1 + 12 + 8);
        assert_eq!(out.len(), p.emitted_len());
        assert_eq!(ControlPacket::parse(&out).unwrap(), p);
        out.push(0);
        assert_eq!(ControlPacket::parse(&out), Err(WireError::TrailingBytes(1)));
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(
            ControlPacket::parse(&[]),
            Err(WireError::Truncated { needed: 1, have: 0 })
        );
        assert_eq!(
            ControlPacket::parse(&h("38 98bb9fda7596b995 00 000000")),
            Err(WireError::Truncated {
                needed: 14,
                have: 13
            })
        );
        assert_eq!(
            ControlPacket::parse(&h("20 98bb9fda7596b995 09")),
            Err(WireError::TooManyAcks(9))
        );
        assert_eq!(
            ControlPacket::parse(&h("48 98bb9fda7596b995 00 00000000")),
            Err(WireError::NotControl(Opcode::DataV2))
        );
        assert_eq!(ControlPacket::parse(&[0x08]), Err(WireError::BadOpcode(1)));
        // Acks without the peer session id.
        assert!(matches!(
            ControlPacket::parse(&h("20 98bb9fda7596b995 01 00000001 0102")),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn roundtrip_with_payload_and_eight_acks() {
        let payload = [0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5];
        let p = ControlPacket {
            opcode: Opcode::ControlV1,
            key_id: 7,
            session_id: [9; 8],
            acks: (0..8).collect(),
            ack_peer_session_id: Some([3; 8]),
            message_id: Some(0xdead_beef),
            payload: &payload,
        };
        let mut out = Vec::new();
        p.emit(&mut out);
        assert_eq!(out.len(), p.emitted_len());
        assert_eq!(ControlPacket::parse(&out).unwrap(), p);
        assert_eq!(ack_block_len(8), 1 + 32 + 8);
        assert_eq!(ack_block_len(0), 1);
    }
}
