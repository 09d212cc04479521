//! The only file that touches rustls: configuration from the profile's TLS settings, OpenVPN-style
//! peer verification, and a byte-buffer driven TLS session.
//!
//! OpenVPN never checks a host name. A server is accepted when its chain leads to the profile's CA
//! (or its SHA-256 fingerprint is pinned with `peer-fingerprint`), it is not revoked by the
//! `crl-verify` list, and it passes `remote-cert-tls server` (EKU serverAuth and a key usage fit
//! for TLS), `verify-x509-name`. Unlike OpenVPN, which only warns, a profile with none of those
//! checks still requires the serverAuth EKU, unless the user passes `--no-server-eku-check`.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::{CertProfile, CertRole, HashAlg, TlsSettings, VerifyX509Name, X509NameKind};

mod cert_profile;
mod legacy_checks;

const EKU_SERVER_AUTH: &[u8] = &oid_bytes::SERVER_AUTH;
const EKU_CLIENT_AUTH: &[u8] = &oid_bytes::CLIENT_AUTH;

mod oid_bytes {
    /// 1.3.6.1.5.5.7.3.1
    pub(super) const SERVER_AUTH: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    /// 1.3.6.1.5.5.7.3.2
    pub(super) const CLIENT_AUTH: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
}

/// Errors building a TLS configuration from the profile (local configuration faults).
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A PEM block could not be read.
    #[error("cannot read {what}: {detail}")]
    Pem {
        /// Which item (`ca`, `cert`, `key`, `extra-certs`, `crl-verify`).
        what: &'static str,
        /// Parser message.
        detail: String,
    },
    /// A CA certificate is unusable as a trust anchor.
    #[error("the 'ca' certificate cannot be used as a trust anchor: {0}")]
    BadTrustAnchor(String),
    /// The profile gives neither a CA nor a fingerprint.
    #[error(
        "the profile has neither 'ca' nor 'peer-fingerprint': the peer could not be authenticated"
    )]
    NoTrust,
    /// `cert` without `key` or the other way round.
    #[error("'cert' and 'key' must be given together")]
    CertWithoutKey,
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// Unknown `tls-version-min/max`.
    #[error("unsupported TLS version '{0}' (use 1.2 or 1.3)")]
    BadVersion(String),
}

/// Why the peer's certificate was refused, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum PeerCertError {
    /// Chain does not lead to the profile's CA.
    #[error(
        "the server certificate is not signed by the profile's CA ({0}); check that the 'ca' in the profile belongs to this server"
    )]
    UntrustedChain(String),
    /// EKU serverAuth missing while required by default.
    #[error(
        "the server certificate lacks the 'TLS Web Server Authentication' (serverAuth) extended key usage; this protects against another client of the same CA posing as the server. If the server's certificate really lacks it, use --no-server-eku-check (less safe) or fix the server certificate"
    )]
    MissingServerEku,
    /// `remote-cert-tls` failed.
    #[error("the peer certificate fails 'remote-cert-tls {role}': {detail}")]
    RemoteCertTls {
        /// `server` or `client`.
        role: &'static str,
        /// What is missing.
        detail: String,
    },
    /// `verify-x509-name` failed.
    #[error("the peer certificate fails 'verify-x509-name {expected}': its subject is '{subject}'")]
    X509Name {
        /// The configured name.
        expected: String,
        /// What the certificate says.
        subject: String,
    },
    /// `peer-fingerprint` failed.
    #[error("the peer certificate's SHA-256 fingerprint {0} is not in 'peer-fingerprint'")]
    Fingerprint(String),
    /// Revoked by the CRL.
    #[error("the peer certificate is revoked by the 'crl-verify' list")]
    Revoked,
    /// Certificate expired or not yet valid.
    #[error(
        "the peer certificate is outside its validity period ({0}); check this machine's clock"
    )]
    Validity(String),
    /// Undecodable certificate.
    #[error("the peer certificate cannot be parsed: {0}")]
    Malformed(String),
    /// `remote-cert-ku` failed.
    #[error("the peer certificate fails 'remote-cert-ku': {0}")]
    KeyUsage(String),
    /// `remote-cert-eku` failed.
    #[error("the peer certificate lacks the extended key usage {0} required by 'remote-cert-eku'")]
    RemoteCertEku(String),
    /// `verify-hash` failed.
    #[error("the peer certificate fails 'verify-hash': {0}")]
    VerifyHash(String),
    /// A signature or key `tls-cert-profile` refuses.
    #[error("{0}")]
    Weak(String),
}

impl From<PeerCertError> for rustls::Error {
    fn from(e: PeerCertError) -> Self {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(e),
        )))
    }
}

/// Errors while running a TLS session.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The peer certificate was refused.
    #[error("{0}")]
    PeerCert(String),
    /// The peer sent a TLS alert.
    #[error("the peer ended the TLS handshake with alert '{0}'")]
    Alert(String),
    /// No common TLS version / cipher suite / signature scheme.
    #[error("TLS negotiation failed: {0}")]
    Incompatible(String),
    /// A handshake message (a certificate chain, usually) over rustls' 64 KiB bound.
    #[error(
        "the peer sent a TLS handshake message larger than 64 KiB (a huge certificate chain?): refused rather than buffered; trim the peer's 'extra-certs'/chain"
    )]
    TooLarge,
    /// Anything else from rustls.
    #[error("TLS error: {0}")]
    Other(String),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        match e {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
                Self::PeerCert(o.0.to_string())
            }
            rustls::Error::InvalidCertificate(c) => Self::PeerCert(format!("{c:?}")),
            rustls::Error::AlertReceived(a) => {
                use rustls::AlertDescription as A;
                let hint = match a {
                    A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::AccessDenied
                    | A::CertificateRequired => {
                        ": the server refused this client's certificate; check that 'cert' is signed by the CA the server trusts, not expired or revoked"
                    }
                    A::HandshakeFailure | A::InsufficientSecurity => NO_COMMON_SUITE,
                    A::ProtocolVersion => TLS_TOO_OLD,
                    _ => "",
                };
                Self::Alert(format!("{a:?}{hint}"))
            }
            rustls::Error::PeerIncompatible(
                p @ (rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13
                | rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig),
            ) => Self::Incompatible(format!("{p:?}{TLS_TOO_OLD}")),
            rustls::Error::PeerIncompatible(p) => Self::Incompatible(format!("{p:?}")),
            rustls::Error::InvalidMessage(rustls::InvalidMessage::HandshakePayloadTooLarge) => {
                Self::TooLarge
            }
            rustls::Error::InvalidMessage(m) if format!("{m:?}").contains("Version") => {
                Self::Incompatible(format!("{m:?}{TLS_TOO_OLD}"))
            }
            other => Self::Other(other.to_string()),
        }
    }
}

/// What a `handshake_failure` from the server most often means with an old server.
const NO_COMMON_SUITE: &str = ": the server offers no TLS cipher suite this client can use. \
    rustls speaks TLS 1.2 and 1.3 with ECDHE key exchange only (no DHE, no RSA key exchange), so \
    a server limited to DHE suites (DHE-RSA-* in its 'tls-cipher') cannot be reached: on the \
    server use an ECDHE 'tls-cipher' (e.g. ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384) \
    or remove the line, and 'dh none'; also check this profile's tls-cipher, tls-groups and \
    tls-version-min";

/// What a version refusal means.
const TLS_TOO_OLD: &str = ": the server offers only TLS below 1.2 (TLS 1.0/1.1), which rustls \
    does not speak: on the server set 'tls-version-min 1.2' and remove 'tls-version-max 1.0/1.1' \
    (OpenSSL 3 servers also need a 'tls-cipher' without '@SECLEVEL=0' limits on old versions)";

fn read_certs(
    what: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::Pem {
            what,
            detail: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn read_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsConfigError::Pem {
        what: "key",
        detail: format!("{e} (encrypted keys are not supported yet; decrypt with openssl pkey)"),
    })
}

fn versions(
    tls: &TlsSettings,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsConfigError> {
    let parse = |v: &Option<String>, default: u8| -> Result<u8, TlsConfigError> {
        match v.as_deref() {
            None => Ok(default),
            Some("1.2") => Ok(2),
            Some("1.3") => Ok(3),
            Some("1.0") | Some("1.1") => Ok(2),
            Some(other) => Err(TlsConfigError::BadVersion(other.to_owned())),
        }
    };
    let min = parse(&tls.tls_version_min, 2)?;
    let max = parse(&tls.tls_version_max, 3)?;
    let mut out = Vec::new();
    if min <= 3 && max >= 3 {
        out.push(&rustls::version::TLS13);
    }
    if min <= 2 && max >= 2 {
        out.push(&rustls::version::TLS12);
    }
    if out.is_empty() {
        return Err(TlsConfigError::BadVersion(format!("min {min} > max {max}")));
    }
    Ok(out)
}

/// How a peer certificate is checked (shared by the client and server verifiers).
#[derive(Debug)]
struct PeerPolicy {
    anchors: Vec<rustls::pki_types::TrustAnchor<'static>>,
    crls: Vec<webpki::CertRevocationList<'static>>,
    fingerprints: Vec<[u8; 32]>,
    remote_cert_tls: Option<CertRole>,
    verify_name: Option<VerifyX509Name>,
    /// EKU that must be present on the end-entity certificate (None: no EKU requirement).
    required_eku: Option<&'static [u8]>,
    /// `remote-cert-eku`.
    remote_cert_eku: Option<Vec<u8>>,
    /// `remote-cert-ku`.
    remote_cert_ku: Option<Vec<u16>>,
    /// `verify-hash`.
    verify_hash: Option<(HashAlg, Vec<Vec<u8>>)>,
    /// The `ca` certificates (DER), for `verify-hash`.
    ca_ders: Vec<CertificateDer<'static>>,
    cert_profile: CertProfile,
    provider: Arc<CryptoProvider>,
}

/// All of these EKUs must be present.
struct RequireEku<'a>(Vec<&'a [u8]>);

#[allow(deprecated)]
impl webpki::ExtendedKeyUsageValidator for RequireEku<'_> {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut found = vec![false; self.0.len()];
        for id in iter {
            let id = id?;
            for (f, w) in found.iter_mut().zip(&self.0) {
                if id == webpki::KeyPurposeId::new(w) {
                    *f = true;
                }
            }
        }
        if found.iter().all(|f| *f) {
            Ok(())
        } else {
            Err(webpki::Error::RequiredEkuNotFound)
        }
    }
}

struct AnyEku;

impl webpki::ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for id in iter {
            id?;
        }
        Ok(())
    }
}

impl PeerPolicy {
    fn verify_tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }

    fn new(
        tls: &TlsSettings,
        default_eku: Option<&'static [u8]>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsConfigError> {
        let mut anchors = Vec::new();
        let mut ca_ders = Vec::new();
        if let Some(ca) = &tls.ca {
            for cert in read_certs("ca", ca)? {
                let anchor = webpki::anchor_from_trusted_cert(&cert)
                    .map_err(|e| TlsConfigError::BadTrustAnchor(e.to_string()))?;
                anchors.push(anchor.to_owned());
                ca_ders.push(cert);
            }
        }
        if anchors.is_empty() && tls.peer_fingerprints.is_empty() {
            return Err(TlsConfigError::NoTrust);
        }
        let mut crls = Vec::new();
        if let Some(crl) = &tls.crl {
            let ders: Vec<Vec<u8>> = if crl.starts_with(b"-----") {
                rustls::pki_types::CertificateRevocationListDer::pem_slice_iter(crl)
                    .map(|r| r.map(|d| d.to_vec()))
                    .collect::<Result<_, _>>()
                    .map_err(|e| TlsConfigError::Pem {
                        what: "crl-verify",
                        detail: e.to_string(),
                    })?
            } else {
                vec![crl.clone()]
            };
            for der in ders {
                let owned = webpki::OwnedCertRevocationList::from_der(&der).map_err(|e| {
                    TlsConfigError::Pem {
                        what: "crl-verify",
                        detail: e.to_string(),
                    }
                })?;
                crls.push(webpki::CertRevocationList::Owned(owned));
            }
        }
        let remote_cert_tls = tls.remote_cert_tls;
        let required_eku = match remote_cert_tls {
            Some(CertRole::Server) => Some(EKU_SERVER_AUTH),
            Some(CertRole::Client) => Some(EKU_CLIENT_AUTH),
            None => default_eku,
        };
        Ok(Self {
            anchors,
            crls,
            fingerprints: tls.peer_fingerprints.clone(),
            remote_cert_tls,
            verify_name: tls.verify_x509_name.clone(),
            required_eku,
            remote_cert_eku: tls.remote_cert_eku.clone(),
            remote_cert_ku: tls.remote_cert_ku.clone(),
            verify_hash: tls.verify_hash.clone(),
            ca_ders,
            cert_profile: tls.cert_profile,
            provider,
        })
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), PeerCertError> {
        let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end_entity);
        let fp_ok = self
            .fingerprints
            .iter()
            .any(|f| f[..] == *fingerprint.as_ref());
        if !self.fingerprints.is_empty() && !fp_ok && self.anchors.is_empty() {
            return Err(PeerCertError::Fingerprint(hex_colon(fingerprint.as_ref())));
        }
        if !fp_ok {
            self.verify_chain(end_entity, intermediates, now)?;
            let chain: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
                .chain(intermediates.iter().map(|c| c.as_ref()))
                .collect();
            let sha1 = legacy_checks::sha1_signed(&chain);
            if !sha1.is_empty() {
                tracing::warn!(
                    "the certificate '{}' is signed with SHA1 (accepted by 'tls-cert-profile {}'); \
                     reissue it with SHA-256",
                    sha1.join("', '"),
                    self.cert_profile.name()
                );
            }
        }
        let (_, cert) = X509Certificate::from_der(end_entity)
            .map_err(|e| PeerCertError::Malformed(e.to_string()))?;
        if let Some(ku) = &self.remote_cert_ku {
            legacy_checks::check_ku(&cert, ku)?;
        }
        if let Some((alg, hashes)) = &self.verify_hash {
            let candidates: Vec<&[u8]> = intermediates
                .iter()
                .chain(self.ca_ders.iter())
                .map(|c| c.as_ref())
                .collect();
            legacy_checks::check_verify_hash(&cert, &candidates, *alg, hashes)?;
        }
        if let Some(role) = self.remote_cert_tls {
            check_key_usage(&cert, role)?;
        }
        if let Some(expected) = &self.verify_name {
            check_x509_name(&cert, expected)?;
        }
        Ok(())
    }

    #[allow(deprecated)]
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), PeerCertError> {
        let ee = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| PeerCertError::Malformed(e.to_string()))?;
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = if crl_refs.is_empty() {
            None
        } else {
            webpki::RevocationOptionsBuilder::new(&crl_refs)
                .ok()
                .map(|b| {
                    b.with_depth(webpki::RevocationCheckDepth::EndEntity)
                        .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                        .build()
                })
        };
        let algs = self.provider.signature_verification_algorithms.all;
        let wanted: Vec<&[u8]> = self
            .required_eku
            .into_iter()
            .chain(self.remote_cert_eku.as_deref())
            .collect();
        let result = match wanted.is_empty() {
            false => ee.verify_for_usage(
                algs,
                &self.anchors,
                intermediates,
                now,
                RequireEku(wanted),
                revocation,
                None,
            ),
            true => ee.verify_for_usage(
                algs,
                &self.anchors,
                intermediates,
                now,
                AnyEku,
                revocation,
                None,
            ),
        };
        match result {
            Ok(_) => Ok(()),
            Err(webpki::Error::RequiredEkuNotFound)
            | Err(webpki::Error::RequiredEkuNotFoundContext(_)) => {
                if let Some(oid) = &self.remote_cert_eku
                    && !has_eku(end_entity, oid)
                {
                    return Err(PeerCertError::RemoteCertEku(
                        x509_parser::oid_registry::Oid::new(std::borrow::Cow::Borrowed(oid))
                            .to_id_string(),
                    ));
                }
                if self.remote_cert_tls.is_some() {
                    let role = role_name(self.remote_cert_tls);
                    Err(PeerCertError::RemoteCertTls {
                        role,
                        detail: format!("extended key usage {role}Auth is missing"),
                    })
                } else {
                    Err(PeerCertError::MissingServerEku)
                }
            }
            Err(webpki::Error::CertRevoked) => Err(PeerCertError::Revoked),
            Err(e @ webpki::Error::CertExpired { .. })
            | Err(e @ webpki::Error::CertNotValidYet { .. }) => {
                Err(PeerCertError::Validity(format!("{e:?}")))
            }
            Err(
                e @ (webpki::Error::UnsupportedSignatureAlgorithm
                | webpki::Error::UnsupportedSignatureAlgorithmContext(_)
                | webpki::Error::UnsupportedSignatureAlgorithmForPublicKey
                | webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
                | webpki::Error::InvalidSignatureForPublicKey),
            ) => {
                let chain: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
                    .chain(intermediates.iter().map(|c| c.as_ref()))
                    .collect();
                Err(legacy_checks::weak_chain_error(self.cert_profile, &chain)
                    .unwrap_or_else(|| PeerCertError::UntrustedChain(format!("{e:?}"))))
            }
            Err(e) => Err(PeerCertError::UntrustedChain(format!("{e:?}"))),
        }
    }
}

/// Whether the certificate lists the EKU `oid` (DER content bytes).
fn has_eku(der: &[u8], oid: &[u8]) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    let Ok(Some(eku)) = cert.extended_key_usage() else {
        return false;
    };
    let e = eku.value;
    let known = [
        (e.server_auth, oid_bytes::SERVER_AUTH.as_slice()),
        (e.client_auth, oid_bytes::CLIENT_AUTH.as_slice()),
    ];
    known.iter().any(|(set, o)| *set && *o == oid) || e.other.iter().any(|o| o.as_bytes() == oid)
}

fn role_name(role: Option<CertRole>) -> &'static str {
    match role {
        Some(CertRole::Client) => "client",
        _ => "server",
    }
}

fn hex_colon(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn check_key_usage(cert: &X509Certificate<'_>, role: CertRole) -> Result<(), PeerCertError> {
    let role_s = role_name(Some(role));
    let ku = cert
        .key_usage()
        .map_err(|e| PeerCertError::Malformed(e.to_string()))?;
    // OpenVPN's `remote-cert-tls` accepts a certificate without the KU extension only for
    // the EKU part; with KU present it must allow digitalSignature or keyAgreement/keyEncipherment.
    if let Some(ku) = ku {
        let ku = ku.value;
        let ok = ku.digital_signature() || ku.key_encipherment() || ku.key_agreement();
        if !ok {
            return Err(PeerCertError::RemoteCertTls {
                role: role_s,
                detail:
                    "key usage allows neither digitalSignature, keyEncipherment nor keyAgreement"
                        .into(),
            });
        }
    } else {
        return Err(PeerCertError::RemoteCertTls {
            role: role_s,
            detail: "the key usage extension is missing".into(),
        });
    }
    Ok(())
}

/// The subject in OpenVPN's form: `C=US, O=Org, CN=name`.
fn subject_string(cert: &X509Certificate<'_>) -> String {
    let mut parts = Vec::new();
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(
                attr.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map(str::to_owned)
            .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let key = match key.as_str() {
                "emailAddress" => "emailAddress".to_owned(),
                _ => key,
            };
            let val = attr.as_str().unwrap_or("?");
            parts.push(format!("{key}={val}"));
        }
    }
    parts.join(", ")
}

fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

fn check_x509_name(
    cert: &X509Certificate<'_>,
    expected: &VerifyX509Name,
) -> Result<(), PeerCertError> {
    let subject = subject_string(cert);
    let ok = match expected.kind {
        X509NameKind::Subject => normalise_subject(&subject) == normalise_subject(&expected.name),
        X509NameKind::Name => common_name(cert).as_deref() == Some(expected.name.as_str()),
        X509NameKind::NamePrefix => common_name(cert)
            .map(|cn| cn.starts_with(&expected.name))
            .unwrap_or(false),
    };
    if ok {
        Ok(())
    } else {
        Err(PeerCertError::X509Name {
            expected: expected.name.clone(),
            subject,
        })
    }
}

fn normalise_subject(s: &str) -> String {
    // Accept both `C=US, CN=x` and `C=US,CN=x` and `/C=US/CN=x`.
    s.trim_start_matches('/')
        .split([',', '/'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// The verifier handed to rustls on the client side.
#[derive(Debug)]
struct OpenVpnServerVerifier(PeerPolicy);

impl ServerCertVerifier for OpenVpnServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.verify(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

/// The verifier handed to rustls on the server side.
#[derive(Debug)]
struct OpenVpnClientVerifier {
    policy: PeerPolicy,
    optional: bool,
}

impl ClientCertVerifier for OpenVpnClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.policy.verify(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn client_auth_mandatory(&self) -> bool {
        !self.optional
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.policy.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.policy.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.policy.schemes()
    }
}

/// Options of the client TLS configuration that are not in the profile.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientTlsOptions {
    /// `--no-server-eku-check`: do not require serverAuth when the profile has no check of its own.
    pub no_server_eku_check: bool,
    /// `--legacy-key-derivation`: do not offer TLS-EKM; data keys come from the TLS 1.0 PRF.
    pub legacy_key_derivation: bool,
}

/// Builds the rustls client configuration for a profile.
pub fn client_config(
    tls: &TlsSettings,
    opts: ClientTlsOptions,
) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let provider = cert_profile::provider_for(tls);
    let has_own_check = tls.remote_cert_tls.is_some()
        || tls.verify_x509_name.is_some()
        || tls.remote_cert_eku.is_some()
        || tls.verify_hash.is_some();
    let default_eku =
        if has_own_check || opts.no_server_eku_check || !tls.peer_fingerprints.is_empty() {
            None
        } else {
            Some(EKU_SERVER_AUTH)
        };
    let policy = PeerPolicy::new(tls, default_eku, provider.clone())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions(tls)?)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(OpenVpnServerVerifier(policy)));
    let mut config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let mut chain = read_certs("cert", cert)?;
            if let Some(extra) = &tls.extra_certs {
                chain.extend(read_certs("extra-certs", extra)?);
            }
            builder.with_client_auth_cert(chain, read_key(key)?)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsConfigError::CertWithoutKey),
    };
    config.enable_sni = false;
    Ok(Arc::new(config))
}

/// Server-side TLS settings.
#[derive(Clone, Debug, Default)]
pub struct ServerTlsSettings {
    /// CA, own certificate/key, CRL and client checks.
    pub tls: TlsSettings,
    /// `verify-client-cert optional|none`: do not require a client certificate.
    pub client_cert_optional: bool,
}

/// Builds the rustls server configuration.
pub fn server_config(s: &ServerTlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let provider = cert_profile::provider_for(&s.tls);
    let policy = PeerPolicy::new(&s.tls, Some(EKU_CLIENT_AUTH), provider.clone())?;
    let verifier = OpenVpnClientVerifier {
        policy,
        optional: s.client_cert_optional,
    };
    let (Some(cert), Some(key)) = (&s.tls.cert, &s.tls.key) else {
        return Err(TlsConfigError::CertWithoutKey);
    };
    let mut chain = read_certs("cert", cert)?;
    if let Some(extra) = &s.tls.extra_certs {
        chain.extend(read_certs("extra-certs", extra)?);
    }
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions(&s.tls)?)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain, read_key(key)?)?;
    Ok(Arc::new(config))
}

/// A TLS session driven entirely through byte buffers: records in from the control channel,
/// records out to it, plaintext in and out.
pub struct TlsSession {
    conn: rustls::Connection,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .finish()
    }
}

impl TlsSession {
    /// A client session.
    pub fn client(config: Arc<rustls::ClientConfig>) -> Result<Self, TlsError> {
        let name =
            ServerName::try_from("openvpn-server").map_err(|e| TlsError::Other(e.to_string()))?;
        let conn = rustls::ClientConnection::new(config, name)?;
        Ok(Self { conn: conn.into() })
    }

    /// A server session.
    pub fn server(config: Arc<rustls::ServerConfig>) -> Result<Self, TlsError> {
        let conn = rustls::ServerConnection::new(config)?;
        Ok(Self { conn: conn.into() })
    }

    /// Feeds TLS records received on the control channel.
    pub fn feed(&mut self, mut records: &[u8]) -> Result<(), TlsError> {
        while !records.is_empty() {
            let n = self
                .conn
                .read_tls(&mut records)
                .map_err(|e| TlsError::Other(e.to_string()))?;
            if n == 0 {
                break;
            }
            if let Err(e) = self.conn.process_new_packets() {
                // Let the alert describing the failure go out before reporting.
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Appends pending TLS records to `out`.
    pub fn drain(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    /// Queues plaintext to send.
    pub fn write_plain(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.conn
            .writer()
            .write_all(data)
            .map_err(|e| TlsError::Other(e.to_string()))
    }

    /// Appends received plaintext to `out`.
    pub fn read_plain(&mut self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// RFC 5705 exporter with no context.
    pub fn export(&self, label: &[u8], out: &mut [u8]) -> Result<(), TlsError> {
        self.conn.export_keying_material(out, label, None)?;
        Ok(())
    }

    /// The negotiated protocol and suite, for logs.
    pub fn describe(&self) -> String {
        format!(
            "{:?}, cipher {:?}",
            self.conn.protocol_version(),
            self.conn.negotiated_cipher_suite().map(|s| s.suite())
        )
    }

    /// The peer's end-entity certificate common name, if any.
    pub fn peer_common_name(&self) -> Option<String> {
        let certs = self.conn.peer_certificates()?;
        let (_, cert) = X509Certificate::from_der(certs.first()?).ok()?;
        common_name(&cert)
    }

    /// The peer certificate's serial number, in decimal (as OpenVPN's `tls_serial_0`).
    pub fn peer_serial(&self) -> Option<String> {
        let certs = self.conn.peer_certificates()?;
        let (_, cert) = X509Certificate::from_der(certs.first()?).ok()?;
        Some(cert.tbs_certificate.serial.to_str_radix(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_normalisation() {
        assert_eq!(
            normalise_subject("C=US, O=x, CN=y"),
            normalise_subject("/C=US/O=x/CN=y")
        );
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use crate::config::{CertRole, TlsSettings};

    /// A server whose certificate chain is padded to ~100 KB: the client stops with a clear
    /// error once the Certificate message exceeds rustls' 64 KiB bound instead of buffering it.
    #[test]
    fn huge_certificate_chain_is_refused() {
        let pki = crate::proto::sim::pki(true);
        let padding = pki.ca.repeat(250);
        let server = server_config(&ServerTlsSettings {
            tls: TlsSettings {
                ca: Some(pki.ca.clone().into_bytes()),
                cert: Some(pki.server_cert.clone().into_bytes()),
                key: Some(pki.server_key.clone().into_bytes()),
                extra_certs: Some(padding.into_bytes()),
                ..Default::default()
            },
            client_cert_optional: false,
        })
        .unwrap();
        let client = client_config(
            &TlsSettings {
                ca: Some(pki.ca.clone().into_bytes()),
                cert: Some(pki.client_cert.clone().into_bytes()),
                key: Some(pki.client_key.clone().into_bytes()),
                remote_cert_tls: Some(CertRole::Server),
                ..Default::default()
            },
            ClientTlsOptions::default(),
        )
        .unwrap();
        let (mut c, mut s) = (
            TlsSession::client(client).unwrap(),
            TlsSession::server(server).unwrap(),
        );
        let mut err = None;
        for _ in 0..20 {
            let mut buf = Vec::new();
            c.drain(&mut buf);
            s.feed(&buf).unwrap();
            buf.clear();
            s.drain(&mut buf);
            assert!(buf.len() < 200_000);
            // Small pieces, as the control channel delivers them.
            for piece in buf.chunks(1200) {
                if let Err(e) = c.feed(piece) {
                    err = Some(e);
                    break;
                }
            }
            if err.is_some() {
                break;
            }
        }
        let err = err.expect("the client accepted a 100 KB certificate chain");
        assert!(matches!(err, TlsError::TooLarge), "{err}");
        assert!(err.to_string().contains("64 KiB"), "{err}");
    }
}
