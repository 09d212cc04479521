//! `tls-cert-profile` and `tls-cipher`/`tls-ciphersuites`/`tls-groups` applied to the rustls
//! aws-lc-rs provider.
//!
//! Certificate signatures: rustls-webpki 0.103 has no SHA1 algorithm, so `legacy` (OpenVPN's
//! default) and `insecure` add aws-lc-rs's `RSA_PKCS1_*_SHA1_FOR_LEGACY_USE_ONLY` verification
//! through the `SignatureVerificationAlgorithm` trait; `insecure` also accepts RSA keys of 1024
//! bits in the chain. `preferred` is webpki's own list (SHA-2, RSA 2048+); `suiteb` keeps ECDSA
//! P-256/SHA-256 and P-384/SHA-384 only.

use std::sync::{Arc, LazyLock};

use ::aws_lc_rs::signature::{self as sig, RsaParameters, UnparsedPublicKey};
use rustls::SignatureScheme;
use rustls::crypto::{CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::alg_id;
use rustls::pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};
use webpki::aws_lc_rs as algs;

use crate::config::{CertProfile, TlsGroup, TlsSettings, TlsSuite};

/// `sha1WithRSAEncryption` with NULL parameters (the AlgorithmIdentifier's content).
const SHA1_RSA_ALG_ID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
];

/// The `sha1WithRSAEncryption` OID content, to recognise SHA1-signed certificates.
pub(super) const SHA1_RSA_OID: &str = "1.2.840.113549.1.1.5";
/// `ecdsa-with-SHA1`.
pub(super) const SHA1_ECDSA_OID: &str = "1.2.840.10045.4.1";

/// RSA PKCS#1 v1.5 verification by aws-lc-rs for algorithms webpki does not carry.
#[derive(Debug)]
struct LegacyRsa {
    signature_alg: &'static [u8],
    params: &'static RsaParameters,
}

impl SignatureVerificationAlgorithm for LegacyRsa {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        UnparsedPublicKey::new(self.params, public_key)
            .verify(message, signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(self.signature_alg)
    }

    fn fips(&self) -> bool {
        false
    }
}

static RSA_2048_SHA1: LegacyRsa = LegacyRsa {
    signature_alg: SHA1_RSA_ALG_ID,
    params: &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
};
static RSA_1024_SHA1: LegacyRsa = LegacyRsa {
    signature_alg: SHA1_RSA_ALG_ID,
    params: &sig::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
};
static RSA_1024_SHA256: LegacyRsa = LegacyRsa {
    signature_alg: alg_id_bytes::RSA_PKCS1_SHA256,
    params: &sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
};
static RSA_1024_SHA512: LegacyRsa = LegacyRsa {
    signature_alg: alg_id_bytes::RSA_PKCS1_SHA512,
    params: &sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
};

mod alg_id_bytes {
    /// sha256WithRSAEncryption, NULL parameters.
    pub(super) const RSA_PKCS1_SHA256: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
    ];
    /// sha512WithRSAEncryption, NULL parameters.
    pub(super) const RSA_PKCS1_SHA512: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
    ];
}

type Algs = Vec<&'static dyn SignatureVerificationAlgorithm>;

fn default_algs() -> WebPkiSupportedAlgorithms {
    aws_lc_rs::default_provider().signature_verification_algorithms
}

/// webpki's list plus SHA1 (RSA 2048+).
static LEGACY: LazyLock<Algs> = LazyLock::new(|| {
    let mut v: Algs = vec![&RSA_2048_SHA1];
    v.extend_from_slice(default_algs().all);
    v
});

/// SHA1 and RSA 1024+ first (webpki stops at the first algorithm with a matching identifier).
static INSECURE: LazyLock<Algs> = LazyLock::new(|| {
    let mut v: Algs = vec![&RSA_1024_SHA1, &RSA_1024_SHA256, &RSA_1024_SHA512];
    v.extend_from_slice(default_algs().all);
    v
});

static SUITEB_ALL: &[&dyn SignatureVerificationAlgorithm] =
    &[algs::ECDSA_P256_SHA256, algs::ECDSA_P384_SHA384];
static SUITEB_MAP: &[(SignatureScheme, &[&dyn SignatureVerificationAlgorithm])] = &[
    (
        SignatureScheme::ECDSA_NISTP384_SHA384,
        &[algs::ECDSA_P384_SHA384],
    ),
    (
        SignatureScheme::ECDSA_NISTP256_SHA256,
        &[algs::ECDSA_P256_SHA256],
    ),
];

fn signature_algorithms(profile: CertProfile) -> WebPkiSupportedAlgorithms {
    let default = default_algs();
    match profile {
        CertProfile::Preferred => default,
        CertProfile::Legacy => WebPkiSupportedAlgorithms {
            all: &LEGACY[..],
            mapping: default.mapping,
        },
        CertProfile::Insecure => WebPkiSupportedAlgorithms {
            all: &INSECURE[..],
            mapping: default.mapping,
        },
        CertProfile::SuiteB => WebPkiSupportedAlgorithms {
            all: SUITEB_ALL,
            mapping: SUITEB_MAP,
        },
    }
}

fn suite(s: TlsSuite) -> rustls::SupportedCipherSuite {
    use aws_lc_rs::cipher_suite as cs;
    match s {
        TlsSuite::Tls13Aes256Gcm => cs::TLS13_AES_256_GCM_SHA384,
        TlsSuite::Tls13Aes128Gcm => cs::TLS13_AES_128_GCM_SHA256,
        TlsSuite::Tls13Chacha20 => cs::TLS13_CHACHA20_POLY1305_SHA256,
        TlsSuite::EcdheEcdsaAes256Gcm => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TlsSuite::EcdheEcdsaAes128Gcm => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TlsSuite::EcdheEcdsaChacha20 => cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TlsSuite::EcdheRsaAes256Gcm => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TlsSuite::EcdheRsaAes128Gcm => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TlsSuite::EcdheRsaChacha20 => cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    }
}

fn group(g: TlsGroup) -> &'static dyn SupportedKxGroup {
    use aws_lc_rs::kx_group as kx;
    match g {
        TlsGroup::X25519 => kx::X25519,
        TlsGroup::P256 => kx::SECP256R1,
        TlsGroup::P384 => kx::SECP384R1,
        TlsGroup::X25519MlKem768 => kx::X25519MLKEM768,
    }
}

/// The aws-lc-rs provider narrowed to the profile's suites, groups and certificate profile.
pub(super) fn provider_for(tls: &TlsSettings) -> Arc<CryptoProvider> {
    let mut p = aws_lc_rs::default_provider();
    let defaults = p.cipher_suites.clone();
    let is13 =
        |s: &rustls::SupportedCipherSuite| matches!(s, rustls::SupportedCipherSuite::Tls13(_));
    let mut suites: Vec<rustls::SupportedCipherSuite> = match &tls.tls13_suites {
        Some(list) => list.iter().map(|s| suite(*s)).collect(),
        None => defaults.iter().copied().filter(is13).collect(),
    };
    match &tls.tls12_suites {
        Some(list) => suites.extend(list.iter().map(|s| suite(*s))),
        None => suites.extend(defaults.iter().copied().filter(|s| !is13(s))),
    }
    if let Some(groups) = &tls.groups {
        p.kx_groups = groups.iter().map(|g| group(*g)).collect();
    }
    if tls.cert_profile == CertProfile::SuiteB {
        use aws_lc_rs::cipher_suite as cs;
        let allowed = [
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ];
        suites.retain(|s| allowed.iter().any(|a| a.suite() == s.suite()));
        p.kx_groups.retain(|g| {
            matches!(
                g.name(),
                rustls::NamedGroup::secp256r1 | rustls::NamedGroup::secp384r1
            )
        });
        if p.kx_groups.is_empty() {
            p.kx_groups = vec![
                aws_lc_rs::kx_group::SECP256R1,
                aws_lc_rs::kx_group::SECP384R1,
            ];
        }
    }
    p.cipher_suites = suites;
    p.signature_verification_algorithms = signature_algorithms(tls.cert_profile);
    Arc::new(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_and_groups_follow_the_profile() {
        let tls = TlsSettings {
            tls12_suites: Some(vec![TlsSuite::EcdheRsaAes128Gcm]),
            tls13_suites: Some(vec![TlsSuite::Tls13Chacha20]),
            groups: Some(vec![TlsGroup::P384]),
            ..TlsSettings::default()
        };
        let p = provider_for(&tls);
        let names: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            names,
            [
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            ]
        );
        assert_eq!(p.kx_groups.len(), 1);
        assert_eq!(p.kx_groups[0].name(), rustls::NamedGroup::secp384r1);
    }

    #[test]
    fn cert_profiles_pick_signature_algorithms() {
        let has_sha1 = |p: CertProfile| {
            signature_algorithms(p)
                .all
                .iter()
                .any(|a| a.signature_alg_id().as_ref() == SHA1_RSA_ALG_ID)
        };
        assert!(has_sha1(CertProfile::Legacy));
        assert!(has_sha1(CertProfile::Insecure));
        assert!(!has_sha1(CertProfile::Preferred));
        assert!(!has_sha1(CertProfile::SuiteB));
        assert_eq!(signature_algorithms(CertProfile::SuiteB).all.len(), 2);
        let suiteb = provider_for(&TlsSettings {
            cert_profile: CertProfile::SuiteB,
            ..TlsSettings::default()
        });
        assert!(suiteb.cipher_suites.iter().all(|s| {
            let n = format!("{:?}", s.suite());
            n.starts_with("TLS13") || n.contains("ECDSA")
        }));
    }
}
