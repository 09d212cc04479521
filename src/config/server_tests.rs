//! Tests of the server configuration parser and of CCD files: the `server` helper's expansion
//! for each topology (checked against what OpenVPN 2.6.14 prints at `--verb 4`), listeners,
//! key material, errors with file, line and directive, and warnings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use super::mem_loader::MemLoader;
use super::*;
use crate::proto::keys::{Cipher, Digest, KeyDirection};

const CA: &str = include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/ca.crt");
// No server certificate is among the vectors; the parser only checks the PEM form.
const CERT: &str =
    include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.crt");
const KEY: &str =
    include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.key");
const TA: &str = include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/ta.key");
/// `openvpn --genkey tls-crypt-v2-server` (OpenVPN 2.6.14).
const TC2_SERVER: &str = include_str!("../../tests/data/server/tc2-server.key");
/// A client key made from `TC2_SERVER`.
const TC2_CLIENT: &str = include_str!("../../tests/data/server/tc2-client.key");
/// `openvpn --genkey auth-token`.
const AUTH_TOKEN: &str = include_str!("../../tests/data/server/auth-token.key");

fn loader() -> MemLoader {
    MemLoader::rooted("/etc/openvpn/server")
}

/// The files of a complete PKI.
fn pki() -> MemLoader {
    loader()
        .with("ca.crt", CA)
        .with("server.crt", CERT)
        .with("server.key", KEY)
        .with("ta.key", TA)
        .with("tc2-server.key", TC2_SERVER)
        .with("tc2-client.key", TC2_CLIENT)
        .with("auth-token.key", AUTH_TOKEN)
        .with(
            "crl.pem",
            "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        )
        .with("dh2048.pem", "-----BEGIN DH PARAMETERS-----\nAAAA\n")
}

/// The active lines of OpenVPN's sample `server.conf`, with its comments shortened.
const SAMPLE: &str = r#"#################################################
# Sample OpenVPN 2.x config file for a
# multi-client server.
#################################################

;local a.b.c.d
port 1194

# TCP or UDP server?
;proto tcp
proto udp

;dev tap
dev tun

ca ca.crt
cert server.crt
key server.key  # This file should be kept secret

dh dh2048.pem

;topology subnet

server 10.8.0.0 255.255.255.0

ifconfig-pool-persist ipp.txt

;push "route 192.168.10.0 255.255.255.0"
;push "redirect-gateway def1 bypass-dhcp"
;push "dhcp-option DNS 208.67.222.222"

;client-to-client
;duplicate-cn

keepalive 10 120

tls-auth ta.key 0 # This file is secret

cipher AES-256-CBC

;compress lz4-v2
;push "compress lz4-v2"
;comp-lzo

;max-clients 100

;user nobody
;group nobody

persist-key
persist-tun

status openvpn-status.log

;log         openvpn.log
;log-append  openvpn.log

verb 3

;mute 20

explicit-exit-notify 1
"#;

const BASE: &str = "dev tun\nca ca.crt\ncert server.crt\nkey server.key\ndh none\n\
                    keepalive 10 120\n";

fn parse_with(text: &str, loader: &MemLoader) -> Result<ServerProfile, ProfileError> {
    parse_server_profile(text, Path::new("server.conf"), loader)
}

fn parse(extra: &str) -> ServerProfile {
    parse_with(&format!("{BASE}{extra}"), &pki()).unwrap()
}

fn parse_err(extra: &str) -> ProfileError {
    parse_with(&format!("{BASE}{extra}"), &pki()).unwrap_err()
}

/// Asserts a directive error at `line` (1-based, of the whole text) about `directive`.
fn assert_at(e: &ProfileError, line: usize, directive: &str, needle: &str) {
    assert_eq!(e.line(), Some(line), "{e}");
    assert_eq!(e.directive(), Some(directive), "{e}");
    assert!(e.to_string().contains(needle), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("server.conf:{line}: '{directive}': ")),
        "{e}"
    );
}

/// Lines in `BASE`, so that `BASE_LINES + n` is line n of the extra text.
const BASE_LINES: usize = 6;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn has_warning(p: &ServerProfile, directive: &str, needle: &str) -> bool {
    p.warnings
        .iter()
        .any(|w| w.directive == directive && w.message.contains(needle))
}

#[test]
fn sample_server_conf() {
    let p = parse_with(SAMPLE, &pki()).unwrap();
    assert_eq!(
        p.listeners,
        [Listener {
            addr: None,
            port: 1194,
            proto: Transport::Udp,
            family: Family::Any
        }]
    );
    assert_eq!(p.dev, "tun");
    // OpenVPN 2.6.14, `--server 10.8.0.0 255.255.255.0 --keepalive 10 120` (net30 default):
    // ifconfig_local 10.8.0.1, ifconfig_remote_netmask 10.8.0.2, pool .4-.251,
    // route 10.8.0.0/24, push 'route 10.8.0.1', 'topology net30', 'ping 10',
    // 'ping-restart 120'; ping_rec_timeout 240.
    assert_eq!(
        p.tunnel_v4,
        Some(TunnelV4 {
            local: v4("10.8.0.1"),
            prefix_len: 24,
            remote: Some(v4("10.8.0.2")),
            topology: Topology::Net30,
            pool: Some((v4("10.8.0.4"), v4("10.8.0.251"))),
        })
    );
    assert_eq!(
        p.routes,
        [ServerRoute {
            network: v4("10.8.0.0"),
            prefix_len: 24,
            gateway: None,
            metric: None
        }]
    );
    assert_eq!(
        p.push,
        [
            "route 10.8.0.1",
            "topology net30",
            "ping 10",
            "ping-restart 120"
        ]
    );
    assert_eq!(p.ping, Some(Duration::from_secs(10)));
    assert_eq!(p.ping_restart, Some(Duration::from_secs(240)));
    assert_eq!(
        p.ifconfig_pool_persist,
        Some(PoolPersist {
            path: "ipp.txt".into(),
            interval: Duration::from_secs(600)
        })
    );
    assert!(matches!(
        p.tls_wrap,
        Some(TlsWrap::Auth {
            direction: KeyDirection::Normal,
            ..
        })
    ));
    assert!(p.tls.ca.is_some() && p.tls.cert.is_some() && p.tls.key.is_some());
    // `cipher AES-256-CBC` joins the negotiable list and is the fallback, as in 2.6.
    assert_eq!(
        p.data_ciphers,
        [
            Cipher::Aes256Gcm,
            Cipher::Aes128Gcm,
            Cipher::Chacha20Poly1305,
            Cipher::Aes256Cbc
        ]
    );
    assert_eq!(p.data_ciphers_fallback, Some(Cipher::Aes256Cbc));
    assert!(p.persist_key && p.persist_tun);
    assert_eq!(
        p.status,
        Some(StatusFile {
            path: "openvpn-status.log".into(),
            interval: Duration::from_secs(60)
        })
    );
    assert_eq!(p.verb, 3);
    assert_eq!(p.explicit_exit_notify, 1);
    assert_eq!(p.max_clients, 1024);
    assert_eq!(p.verify_client_cert, VerifyClientCert::Require);
    assert_eq!(
        p.connect_freq_initial,
        RateLimit {
            count: 100,
            per: Duration::from_secs(10)
        }
    );
    // The dh file is read by nobody and named in a warning; net30 with a pool is deprecated.
    assert!(has_warning(&p, "dh", "ECDHE"));
    assert!(has_warning(&p, "server", "topology subnet"));
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
}

#[test]
fn server_topology_subnet() {
    // OpenVPN 2.6.14: ifconfig 10.8.0.1 255.255.255.0, pool 10.8.0.2-10.8.0.254 (mask /24),
    // push 'route-gateway 10.8.0.1', 'topology subnet', route_default_gateway 10.8.0.2.
    let p = parse("topology subnet\nserver 10.8.0.0 255.255.255.0\n");
    assert_eq!(
        p.tunnel_v4,
        Some(TunnelV4 {
            local: v4("10.8.0.1"),
            prefix_len: 24,
            remote: None,
            topology: Topology::Subnet,
            pool: Some((v4("10.8.0.2"), v4("10.8.0.254"))),
        })
    );
    assert_eq!(p.tunnel_v4.unwrap().netmask(), v4("255.255.255.0"));
    assert!(p.routes.is_empty());
    assert_eq!(p.route_gateway, Some(v4("10.8.0.2")));
    assert_eq!(
        p.push,
        [
            "route-gateway 10.8.0.1",
            "topology subnet",
            "ping 10",
            "ping-restart 120"
        ]
    );
    assert!(!has_warning(&p, "server", "net30"));
}

#[test]
fn server_topology_p2p_and_client_to_client() {
    // p2p: like net30 but no 'route SERVER' push.
    let p = parse("topology p2p\nserver 10.8.0.0 255.255.255.0\n");
    let t = p.tunnel_v4.unwrap();
    assert_eq!(t.topology, Topology::P2p);
    assert_eq!(t.remote, Some(v4("10.8.0.2")));
    assert_eq!(t.pool, Some((v4("10.8.0.4"), v4("10.8.0.251"))));
    assert_eq!(p.push, ["topology p2p", "ping 10", "ping-restart 120"]);
    assert_eq!(p.routes.len(), 1);

    // net30 + client-to-client: the whole network is pushed instead of the server address.
    let p = parse("client-to-client\nserver 10.8.0.0 255.255.255.0\n");
    assert!(p.client_to_client);
    assert_eq!(
        p.push,
        [
            "route 10.8.0.0 255.255.255.0",
            "topology net30",
            "ping 10",
            "ping-restart 120"
        ]
    );
}

#[test]
fn server_helper_edges() {
    // A /29 keeps no reserve at the end of the pool (OpenVPN: pool .4-.7).
    let p = parse("server 10.8.0.0 255.255.255.248\n");
    assert_eq!(
        p.tunnel_v4.unwrap().pool,
        Some((v4("10.8.0.4"), v4("10.8.0.7")))
    );
    // nopool: addresses only from CCD.
    let p = parse("topology subnet\nserver 10.9.0.0 255.255.0.0 nopool\n");
    let t = p.tunnel_v4.unwrap();
    assert_eq!((t.local, t.prefix_len, t.pool), (v4("10.9.0.1"), 16, None));
    // User pushes come first, helpers after them (OpenVPN's order).
    let p = parse(
        "push \"dhcp-option DNS 10.8.0.1\"\ntopology subnet\nserver 10.8.0.0 255.255.255.0\n\
         push \"redirect-gateway def1\"\n",
    );
    assert_eq!(
        p.push,
        [
            "dhcp-option DNS 10.8.0.1",
            "redirect-gateway def1",
            "route-gateway 10.8.0.1",
            "topology subnet",
            "ping 10",
            "ping-restart 120"
        ]
    );
    // An explicit route-gateway wins over the helper's.
    let p = parse("route-gateway 10.8.0.9\ntopology subnet\nserver 10.8.0.0 255.255.255.0\n");
    assert_eq!(p.route_gateway, Some(v4("10.8.0.9")));
}

#[test]
fn server_helper_errors() {
    let e = parse_err("server 10.8.0.0 255.255.255.252\n");
    assert_at(&e, BASE_LINES + 1, "server", "/29");
    let e = parse_err("server 10.8.0.1 255.255.255.0\n");
    assert_at(&e, BASE_LINES + 1, "server", "host part");
    let e = parse_err("server 10.8.0.0 255.0.255.0\n");
    assert_at(&e, BASE_LINES + 1, "server", "contiguous");
    let e = parse_err("server 10.0.0.0 255.0.0.0\n");
    assert_at(&e, BASE_LINES + 1, "server", "too many");
    let e = parse_err("server 10.8.0.0 255.255.255.0\nifconfig-pool 10.8.0.10 10.8.0.20\n");
    assert_at(&e, BASE_LINES + 1, "server", "line 8");
    let e = parse_err("ifconfig 10.8.0.1 10.8.0.2\nserver 10.8.0.0 255.255.255.0\n");
    assert_at(&e, BASE_LINES + 2, "server", "'ifconfig' (line 7)");
    let e = parse_err("topology star\n");
    assert_at(&e, BASE_LINES + 1, "topology", "net30, p2p or subnet");
}

#[test]
fn server_ipv6() {
    // OpenVPN 2.6.14: ifconfig-ipv6 fd00:1::1 / remote fd00:1::2, pool base fd00:1::1000/64,
    // and 'tun-ipv6' pushed first.
    let p = parse("topology subnet\nserver 10.8.0.0 255.255.255.0\nserver-ipv6 fd00:1::/64\n");
    assert_eq!(
        p.tunnel_v6,
        Some(TunnelV6 {
            local: v6("fd00:1::1"),
            prefix_len: 64,
            remote: Some(v6("fd00:1::2")),
            pool: Some((v6("fd00:1::1000"), 64)),
        })
    );
    assert_eq!(p.push[0], "tun-ipv6");
    assert_eq!(p.push[1], "route-gateway 10.8.0.1");
    // /112 and longer: the pool starts at +2.
    let p = parse("server-ipv6 fd00:1::/112\n");
    assert_eq!(p.tunnel_v6.unwrap().pool, Some((v6("fd00:1::2"), 112)));
    // IPv6 only is a valid server.
    assert!(p.tunnel_v4.is_none());
    assert_eq!(p.push, ["tun-ipv6", "ping 10", "ping-restart 120"]);

    let e = parse_err("server-ipv6 fd00:1::/48\n");
    assert_at(&e, BASE_LINES + 1, "server-ipv6", "/64");
    let e = parse_err("server-ipv6 fd00:1::\n");
    assert_at(&e, BASE_LINES + 1, "server-ipv6", "prefix length");
}

#[test]
fn manual_ifconfig_and_pools() {
    let p = parse(
        "mode server\ntls-server\ntopology subnet\nifconfig 10.8.0.1 255.255.255.0\n\
         ifconfig-pool 10.8.0.100 10.8.0.199\nifconfig-ipv6 fd00::1/64 fd00::2\n\
         ifconfig-ipv6-pool fd00::1000/64\npush \"topology subnet\"\n",
    );
    assert_eq!(
        p.tunnel_v4,
        Some(TunnelV4 {
            local: v4("10.8.0.1"),
            prefix_len: 24,
            remote: None,
            topology: Topology::Subnet,
            pool: Some((v4("10.8.0.100"), v4("10.8.0.199"))),
        })
    );
    assert_eq!(
        p.tunnel_v6,
        Some(TunnelV6 {
            local: v6("fd00::1"),
            prefix_len: 64,
            remote: Some(v6("fd00::2")),
            pool: Some((v6("fd00::1000"), 64)),
        })
    );
    // No helper: nothing is added to the pushes except keepalive's.
    assert_eq!(p.push, ["topology subnet", "ping 10", "ping-restart 120"]);

    // net30 with a manual ifconfig: the second address is the peer.
    let p = parse("mode server\ntls-server\nifconfig 10.8.0.1 10.8.0.2\n");
    let t = p.tunnel_v4.unwrap();
    assert_eq!(
        (t.remote, t.prefix_len, t.pool),
        (Some(v4("10.8.0.2")), 32, None)
    );

    // ifconfig-pool-linear: the removed spelling of topology p2p.
    let p = parse("mode server\ntls-server\nifconfig-pool-linear\nifconfig 10.8.0.1 10.8.0.2\n");
    assert_eq!(p.tunnel_v4.unwrap().topology, Topology::P2p);
    assert!(has_warning(&p, "ifconfig-pool-linear", "topology p2p"));

    let e = parse_err(
        "mode server\ntls-server\ntopology subnet\nifconfig 10.8.0.1 255.255.255.0\n\
         ifconfig-pool 10.9.0.2 10.9.0.9\n",
    );
    assert_at(&e, BASE_LINES + 5, "ifconfig-pool", "not inside");
    let e = parse_err("mode server\ntls-server\nifconfig-pool 10.8.0.9 10.8.0.2\n");
    assert_at(&e, BASE_LINES + 3, "ifconfig-pool", "after it ends");
    let e = parse_err("mode server\ntls-server\nifconfig-pool 10.8.0.2 10.8.0.9\n");
    assert_at(&e, BASE_LINES + 3, "ifconfig-pool", "needs 'ifconfig'");
}

#[test]
fn listeners_classic() {
    let p = parse("server 10.8.0.0 255.255.255.0\nlocal 192.0.2.1\nport 443\nproto tcp\n");
    assert_eq!(
        p.listeners,
        [Listener {
            addr: Some("192.0.2.1".parse().unwrap()),
            port: 443,
            proto: Transport::Tcp,
            family: Family::V4
        }]
    );
    let p = parse("server 10.8.0.0 255.255.255.0\nproto udp6\n");
    assert_eq!(p.listeners[0].family, Family::V6);
    assert_eq!(p.listeners[0].addr, None);
    let p = parse("server 10.8.0.0 255.255.255.0\nproto tcp4-server\nlport 8443\n");
    assert_eq!(
        (
            p.listeners[0].proto,
            p.listeners[0].family,
            p.listeners[0].port
        ),
        (Transport::Tcp, Family::V4, 8443)
    );
    let e = parse_err("server 10.8.0.0 255.255.255.0\nproto tcp-client\n");
    assert_at(&e, BASE_LINES + 2, "proto", "for clients");
}

#[test]
fn listeners_multi_socket() {
    // OpenVPN 2.7: each `local ADDR [PORT] [PROTO]` is a socket; missing parts come from
    // `port` / `proto`.
    let p = parse(
        "server 10.8.0.0 255.255.255.0\nport 1194\nproto udp\n\
         local 192.0.2.1\nlocal 192.0.2.1 443 tcp-server\nlocal 2001:db8::1 1194 udp6\n\
         local * 1195\n",
    );
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    assert_eq!(
        p.listeners,
        [
            Listener {
                addr: ip("192.0.2.1"),
                port: 1194,
                proto: Transport::Udp,
                family: Family::V4
            },
            Listener {
                addr: ip("192.0.2.1"),
                port: 443,
                proto: Transport::Tcp,
                family: Family::V4
            },
            Listener {
                addr: ip("2001:db8::1"),
                port: 1194,
                proto: Transport::Udp,
                family: Family::V6
            },
            Listener {
                addr: None,
                port: 1195,
                proto: Transport::Udp,
                family: Family::Any
            },
        ]
    );
    let e = parse_err("server 10.8.0.0 255.255.255.0\nlocal 192.0.2.1\nlocal 192.0.2.1 1194\n");
    assert_at(&e, BASE_LINES + 3, "local", "already");
    let e = parse_err("server 10.8.0.0 255.255.255.0\nlocal 192.0.2.1 1194 udp6\n");
    assert_at(&e, BASE_LINES + 2, "local", "family");
    let e = parse_err("server 10.8.0.0 255.255.255.0\nlocal vpn.example.com\n");
    assert_at(&e, BASE_LINES + 2, "local", "not an IP address");
    let e = parse_err("server 10.8.0.0 255.255.255.0\nlocal 192.0.2.1 70000\n");
    assert_at(&e, BASE_LINES + 2, "local", "out of range");
}

#[test]
fn tls_crypt_v2_server_key() {
    let p = parse(
        "server 10.8.0.0 255.255.255.0\ntls-crypt-v2 tc2-server.key\n\
         tls-crypt-v2-verify /usr/local/bin/check-tc2\ntls-crypt-v2-max-age 30\nforce-cookie\n\
         script-security 2\n",
    );
    let tc2 = p.tls_crypt_v2.unwrap();
    assert!(p.tls_wrap.is_none());
    // The fixture's first and last bytes, from `base64 -d`.
    let raw = base64_decode_body(TC2_SERVER);
    assert_eq!(raw.len(), 128);
    assert_eq!(tc2.key.as_bytes()[..], raw[..]);
    assert_eq!(tc2.key.cipher(), &raw[..64]);
    assert_eq!(tc2.key.hmac(), &raw[64..]);
    assert_eq!(tc2.verify.as_deref(), Some("/usr/local/bin/check-tc2"));
    assert_eq!(tc2.max_age, Some(Duration::from_secs(30 * 86400)));
    assert!(!tc2.allow_noncookie);
    assert_eq!(format!("{:?}", tc2.key), "Key1(..)");

    // Inline, with allow-noncookie (the last tls-crypt-v2 line decides, as in OpenVPN).
    let p = parse(&format!(
        "server 10.8.0.0 255.255.255.0\n<tls-crypt-v2>\n{TC2_SERVER}</tls-crypt-v2>\n\
         tls-crypt-v2 [inline] allow-noncookie\n"
    ));
    assert!(p.tls_crypt_v2.unwrap().allow_noncookie);

    // A client key given to the server.
    let e = parse_err("server 10.8.0.0 255.255.255.0\ntls-crypt-v2 tc2-client.key\n");
    assert_at(&e, BASE_LINES + 2, "tls-crypt-v2", "*client* key");
    // A wrong file.
    let e = parse_err("server 10.8.0.0 255.255.255.0\ntls-crypt-v2 ta.key\n");
    assert_at(&e, BASE_LINES + 2, "tls-crypt-v2", "'ta.key'");
    // The verify script without the script level.
    let e = parse_err(
        "server 10.8.0.0 255.255.255.0\ntls-crypt-v2 tc2-server.key\ntls-crypt-v2-verify x\n",
    );
    assert!(e.to_string().contains("script-security 2"), "{e}");
    // tls-crypt-v2 and tls-auth together.
    let e = parse_err(
        "server 10.8.0.0 255.255.255.0\ntls-auth ta.key 0\ntls-crypt-v2 tc2-server.key\n",
    );
    assert_at(
        &e,
        BASE_LINES + 3,
        "tls-crypt-v2",
        "cannot be used together",
    );
}

fn base64_decode_body(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[test]
fn tls_crypt_and_auth_direction() {
    let p = parse("server 10.8.0.0 255.255.255.0\ntls-crypt ta.key\n");
    assert!(matches!(p.tls_wrap, Some(TlsWrap::Crypt { .. })));
    let p = parse("server 10.8.0.0 255.255.255.0\ntls-auth ta.key\nkey-direction 0\n");
    assert!(matches!(
        p.tls_wrap,
        Some(TlsWrap::Auth {
            direction: KeyDirection::Normal,
            ..
        })
    ));
    let p = parse("server 10.8.0.0 255.255.255.0\ntls-auth ta.key\n");
    assert!(has_warning(&p, "tls-auth", "tls-auth FILE 0"));
}

#[test]
fn crypto_and_auth_settings() {
    let p = parse(
        "server 10.8.0.0 255.255.255.0\nauth SHA256\n\
         data-ciphers AES-256-GCM:?BF-CBC:CHACHA20-POLY1305\ndata-ciphers-fallback AES-128-CBC\n\
         tls-version-min 1.2\nremote-cert-tls client\nverify-x509-name client- name-prefix\n\
         crl-verify crl.pem\nextra-certs ca.crt\nauth-user-pass-verify /bin/check via-file\n\
         script-security 2\nusername-as-common-name\nauth-gen-token 3600 600 external-auth\n\
         auth-gen-token-secret auth-token.key\nverify-client-cert optional\n\
         tls-cipher TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384\necdh-curve secp384r1\n",
    );
    assert_eq!(p.auth, Digest::Sha256);
    assert_eq!(
        p.data_ciphers,
        [Cipher::Aes256Gcm, Cipher::Chacha20Poly1305]
    );
    assert_eq!(p.data_ciphers_fallback, Some(Cipher::Aes128Cbc));
    assert_eq!(p.tls.tls_version_min.as_deref(), Some("1.2"));
    assert_eq!(p.tls.remote_cert_tls, Some(CertRole::Client));
    assert_eq!(
        p.tls.verify_x509_name,
        Some(VerifyX509Name {
            name: "client-".into(),
            kind: X509NameKind::NamePrefix
        })
    );
    assert!(p.tls.crl.is_some());
    assert_eq!(
        p.crl_path.as_deref(),
        Some(Path::new("/etc/openvpn/server/crl.pem"))
    );
    assert!(p.tls.extra_certs.is_some());
    assert_eq!(
        p.auth_user_pass_verify,
        Some(AuthUserPassVerify {
            command: "/bin/check".into(),
            method: CredentialsVia::File
        })
    );
    assert!(p.username_as_common_name);
    assert_eq!(
        p.auth_gen_token,
        Some(AuthGenToken {
            lifetime: Some(Duration::from_secs(3600)),
            renewal: Some(Duration::from_secs(600)),
            external_auth: true
        })
    );
    assert_eq!(
        p.auth_gen_token_secret.as_ref().unwrap().as_bytes()[..],
        base64_decode_body(AUTH_TOKEN)[..]
    );
    assert_eq!(p.verify_client_cert, VerifyClientCert::Optional);
    assert!(has_warning(&p, "data-ciphers", "BF-CBC"));
    // tls-cipher and ecdh-curve are applied (src/config/tls_options.rs), not ignored.
    assert!(!has_warning(&p, "tls-cipher", "ignored"));
}

#[test]
fn auth_policy_errors() {
    let e = parse_err("server 10.8.0.0 255.255.255.0\nverify-client-cert none\n");
    assert_at(
        &e,
        BASE_LINES + 2,
        "verify-client-cert",
        "auth-user-pass-verify",
    );
    let e = parse_err(
        "server 10.8.0.0 255.255.255.0\nauth-user-pass-verify /bin/check via-env\n\
         script-security 2\n",
    );
    assert!(e.to_string().contains("script-security 3"), "{e}");
    let e = parse_err("server 10.8.0.0 255.255.255.0\nauth-user-pass-verify /bin/check\n");
    assert_at(
        &e,
        BASE_LINES + 2,
        "auth-user-pass-verify",
        "needs 2 argument(s)",
    );
    let e = parse_err("server 10.8.0.0 255.255.255.0\nclient-connect /bin/cc\n");
    assert!(
        e.to_string().contains("'client-connect' runs a script"),
        "{e}"
    );
    let e = parse_err("server 10.8.0.0 255.255.255.0\nremote-cert-tls server\n");
    assert_at(&e, BASE_LINES + 2, "remote-cert-tls", "client");
    // `auth none` is accepted with AEAD data ciphers, as in 2.6.
    let p = parse("server 10.8.0.0 255.255.255.0\nauth none\n");
    assert_eq!(p.auth, Digest::None);
    let e = parse_err("server 10.8.0.0 255.255.255.0\ndata-ciphers none\n");
    assert_at(&e, BASE_LINES + 2, "data-ciphers", "refused");
    let e = parse_err("server 10.8.0.0 255.255.255.0\nncp-disable\n");
    assert_at(&e, BASE_LINES + 2, "ncp-disable", "data-ciphers");
    let e = parse_err("server 10.8.0.0 255.255.255.0\ncrl-verify /etc/crl dir\n");
    assert_at(&e, BASE_LINES + 2, "crl-verify", "not supported");
}

#[test]
fn compression_policy() {
    let p = parse("server 10.8.0.0 255.255.255.0\ncompress migrate\n");
    assert!(p.compress_migrate);
    assert_eq!(p.compression, Compression::None);
    let p = parse("server 10.8.0.0 255.255.255.0\ncompress stub-v2\npush \"compress stub-v2\"\n");
    assert_eq!(p.compression, Compression::StubV2);
    let p = parse("server 10.8.0.0 255.255.255.0\ncomp-lzo no\n");
    assert_eq!(p.compression, Compression::LzoFraming);

    // Real compression: refused unless allowed.
    let e = parse_err("server 10.8.0.0 255.255.255.0\ncompress lz4-v2\n");
    assert_at(&e, BASE_LINES + 2, "compress", "VORACLE");
    let e = parse_err("server 10.8.0.0 255.255.255.0\ncomp-lzo\n");
    assert_at(&e, BASE_LINES + 2, "comp-lzo", "VORACLE");
    let p = parse("server 10.8.0.0 255.255.255.0\ncompress lz4-v2\nallow-compression asym\n");
    assert_eq!(p.allow_compression, AllowCompression::Asym);
    assert_eq!(p.compression, Compression::StubV2);
    assert!(has_warning(&p, "compress", "never compresses"));
}

#[test]
fn session_and_ops_settings() {
    let p = parse(
        "server 10.8.0.0 255.255.255.0\nmax-clients 100\nduplicate-cn\nconnect-freq 5 10\n\
         connect-freq-initial 50 5\nreplay-window 128 30\nreneg-sec 600\nreneg-bytes 1000000\n\
         hand-window 30\ntls-timeout 3\ntran-window 60\ninactive 3600 1000\n\
         tun-mtu 1400\nmssfix 1360\ntxqueuelen 1000\nuser nobody\ngroup nogroup\n\
         chroot /var/empty\nwritepid /run/ovpn.pid\ndaemon\nstatus /run/status.log 10\n\
         status-version 3\nmanagement 127.0.0.1 7505 /etc/mgmt.pw\nlog-append /var/log/ovpn.log\n\
         mute 20\nsuppress-timestamps\npersist-local-ip\npersist-remote-ip\nsndbuf 393216\n\
         rcvbuf 393216\nfast-io\nfloat\nmultihome\nclient-config-dir ccd\nccd-exclusive\n\
         userspace-allow 10.0.0.0/8 80,443\nuserspace-allow 192.168.1.10\n\
         route 192.168.10.0 255.255.255.0\nroute-ipv6 2001:db8:1::/48\nexplicit-exit-notify\n",
    );
    assert_eq!(p.max_clients, 100);
    assert!(p.duplicate_cn);
    assert_eq!(
        p.connect_freq,
        Some(RateLimit {
            count: 5,
            per: Duration::from_secs(10)
        })
    );
    assert_eq!(p.connect_freq_initial.count, 50);
    assert_eq!(
        p.replay_window,
        ReplayWindow {
            size: 128,
            time: Duration::from_secs(30)
        }
    );
    assert_eq!(p.reneg_sec, Duration::from_secs(600));
    assert_eq!(p.reneg_bytes, Some(1_000_000));
    assert_eq!(p.hand_window, Duration::from_secs(30));
    assert_eq!(p.tls_timeout, Duration::from_secs(3));
    assert_eq!(p.tran_window, Duration::from_secs(60));
    assert_eq!(
        p.inactive,
        Some(Inactive {
            timeout: Duration::from_secs(3600),
            bytes: 1000
        })
    );
    assert_eq!((p.tun_mtu, p.mssfix), (1400, Some(1360)));
    assert_eq!(p.user.as_deref(), Some("nobody"));
    assert_eq!(p.group.as_deref(), Some("nogroup"));
    assert_eq!(p.chroot.as_deref(), Some(Path::new("/var/empty")));
    assert_eq!(p.writepid.as_deref(), Some(Path::new("/run/ovpn.pid")));
    assert_eq!(
        p.status,
        Some(StatusFile {
            path: "/run/status.log".into(),
            interval: Duration::from_secs(10)
        })
    );
    assert_eq!(p.status_version, 3);
    assert_eq!(
        p.management,
        Some(Management {
            listen: ManagementListen::Tcp {
                host: "127.0.0.1".into(),
                port: 7505
            },
            password_file: Some("/etc/mgmt.pw".into())
        })
    );
    assert_eq!(
        p.log,
        Some(LogTarget::File {
            path: "/var/log/ovpn.log".into(),
            append: true
        })
    );
    assert_eq!(p.mute, Some(20));
    assert!(p.suppress_timestamps);
    assert_eq!(p.client_config_dir.as_deref(), Some(Path::new("ccd")));
    assert!(p.ccd_exclusive);
    assert_eq!(p.userspace_allow, ["10.0.0.0/8:80,443", "192.168.1.10"]);
    assert_eq!(
        p.routes[0],
        ServerRoute {
            network: v4("192.168.10.0"),
            prefix_len: 24,
            gateway: None,
            metric: None
        }
    );
    assert_eq!(p.routes_ipv6[0].network, v6("2001:db8:1::"));
    assert_eq!(p.routes_ipv6[0].prefix_len, 48);
    assert_eq!(p.explicit_exit_notify, 1);
    assert!(has_warning(&p, "daemon", "foreground"));
    assert!(has_warning(&p, "multihome", "local"));

    let p = parse("server 10.8.0.0 255.255.255.0\nmanagement /run/mgmt.sock unix\nsyslog vpn\n");
    assert_eq!(
        p.management.unwrap().listen,
        ManagementListen::Unix("/run/mgmt.sock".into())
    );
    assert_eq!(p.log, Some(LogTarget::Syslog("vpn".into())));
    let p = parse("server 10.8.0.0 255.255.255.0\nmanagement 0.0.0.0 7505\n");
    assert!(has_warning(&p, "management", "password"));
    let e = parse_err("server 10.8.0.0 255.255.255.0\nmanagement-client-auth\n");
    assert_at(
        &e,
        BASE_LINES + 2,
        "management-client-auth",
        "not supported",
    );
    let e = parse_err("server 10.8.0.0 255.255.255.0\nuserspace-allow 10.0.0/8\n");
    assert_at(&e, BASE_LINES + 2, "userspace-allow", "not an address");
    let e = parse_err("server 10.8.0.0 255.255.255.0\nroute 192.168.10.1 255.255.255.0\n");
    assert_at(&e, BASE_LINES + 2, "route", "outside the netmask");
}

#[test]
fn keepalive_and_pings() {
    let p = parse_with(
        "dev tun\nca ca.crt\ncert server.crt\nkey server.key\nserver 10.8.0.0 255.255.255.0\n\
         ping 5\nping-restart 30\n",
        &pki(),
    )
    .unwrap();
    assert_eq!(p.ping, Some(Duration::from_secs(5)));
    assert_eq!(p.ping_restart, Some(Duration::from_secs(30)));
    assert!(!p.push.iter().any(|x| x.starts_with("ping")));

    let p = parse_with(
        "dev tun\nca ca.crt\ncert server.crt\nkey server.key\nserver 10.8.0.0 255.255.255.0\n",
        &pki(),
    )
    .unwrap();
    assert!(has_warning(&p, "keepalive", "keepalive 10 120"));

    let e = parse_err("server 10.8.0.0 255.255.255.0\nping 10\n");
    assert_at(&e, BASE_LINES + 2, "ping", "keepalive");
}

#[test]
fn client_directives_are_errors() {
    for (d, line) in [
        ("remote vpn.example.com", "remote"),
        ("client", "client"),
        ("pull", "pull"),
        ("nobind", "nobind"),
        ("auth-user-pass", "auth-user-pass"),
        ("tls-client", "tls-client"),
    ] {
        let e = parse_err(&format!("server 10.8.0.0 255.255.255.0\n{d}\n"));
        assert_at(
            &e,
            BASE_LINES + 2,
            line,
            &format!("'{line}' is a client directive; this is a server configuration"),
        );
    }
    // Per-client directives belong in CCD files.
    for d in [
        "push-reset",
        "iroute 10.1.0.0 255.255.0.0",
        "ifconfig-push 10.8.0.5 10.8.0.6",
    ] {
        let e = parse_err(&format!("server 10.8.0.0 255.255.255.0\n{d}\n"));
        assert!(e.to_string().contains("client-config-dir"), "{e}");
    }
}

#[test]
fn unsupported_and_unknown() {
    let e = parse_err("server 10.8.0.0 255.255.255.0\ndev tap\n");
    assert_at(&e, BASE_LINES + 2, "dev", "tap is not supported");
    let e = parse_err("server 10.8.0.0 255.255.255.0\ndev-type tap\n");
    assert_at(&e, BASE_LINES + 2, "dev-type", "tap");
    let e = parse_err("server-bridge 10.8.0.4 255.255.255.0 10.8.0.128 10.8.0.254\n");
    assert_at(&e, BASE_LINES + 1, "server-bridge", "tap");
    let e = parse_err("server 10.8.0.0 255.255.255.0\nsecret static.key\n");
    assert_at(&e, BASE_LINES + 2, "secret", "static-key");

    let p = parse(
        "server 10.8.0.0 255.255.255.0\nfrobnicate 1 2\nignore-unknown-option wibble\nwibble\n\
         setenv opt block-outside-dns\ndev vpn0\ndev-type tun\n",
    );
    let w: Vec<_> = p
        .warnings
        .iter()
        .filter(|w| w.message.contains("unknown"))
        .collect();
    assert_eq!(w.len(), 2, "{:?}", p.warnings);
    assert_eq!(w[0].directive, "frobnicate");
    assert_eq!(w[0].line, BASE_LINES + 2);
    assert_eq!(
        w[0].to_string(),
        format!(
            "server.conf:{}: 'frobnicate': unknown directive, ignored",
            BASE_LINES + 2
        )
    );
    assert_eq!(w[1].directive, "block-outside-dns");
    assert_eq!(p.dev, "vpn0");
}

#[test]
fn incomplete_configs() {
    let pki = pki();
    let e = parse_with(
        "dev tun\nca ca.crt\ncert server.crt\nkey server.key\n",
        &pki,
    )
    .unwrap_err();
    assert!(matches!(e, ProfileError::Incomplete { .. }), "{e}");
    assert!(e.to_string().contains("not a server configuration"), "{e}");

    let e = parse_with(
        "mode server\ntls-server\nca ca.crt\ncert server.crt\nkey server.key\n",
        &pki,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no tunnel addresses"), "{e}");
    assert!(
        e.to_string().contains("server 10.8.0.0 255.255.255.0"),
        "{e}"
    );

    let e = parse_with("mode server\nifconfig 10.8.0.1 10.8.0.2\n", &pki).unwrap_err();
    assert!(e.to_string().contains("tls-server"), "{e}");

    let e = parse_with(
        "server 10.8.0.0 255.255.255.0\ncert server.crt\nkey server.key\n",
        &pki,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "server.conf: no 'ca': the certificate authority that signed the client certificates is \
         needed (e.g. 'ca ca.crt')"
        )
    );
    let e = parse_with("server 10.8.0.0 255.255.255.0\nca ca.crt\n", &pki).unwrap_err();
    assert!(e.to_string().contains("no 'cert' and 'key'"), "{e}");
    let e = parse_with(
        "server 10.8.0.0 255.255.255.0\nca ca.crt\ncert server.crt\n",
        &pki,
    )
    .unwrap_err();
    assert_at(&e, 3, "cert", "needs its 'key'");
    let e = parse_with(
        "server 10.8.0.0 255.255.255.0\nca missing.crt\ncert server.crt\nkey server.key\n",
        &pki,
    )
    .unwrap_err();
    assert_at(&e, 2, "ca", "/etc/openvpn/server/missing.crt");
    let e = parse_with(
        "server 10.8.0.0 255.255.255.0\nca ca.crt\ncert server.crt\nkey server.crt\n",
        &pki,
    )
    .unwrap_err();
    assert_at(&e, 4, "key", "private key");
}

#[test]
fn inline_material_and_syntax() {
    let text = format!(
        "server 10.8.0.0 255.255.255.0\nkeepalive 10 60\n<ca>\n{CA}</ca>\n<cert>\n{CERT}</cert>\n\
         <key>\n{KEY}</key>\n<tls-crypt>\n{TA}</tls-crypt>\n"
    );
    let p = parse_with(&text, &loader()).unwrap();
    assert!(matches!(p.tls_wrap, Some(TlsWrap::Crypt { .. })));
    assert_eq!(p.tls.ca.as_deref(), Some(CA.as_bytes()));

    let e = parse_with(
        "server 10.8.0.0 255.255.255.0\npush \"route 10.0.0.0\n",
        &pki(),
    )
    .unwrap_err();
    assert!(matches!(e, ProfileError::Syntax { line: 2, .. }), "{e}");
    let e = parse_err("server 10.8.0.0 255.255.255.0\n<push>\nx\n</push>\n");
    assert_at(&e, BASE_LINES + 2, "push", "inline");
}

#[test]
fn load_server_profile_from_disk() {
    let dir = std::env::temp_dir().join(format!("ferrovpn-server-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body) in [("ca.crt", CA), ("server.crt", CERT), ("server.key", KEY)] {
        std::fs::write(dir.join(name), body).unwrap();
    }
    let conf = dir.join("server.conf");
    std::fs::write(
        &conf,
        format!("{BASE}topology subnet\nserver 10.8.0.0 255.255.255.0\n"),
    )
    .unwrap();
    let p = load_server_profile(&conf).unwrap();
    assert_eq!(p.source, conf);
    assert_eq!(p.tunnel_v4.unwrap().topology, Topology::Subnet);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ccd_files() {
    let text = "# static address for alice\n\
                ifconfig-push 10.8.0.50 255.255.255.0\n\
                ifconfig-ipv6-push fd00:1::50/64 fd00:1::1\n\
                iroute 192.168.50.0 255.255.255.0\n\
                iroute 192.168.51.7\n\
                iroute-ipv6 2001:db8:50::/48\n\
                push \"route 192.168.60.0 255.255.255.0\"\n\
                push \"dhcp-option DNS 10.8.0.1\"\n\
                push-remove dhcp-option\n\
                config other.conf\n\
                frobnicate\n";
    let e = parse_ccd(text, Path::new("ccd/alice")).unwrap();
    assert_eq!(
        e.ifconfig_push,
        Some(IfconfigPush {
            local: v4("10.8.0.50"),
            remote_netmask: v4("255.255.255.0")
        })
    );
    assert_eq!(
        e.ifconfig_ipv6_push,
        Some(IfconfigIpv6Push {
            local: v6("fd00:1::50"),
            prefix_len: 64,
            remote: Some(v6("fd00:1::1"))
        })
    );
    assert_eq!(
        e.iroutes,
        [(v4("192.168.50.0"), 24), (v4("192.168.51.7"), 32)]
    );
    assert_eq!(e.iroutes_ipv6, [(v6("2001:db8:50::"), 48)]);
    // push-remove drops the matching pushes written before it and is kept for the server's.
    assert_eq!(e.push, ["route 192.168.60.0 255.255.255.0"]);
    assert_eq!(e.push_remove, ["dhcp-option"]);
    assert!(!e.push_reset && !e.disable);
    assert_eq!(e.warnings.len(), 2, "{:?}", e.warnings);
    assert_eq!(e.warnings[0].directive, "config");
    assert_eq!(e.warnings[0].line, 10);
    assert_eq!(e.warnings[1].directive, "frobnicate");
    assert_eq!(e.warnings[1].file, Path::new("ccd/alice"));

    let e = parse_ccd(
        "push \"a\"\npush-reset\npush \"b\"\ndisable\n",
        Path::new("ccd/bob"),
    )
    .unwrap();
    assert!(e.push_reset && e.disable);
    assert_eq!(e.push, ["b"]);

    // Errors name the CCD file, line and directive.
    let err = parse_ccd(
        "\niroute 192.168.50.1 255.255.255.0\n",
        Path::new("ccd/carol"),
    )
    .unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string().starts_with("ccd/carol:2: 'iroute': "),
        "{err}"
    );
    let err = parse_ccd("ifconfig-push 10.8.0.300 10.8.0.1\n", Path::new("ccd/d")).unwrap_err();
    assert!(
        err.to_string()
            .contains("'10.8.0.300' is not an IPv4 address"),
        "{err}"
    );
    let err = parse_ccd("remote x\n", Path::new("ccd/e")).unwrap_err();
    assert!(err.to_string().contains("client directive"), "{err}");
    let err = parse_ccd("push \"a\n", Path::new("ccd/f")).unwrap_err();
    assert!(matches!(err, ProfileError::Syntax { line: 1, .. }), "{err}");
}

#[test]
fn netmask_helpers() {
    assert_eq!(prefix_to_mask(0), v4("0.0.0.0"));
    assert_eq!(prefix_to_mask(24), v4("255.255.255.0"));
    assert_eq!(prefix_to_mask(32), v4("255.255.255.255"));
    assert_eq!(mask_to_prefix(v4("255.255.255.248")), Some(29));
    assert_eq!(mask_to_prefix(v4("0.0.0.0")), Some(0));
    assert_eq!(mask_to_prefix(v4("255.255.255.255")), Some(32));
    assert_eq!(mask_to_prefix(v4("255.0.255.0")), None);
}
