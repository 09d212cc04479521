//! The server's half of tls-crypt-v2 (PROTOCOL.md A.2.2): unwrapping a client's WKc with the
//! server key to learn its per-client tls-crypt key `Kc` and metadata, and wrapping new ones.
//!
//! ```text
//! WKc = T || AES-256-CTR(Ke, IV = T[0..16], Kc || metadata) || len:u16
//! T   = HMAC-SHA256(Ka, len || Kc || metadata)        len = |WKc|
//! ```

use aws_lc_rs::cipher::{AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use zeroize::Zeroizing;

use crate::proto::keys::{KEY2_LEN, Key2};
use crate::proto::wire::MAX_WKC_LEN;

const TAG_LEN: usize = 32;

/// Metadata type byte: free-form user data.
pub const METADATA_USER: u8 = 0x00;
/// Metadata type byte: a u64 big-endian creation time (unix seconds).
pub const METADATA_TIMESTAMP: u8 = 0x01;

/// Why a WKc was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WkcError {
    /// Too short, too long, or its length field disagrees with its size.
    #[error("malformed wrapped client key")]
    Malformed,
    /// The tag does not verify: made with another server key, or tampered with.
    #[error("wrapped client key was not made with this server's tls-crypt-v2 key")]
    BadTag,
}

/// A tls-crypt-v2 server key (`Ke` for AES-256-CTR, `Ka` for HMAC-SHA256).
pub struct TlsCryptV2ServerKey {
    ke: Zeroizing<[u8; 32]>,
    ka: hmac::Key,
}

impl std::fmt::Debug for TlsCryptV2ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsCryptV2ServerKey(..)")
    }
}

/// A client key recovered from its WKc.
pub struct UnwrappedClientKey {
    /// `Kc`: the client's tls-crypt key.
    pub key: Key2,
    /// The metadata the key was made with (type byte first).
    pub metadata: Vec<u8>,
}

impl TlsCryptV2ServerKey {
    /// From the 128-byte body of an `OpenVPN tls-crypt-v2 server key` (one OpenVPN `struct key`:
    /// `cipher[64] || hmac[64]`).
    pub fn from_bytes(body: &[u8; 128]) -> Self {
        let mut ke = Zeroizing::new([0u8; 32]);
        ke.copy_from_slice(&body[..32]);
        Self {
            ke,
            ka: hmac::Key::new(hmac::HMAC_SHA256, &body[64..96]),
        }
    }

    fn ctr(&self, iv: &[u8], buf: &mut [u8]) -> Result<(), WkcError> {
        let iv: [u8; 16] = iv.try_into().map_err(|_| WkcError::Malformed)?;
        let key = UnboundCipherKey::new(&AES_256, &self.ke[..]).map_err(|_| WkcError::Malformed)?;
        let key = EncryptingKey::ctr(key).map_err(|_| WkcError::Malformed)?;
        key.less_safe_encrypt(buf, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map_err(|_| WkcError::Malformed)?;
        Ok(())
    }

    /// Recovers `Kc` and the metadata from a WKc (as split off a packet by
    /// [`crate::proto::wire::split_wkc`]).
    pub fn unwrap(&self, wkc: &[u8]) -> Result<UnwrappedClientKey, WkcError> {
        let n = wkc.len();
        if !(TAG_LEN + KEY2_LEN + 2..=MAX_WKC_LEN).contains(&n) {
            return Err(WkcError::Malformed);
        }
        let len_field = u16::from_be_bytes([wkc[n - 2], wkc[n - 1]]);
        if usize::from(len_field) != n {
            return Err(WkcError::Malformed);
        }
        let (tag, rest) = wkc.split_at(TAG_LEN);
        let mut plain = Zeroizing::new(rest[..rest.len() - 2].to_vec());
        self.ctr(&tag[..16], &mut plain)?;
        let mut ctx = hmac::Context::with_key(&self.ka);
        ctx.update(&len_field.to_be_bytes());
        ctx.update(&plain);
        verify_slices_are_equal(ctx.sign().as_ref(), tag).map_err(|_| WkcError::BadTag)?;
        let key = Key2::from_slice(&plain[..KEY2_LEN]).ok_or(WkcError::Malformed)?;
        Ok(UnwrappedClientKey {
            key,
            metadata: plain[KEY2_LEN..].to_vec(),
        })
    }

    /// Wraps a client key with `metadata` (type byte first) into a WKc.
    pub fn wrap(&self, client_key: &Key2, metadata: &[u8]) -> Result<Vec<u8>, WkcError> {
        let n = TAG_LEN + KEY2_LEN + metadata.len() + 2;
        if n > MAX_WKC_LEN {
            return Err(WkcError::Malformed);
        }
        let len_field = (n as u16).to_be_bytes();
        let mut plain = Zeroizing::new(Vec::with_capacity(KEY2_LEN + metadata.len()));
        plain.extend_from_slice(client_key.as_bytes());
        plain.extend_from_slice(metadata);
        let mut ctx = hmac::Context::with_key(&self.ka);
        ctx.update(&len_field);
        ctx.update(&plain);
        let tag = ctx.sign();
        let mut out = Vec::with_capacity(n);
        out.extend_from_slice(tag.as_ref());
        let start = out.len();
        out.extend_from_slice(&plain);
        self.ctr(&tag.as_ref()[..16], &mut out[start..])?;
        out.extend_from_slice(&len_field);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_round_trip_and_tamper() {
        let mut body = [0u8; 128];
        body.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let sk = TlsCryptV2ServerKey::from_bytes(&body);
        let kc = Key2::from_bytes(&[9u8; KEY2_LEN]);
        let wkc = sk.wrap(&kc, &[METADATA_USER, b'x']).unwrap();
        let got = sk.unwrap(&wkc).unwrap();
        assert_eq!(got.key.as_bytes(), kc.as_bytes());
        assert_eq!(got.metadata, vec![METADATA_USER, b'x']);
        let mut bad = wkc.clone();
        bad[40] ^= 1;
        assert_eq!(sk.unwrap(&bad).err(), Some(WkcError::BadTag));
        assert_eq!(sk.unwrap(&wkc[1..]).err(), Some(WkcError::Malformed));
        body[0] ^= 1;
        let other = TlsCryptV2ServerKey::from_bytes(&body);
        assert_eq!(other.unwrap(&wkc).err(), Some(WkcError::BadTag));
    }
}
