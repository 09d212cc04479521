//! Wire views: opcodes, control packets, tls-auth/tls-crypt/tls-crypt-v2 wrapping, TCP framing,
//! data-channel headers.

pub mod control;
pub mod data;
pub mod error;
pub mod opcode;
pub mod tcp;
pub mod wrap;

#[cfg(test)]
mod testutil;
#[cfg(test)]
mod vectors_tests;

pub use control::{
    CONTROL_HEADER_LEN, ControlPacket, MAX_ACKS, MAX_PIGGYBACK_ACKS, SID_LEN, SessionId,
    ack_block_len,
};
pub use data::{
    DATA_V1_HEADER_LEN, DATA_V2_HEADER_LEN, data_header, data_v1_header, data_v2_header,
};
pub use error::{WireError, WrapError};
pub use opcode::{Opcode, first_byte, split_first_byte};
pub use tcp::{MAX_TCP_PACKET, TcpDeframer, frame};
pub use wrap::{
    ControlWrap, EARLY_NEG_START, MAX_WKC_LEN, Role, TLS_CRYPT_OVERHEAD, TlsAuth, TlsCrypt,
    split_wkc,
};
