//! Data channel: AEAD and CBC+HMAC, replay window, compression framing, ping/OCC.
//!
//! A [`DataKey`] holds the crypto state of one key_id in both directions; the caller
//! demultiplexes by key_id, builds the header with [`header_v1`]/[`header_v2`], frames the IP
//! packet with [`Framing::frame`], seals, and on receive opens, unframes and [`classify`]es.

mod codec;
mod compress;
mod crypto;
mod error;
mod inband;
mod lzo;
#[cfg(test)]
mod tests;

pub use codec::{COMPRESS_THRESHOLD, Codec, CompressionStats, framing_for};
pub use compress::{Algorithm, Framing};
pub use crypto::{
    AEAD_TAG_LEN, CBC_IV_LEN, DataKey, OP_DATA_V1, OP_DATA_V2, RENEGOTIATE_AFTER_PACKET_ID,
    RandomSource, Role, header_v1, header_v2,
};
pub use error::DataError;
pub use inband::{Inband, OCC_EXIT, OCC_MAGIC, PING_MAGIC, classify, occ_exit};
