//! The legacy OpenVPN key derivation: the TLS 1.0/1.1 PRF (P_MD5 xor P_SHA1, RFC 2246) applied to
//! the key-method-2 randoms, for servers that do not offer TLS-EKM (OpenVPN up to 2.5).

use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

use crate::proto::keys::{KEY2_LEN, Key2};

fn p_hash<M: Mac + hmac::digest::KeyInit + Clone>(secret: &[u8], seed: &[u8], out: &mut [u8]) {
    let mac =
        <M as hmac::digest::KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    // A(1) = HMAC(secret, seed)
    let mut a = {
        let mut m = mac.clone();
        m.update(seed);
        m.finalize().into_bytes()
    };
    let mut pos = 0;
    while pos < out.len() {
        let mut m = mac.clone();
        m.update(&a);
        m.update(seed);
        let block = m.finalize().into_bytes();
        let n = (out.len() - pos).min(block.len());
        for (o, b) in out[pos..pos + n].iter_mut().zip(block.iter()) {
            *o ^= b;
        }
        pos += n;
        let mut m = mac.clone();
        m.update(&a);
        a = m.finalize().into_bytes();
    }
}

/// TLS 1.0 PRF: `P_MD5(S1, label||seed) XOR P_SHA1(S2, label||seed)`.
pub fn tls1_prf(secret: &[u8], label: &[u8], seed_parts: &[&[u8]], out: &mut [u8]) {
    let mut seed =
        Vec::with_capacity(label.len() + seed_parts.iter().map(|p| p.len()).sum::<usize>());
    seed.extend_from_slice(label);
    for p in seed_parts {
        seed.extend_from_slice(p);
    }
    out.fill(0);
    let half = secret.len().div_ceil(2);
    let s1 = &secret[..half];
    let s2 = &secret[secret.len() - half..];
    p_hash::<Hmac<md5::Md5>>(s1, &seed, out);
    p_hash::<Hmac<sha1::Sha1>>(s2, &seed, out);
}

/// The randoms of both key-method-2 messages that feed the PRF.
pub struct PrfInputs<'a> {
    /// Client's `pre_master[48]`.
    pub pre_master: &'a [u8; 48],
    /// Client `random1`, `random2`.
    pub client_random1: &'a [u8; 32],
    /// Client `random2`.
    pub client_random2: &'a [u8; 32],
    /// Server `random1`.
    pub server_random1: &'a [u8; 32],
    /// Server `random2`.
    pub server_random2: &'a [u8; 32],
    /// Client session id.
    pub client_sid: &'a [u8; 8],
    /// Server session id.
    pub server_sid: &'a [u8; 8],
}

/// Derives the 256-byte data key block the pre-EKM way.
pub fn derive_key2(i: &PrfInputs<'_>) -> Key2 {
    let mut master = Zeroizing::new([0u8; 48]);
    tls1_prf(
        i.pre_master,
        b"OpenVPN master secret",
        &[i.client_random1, i.server_random1],
        &mut master[..],
    );
    let mut out = Zeroizing::new([0u8; KEY2_LEN]);
    tls1_prf(
        &master[..],
        b"OpenVPN key expansion",
        &[
            i.client_random2,
            i.server_random2,
            i.client_sid,
            i.server_sid,
        ],
        &mut out[..],
    );
    Key2::from_bytes(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls1_prf_known_answer() {
        // Known answer for the TLS 1.0 PRF (secret of 48 x 0xab, label "PRF Testvector",
        // seed 64 x 0xcd), as published with the TLS 1.0/1.1 PRF test vectors.
        let secret = [0xabu8; 48];
        let seed = [0xcdu8; 64];
        let mut out = [0u8; 104];
        tls1_prf(&secret, b"PRF Testvector", &[&seed], &mut out);
        let expected = hex::decode(
            "d3d4d1e349b5d515044666d51de32bab258cb521b6b053463e354832fd976754\
             443bcf9a296519bc289abcbc1187e4ebd31e602353776c408aafb74cbc85eff6\
             9255f9788faa184cbb957a9819d84a5d7eb006eb459d3ae8de9810454b8b2d8f\
             1afbc655a8c9a013",
        )
        .unwrap();
        assert_eq!(&out[..], &expected[..]);
    }
}
