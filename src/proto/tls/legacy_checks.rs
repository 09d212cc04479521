//! Peer-certificate checks of old profiles: `remote-cert-ku`, `verify-hash`, and the weak
//! signatures `tls-cert-profile` governs (SHA1, small RSA keys).

use x509_parser::prelude::{FromDer, X509Certificate};

use super::PeerCertError;
use super::cert_profile::{SHA1_ECDSA_OID, SHA1_RSA_OID};
use crate::config::{CertProfile, HashAlg};

/// `remote-cert-ku`: the key usage extension must exist and, when values are given, contain all
/// bits of one of them (OpenSSL's bit order, 0x80 = digitalSignature).
pub(super) fn check_ku(cert: &X509Certificate<'_>, wanted: &[u16]) -> Result<(), PeerCertError> {
    let ku = cert
        .key_usage()
        .map_err(|e| PeerCertError::Malformed(e.to_string()))?;
    let Some(ku) = ku else {
        return Err(PeerCertError::KeyUsage(
            "the certificate has no key usage extension".into(),
        ));
    };
    let have = openssl_ku(ku.value.flags);
    if wanted.is_empty() || wanted.iter().any(|&w| w & !have == 0) {
        return Ok(());
    }
    Err(PeerCertError::KeyUsage(format!(
        "its key usage is {have:02x}, which contains none of {}",
        wanted
            .iter()
            .map(|w| format!("{w:02x}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// x509-parser's flags (bit i = ASN.1 bit i) in OpenSSL's order (first byte MSB first, then
/// decipherOnly as 0x8000).
fn openssl_ku(flags: u16) -> u16 {
    let mut out = 0u16;
    for i in 0..9 {
        if flags & (1 << i) != 0 {
            out |= if i < 8 { 0x80 >> i } else { 0x8000 };
        }
    }
    out
}

/// `verify-hash`: the level-1 certificate (the CA or intermediate that signed the leaf, from the
/// chain the server sent or the profile's `ca`) must have one of the fingerprints.
pub(super) fn check_verify_hash(
    leaf: &X509Certificate<'_>,
    candidates: &[&[u8]],
    alg: HashAlg,
    hashes: &[Vec<u8>],
) -> Result<(), PeerCertError> {
    let digest = match alg {
        HashAlg::Sha1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => &aws_lc_rs::digest::SHA256,
    };
    let issuer = leaf.issuer().as_raw();
    let mut seen = Vec::new();
    for der in candidates {
        let Ok((_, c)) = X509Certificate::from_der(der) else {
            continue;
        };
        if c.subject().as_raw() != issuer {
            continue;
        }
        let fp = aws_lc_rs::digest::digest(digest, der);
        if hashes.iter().any(|h| h[..] == *fp.as_ref()) {
            return Ok(());
        }
        seen.push(super::hex_colon(fp.as_ref()));
    }
    Err(PeerCertError::VerifyHash(if seen.is_empty() {
        "the certificate that signed the server's certificate is neither in the chain the \
         server sent nor in 'ca'"
            .into()
    } else {
        format!("the issuer's fingerprint is {}", seen.join(" or "))
    }))
}

/// Subjects of the certificates in `chain` signed with SHA1.
pub(super) fn sha1_signed(chain: &[&[u8]]) -> Vec<String> {
    chain
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok())
        .filter(|(_, c)| {
            let oid = c.signature_algorithm.algorithm.to_id_string();
            oid == SHA1_RSA_OID || oid == SHA1_ECDSA_OID
        })
        .map(|(_, c)| super::subject_string(&c))
        .collect()
}

/// Subjects of the certificates in `chain` whose RSA key is below `bits`.
pub(super) fn small_rsa(chain: &[&[u8]], bits: usize) -> Vec<String> {
    chain
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok())
        .filter(|(_, c)| {
            matches!(
                c.public_key().parsed(),
                Ok(x509_parser::public_key::PublicKey::RSA(k)) if k.key_size() < bits
            )
        })
        .map(|(_, c)| super::subject_string(&c))
        .collect()
}

/// Why the chain failed under `profile` when a weak signature or key explains it.
pub(super) fn weak_chain_error(profile: CertProfile, chain: &[&[u8]]) -> Option<PeerCertError> {
    let sha1 = sha1_signed(chain);
    if !sha1.is_empty() && matches!(profile, CertProfile::Preferred | CertProfile::SuiteB) {
        return Some(PeerCertError::Weak(format!(
            "the certificate '{}' is signed with SHA1, which 'tls-cert-profile {}' refuses: \
             reissue it with SHA-256, or use 'tls-cert-profile legacy' (OpenVPN's default)",
            sha1.join("', '"),
            profile.name()
        )));
    }
    let small = small_rsa(chain, 2048);
    if !small.is_empty() && profile != CertProfile::Insecure {
        return Some(PeerCertError::Weak(format!(
            "the certificate '{}' has an RSA key below 2048 bits, which 'tls-cert-profile {}' \
             refuses: reissue it with RSA 2048+ or ECDSA, or use 'tls-cert-profile insecure'",
            small.join("', '"),
            profile.name()
        )));
    }
    if profile == CertProfile::SuiteB {
        return Some(PeerCertError::Weak(
            "'tls-cert-profile suiteb' accepts only ECDSA P-256/P-384 certificates signed with \
             SHA-256/SHA-384"
                .into(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_usage_bits_in_openssl_order() {
        // digitalSignature (bit 0) + keyEncipherment (bit 2) = OpenSSL a0.
        assert_eq!(openssl_ku(0b101), 0xa0);
        assert_eq!(openssl_ku(1 << 8), 0x8000);
        assert_eq!(openssl_ku(1 << 3), 0x10);
    }
}
