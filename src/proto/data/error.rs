//! Errors of the data channel. Every variant caused by network input means "count and drop the
//! packet"; none of them is fatal for the session except [`DataError::PacketIdExhausted`] (the
//! sending key must be renegotiated) and the construction errors of [`super::DataKey::new`].

use crate::proto::replay::ReplayError;

/// Why a data packet could not be sealed, opened or unframed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// The packet is shorter than its fixed fields (header, packet id, tag/HMAC, IV, one block).
    #[error("data packet truncated: need at least {needed} bytes, have {have}")]
    Truncated {
        /// Minimum length for this cipher and header.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// The header length passed in is neither 1 (P_DATA_V1) nor 4 (P_DATA_V2).
    #[error("data header must be 1 or 4 bytes long, got {0}")]
    BadHeaderLen(usize),
    /// AEAD authentication failed (wrong key, tampered packet, wrong AD).
    #[error("AEAD tag verification failed")]
    BadTag,
    /// CBC mode: the HMAC over IV || ciphertext did not verify.
    #[error("HMAC verification failed")]
    BadHmac,
    /// CBC mode: the ciphertext is not a whole number of blocks.
    #[error("CBC ciphertext length {0} is not a multiple of the block size")]
    BadBlockLength(usize),
    /// CBC mode: authenticated, but the PKCS#7 padding is malformed (peer bug).
    #[error("bad PKCS#7 padding")]
    BadPadding,
    /// The packet id was refused by the replay window.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The send packet id reached 0xFFFFFFFF: this key must not send any more.
    #[error("send packet id exhausted, the key must be renegotiated")]
    PacketIdExhausted,
    /// The cipher/digest combination is not supported (e.g. CBC with `auth none`).
    #[error("unsupported data-channel cipher/digest combination")]
    UnsupportedCipher,
    /// The crypto library refused a key or an operation it should have accepted.
    #[error("crypto library failure")]
    Crypto,
    /// The peer sent a compressed packet; compression is refused (`allow-compression no`).
    #[error("compressed packet refused (compression header {0:#04x})")]
    CompressedPacketRefused(u8),
    /// The compression framing byte is not one this framing knows.
    #[error("unknown compression framing byte {0:#04x}")]
    UnknownCompressionHeader(u8),
    /// A compressed packet that does not decompress, or would be larger than the tunnel's
    /// maximum packet size (a decompression bomb).
    #[error("compressed packet (header {0:#04x}) is malformed or too large")]
    BadCompressedPacket(u8),
}
