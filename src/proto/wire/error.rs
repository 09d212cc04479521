//! Errors of the wire layer: malformed packets ([`WireError`]) and failed unwrapping
//! ([`WrapError`]). Every variant is caused by network input or by a caller mistake that is
//! reported instead of panicking.

use crate::proto::replay::ReplayError;

use super::opcode::Opcode;

/// A packet (or a TCP frame) does not have the expected layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The packet ends before a field it must contain.
    #[error("packet truncated: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes needed up to the end of the field being read.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// The opcode (high 5 bits of the first byte) is not one OpenVPN 2.6 sends.
    #[error("invalid opcode {0}")]
    BadOpcode(u8),
    /// A control packet was expected but the opcode is a data opcode.
    #[error("{0:?} is not a control opcode")]
    NotControl(Opcode),
    /// A data packet was expected but the opcode is a control opcode.
    #[error("{0:?} is not a data opcode")]
    NotData(Opcode),
    /// More acks than a control packet may carry (8).
    #[error("control packet carries {0} acks, at most 8 are allowed")]
    TooManyAcks(u8),
    /// Bytes after the end of a packet that has no payload (P_ACK_V1).
    #[error("{0} unexpected bytes after the end of a P_ACK_V1")]
    TrailingBytes(usize),
    /// A TCP frame announces length 0.
    #[error("TCP frame of length 0")]
    EmptyFrame,
    /// A TCP frame (or a packet to frame) is longer than allowed.
    #[error("TCP frame of {len} bytes, the limit is {max}")]
    FrameTooLong {
        /// Announced (or requested) length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

/// Why a control packet could not be wrapped or unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// The packet layout is wrong (too short, bad opcode, ...).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The tls-auth HMAC does not match.
    #[error("tls-auth HMAC mismatch")]
    BadHmac,
    /// The tls-crypt authentication tag does not match.
    #[error("tls-crypt authentication tag mismatch")]
    BadTag,
    /// The replay packet id was refused.
    #[error("replay check failed: {0}")]
    Replay(#[from] ReplayError),
    /// The wrapped client key (WKc) is longer than OpenVPN accepts.
    #[error("tls-crypt-v2 wrapped client key of {len} bytes, at most {max} allowed")]
    WkcTooLong {
        /// Length given.
        len: usize,
        /// Maximum (1024).
        max: usize,
    },
    /// The wrapped client key is too short to hold its own length field, or its length field
    /// does not fit the packet.
    #[error("malformed tls-crypt-v2 wrapped client key")]
    BadWkc,
    /// The crypto library refused an operation (should not happen with valid key lengths).
    #[error("crypto library failure")]
    Crypto,
}
