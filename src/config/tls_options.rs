//! OpenVPN 2.6's legacy and TLS tuning options as typed values: `tls-cipher` /
//! `tls-ciphersuites` suite names (OpenSSL and IANA spellings), `tls-groups`, `tls-cert-profile`,
//! `remote-cert-eku`, `remote-cert-ku`, `verify-hash`, `compat-mode`, and the advice given for
//! data-channel ciphers that aws-lc cannot run (Blowfish, DES, CAST5, ...).
//!
//! Nothing here touches rustls: `proto::tls` maps these values onto the provider.

use super::directive::{Ctx, Dir, Res};
use super::profile::Warning;

/// A TLS cipher suite rustls (aws-lc-rs provider) implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsSuite {
    /// TLS 1.3 `TLS_AES_256_GCM_SHA384`.
    Tls13Aes256Gcm,
    /// TLS 1.3 `TLS_AES_128_GCM_SHA256`.
    Tls13Aes128Gcm,
    /// TLS 1.3 `TLS_CHACHA20_POLY1305_SHA256`.
    Tls13Chacha20,
    /// `ECDHE-ECDSA-AES256-GCM-SHA384`.
    EcdheEcdsaAes256Gcm,
    /// `ECDHE-ECDSA-AES128-GCM-SHA256`.
    EcdheEcdsaAes128Gcm,
    /// `ECDHE-ECDSA-CHACHA20-POLY1305`.
    EcdheEcdsaChacha20,
    /// `ECDHE-RSA-AES256-GCM-SHA384`.
    EcdheRsaAes256Gcm,
    /// `ECDHE-RSA-AES128-GCM-SHA256`.
    EcdheRsaAes128Gcm,
    /// `ECDHE-RSA-CHACHA20-POLY1305`.
    EcdheRsaChacha20,
}

/// TLS 1.2 suites: (OpenSSL name, IANA name without `TLS_`, suite).
const TLS12_NAMES: [(&str, &str, TlsSuite); 6] = [
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
        TlsSuite::EcdheEcdsaAes256Gcm,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
        TlsSuite::EcdheEcdsaAes128Gcm,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
        TlsSuite::EcdheEcdsaChacha20,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-WITH-AES-256-GCM-SHA384",
        TlsSuite::EcdheRsaAes256Gcm,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-WITH-AES-128-GCM-SHA256",
        TlsSuite::EcdheRsaAes128Gcm,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256",
        TlsSuite::EcdheRsaChacha20,
    ),
];

const TLS13_NAMES: [(&str, TlsSuite); 3] = [
    ("AES-256-GCM-SHA384", TlsSuite::Tls13Aes256Gcm),
    ("AES-128-GCM-SHA256", TlsSuite::Tls13Aes128Gcm),
    ("CHACHA20-POLY1305-SHA256", TlsSuite::Tls13Chacha20),
];

/// OpenSSL cipher-string keywords (and `@SECLEVEL=n`): they select from OpenSSL's own list,
/// which cannot be reproduced; ferrovpn keeps its default suites for them.
fn is_openssl_keyword(item: &str) -> bool {
    item.starts_with(['!', '-', '+', '@'])
        || matches!(
            item,
            "DEFAULT" | "ALL" | "HIGH" | "MEDIUM" | "COMPLEMENTOFDEFAULT" | "COMPLEMENTOFALL"
        )
}

/// Upper case, `_` as `-`, without a leading `TLS-`.
fn normalise(name: &str) -> String {
    let n = name.to_ascii_uppercase().replace('_', "-");
    n.strip_prefix("TLS-").map(str::to_owned).unwrap_or(n)
}

/// `tls-cipher LIST` (TLS 1.2 and below). `None` = keep the defaults (only OpenSSL keywords).
pub(super) fn tls_cipher(
    cx: &Ctx<'_>,
    d: Dir<'_>,
    warns: &mut Vec<Warning>,
) -> Res<Option<Vec<TlsSuite>>> {
    cx.nargs(d, 1, 1)?;
    cx.no_inline(d)?;
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    let mut keywords = false;
    for item in d.args[0].split(':').filter(|s| !s.is_empty()) {
        if is_openssl_keyword(item) {
            keywords = true;
            continue;
        }
        let n = normalise(item);
        match TLS12_NAMES
            .iter()
            .find(|(o, i, _)| n == *o || n == *i)
            .map(|t| t.2)
        {
            Some(s) if !out.contains(&s) => out.push(s),
            Some(_) => {}
            None => unknown.push(item.to_owned()),
        }
    }
    if !unknown.is_empty() {
        let dhe = unknown.iter().any(|u| {
            u.to_ascii_uppercase().contains("DHE-") && !u.to_ascii_uppercase().contains("ECDHE")
        });
        let hint = if dhe {
            " (DHE key exchange is not implemented by rustls; the server needs an ECDHE suite)"
        } else {
            ""
        };
        warns.push(cx.warning(
            d,
            format!(
                "TLS suites not available, skipped: {}{hint}",
                unknown.join(":")
            ),
        ));
    }
    if out.is_empty() && !keywords {
        // OpenVPN's `tls-cipher` only restricts TLS 1.2 and below: such a profile still reaches
        // servers that speak TLS 1.3. Keep the defaults and say what it means.
        warns.push(cx.warning(
            d,
            format!(
                "none of these TLS 1.2 suites is available (rustls offers only ECDHE with \
                 AES-GCM or ChaCha20-Poly1305: {}); TLS 1.3 and the default TLS 1.2 suites are \
                 offered instead, which works with any server that has TLS 1.3 or ECDHE",
                TLS12_NAMES.map(|t| t.0).join(":")
            ),
        ));
        return Ok(None);
    }
    if keywords && out.is_empty() {
        warns.push(cx.warning(
            d,
            "OpenSSL keywords (DEFAULT, HIGH, !x, @SECLEVEL...) cannot be applied; the \
             default ECDHE AES-GCM/ChaCha20 suites are used",
        ));
        return Ok(None);
    }
    Ok(Some(out))
}

/// `tls-ciphersuites LIST` (TLS 1.3).
pub(super) fn tls_ciphersuites(
    cx: &Ctx<'_>,
    d: Dir<'_>,
    warns: &mut Vec<Warning>,
) -> Res<Vec<TlsSuite>> {
    cx.nargs(d, 1, 1)?;
    cx.no_inline(d)?;
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for item in d.args[0].split(':').filter(|s| !s.is_empty()) {
        let n = normalise(item);
        match TLS13_NAMES.iter().find(|(o, _)| n == *o).map(|t| t.1) {
            Some(s) if !out.contains(&s) => out.push(s),
            Some(_) => {}
            None => unknown.push(item.to_owned()),
        }
    }
    if !unknown.is_empty() {
        warns.push(cx.warning(
            d,
            format!(
                "TLS 1.3 suites not available, skipped: {}",
                unknown.join(":")
            ),
        ));
    }
    if out.is_empty() {
        return Err(cx.err(
            d,
            "none of these TLS 1.3 suites is available (TLS_AES_256_GCM_SHA384, \
             TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256)",
        ));
    }
    Ok(out)
}

/// A key-exchange group rustls (aws-lc-rs provider) implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsGroup {
    /// X25519.
    X25519,
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// The X25519 + ML-KEM-768 hybrid.
    X25519MlKem768,
}

/// `tls-groups LIST` (also `ecdh-curve NAME`, which only names one curve).
pub(super) fn tls_groups(cx: &Ctx<'_>, d: Dir<'_>, warns: &mut Vec<Warning>) -> Res<Vec<TlsGroup>> {
    cx.nargs(d, 1, 1)?;
    cx.no_inline(d)?;
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for item in d.args[0].split(':').filter(|s| !s.is_empty()) {
        let g = match item.to_ascii_lowercase().as_str() {
            "x25519" => TlsGroup::X25519,
            "p-256" | "prime256v1" | "secp256r1" => TlsGroup::P256,
            "p-384" | "secp384r1" => TlsGroup::P384,
            "x25519mlkem768" => TlsGroup::X25519MlKem768,
            _ => {
                unknown.push(item.to_owned());
                continue;
            }
        };
        if !out.contains(&g) {
            out.push(g);
        }
    }
    if !unknown.is_empty() {
        warns.push(cx.warning(
            d,
            format!(
                "groups not available, skipped: {} (available: X25519, P-256, P-384, \
                 X25519MLKEM768)",
                unknown.join(":")
            ),
        ));
    }
    if out.is_empty() {
        return Err(cx.err(
            d,
            "none of these groups is available; use X25519, P-256 (prime256v1, secp256r1), \
             P-384 (secp384r1) or X25519MLKEM768",
        ));
    }
    Ok(out)
}

/// `tls-cert-profile`: which signatures and key sizes peer certificates may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CertProfile {
    /// RSA 1024+ and SHA1 accepted (OpenSSL security level 0).
    Insecure,
    /// The default: SHA1 signatures accepted (with a warning), RSA 2048+.
    #[default]
    Legacy,
    /// SHA-2 only, RSA 2048+.
    Preferred,
    /// ECDSA P-256/P-384 with SHA-256/384 only.
    SuiteB,
}

impl CertProfile {
    /// The option's word.
    pub fn name(self) -> &'static str {
        match self {
            Self::Insecure => "insecure",
            Self::Legacy => "legacy",
            Self::Preferred => "preferred",
            Self::SuiteB => "suiteb",
        }
    }
}

pub(super) fn cert_profile(cx: &Ctx<'_>, d: Dir<'_>) -> Res<CertProfile> {
    cx.nargs(d, 1, 1)?;
    cx.no_inline(d)?;
    Ok(match d.args[0].as_str() {
        "insecure" => CertProfile::Insecure,
        "legacy" => CertProfile::Legacy,
        "preferred" => CertProfile::Preferred,
        "suiteb" => CertProfile::SuiteB,
        x => {
            return Err(cx.err(
                d,
                format!("unknown profile '{x}' (insecure, legacy, preferred or suiteb)"),
            ));
        }
    })
}

/// `remote-cert-eku OID|NAME`: the DER content bytes of the OID.
pub(super) fn remote_cert_eku(cx: &Ctx<'_>, d: Dir<'_>) -> Res<Vec<u8>> {
    cx.nargs(d, 1, 1)?;
    let a = d.args[0].as_str();
    let dotted = match a {
        "serverAuth" | "TLS Web Server Authentication" => "1.3.6.1.5.5.7.3.1",
        "clientAuth" | "TLS Web Client Authentication" => "1.3.6.1.5.5.7.3.2",
        "codeSigning" | "Code Signing" => "1.3.6.1.5.5.7.3.3",
        "emailProtection" | "E-mail Protection" => "1.3.6.1.5.5.7.3.4",
        "timeStamping" | "Time Stamping" => "1.3.6.1.5.5.7.3.8",
        "OCSPSigning" | "OCSP Signing" => "1.3.6.1.5.5.7.3.9",
        other => other,
    };
    oid_der(dotted).ok_or_else(|| {
        cx.err(
            d,
            format!(
                "'{a}' is neither a dotted OID nor a known name (serverAuth, clientAuth, \
                 codeSigning, emailProtection, timeStamping, OCSPSigning)"
            ),
        )
    })
}

/// Encodes a dotted OID's arcs as DER content bytes.
fn oid_der(dotted: &str) -> Option<Vec<u8>> {
    let arcs: Vec<u64> = dotted
        .split('.')
        .map(|s| s.parse().ok())
        .collect::<Option<_>>()?;
    if arcs.len() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
        return None;
    }
    let mut out = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        out.extend(tmp.iter().rev());
    };
    push(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push(a);
    }
    Some(out)
}

/// `remote-cert-ku [HEX...]`: the accepted key-usage bit sets (empty: the extension must exist).
/// The value is OpenSSL's bit order: `0x80` digitalSignature, `0x40` nonRepudiation, `0x20`
/// keyEncipherment, `0x10` dataEncipherment, `0x08` keyAgreement, ...
pub(super) fn remote_cert_ku(cx: &Ctx<'_>, d: Dir<'_>) -> Res<Vec<u16>> {
    cx.nargs(d, 0, 64)?;
    d.args
        .iter()
        .map(|v| {
            u16::from_str_radix(v.trim_start_matches("0x"), 16)
                .map_err(|_| cx.err(d, format!("key usage '{v}' is not a hex number (e.g. a0)")))
        })
        .collect()
}

/// `verify-hash`'s digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA1 (the default of the directive form).
    Sha1,
    /// SHA256 (always for the inline form).
    Sha256,
}

/// `verify-hash HASH [SHA1|SHA256]` or `<verify-hash>` (SHA256 lines): fingerprints one of which
/// the level-1 certificate (the leaf's issuer) must have.
pub(super) fn verify_hash(cx: &Ctx<'_>, d: Dir<'_>) -> Res<(HashAlg, Vec<Vec<u8>>)> {
    let (alg, texts): (HashAlg, Vec<&str>) = match d.inline {
        Some(body) => (
            HashAlg::Sha256,
            body.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect(),
        ),
        None => {
            cx.nargs(d, 1, 2)?;
            let alg = match d.args.get(1).map(|s| s.to_ascii_uppercase()) {
                None => HashAlg::Sha1,
                Some(s) if s == "SHA1" => HashAlg::Sha1,
                Some(s) if s == "SHA256" => HashAlg::Sha256,
                Some(s) => {
                    return Err(cx.err(d, format!("unknown algorithm '{s}' (SHA1 or SHA256)")));
                }
            };
            (alg, vec![d.args[0].as_str()])
        }
    };
    let want = match alg {
        HashAlg::Sha1 => 20,
        HashAlg::Sha256 => 32,
    };
    let mut out = Vec::new();
    for t in texts {
        let bytes = hex::decode(t.replace(':', ""))
            .ok()
            .filter(|b| b.len() == want)
            .ok_or_else(|| {
                cx.err(
                    d,
                    format!("'{t}' is not a {want}-byte fingerprint written as XX:XX:..."),
                )
            })?;
        out.push(bytes);
    }
    Ok((alg, out))
}

/// `compat-mode MAJOR.MINOR.PATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CompatVersion(pub u8, pub u8, pub u8);

impl CompatVersion {
    /// True when the emulated peer is older than `major.minor.0`.
    pub fn below(self, major: u8, minor: u8) -> bool {
        self < CompatVersion(major, minor, 0)
    }
}

pub(super) fn compat_mode(cx: &Ctx<'_>, d: Dir<'_>) -> Res<CompatVersion> {
    cx.nargs(d, 1, 1)?;
    cx.no_inline(d)?;
    let parts: Option<Vec<u8>> = d.args[0].split('.').map(|p| p.parse().ok()).collect();
    match parts.as_deref() {
        Some([a, b, c]) => Ok(CompatVersion(*a, *b, *c)),
        Some([a, b]) => Ok(CompatVersion(*a, *b, 0)),
        _ => Err(cx.err(d, format!("'{}' is not a version like 2.3.0", d.args[0]))),
    }
}

/// For a data-channel cipher name ferrovpn does not run: why, and what to change. `None` for a
/// name that is simply unknown.
pub(super) fn legacy_cipher_advice(name: &str) -> Option<String> {
    let n = name.to_ascii_uppercase();
    let family = if n.starts_with("BF-") {
        "Blowfish"
    } else if n.starts_with("DES") {
        "DES/3DES"
    } else if n.starts_with("CAST") {
        "CAST5"
    } else if n.starts_with("RC2") || n.starts_with("RC4") {
        "RC2/RC4"
    } else if n.starts_with("SEED") || n.starts_with("CAMELLIA") || n.starts_with("ARIA") {
        "this"
    } else if n.starts_with("AES-")
        && (n.ends_with("-CFB")
            || n.ends_with("-OFB")
            || n.ends_with("-CFB8")
            || n.ends_with("-CFB1"))
    {
        "this AES mode"
    } else {
        return None;
    };
    Some(format!(
        "{name}: the {family} cipher is not available in ferrovpn's crypto library (aws-lc). \
         Change the server: OpenVPN 2.4+ servers negotiate with 'data-ciphers \
         AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305'; for a server that cannot negotiate, set \
         'cipher AES-256-CBC' there (2.5+: 'data-ciphers-fallback AES-256-CBC') and the same \
         'data-ciphers-fallback AES-256-CBC' in this profile"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_encode_like_der() {
        assert_eq!(
            oid_der("1.3.6.1.5.5.7.3.1").unwrap(),
            [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]
        );
        assert_eq!(oid_der("2.5.29.37").unwrap(), [0x55, 0x1d, 0x25]);
        assert_eq!(
            oid_der("1.2.840.113549").unwrap(),
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]
        );
        assert!(oid_der("serverAuth").is_none());
        assert!(oid_der("1").is_none());
    }

    #[test]
    fn names_normalise() {
        assert_eq!(normalise("TLS_AES_256_GCM_SHA384"), "AES-256-GCM-SHA384");
        assert_eq!(
            normalise("TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"),
            "ECDHE-RSA-WITH-AES-128-GCM-SHA256"
        );
        assert!(is_openssl_keyword("@SECLEVEL=0"));
        assert!(is_openssl_keyword("DEFAULT"));
        assert!(!is_openssl_keyword("ECDHE-RSA-AES128-GCM-SHA256"));
    }

    #[test]
    fn legacy_ciphers_get_advice() {
        for c in ["BF-CBC", "DES-EDE3-CBC", "CAST5-CBC", "bf-cbc", "SEED-CBC"] {
            let a = legacy_cipher_advice(c).unwrap();
            assert!(a.contains("data-ciphers-fallback AES-256-CBC"), "{a}");
        }
        assert!(legacy_cipher_advice("FOO").is_none());
        assert!(CompatVersion(2, 3, 18).below(2, 4));
        assert!(!CompatVersion(2, 4, 0).below(2, 4));
    }
}
