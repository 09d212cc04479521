//! The certificates, by OpenVPN's conventions (what easy-rsa makes and OpenVPN 2.6 and ferrovpn's
//! verifier accept):
//!
//! - CA: basicConstraints CA:TRUE (critical), keyUsage keyCertSign + cRLSign, CN = the CA name.
//! - server: CN = SAN DNS = name, EKU serverAuth, keyUsage digitalSignature (+ keyEncipherment
//!   for RSA), basicConstraints CA:FALSE.
//! - client: CN = name, EKU clientAuth, keyUsage as for servers, CA:FALSE.
//!
//! Serial numbers are 16 random bytes, positive (the top bit clear) and never starting with a
//! zero byte, so they stay 16 bytes long when encoded.

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::{CertKind, KeyAlgo, PkiError};

/// How far back `notBefore` is set, for peers whose clock runs a little behind.
const BACKDATE: Duration = Duration::from_secs(3600);

/// A fresh key pair.
pub(super) fn new_key(algo: KeyAlgo, what: &str) -> Result<KeyPair, PkiError> {
    let gen_err = |why: String| PkiError::Generate {
        what: format!("generating the {algo} key for {what}"),
        why,
    };
    match algo {
        KeyAlgo::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| gen_err(e.to_string())),
        KeyAlgo::Rsa2048 | KeyAlgo::Rsa3072 => {
            // rcgen's ring backend cannot generate RSA keys; aws-lc-rs can, and rcgen signs
            // with the PKCS#8 document it writes.
            use aws_lc_rs::encoding::AsDer as _;
            let size = if algo == KeyAlgo::Rsa2048 {
                aws_lc_rs::rsa::KeySize::Rsa2048
            } else {
                aws_lc_rs::rsa::KeySize::Rsa3072
            };
            let kp = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|e| gen_err(e.to_string()))?;
            let der = kp.as_der().map_err(|e| gen_err(e.to_string()))?;
            KeyPair::from_pkcs8_der_and_sign_algo(
                &rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_ref()),
                &rcgen::PKCS_RSA_SHA256,
            )
            .map_err(|e| gen_err(e.to_string()))
        }
    }
}

/// A random serial number: 16 bytes, positive, no leading zero byte.
pub(super) fn random_serial() -> Vec<u8> {
    let mut b = vec![0u8; 16];
    (crate::runtime::rng::system_rng())(&mut b);
    b[0] &= 0x7f;
    if b[0] == 0 {
        b[0] = 0x01;
    }
    b
}

/// `unix` seconds as rcgen's date type (a macro: that type's crate is not ours to name).
macro_rules! time_at {
    ($unix:expr) => {
        rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs($unix)
    };
}
pub(super) use time_at;

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(ca_name: &str, now: u64) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| PkiError::Generate {
        what: format!("the CA certificate '{ca_name}'"),
        why: e.to_string(),
    })?;
    p.distinguished_name = dn(ca_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = time_at!(now.saturating_sub(BACKDATE.as_secs()));
    p.not_after = time_at!(now + u64::from(super::CA_DAYS) * 86_400);
    Ok(p)
}

/// A new self-signed CA: (certificate PEM, key PEM).
pub(super) fn new_ca(ca_name: &str, algo: KeyAlgo, now: u64) -> Result<(String, String), PkiError> {
    let key = new_key(algo, &format!("the CA '{ca_name}'"))?;
    let mut p = ca_params(ca_name, now)?;
    p.serial_number = Some(SerialNumber::from(random_serial()));
    let cert = p.self_signed(&key).map_err(|e| PkiError::Generate {
        what: format!("signing the CA certificate '{ca_name}'"),
        why: e.to_string(),
    })?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The CA, loaded for signing.
pub(super) struct Ca {
    /// An issuer equivalent to `ca.crt` (same subject and key) for rcgen to sign with.
    pub(super) cert: Certificate,
    pub(super) key: KeyPair,
}

/// Loads the CA from its PEM files (`crt_path`/`key_path` name them in errors).
pub(super) fn load_ca(
    crt_pem: &[u8],
    crt_path: &Path,
    key_pem: &str,
    key_path: &Path,
) -> Result<Ca, PkiError> {
    let bad = |path: &Path, why: String| PkiError::BadCa {
        path: path.to_owned(),
        why,
    };
    let key = KeyPair::from_pem(key_pem)
        .map_err(|e| bad(key_path, format!("not a usable private key: {e}")))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(crt_pem)
        .map_err(|e| bad(crt_path, format!("not a PEM certificate: {e}")))?;
    let (_, x509) = X509Certificate::from_der(&pem.contents)
        .map_err(|e| bad(crt_path, format!("not a valid certificate: {e}")))?;
    if x509.public_key().raw != key.public_key_der().as_slice() {
        return Err(bad(
            key_path,
            format!("this key does not belong to {}", crt_path.display()),
        ));
    }
    let cn = x509
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .ok_or_else(|| bad(crt_path, "the CA certificate has no common name".into()))?
        .to_owned();
    // rcgen 0.13 cannot read a certificate back; rebuild an equivalent issuer. Only its subject
    // and key matter for signing, and the subject must encode to the same bytes.
    let params = ca_params(&cn, 0)?;
    let cert = params.self_signed(&key).map_err(|e| PkiError::Generate {
        what: format!("loading the CA '{cn}'"),
        why: e.to_string(),
    })?;
    let (_, rebuilt) = X509Certificate::from_der(cert.der())
        .map_err(|e| bad(crt_path, format!("rebuilding the issuer: {e}")))?;
    if rebuilt.subject().as_raw() != x509.subject().as_raw() {
        return Err(bad(
            crt_path,
            "the CA subject is not the single common name this PKI writes; issue with the tool \
             that made this CA"
                .into(),
        ));
    }
    Ok(Ca { cert, key })
}

/// A new leaf certificate and key: (certificate PEM, key PEM, serial, not_after unix).
pub(super) fn new_leaf(
    ca: &Ca,
    kind: CertKind,
    name: &str,
    algo: KeyAlgo,
    days: u32,
    serial: &[u8],
    now: u64,
) -> Result<(String, String, u64), PkiError> {
    let what = format!("the {kind} certificate '{name}'");
    let gen_err = |e: rcgen::Error| PkiError::Generate {
        what: what.clone(),
        why: e.to_string(),
    };
    let key = new_key(algo, &what)?;
    let sans = match kind {
        CertKind::Server => vec![name.to_owned()],
        CertKind::Client => Vec::new(),
    };
    let mut p = CertificateParams::new(sans).map_err(gen_err)?;
    p.distinguished_name = dn(name);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if algo.is_rsa() {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    p.extended_key_usages = vec![match kind {
        CertKind::Server => ExtendedKeyUsagePurpose::ServerAuth,
        CertKind::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(SerialNumber::from_slice(serial));
    let not_after = now + u64::from(days) * 86_400;
    p.not_before = time_at!(now.saturating_sub(BACKDATE.as_secs()));
    p.not_after = time_at!(not_after);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).map_err(gen_err)?;
    Ok((cert.pem(), key.serialize_pem(), not_after))
}
