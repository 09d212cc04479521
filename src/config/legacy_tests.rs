//! Parser tests of the legacy options: CBC ciphers and `auth`, unusable ciphers, `compat-mode`,
//! the TLS tuning options and the old certificate checks.

use std::path::Path;

use super::mem_loader::MemLoader;
use super::*;
use crate::proto::keys::{Cipher, Digest};

const CA: &str = include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/ca.crt");
const CERT: &str =
    include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.crt");
const KEY: &str =
    include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.key");

const BASE: &str =
    "client\ndev tun\nremote vpn.example.com\nca ca.crt\ncert client.crt\nkey client.key\n";

fn loader() -> MemLoader {
    MemLoader::rooted("/etc/vpn")
        .with("ca.crt", CA)
        .with("client.crt", CERT)
        .with("client.key", KEY)
}

fn parse(extra: &str) -> Profile {
    parse_profile(
        &format!("{BASE}{extra}"),
        Path::new("client.ovpn"),
        &loader(),
    )
    .unwrap()
}

fn parse_err(extra: &str) -> String {
    parse_profile(
        &format!("{BASE}{extra}"),
        Path::new("client.ovpn"),
        &loader(),
    )
    .unwrap_err()
    .to_string()
}

fn warnings(p: &Profile) -> String {
    p.warnings
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn cbc_ciphers_with_each_digest() {
    for cipher in ["AES-128-CBC", "AES-192-CBC", "AES-256-CBC"] {
        for digest in ["SHA1", "SHA256", "SHA512"] {
            let p = parse(&format!("data-ciphers-fallback {cipher}\nauth {digest}\n"));
            assert_eq!(p.data_ciphers_fallback, Some(cipher.parse().unwrap()));
            assert_eq!(p.auth, digest.parse::<Digest>().unwrap());
        }
    }
}

#[test]
fn auth_none_only_with_aead() {
    let p = parse("data-ciphers AES-256-GCM:CHACHA20-POLY1305\nauth none\n");
    assert_eq!(p.auth, Digest::None);
    let e = parse_err("data-ciphers AES-256-GCM\ndata-ciphers-fallback AES-256-CBC\nauth none\n");
    assert!(e.contains(":9:") && e.contains("'auth none'"), "{e}");
    assert!(
        e.contains("AES-256-CBC") && e.contains("auth SHA256"),
        "{e}"
    );
    let e = parse_err("cipher AES-128-CBC\nauth none\n");
    assert!(e.contains("unauthenticated"), "{e}");
}

#[test]
fn unusable_ciphers_name_the_line_and_the_server_fix() {
    let e = parse_err("data-ciphers AES-256-GCM:BF-CBC\n");
    assert!(e.contains(":7:") && e.contains("Blowfish"), "{e}");
    assert!(e.contains("data-ciphers-fallback AES-256-CBC"), "{e}");
    let e = parse_err("data-ciphers-fallback DES-EDE3-CBC\n");
    assert!(
        e.contains("DES") && e.contains("data-ciphers AES-256-GCM"),
        "{e}"
    );
    // `cipher BF-CBC` is harmless with a negotiating server: a warning now, the advice later.
    let p = parse("cipher BF-CBC\n");
    assert!(warnings(&p).contains("BF-CBC"));
    let advice = p
        .unusable_cipher
        .expect("advice kept for the no-negotiation case");
    assert!(
        advice.contains("client.ovpn:7") && advice.contains("Blowfish"),
        "{advice}"
    );
    // With compat-mode 2.3.x the server cannot negotiate: refused at once.
    let e = parse_err("compat-mode 2.3.0\ncipher BF-CBC\n");
    assert!(e.contains(":8:") && e.contains("Blowfish"), "{e}");
    // A fallback of its own makes the old cipher irrelevant.
    let p = parse("cipher BF-CBC\ndata-ciphers-fallback AES-256-CBC\n");
    assert!(p.unusable_cipher.is_none());
}

#[test]
fn compat_mode_changes_defaults_like_2_6() {
    let p = parse("compat-mode 2.3.0\ndata-ciphers AES-256-GCM\ncipher AES-128-CBC\n");
    assert_eq!(p.compat_mode, Some(CompatVersion(2, 3, 0)));
    // < 2.5: cipher appended to data-ciphers; < 2.4: it is the fallback.
    assert_eq!(p.data_ciphers, [Cipher::Aes256Gcm, Cipher::Aes128Cbc]);
    assert_eq!(p.data_ciphers_fallback, Some(Cipher::Aes128Cbc));
    // < 2.6: allow-compression asym unless set.
    assert_eq!(p.allow_compression, AllowCompression::Asym);
    let p = parse("compat-mode 2.5.6\nallow-compression no\n");
    assert_eq!(p.allow_compression, AllowCompression::No);
    let p = parse("compat-mode 2.6.0\ndata-ciphers AES-256-GCM\ncipher AES-128-CBC\n");
    assert_eq!(p.data_ciphers, [Cipher::Aes256Gcm]);
    let e = parse_err("compat-mode two\n");
    assert!(e.contains(":7:") && e.contains("2.3.0"), "{e}");
}

#[test]
fn tls_suites_groups_and_versions() {
    let p = parse(
        "tls-cipher TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:DHE-RSA-AES256-SHA\n\
         tls-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_SHA256\n\
         tls-groups X25519:prime256v1:secp521r1\n",
    );
    assert_eq!(
        p.tls.tls12_suites,
        Some(vec![
            TlsSuite::EcdheRsaAes256Gcm,
            TlsSuite::EcdheEcdsaAes128Gcm
        ])
    );
    assert_eq!(p.tls.tls13_suites, Some(vec![TlsSuite::Tls13Aes128Gcm]));
    assert_eq!(p.tls.groups, Some(vec![TlsGroup::X25519, TlsGroup::P256]));
    let w = warnings(&p);
    assert!(
        w.contains("DHE-RSA-AES256-SHA") && w.contains("DHE key exchange"),
        "{w}"
    );
    assert!(
        w.contains("TLS_AES_128_CCM_SHA256") && w.contains("secp521r1"),
        "{w}"
    );
    // Only OpenSSL keywords: defaults, with a warning.
    let p = parse("tls-cipher DEFAULT:@SECLEVEL=0\n");
    assert_eq!(p.tls.tls12_suites, None);
    // Nothing usable: OpenVPN's tls-cipher does not touch TLS 1.3, so such a profile still
    // works with TLS 1.3 servers: a warning naming the line, the defaults kept.
    let p = parse("tls-cipher DHE-RSA-AES256-GCM-SHA384:EDH-RSA-DES-CBC3-SHA\n");
    let w = warnings(&p);
    assert!(w.contains(":7:") && w.contains("TLS 1.3"), "{w}");
    assert_eq!(p.tls.tls12_suites, None);
    let e = parse_err("tls-groups ffdhe2048\n");
    assert!(e.contains(":7:") && e.contains("X25519"), "{e}");
    let e = parse_err("tls-version-max 1.1\n");
    assert!(e.contains("tls-version-min 1.2"), "{e}");
    let p = parse("tls-version-min 1.3 or-highest\n");
    assert_eq!(p.tls.tls_version_min.as_deref(), Some("1.3"));
}

#[test]
fn certificate_checks_of_old_profiles() {
    let p = parse("tls-cert-profile preferred\n");
    assert_eq!(p.tls.cert_profile, CertProfile::Preferred);
    assert_eq!(parse("").tls.cert_profile, CertProfile::Legacy);
    assert!(parse_err("tls-cert-profile strict\n").contains("suiteb"));
    let p = parse("remote-cert-eku \"TLS Web Server Authentication\"\n");
    assert_eq!(
        p.tls.remote_cert_eku.as_deref(),
        Some(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01][..])
    );
    let p = parse("remote-cert-eku 1.3.6.1.5.5.7.3.2\n");
    assert_eq!(p.tls.remote_cert_eku.as_ref().map(Vec::len), Some(8));
    let p = parse("remote-cert-ku a0 88\n");
    assert_eq!(p.tls.remote_cert_ku, Some(vec![0xa0, 0x88]));
    assert!(parse_err("remote-cert-ku xyz\n").contains("hex"));
    let fp1 = "AD:B0:95:D8:09:C8:36:45:12:A9:89:C8:90:09:CB:13:72:A6:AD:16";
    let p = parse(&format!("verify-hash {fp1}\n"));
    let (alg, hashes) = p.tls.verify_hash.unwrap();
    assert_eq!((alg, hashes[0].len()), (HashAlg::Sha1, 20));
    let fp256 = ["00"; 32].join(":");
    let p = parse(&format!(
        "<verify-hash>\n{fp256}\n{fp256}\n</verify-hash>\n"
    ));
    let (alg, hashes) = p.tls.verify_hash.unwrap();
    assert_eq!((alg, hashes.len()), (HashAlg::Sha256, 2));
    assert!(parse_err(&format!("verify-hash {fp1} SHA256\n")).contains("32-byte"));
    let p = parse("ns-cert-type server\n");
    assert!(warnings(&p).contains("remote-cert-tls server"));
}
