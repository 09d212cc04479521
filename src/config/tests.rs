//! Tests of the whole parser: directives, defaults, inline blocks, files, errors and the test
//! vectors' client configurations.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::mem_loader::MemLoader;
use super::*;
use crate::proto::keys::{Cipher, Digest, KeyDirection};

const CA: &str = include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/ca.crt");
const CERT: &str =
    include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.crt");
const KEY: &str =
    include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.key");

/// An in-memory file system rooted at `/etc/vpn`.
fn loader() -> MemLoader {
    MemLoader::rooted("/etc/vpn")
}

/// The files of a complete PKI.
fn pki() -> MemLoader {
    loader()
        .with("ca.crt", CA)
        .with("client.crt", CERT)
        .with("client.key", KEY)
}

fn static_key_text(seed: u8) -> String {
    let mut t = String::from(
        "#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n",
    );
    for line in 0..16u8 {
        for i in 0..16u8 {
            t.push_str(&format!("{:02x}", seed.wrapping_add(line * 16 + i)));
        }
        t.push('\n');
    }
    t.push_str("-----END OpenVPN Static key V1-----\n");
    t
}

const BASE: &str =
    "client\ndev tun\nremote vpn.example.com\nca ca.crt\ncert client.crt\nkey client.key\n";

fn parse_with(text: &str, loader: &MemLoader) -> Result<Profile, ProfileError> {
    parse_profile(text, Path::new("client.ovpn"), loader)
}

fn parse(extra: &str) -> Profile {
    parse_with(&format!("{BASE}{extra}"), &pki()).unwrap()
}

fn parse_err(extra: &str) -> String {
    parse_with(&format!("{BASE}{extra}"), &pki())
        .unwrap_err()
        .to_string()
}

fn has_warning(p: &Profile, directive: &str, needle: &str) -> bool {
    p.warnings
        .iter()
        .any(|w| w.directive == directive && w.message.contains(needle))
}

// --- basics and defaults ------------------------------------------------------------------------

#[test]
fn minimal_profile_has_openvpn_defaults() {
    let p = parse("");
    assert_eq!(p.source, Path::new("client.ovpn"));
    assert_eq!(
        p.remotes,
        vec![Remote {
            host: "vpn.example.com".into(),
            port: 1194,
            proto: Proto::Udp,
            proxy: None,
        }]
    );
    assert!(p.pull);
    assert_eq!(p.dev.as_deref(), Some("tun"));
    assert_eq!(p.auth, Digest::Sha1);
    assert_eq!(p.data_ciphers, Cipher::default_list());
    assert_eq!(p.data_ciphers_fallback, None);
    assert_eq!(p.compression, Compression::None);
    assert_eq!(p.allow_compression, AllowCompression::No);
    assert_eq!(p.ping, None);
    assert_eq!(p.ping_restart, None);
    assert_eq!(p.ping_exit, None);
    assert_eq!(p.reneg_sec, Duration::from_secs(3600));
    assert_eq!(p.reneg_bytes, None);
    assert_eq!(p.reneg_pkts, None);
    assert_eq!(p.hand_window, Duration::from_secs(60));
    assert_eq!(p.tls_timeout, Duration::from_secs(2));
    assert_eq!(p.tran_window, Duration::from_secs(3600));
    assert_eq!(p.server_poll_timeout, Duration::from_secs(120));
    assert_eq!(p.connect_retry, Duration::from_secs(1));
    assert_eq!(p.connect_retry_backoff_max, Duration::from_secs(300));
    assert_eq!(p.connect_retry_max, None);
    assert_eq!(p.explicit_exit_notify, 0);
    assert_eq!(p.tun_mtu, 1500);
    assert_eq!(p.tun_mtu_max, 1600);
    assert_eq!(p.mssfix, Some(1492));
    assert_eq!(p.verb, 1);
    assert!(p.tls_wrap.is_none());
    assert!(p.auth_user_pass.is_none());
    assert!(
        p.tls
            .ca
            .as_deref()
            .unwrap()
            .starts_with(b"-----BEGIN CERTIFICATE-----")
    );
    assert!(p.tls.cert.is_some() && p.tls.key.is_some());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn pull_and_tls_client_make_a_client_profile() {
    let l = pki();
    let t = "pull\ntls-client\nremote h\nca ca.crt\ncert client.crt\nkey client.key\n";
    assert!(parse_with(t, &l).unwrap().pull);
    let t = "tls-client\nremote h\nca ca.crt\ncert client.crt\nkey client.key\n";
    assert!(!parse_with(t, &l).unwrap().pull);
    let e = parse_with("remote h\nca ca.crt\ncert client.crt\nkey client.key\n", &l).unwrap_err();
    assert!(e.to_string().contains("not a client profile"), "{e}");
    assert!(e.to_string().starts_with("client.ovpn: "), "{e}");
}

#[test]
fn leading_double_dash_and_comments() {
    let p = parse("--verb 4\n# verb 9\n; verb 9\n   # indented\nmute 20 # trailing\n");
    assert_eq!(p.verb, 4);
}

#[test]
fn quoted_arguments() {
    let p = parse(
        "pull-filter ignore \"route 10.\"\npull-filter accept 'dhcp-option DNS'\n\
         pull-filter reject \"a \\\"q\\\" b\"\n",
    );
    assert_eq!(
        p.pull_filters,
        vec![
            PullFilter {
                action: PullFilterAction::Ignore,
                prefix: "route 10.".into()
            },
            PullFilter {
                action: PullFilterAction::Accept,
                prefix: "dhcp-option DNS".into()
            },
            PullFilter {
                action: PullFilterAction::Reject,
                prefix: "a \"q\" b".into()
            },
        ]
    );
}

#[test]
fn quoted_file_names_with_spaces() {
    let l = loader()
        .with("my ca.crt", CA)
        .with("dir/c.crt", CERT)
        .with("k k.key", KEY);
    let t = "client\nremote h\nca \"my ca.crt\"\ncert dir/c.crt\nkey k\\ k.key\n";
    let p = parse_with(t, &l).unwrap();
    assert_eq!(p.tls.ca.as_deref(), Some(CA.as_bytes()));
    assert_eq!(p.tls.key.as_deref(), Some(KEY.as_bytes()));
}

#[test]
fn syntax_error_has_file_and_line() {
    let e = parse_err("verb \"3\n");
    assert!(e.starts_with("client.ovpn:7: "), "{e}");
    assert!(e.contains("quotation"), "{e}");
    let e = parse_err("ca C:\\x\\ca.crt\n");
    assert!(e.starts_with("client.ovpn:7: "), "{e}");
    assert!(e.contains("backslash"), "{e}");
}

#[test]
fn crlf_line_endings() {
    let text = format!("{BASE}verb 5\n").replace('\n', "\r\n");
    let p = parse_with(&text, &pki()).unwrap();
    assert_eq!(p.verb, 5);
    assert_eq!(p.remotes[0].host, "vpn.example.com");
}

// --- errors and warnings ------------------------------------------------------------------------

#[test]
fn unknown_directive_is_a_warning_with_position() {
    let p = parse("frobnicate 1 2\n");
    let w = &p.warnings[0];
    assert_eq!(w.line, 7);
    assert_eq!(w.directive, "frobnicate");
    assert_eq!(w.file, Path::new("client.ovpn"));
    assert_eq!(
        w.to_string(),
        "client.ovpn:7: 'frobnicate': unknown directive, ignored"
    );
}

#[test]
fn ignore_unknown_option_silences() {
    let p = parse("ignore-unknown-option frobnicate block-foo\nfrobnicate 1\nblock-foo\n");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // Listed names that we know are still handled.
    let p = parse("ignore-unknown-option verb\nverb 3\n");
    assert_eq!(p.verb, 3);
}

#[test]
fn setenv_opt_makes_a_directive_optional() {
    let p = parse("setenv opt block-foo x\nsetenv opt verb 6\nsetenv opt tun-mtu abc\n");
    assert_eq!(p.verb, 6);
    assert!(has_warning(&p, "block-foo", "setenv opt"));
    assert!(has_warning(&p, "tun-mtu", "not a number"));
    assert_eq!(p.tun_mtu, 1500);
}

#[test]
fn error_message_names_file_line_and_directive() {
    let e = parse_err("remote other abc\n");
    assert_eq!(e, "client.ovpn:7: 'remote': port 'abc' is not a number");
    let e = parse_with(&format!("{BASE}remote other abc\n"), &pki()).unwrap_err();
    assert_eq!(e.line(), Some(7));
    assert_eq!(e.directive(), Some("remote"));
}

#[test]
fn argument_count_errors() {
    assert!(parse_err("verb\n").contains("'verb': needs 1 argument"));
    assert!(parse_err("verb 1 2\n").contains("'verb': takes at most 1"));
    assert!(parse_err("client 1\n").contains("'client': takes no arguments"));
    assert!(parse_err("remote\n").contains("'remote': needs at least 1"));
}

// --- remotes ------------------------------------------------------------------------------------

#[test]
fn remote_port_proto_defaults() {
    let p = parse("remote b 443 tcp\nremote c 1195\nproto udp6\nport 1200\nremote-random\n");
    assert!(p.remote_random);
    let r: Vec<_> = p
        .remotes
        .iter()
        .map(|r| (r.host.as_str(), r.port, r.proto))
        .collect();
    // `proto` and `port` apply to every global remote that does not say otherwise.
    assert_eq!(
        r,
        vec![
            ("vpn.example.com", 1200, Proto::Udp6),
            ("b", 443, Proto::Tcp),
            ("c", 1195, Proto::Udp6),
        ]
    );
    assert_eq!(parse("rport 5000\n").remotes[0].port, 5000);
}

#[test]
fn every_proto_spelling() {
    for (s, want) in [
        ("udp", Proto::Udp),
        ("udp4", Proto::Udp4),
        ("udp6", Proto::Udp6),
        ("tcp", Proto::Tcp),
        ("tcp-client", Proto::Tcp),
        ("tcp4", Proto::Tcp4),
        ("tcp4-client", Proto::Tcp4),
        ("tcp6", Proto::Tcp6),
        ("tcp6-client", Proto::Tcp6),
    ] {
        assert_eq!(parse(&format!("proto {s}\n")).remotes[0].proto, want, "{s}");
    }
    assert!(Proto::Tcp4.is_tcp() && !Proto::Udp6.is_tcp());
    assert!(parse_err("proto tcp-server\n").contains("servers"));
    assert!(parse_err("proto sctp\n").contains("unknown protocol 'sctp'"));
}

#[test]
fn bad_ports() {
    assert!(parse_err("port 0\n").contains("out of range"));
    assert!(parse_err("port 70000\n").contains("out of range"));
    assert!(parse_err("remote h 1194 quic\n").contains("'remote': unknown protocol"));
}

#[test]
fn no_remote_is_an_error() {
    let t = "client\nca ca.crt\ncert client.crt\nkey client.key\n";
    let e = parse_with(t, &pki()).unwrap_err().to_string();
    assert!(e.contains("no 'remote'"), "{e}");
}

#[test]
fn connection_blocks() {
    let t = "client\nproto tcp\nport 443\n\
             <connection>\nremote a.example 1194\nproto udp\n</connection>\n\
             <connection>\n  remote b.example\n  nobind\n</connection>\n\
             proto udp6\n\
             <connection>\nremote c.example 80 tcp4\n</connection>\n\
             remote ignored.example\n\
             ca ca.crt\ncert client.crt\nkey client.key\n";
    let p = parse_with(t, &pki()).unwrap();
    let r: Vec<_> = p
        .remotes
        .iter()
        .map(|r| (r.host.as_str(), r.port, r.proto))
        .collect();
    assert_eq!(
        r,
        vec![
            ("a.example", 1194, Proto::Udp),
            ("b.example", 443, Proto::Tcp),
            ("c.example", 80, Proto::Tcp4),
        ]
    );
    let w = p.warnings.iter().find(|w| w.directive == "remote").unwrap();
    assert_eq!(w.line, 16);
    assert!(w.message.contains("<connection>"));
}

#[test]
fn connection_block_errors_have_real_line_numbers() {
    let t = format!("{BASE}<connection>\nremote a\nport xyz\n</connection>\n");
    let e = parse_with(&t, &pki()).unwrap_err().to_string();
    assert_eq!(e, "client.ovpn:9: 'port': port 'xyz' is not a number");
    let e = parse_err("<connection>\nproto udp\n</connection>\n");
    assert!(
        e.contains("client.ovpn:7: 'connection': each <connection> block needs one 'remote'"),
        "{e}"
    );
    let e = parse_err("<connection>\nremote a\nverb 3\n</connection>\n");
    assert!(
        e.contains("client.ovpn:9: 'verb': not allowed inside"),
        "{e}"
    );
    let e = parse_err("<connection>\nremote a\nhttp-proxy p 8080\n</connection>\n");
    assert!(e.contains("'http-proxy'"), "{e}");
    let e = parse_err("connection foo\n");
    assert!(e.contains("inline"), "{e}");
}

// --- TLS material -------------------------------------------------------------------------------

#[test]
fn inline_pki_blocks() {
    let t = format!(
        "client\nremote h\n<ca>\n{CA}</ca>\n<cert>\n{CERT}</cert>\n<key>\n{KEY}</key>\n\
         <extra-certs>\n{CA}</extra-certs>\n"
    );
    let p = parse_with(&t, &loader()).unwrap();
    assert_eq!(p.tls.ca.as_deref(), Some(CA.as_bytes()));
    assert_eq!(p.tls.cert.as_deref(), Some(CERT.as_bytes()));
    assert_eq!(p.tls.key.as_deref(), Some(KEY.as_bytes()));
    assert_eq!(p.tls.extra_certs.as_deref(), Some(CA.as_bytes()));
}

#[test]
fn inline_tag_argument() {
    let t = format!(
        "client\nremote h\nca [inline]\ncert [inline]\nkey [inline]\n<ca>\n{CA}</ca>\n<cert>\n{CERT}</cert>\n<key>\n{KEY}</key>\n"
    );
    let p = parse_with(&t, &loader()).unwrap();
    assert_eq!(p.tls.ca.as_deref(), Some(CA.as_bytes()));
    let e = parse_err("extra-certs [inline]\n");
    assert!(e.contains("no <extra-certs> block"), "{e}");
}

#[test]
fn relative_paths_resolve_against_the_profile_dir() {
    let l = pki().with("keys/ta.key", static_key_text(0));
    let p = parse_with(&format!("{BASE}tls-crypt keys/ta.key\n"), &l).unwrap();
    assert!(matches!(p.tls_wrap, Some(TlsWrap::Crypt { .. })));
    let e = parse_with(&format!("{BASE}tls-crypt missing.key\n"), &l)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("client.ovpn:7: 'tls-crypt': cannot read '/etc/vpn/missing.key'"),
        "{e}"
    );
}

#[test]
fn missing_ca_is_refused() {
    let t = "client\nremote h\ncert client.crt\nkey client.key\n";
    let e = parse_with(t, &pki()).unwrap_err().to_string();
    assert!(
        e.contains("no 'ca' or 'peer-fingerprint': the server could not be authenticated"),
        "{e}"
    );
}

#[test]
fn missing_ca_file_names_the_path() {
    let e = parse_with(BASE, &loader()).unwrap_err().to_string();
    assert!(
        e.starts_with("client.ovpn:4: 'ca': cannot read '/etc/vpn/ca.crt'"),
        "{e}"
    );
}

#[test]
fn bad_pem_is_refused() {
    let l = pki().with("ca.crt", "not a cert");
    let e = parse_with(BASE, &l).unwrap_err().to_string();
    assert!(e.contains("'ca': 'ca.crt': no PEM"), "{e}");
    let l = pki().with("client.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n");
    let e = parse_with(BASE, &l).unwrap_err().to_string();
    assert!(e.contains("'key'") && e.contains("encrypted"), "{e}");
}

#[test]
fn cert_and_key_go_together() {
    let l = pki();
    let e = parse_with("client\nremote h\nca ca.crt\ncert client.crt\n", &l).unwrap_err();
    assert!(
        e.to_string().contains("'cert': a 'cert' needs its 'key'"),
        "{e}"
    );
    let e = parse_with("client\nremote h\nca ca.crt\n", &l).unwrap_err();
    assert!(e.to_string().contains("no client authentication"), "{e}");
    // auth-user-pass alone is enough.
    let p = parse_with("client\nremote h\nca ca.crt\nauth-user-pass\n", &l).unwrap();
    assert_eq!(p.auth_user_pass, Some(AuthUserPass::Prompt));
    assert!(p.tls.cert.is_none());
}

#[test]
fn peer_fingerprint_without_ca() {
    let fp1 = ["AB"; 32].join(":");
    let fp2 = ["01"; 32].join(":");
    let t = format!(
        "client\nremote h\ncert client.crt\nkey client.key\npeer-fingerprint {fp1}\n\
         <peer-fingerprint>\n# server 2\n{fp2}\n</peer-fingerprint>\n"
    );
    let p = parse_with(&t, &pki()).unwrap();
    assert!(p.tls.ca.is_none());
    assert_eq!(p.tls.peer_fingerprints, vec![[0xab; 32], [1; 32]]);
    assert!(parse_err("peer-fingerprint 12:34\n").contains("'peer-fingerprint': '12:34' is not"));
}

#[test]
fn remote_cert_checks() {
    let p = parse("remote-cert-tls server\nverify-x509-name vpn.example.com name\n");
    assert_eq!(p.tls.remote_cert_tls, Some(CertRole::Server));
    assert_eq!(
        p.tls.verify_x509_name,
        Some(VerifyX509Name {
            name: "vpn.example.com".into(),
            kind: X509NameKind::Name
        })
    );
    let p = parse("verify-x509-name \"C=US, O=Example, CN=vpn\"\n");
    assert_eq!(p.tls.verify_x509_name.unwrap().kind, X509NameKind::Subject);
    let p = parse("verify-x509-name vpn- name-prefix\n");
    assert_eq!(
        p.tls.verify_x509_name.unwrap().kind,
        X509NameKind::NamePrefix
    );
    assert!(
        parse_err("verify-x509-name vpn cn\n").contains("'verify-x509-name': unknown type 'cn'")
    );
    assert!(parse_err("remote-cert-tls peer\n").contains("unknown role"));
}

#[test]
fn ns_cert_type_and_eku() {
    let p = parse("ns-cert-type server\n");
    assert_eq!(p.tls.remote_cert_tls, Some(CertRole::Server));
    assert!(has_warning(&p, "ns-cert-type", "removed in OpenVPN 2.5"));
    let p = parse("remote-cert-eku \"TLS Web Server Authentication\"\nremote-cert-ku a0 88\n");
    assert!(p.tls.remote_cert_eku.is_some() && p.tls.remote_cert_ku.is_some());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn crl_verify() {
    let l = pki().with(
        "crl.pem",
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    let p = parse_with(&format!("{BASE}crl-verify crl.pem\n"), &l).unwrap();
    assert!(p.tls.crl.unwrap().starts_with(b"-----BEGIN X509 CRL"));
    let t = format!(
        "{BASE}<crl-verify>\n-----BEGIN X509 CRL-----\nAA\n-----END X509 CRL-----\n</crl-verify>\n"
    );
    assert!(parse_with(&t, &l).unwrap().tls.crl.is_some());
    assert!(
        parse_err("crl-verify /etc/crls dir\n").contains("'crl-verify DIR dir' is not supported")
    );
}

#[test]
fn tls_versions() {
    let p = parse("tls-version-min 1.2\ntls-version-max 1.3\n");
    assert_eq!(p.tls.tls_version_min.as_deref(), Some("1.2"));
    assert_eq!(p.tls.tls_version_max.as_deref(), Some("1.3"));
    assert_eq!(
        parse("tls-version-min 1.0\n")
            .tls
            .tls_version_min
            .as_deref(),
        Some("1.2")
    );
    let p = parse("tls-version-min 1.4 or-highest\n");
    assert_eq!(p.tls.tls_version_min.as_deref(), Some("1.3"));
    assert!(
        parse_err("tls-version-min banana\n").contains("'tls-version-min': unknown TLS version")
    );
    assert!(parse_err("tls-version-max 1.1\n").contains("not supported"));
    assert!(parse_err("tls-version-min 1.3\ntls-version-max 1.2\n").contains("above"));
}

#[test]
fn tls_library_knobs_are_applied() {
    let p = parse("tls-cipher TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384\ntls-groups X25519\n");
    assert!(p.tls.tls12_suites.is_some() && p.tls.groups.is_some());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

// --- control-channel wrapping -------------------------------------------------------------------

#[test]
fn tls_auth_file_with_direction() {
    let l = pki().with("ta.key", static_key_text(7));
    let p = parse_with(&format!("{BASE}tls-auth ta.key 1\n"), &l).unwrap();
    let Some(TlsWrap::Auth { key, direction }) = p.tls_wrap else {
        panic!("no tls-auth")
    };
    assert_eq!(direction, KeyDirection::Inverse);
    assert_eq!(key.as_bytes()[0], 7);
    let p = parse_with(&format!("{BASE}tls-auth ta.key\n"), &l).unwrap();
    assert!(matches!(
        p.tls_wrap,
        Some(TlsWrap::Auth {
            direction: KeyDirection::Bidirectional,
            ..
        })
    ));
    assert!(
        parse_with(&format!("{BASE}tls-auth ta.key 2\n"), &l)
            .unwrap_err()
            .to_string()
            .contains("must be 0 or 1")
    );
}

#[test]
fn key_direction_applies_to_inline_tls_auth() {
    let key = static_key_text(0);
    for (order, want) in [
        (
            format!("key-direction 1\n<tls-auth>\n{key}</tls-auth>\n"),
            KeyDirection::Inverse,
        ),
        (
            format!("<tls-auth>\n{key}</tls-auth>\nkey-direction 0\n"),
            KeyDirection::Normal,
        ),
        (
            format!("tls-auth [inline] 1\n<tls-auth>\n{key}</tls-auth>\n"),
            KeyDirection::Inverse,
        ),
        (
            format!("<tls-auth>\n{key}</tls-auth>\n"),
            KeyDirection::Bidirectional,
        ),
    ] {
        let p = parse(&order);
        match p.tls_wrap {
            Some(TlsWrap::Auth { direction, .. }) => assert_eq!(direction, want, "{order}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn inline_tls_crypt_and_v2() {
    let key = static_key_text(3);
    let p = parse(&format!("<tls-crypt>\n{key}</tls-crypt>\n"));
    assert!(matches!(p.tls_wrap, Some(TlsWrap::Crypt { .. })));
    let v2 = super::material::tests::make_tc2_key(299, 299);
    let p = parse(&format!("<tls-crypt-v2>\n{v2}</tls-crypt-v2>\n"));
    let Some(TlsWrap::CryptV2 { key, wkc }) = p.tls_wrap else {
        panic!()
    };
    assert_eq!(key.as_bytes()[1], 1);
    assert_eq!(wkc.len(), 299);
    let bad = super::material::tests::make_tc2_key(299, 12);
    let e = parse_err(&format!("<tls-crypt-v2>\n{bad}</tls-crypt-v2>\n"));
    assert!(
        e.starts_with("client.ovpn:7: 'tls-crypt-v2': the inline <tls-crypt-v2> block:"),
        "{e}"
    );
}

#[test]
fn bad_static_key_is_reported() {
    let e = parse_err("<tls-crypt>\nhello\n</tls-crypt>\n");
    assert!(
        e.contains("'tls-crypt'") && e.contains("OpenVPN Static key V1"),
        "{e}"
    );
}

#[test]
fn wraps_are_exclusive() {
    let key = static_key_text(0);
    let e = parse_err(&format!(
        "<tls-auth>\n{key}</tls-auth>\n<tls-crypt>\n{key}</tls-crypt>\n"
    ));
    assert!(e.contains("cannot be used together"), "{e}");
}

// --- data channel -------------------------------------------------------------------------------

#[test]
fn data_ciphers_and_cipher() {
    let p = parse("data-ciphers AES-128-GCM:chacha20-poly1305\n");
    assert_eq!(
        p.data_ciphers,
        vec![Cipher::Aes128Gcm, Cipher::Chacha20Poly1305]
    );
    let p = parse("data-ciphers AES-256-GCM:?BF-CBC:AES-256-CBC\n");
    assert_eq!(p.data_ciphers, vec![Cipher::Aes256Gcm, Cipher::Aes256Cbc]);
    assert!(has_warning(&p, "data-ciphers", "BF-CBC"));
    assert!(parse_err("data-ciphers AES-256-GCM:BF-CBC\n").contains("Blowfish"));
    let p = parse("ncp-ciphers AES-256-GCM\n");
    assert_eq!(p.data_ciphers, vec![Cipher::Aes256Gcm]);
    // Legacy `cipher`: appended to the default list and used as the fallback.
    let p = parse("cipher AES-256-CBC\n");
    let mut want = Cipher::default_list();
    want.push(Cipher::Aes256Cbc);
    assert_eq!(p.data_ciphers, want);
    assert_eq!(p.data_ciphers_fallback, Some(Cipher::Aes256Cbc));
    // With explicit data-ciphers it is not appended.
    let p = parse("data-ciphers AES-256-GCM\ncipher AES-128-CBC\n");
    assert_eq!(p.data_ciphers, vec![Cipher::Aes256Gcm]);
    assert_eq!(p.data_ciphers_fallback, Some(Cipher::Aes128Cbc));
    let p = parse("cipher AES-128-CBC\ndata-ciphers-fallback AES-256-CBC\n");
    assert_eq!(p.data_ciphers_fallback, Some(Cipher::Aes256Cbc));
    // An old unsupported cipher only warns: negotiation picks another.
    let p = parse("cipher BF-CBC\n");
    assert!(has_warning(&p, "cipher", "BF-CBC"));
    assert_eq!(p.data_ciphers, Cipher::default_list());
}

#[test]
fn null_crypto_is_refused() {
    assert!(parse_err("cipher none\n").contains("'cipher': 'cipher none'"));
    // `auth none` is accepted with AEAD ciphers (2.6), refused where a CBC cipher could be used.
    assert_eq!(parse("auth none\n").auth, Digest::None);
    assert!(parse_err("data-ciphers none\n").contains("refused"));
    assert!(parse_err("auth MD5\n").contains("'auth': unknown"));
    assert_eq!(parse("auth SHA512\n").auth, Digest::Sha512);
}

#[test]
fn compression() {
    for (line, want) in [
        ("comp-lzo", Compression::Lzo),
        ("comp-lzo no", Compression::LzoFraming),
        ("comp-lzo yes", Compression::Lzo),
        ("comp-lzo adaptive", Compression::Lzo),
        ("compress", Compression::Stub),
        ("compress stub", Compression::Stub),
        ("compress stub-v2", Compression::StubV2),
        ("compress lz4", Compression::Lz4),
        ("compress lz4-v2", Compression::Lz4V2),
        ("compress lzo", Compression::Lzo),
        ("compress migrate", Compression::None),
        ("comp-lzo yes\ncomp-noadapt", Compression::Lzo),
    ] {
        assert_eq!(parse(&format!("{line}\n")).compression, want, "{line}");
    }
    assert!(has_warning(
        &parse("compress migrate\n"),
        "compress",
        "server option"
    ));
    let e = parse_err("compress zstd\n");
    assert!(
        e.starts_with("client.ovpn:7: 'compress': unknown algorithm"),
        "{e}"
    );
    let e = parse_err("comp-lzo maybe\n");
    assert!(
        e.starts_with("client.ovpn:7: 'comp-lzo': unknown mode"),
        "{e}"
    );
    assert!(parse_err("comp-lzo yes no\n").starts_with("client.ovpn:7: 'comp-lzo'"));
    assert!(parse_err("comp-noadapt x\n").starts_with("client.ovpn:7: 'comp-noadapt'"));
    assert_eq!(
        parse("allow-compression asym\n").allow_compression,
        AllowCompression::Asym
    );
    assert_eq!(
        parse("allow-compression yes\n").allow_compression,
        AllowCompression::Yes
    );
    let e = parse_err("allow-compression maybe\n");
    assert!(
        e.starts_with("client.ovpn:7: 'allow-compression': unknown value"),
        "{e}"
    );
}

/// OpenVPN 2.6: `allow-compression` defaults to `no`, but a profile asking for compression
/// itself gets `asym` (with a warning); with an explicit `no` it is an error.
#[test]
fn allow_compression_defaults_like_openvpn_2_6() {
    for stub in ["", "comp-lzo no\n", "compress\n", "compress stub-v2\n"] {
        let p = parse(stub);
        assert_eq!(p.allow_compression, AllowCompression::No, "{stub}");
        assert!(
            p.warnings.iter().all(|w| !w.message.contains("VORACLE")),
            "{stub}"
        );
    }
    for (line, directive) in [
        ("comp-lzo", "comp-lzo"),
        ("comp-lzo yes", "comp-lzo"),
        ("compress lz4", "compress"),
        ("compress lz4-v2", "compress"),
        ("compress lzo", "compress"),
    ] {
        let p = parse(&format!("{line}\n"));
        assert_eq!(p.allow_compression, AllowCompression::Asym, "{line}");
        assert!(has_warning(&p, directive, "VORACLE"), "{line}");
        // Explicit `no`, before or after: refused, naming the compression line.
        for text in [
            format!("allow-compression no\n{line}\n"),
            format!("{line}\nallow-compression no\n"),
        ] {
            let e = parse_err(&text);
            let at = if text.starts_with("allow") { 8 } else { 7 };
            assert!(
                e.starts_with(&format!(
                    "client.ovpn:{at}: '{directive}': asks for compression"
                )),
                "{e}"
            );
            assert!(e.contains("allow-compression no"), "{e}");
        }
        let p = parse(&format!("{line}\nallow-compression yes\n"));
        assert_eq!(p.allow_compression, AllowCompression::Yes);
        assert!(has_warning(&p, directive, "compressed in both directions"));
        let p = parse(&format!("{line}\nallow-compression asym\n"));
        assert_eq!(p.allow_compression, AllowCompression::Asym);
    }
}

// --- credentials --------------------------------------------------------------------------------

#[test]
fn auth_user_pass_forms() {
    let l = pki()
        .with("creds.txt", "alice\nwonder land\n")
        .with("user-only.txt", "bob\n");
    let p = parse_with(
        &format!("{BASE}auth-user-pass creds.txt\nauth-nocache\n"),
        &l,
    )
    .unwrap();
    assert_eq!(
        p.auth_user_pass,
        Some(AuthUserPass::File {
            username: "alice".into(),
            password: Some("wonder land".into())
        })
    );
    assert!(p.auth_nocache);
    let p = parse_with(&format!("{BASE}auth-user-pass user-only.txt\n"), &l).unwrap();
    assert_eq!(
        p.auth_user_pass,
        Some(AuthUserPass::File {
            username: "bob".into(),
            password: None
        })
    );
    let p = parse("<auth-user-pass>\ncarol\npw\n</auth-user-pass>\n");
    assert_eq!(
        p.auth_user_pass,
        Some(AuthUserPass::File {
            username: "carol".into(),
            password: Some("pw".into())
        })
    );
    let e = parse_with(&format!("{BASE}auth-user-pass nope.txt\n"), &l)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'auth-user-pass': cannot read '/etc/vpn/nope.txt'"),
        "{e}"
    );
}

#[test]
fn auth_retry_and_friends() {
    assert_eq!(
        parse("auth-retry nointeract\n").auth_retry,
        AuthRetry::NoInteract
    );
    assert_eq!(
        parse("auth-retry interact\n").auth_retry,
        AuthRetry::Interact
    );
    assert_eq!(parse("client\n").auth_retry, AuthRetry::None);
    assert!(parse_err("auth-retry always\n").contains("unknown value"));
    let sc = parse("static-challenge \"Enter PIN\" 1\n")
        .static_challenge
        .unwrap();
    assert_eq!(
        sc,
        StaticChallenge {
            text: "Enter PIN".into(),
            echo: true,
            concat: false
        }
    );
    // OpenVPN's SCRV1 encoding: base64 of the password and of the response.
    assert_eq!(sc.encode("pass", "123456"), "SCRV1:cGFzcw==:MTIzNDU2");
    let sc = parse("static-challenge OTP 0 concat\n")
        .static_challenge
        .unwrap();
    assert!(!sc.echo);
    assert_eq!(sc.encode("pass", "123456"), "pass123456");
    assert!(parse_err("static-challenge OTP 2\n").contains("echo flag"));
    assert!(parse_err("static-challenge OTP 1 rot13\n").contains("unknown format"));
    assert!(parse("auth-token abc\n").warnings.is_empty());
}

// --- timers and sizes ---------------------------------------------------------------------------

#[test]
fn keepalive_and_pings() {
    let p = parse("keepalive 10 60\n");
    assert_eq!(p.ping, Some(Duration::from_secs(10)));
    assert_eq!(p.ping_restart, Some(Duration::from_secs(60)));
    let p = parse("ping 5\nping-restart 30\nping-exit 120\n");
    assert_eq!(p.ping, Some(Duration::from_secs(5)));
    assert_eq!(p.ping_restart, Some(Duration::from_secs(30)));
    assert_eq!(p.ping_exit, Some(Duration::from_secs(120)));
    assert!(parse_err("keepalive 10 15\n").contains("at least twice"));
    assert!(parse_err("keepalive 10 60\nping 5\n").contains("conflicts with 'keepalive'"));
    assert!(parse_err("keepalive ten 60\n").contains("'keepalive': value 'ten' is not a number"));
}

#[test]
fn renegotiation_and_handshake_timers() {
    let p = parse(
        "reneg-sec 600 300\nreneg-bytes 1000000\nreneg-pkts 0\nhand-window 30\ntls-timeout 4\n\
         tran-window 100\nserver-poll-timeout 10\n",
    );
    assert_eq!(p.reneg_sec, Duration::from_secs(600));
    assert_eq!(p.reneg_bytes, Some(1_000_000));
    assert_eq!(p.reneg_pkts, None);
    assert_eq!(p.hand_window, Duration::from_secs(30));
    assert_eq!(p.tls_timeout, Duration::from_secs(4));
    assert_eq!(p.tran_window, Duration::from_secs(100));
    assert_eq!(p.server_poll_timeout, Duration::from_secs(10));
    assert_eq!(
        parse("connect-timeout 7\n").server_poll_timeout,
        Duration::from_secs(7)
    );
    assert_eq!(parse("reneg-sec 0\n").reneg_sec, Duration::ZERO);
}

#[test]
fn reconnect_settings() {
    let p = parse("connect-retry 5 60\nconnect-retry-max 3\nexplicit-exit-notify 2\n");
    assert_eq!(p.connect_retry, Duration::from_secs(5));
    assert_eq!(p.connect_retry_backoff_max, Duration::from_secs(60));
    assert_eq!(p.connect_retry_max, Some(3));
    assert_eq!(p.explicit_exit_notify, 2);
    assert_eq!(parse("explicit-exit-notify\n").explicit_exit_notify, 1);
    assert_eq!(parse("connect-retry-max 0\n").connect_retry_max, None);
    assert_eq!(
        parse("connect-retry 2\n").connect_retry_backoff_max,
        Duration::from_secs(300)
    );
}

#[test]
fn mtu_settings() {
    let p = parse("tun-mtu 1400\ntun-mtu-max 9000\nmssfix 1360\n");
    assert_eq!(p.tun_mtu, 1400);
    assert_eq!(p.tun_mtu_max, 9000);
    assert_eq!(p.mssfix, Some(1360));
    assert_eq!(parse("mssfix 0\n").mssfix, None);
    assert_eq!(parse("mssfix\n").mssfix, Some(1492));
    assert_eq!(parse("mssfix 1400 mtu\n").mssfix, Some(1400));
    assert!(has_warning(
        &parse("link-mtu 1500\n"),
        "link-mtu",
        "ignored"
    ));
    assert!(parse_err("tun-mtu 100\n").contains("too small"));
    assert!(parse_err("fragment 1300\n").contains("'fragment'"));
}

// --- routes, DNS --------------------------------------------------------------------------------

#[test]
fn routes() {
    let p = parse(
        "route 10.0.0.0 255.0.0.0\nroute 192.168.1.0 255.255.255.0 net_gateway 5\n\
         route host.example\nroute 10.1.0.0 255.255.0.0 default 9\n\
         route-ipv6 2001:db8::/32\nroute-ipv6 2001:db8:1::/48 default 7\n\
         route-nopull\nroute-metric 20\nblock-ipv6\n",
    );
    assert_eq!(
        p.routes,
        vec![
            RouteSpec {
                network: "10.0.0.0".into(),
                netmask: Some("255.0.0.0".into()),
                gateway: None,
                metric: None
            },
            RouteSpec {
                network: "192.168.1.0".into(),
                netmask: Some("255.255.255.0".into()),
                gateway: Some("net_gateway".into()),
                metric: Some(5)
            },
            RouteSpec {
                network: "host.example".into(),
                netmask: None,
                gateway: None,
                metric: None
            },
            RouteSpec {
                network: "10.1.0.0".into(),
                netmask: Some("255.255.0.0".into()),
                gateway: None,
                metric: Some(9)
            },
        ]
    );
    assert_eq!(
        p.routes_ipv6,
        vec![
            Route6Spec {
                network: "2001:db8::/32".into(),
                gateway: None,
                metric: None
            },
            Route6Spec {
                network: "2001:db8:1::/48".into(),
                gateway: None,
                metric: Some(7)
            },
        ]
    );
    assert!(p.route_nopull && p.block_ipv6);
    assert_eq!(p.route_metric, Some(20));
    assert!(parse_err("route 10.0.0.0 255.0.0\n").contains("netmask"));
    assert!(parse_err("route 10.0.0.0 255.0.0.0 vpn_gateway x\n").contains("metric 'x'"));
}

#[test]
fn redirect_gateway_flags() {
    let p = parse("redirect-gateway def1 bypass-dhcp ipv6 !ipv4 block-local local bypass-dns\n");
    assert_eq!(
        p.redirect_gateway,
        Some(RedirectGateway {
            def1: true,
            local: true,
            ipv6: true,
            no_ipv4: true,
            block_local: true,
            bypass_dhcp: true,
            bypass_dns: true,
        })
    );
    assert_eq!(
        parse("redirect-gateway\n").redirect_gateway,
        Some(RedirectGateway::default())
    );
    assert!(parse_err("redirect-gateway def2\n").contains("unknown flag 'def2'"));
    assert!(has_warning(
        &parse("redirect-private def1\n"),
        "redirect-private",
        "not supported"
    ));
}

#[test]
fn dhcp_options() {
    let p = parse(
        "dhcp-option DNS 10.8.0.1\ndhcp-option DNS6 2001:db8::53\ndhcp-option DNS fd00::1\n\
         dhcp-option DOMAIN corp.example\ndhcp-option DOMAIN-SEARCH a.example\n\
         dhcp-option NTP 10.8.0.2\ndhcp-option DISABLE-NBT\n",
    );
    assert_eq!(
        p.dhcp_options,
        vec![
            DhcpOption::Dns("10.8.0.1".parse::<IpAddr>().unwrap()),
            DhcpOption::Dns("2001:db8::53".parse::<IpAddr>().unwrap()),
            DhcpOption::Dns("fd00::1".parse::<IpAddr>().unwrap()),
            DhcpOption::Domain("corp.example".into()),
            DhcpOption::DomainSearch("a.example".into()),
            DhcpOption::Other("NTP".into(), "10.8.0.2".into()),
            DhcpOption::Other("DISABLE-NBT".into(), String::new()),
        ]
    );
    assert!(parse_err("dhcp-option DNS dns.example\n").contains("not an IP address"));
}

// --- environment, misc --------------------------------------------------------------------------

#[test]
fn setenv_user_variables() {
    let p = parse("setenv UV_FOO bar\nsetenv UV_EMPTY\nsetenv OTHER x\npush-peer-info\n");
    assert_eq!(
        p.peer_info_extra,
        vec![
            ("UV_FOO".to_owned(), "bar".to_owned()),
            ("UV_EMPTY".to_owned(), String::new()),
        ]
    );
    // Without push-peer-info OpenVPN does not send UV_ variables.
    assert!(parse("setenv UV_FOO bar\n").peer_info_extra.is_empty());
    assert!(
        !parse("setenv UV_FOO bar\nsetenv PUSH_PEER_INFO\n")
            .peer_info_extra
            .is_empty()
    );
    assert_eq!(
        parse("setenv SERVER_POLL_TIMEOUT 9\n").server_poll_timeout,
        Duration::from_secs(9)
    );
    assert!(parse_err("setenv GENERIC_CONFIG 1\n").contains("generic"));
}

#[test]
fn accepted_silently() {
    let p = parse(
        "resolv-retry infinite\nnobind\npersist-key\npersist-tun\nfloat\nmute-replay-warnings\n\
         sndbuf 393216\nrcvbuf 393216\nfast-io\nreplay-window 128 30\npush-peer-info\nmute 20\n\
         verb 3\nauth-nocache\nkey-direction 1\ntopology subnet\n",
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.verb, 3);
}

#[test]
fn warned_directives() {
    let p = parse(
        "script-security 2\nup /etc/openvpn/update-resolv-conf\ndown /etc/openvpn/x\n\
         user nobody\ngroup nogroup\nredirect-private\n",
    );
    assert_eq!(p.script_security, 2);
    assert_eq!(p.up.as_deref(), Some("/etc/openvpn/update-resolv-conf"));
    assert_eq!(p.down.as_deref(), Some("/etc/openvpn/x"));
    for d in ["script-security", "up", "down"] {
        assert!(!p.warnings.iter().any(|w| w.directive == d), "{d}");
    }
    assert!(has_warning(&parse("ipchange /x\n"), "ipchange", "not run"));
    assert!(parse_err("script-security 4\n").contains("0 to 3"));
    let p2 = parse("inactive 600 10000\nsession-timeout 3600\n");
    assert_eq!(p2.inactive, Some((Duration::from_secs(600), 10000)));
    assert_eq!(p2.session_timeout, Some(Duration::from_secs(3600)));
    assert!(has_warning(&p, "user", "ignored"));
    assert!(has_warning(&p, "group", "ignored"));
}

#[test]
fn refused_directives() {
    for (line, needle) in [
        ("dev myvpn", "dev-type"),
        ("pkcs12 client.p12", "cannot read '/etc/vpn/client.p12'"),
        // An HTTP proxy carries TCP only; the profile says proto udp (the default).
        ("http-proxy proxy.example 8080", "proxy"),
        ("secret static.key 1", "cannot be combined with 'client'"),
        ("tls-server", "server configuration"),
        ("mode server", "server configuration"),
        ("server 10.8.0.0 255.255.255.0", "server configuration"),
        ("tls-verify /bin/check", "not run"),
        ("tls-remote vpn", "verify-x509-name"),
    ] {
        let e = parse_err(&format!("{line}\n"));
        assert!(e.starts_with("client.ovpn:7: '"), "{line}: {e}");
        assert!(e.contains(needle), "{line}: {e}");
    }
    // dev-type tun makes a custom name fine.
    assert_eq!(
        parse("dev myvpn\ndev-type tun\n").dev.as_deref(),
        Some("myvpn")
    );
}

#[test]
fn inline_blocks_only_for_file_directives() {
    let e = parse_err("<verb>\n3\n</verb>\n");
    assert_eq!(
        e,
        "client.ovpn:7: 'verb': cannot be given as an inline <block>"
    );
    let p = parse("<dh>\nxx\n</dh>\n<frobnicate>\nx\n</frobnicate>\n");
    assert!(has_warning(&p, "dh", "server option"));
    assert!(has_warning(&p, "frobnicate", "unknown directive"));
    // `<pkcs12>` is base64 of the DER file; the file is only opened (with its password) later.
    assert!(parse_err("<pkcs12>\n!!!\n</pkcs12>\n").contains("not PKCS#12"));
}

#[test]
fn stray_closing_tag() {
    let e = parse_err("</ca>\n");
    assert!(e.contains("client.ovpn:7:"), "{e}");
}

// --- the test vectors ---------------------------------------------------------------------------

fn vector(name: &str) -> Result<Profile, ProfileError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vectors")
        .join(name)
        .join("client.conf");
    load_profile(&path)
}

fn assert_vector_common(p: &Profile) {
    assert_eq!(p.remotes.len(), 1);
    assert_eq!(p.remotes[0].host, "198.18.0.1");
    assert_eq!(p.remotes[0].port, 1194);
    assert!(p.pull);
    assert_eq!(p.dev.as_deref(), Some("tun"));
    assert_eq!(p.tls.remote_cert_tls, Some(CertRole::Server));
    assert!(p.tls.ca.is_some() && p.tls.cert.is_some() && p.tls.key.is_some());
    assert_eq!(p.verb, 9);
    // `log` and `writepid` are accepted without a warning.
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn vector_a_tls_crypt_udp() {
    let p = vector("a-tls-crypt-udp-aes256gcm-reneg").unwrap();
    assert_vector_common(&p);
    assert_eq!(p.remotes[0].proto, Proto::Udp4);
    assert!(matches!(p.tls_wrap, Some(TlsWrap::Crypt { .. })));
    assert_eq!(p.data_ciphers, vec![Cipher::Aes256Gcm]);
    assert_eq!(p.explicit_exit_notify, 1);
    assert_eq!(p.reneg_sec, Duration::from_secs(10));
}

#[test]
fn vector_b_tls_auth_chacha() {
    let p = vector("b-tls-auth-sha256-udp-chacha20").unwrap();
    assert_vector_common(&p);
    let Some(TlsWrap::Auth { direction, .. }) = p.tls_wrap else {
        panic!("{:?}", p.tls_wrap)
    };
    assert_eq!(direction, KeyDirection::Inverse);
    assert_eq!(p.auth, Digest::Sha256);
    assert_eq!(p.data_ciphers, vec![Cipher::Chacha20Poly1305]);
}

#[test]
fn vector_c_tls_crypt_v2() {
    let p = vector("c-tls-crypt-v2-cookie-udp-aes128gcm").unwrap();
    assert_vector_common(&p);
    let Some(TlsWrap::CryptV2 { wkc, .. }) = &p.tls_wrap else {
        panic!("{:?}", p.tls_wrap)
    };
    assert_eq!(wkc.len(), 299);
    assert_eq!(p.data_ciphers, vec![Cipher::Aes128Gcm]);
}

#[test]
fn vector_d_tls_crypt_tcp() {
    let p = vector("d-tls-crypt-tcp-aes256gcm").unwrap();
    assert_vector_common(&p);
    assert_eq!(p.remotes[0].proto, Proto::Tcp4);
    assert!(matches!(p.tls_wrap, Some(TlsWrap::Crypt { .. })));
    assert_eq!(p.data_ciphers, Cipher::default_list());
    assert_eq!(p.reneg_sec, Duration::from_secs(3600));
}

#[test]
fn vector_e_static_key_point_to_point() {
    let p = vector("e-static-key-udp-aes256cbc-sha256").unwrap();
    let s = p.static_key.expect("static-key mode");
    assert_eq!(s.direction, KeyDirection::Inverse);
    assert_eq!(s.cipher, Cipher::Aes256Cbc);
    assert_eq!(p.auth, Digest::Sha256);
    assert_eq!(
        s.ifconfig,
        Some(("198.19.5.2".parse().unwrap(), "198.19.5.1".parse().unwrap()))
    );
    assert_eq!(s.local_port, None, "nobind");
    assert_eq!(p.ping_restart, Some(Duration::from_secs(20)));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn static_key_needs_a_cbc_cipher_and_no_tls() {
    let loader = loader().with("static.key", static_key_text(3));
    let p = |text: &str| parse_with(text, &loader);
    let e = p("remote 198.18.0.1\nsecret static.key 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'secret'") && e.contains("cipher AES-256-CBC"),
        "{e}"
    );
    let e = p("client\nremote 198.18.0.1\nsecret static.key\ncipher AES-256-CBC\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be combined with 'client'"), "{e}");
    let ok = p("secret static.key 0\ncipher AES-128-CBC\nifconfig 198.19.9.1 198.19.9.2\nport 1195\nfloat\n")
        .unwrap();
    let s = ok.static_key.unwrap();
    assert_eq!(s.direction, KeyDirection::Normal);
    assert_eq!(s.local_port, Some(1195));
    assert!(s.float);
    assert!(ok.remotes.is_empty(), "a listening peer needs no remote");
    let e = p("secret static.key 0\ncipher AES-128-CBC\nifconfig 198.19.9.1 nope\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("'ifconfig'") && e.contains("nope"), "{e}");
}

#[test]
fn vector_f_plain_tls_cbc() {
    let p = vector("f-tls-plain-udp-aes256cbc-sha1-reneg").unwrap();
    assert_vector_common(&p);
    assert!(p.tls_wrap.is_none());
    assert_eq!(p.data_ciphers, vec![Cipher::Aes256Cbc]);
    assert_eq!(p.auth, Digest::Sha1);
    assert_eq!(p.reneg_sec, Duration::from_secs(10));
}

#[test]
fn load_profile_reports_missing_file() {
    let e = load_profile(Path::new("/nonexistent/dir/x.ovpn")).unwrap_err();
    assert!(matches!(e, ProfileError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/dir/x.ovpn: cannot read the profile")
    );
}

#[test]
fn example_profiles_parse() {
    // The shipped examples reference files next to them; serve those from memory.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/examples");
    let loader = pki()
        .with("ta.key", static_key_text(9))
        .with(
            "client-tc2.key",
            super::material::tests::make_tc2_key(299, 299),
        )
        .with("login.txt", "user\npass\n");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "ovpn") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let p = parse_profile(&text, &path, &loader)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert!(
            p.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            p.warnings
        );
        assert!(p.tls_wrap.is_some(), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 3);
}

// --- robustness ---------------------------------------------------------------------------------

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    const NAMES: &[&str] = &[
        "client",
        "remote",
        "port",
        "proto",
        "dev",
        "dev-type",
        "ca",
        "cert",
        "key",
        "tls-auth",
        "tls-crypt",
        "tls-crypt-v2",
        "key-direction",
        "auth",
        "cipher",
        "data-ciphers",
        "auth-user-pass",
        "keepalive",
        "ping",
        "reneg-sec",
        "route",
        "route-ipv6",
        "redirect-gateway",
        "dhcp-option",
        "setenv",
        "pull-filter",
        "verify-x509-name",
        "peer-fingerprint",
        "crl-verify",
        "tls-version-min",
        "compress",
        "comp-lzo",
        "comp-noadapt",
        "allow-compression",
        "mssfix",
        "tun-mtu",
        "connect-retry",
        "explicit-exit-notify",
        "verb",
        "ignore-unknown-option",
        "remote-cert-eku",
        "<connection>",
        "</connection>",
        "<ca>",
        "</ca>",
        "pkcs12",
        "mode",
    ];
    const ARGS: &[&str] = &[
        "",
        "0",
        "1",
        "65536",
        "udp",
        "tcp4",
        "[inline]",
        "ca.crt",
        "opt",
        "none",
        "yes",
        "\"",
        "'x y'",
        "a\\ b",
        "name",
        "AES-256-GCM:?X",
        "def1",
        "DNS",
        "10.0.0.1",
        "#",
        "server",
    ];

    proptest! {
        #[test]
        fn never_panics(lines in prop::collection::vec(
            (0..NAMES.len(), prop::collection::vec(0..ARGS.len(), 0..4)), 0..12)) {
            let mut text = String::from("client\nremote h\nca ca.crt\ncert client.crt\nkey client.key\n");
            for (n, args) in lines {
                text.push_str(NAMES[n]);
                for a in args {
                    text.push(' ');
                    text.push_str(ARGS[a]);
                }
                text.push('\n');
            }
            let _ = parse_with(&text, &pki());
        }
    }
}

#[test]
fn dev_tap_is_layer2() {
    assert!(!parse("dev tun\n").layer2);
    assert!(parse("dev tap\n").layer2);
    let p = parse("dev vpn0\ndev-type tap\n");
    assert!(p.layer2);
    assert_eq!(p.dev.as_deref(), Some("vpn0"));
    let e = parse_err("dev vpn0\n");
    assert!(e.contains("dev-type tap"), "{e}");
}
