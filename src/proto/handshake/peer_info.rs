//! The client's peer-info (`IV_*` variables) and OCC options string: what the client tells the
//! server it can do. Announce nothing that is not handled.

use crate::config::CompatVersion;
use crate::proto::keys::Cipher;

/// `IV_PROTO` bits (PROTOCOL.md A.3.2).
pub mod iv_proto {
    /// DATA_V2 with peer-id.
    pub const DATA_V2: u32 = 1 << 1;
    /// The server may push without waiting for PUSH_REQUEST.
    pub const REQUEST_PUSH: u32 = 1 << 2;
    /// TLS keying-material exporter.
    pub const TLS_KEY_EXPORT: u32 = 1 << 3;
    /// `AUTH_PENDING` with key-value pairs (`timeout N`).
    pub const AUTH_PENDING_KW: u32 = 1 << 4;
    /// The 2.6 `dns` option.
    pub const DNS_OPTION: u32 = 1 << 6;
    /// Control-channel EXIT and pushed `protocol-flags`.
    pub const CC_EXIT_NOTIFY: u32 = 1 << 7;
    /// `AUTH_FAILED,TEMP` understood.
    pub const AUTH_FAIL_TEMP: u32 = 1 << 8;
}

/// What goes into the peer-info block.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// `data-ciphers`.
    pub ciphers: Vec<Cipher>,
    /// `tun-mtu-max`.
    pub mtu: u16,
    /// TCP transport.
    pub tcp: bool,
    /// `setenv UV_*` and the like.
    pub extra: Vec<(String, String)>,
    /// Platform name (`linux`, `mac`, `win`, ...).
    pub platform: &'static str,
    /// Offer TLS-EKM key derivation (off: the server falls back to the legacy PRF).
    pub offer_ekm: bool,
    /// `allow-compression asym|yes`: we can decompress LZO and LZ4, so a server may compress
    /// what it sends (it looks at IV_LZO/IV_LZ4/IV_LZ4v2; with only the stubs it does not).
    pub decompress: bool,
    /// `compat-mode`: announce only what that OpenVPN version announced.
    pub compat: Option<CompatVersion>,
}

impl PeerInfo {
    /// The `IV_PROTO` value we announce.
    ///
    /// With `compat-mode` below 2.6.0 the 2.6 bits (`dns`, `cc-exit`) are left out; below 2.5.0
    /// also TLS-EKM and request-push (the server then derives the keys with the TLS 1.0 PRF).
    pub fn iv_proto(&self) -> u32 {
        let below = |major, minor| self.compat.is_some_and(|v| v.below(major, minor));
        let mut bits = iv_proto::DATA_V2;
        if !below(2, 5) {
            bits |= iv_proto::REQUEST_PUSH;
            if self.offer_ekm {
                bits |= iv_proto::TLS_KEY_EXPORT;
            }
        }
        if !below(2, 6) {
            bits |= iv_proto::DNS_OPTION
                | iv_proto::CC_EXIT_NOTIFY
                | iv_proto::AUTH_PENDING_KW
                | iv_proto::AUTH_FAIL_TEMP;
        }
        bits
    }

    /// Renders the newline-separated block.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut var = |k: &str, v: &str| {
            s.push_str(k);
            s.push('=');
            s.push_str(v);
            s.push('\n');
        };
        var("IV_VER", "2.6.14");
        var("IV_PLAT", self.platform);
        var("IV_PROTO", &self.iv_proto().to_string());
        // compat-mode: 2.3.x and older cannot negotiate (no IV_NCP: a 2.6 server falls back to
        // its data-ciphers-fallback); 2.4.x only knew IV_NCP=2 (AES-GCM), not IV_CIPHERS.
        let below = |major, minor| self.compat.is_some_and(|v| v.below(major, minor));
        if !below(2, 4)
            && self.ciphers.contains(&Cipher::Aes128Gcm)
            && self.ciphers.contains(&Cipher::Aes256Gcm)
        {
            var("IV_NCP", "2");
        }
        if !below(2, 5) {
            let ciphers: Vec<&str> = self.ciphers.iter().map(|c| c.name()).collect();
            var("IV_CIPHERS", &ciphers.join(":"));
        }
        var("IV_MTU", &self.mtu.to_string());
        var("IV_TCPNL", "1");
        if self.decompress {
            var("IV_LZO", "1");
            var("IV_LZ4", "1");
            var("IV_LZ4v2", "1");
        }
        if !below(2, 5) {
            // Pending authentication we handle: a URL to show, a question to ask.
            var("IV_SSO", "webauth,openurl,crtext");
        }
        var("IV_LZO_STUB", "1");
        var("IV_COMP_STUB", "1");
        var("IV_COMP_STUBv2", "1");
        var(
            "IV_GUI_VER",
            concat!("ferrovpn_", env!("CARGO_PKG_VERSION")),
        );
        for (k, v) in &self.extra {
            var(k, v);
        }
        s
    }
}

/// The OCC options string (only used by servers for mismatch warnings and, for very old
/// servers, as the source of the client's cipher).
pub fn occ_options_string(tcp: bool, ipv6: bool, tun_mtu: u16, tls_auth: Option<&str>) -> String {
    let proto = match (tcp, ipv6) {
        (false, false) => "UDPv4",
        (false, true) => "UDPv6",
        (true, false) => "TCPv4_CLIENT",
        (true, true) => "TCPv6_CLIENT",
    };
    let mut s = format!("V4,dev-type tun,link-mtu 1541,tun-mtu {tun_mtu},proto {proto}");
    match tls_auth {
        Some(digest) => s.push_str(&format!(",keydir 1,auth {digest},keysize 128,tls-auth")),
        None => s.push_str(",auth SHA1,keysize 128"),
    }
    s.push_str(",key-method 2,tls-client");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_info_announces_what_is_handled() {
        let pi = PeerInfo {
            ciphers: Cipher::default_list(),
            mtu: 1600,
            tcp: false,
            extra: vec![("UV_X".into(), "1".into())],
            platform: "linux",
            offer_ekm: true,
            decompress: false,
            compat: None,
        };
        let s = pi.render();
        assert!(s.contains("IV_PROTO=478\n"), "{s}");
        assert!(s.contains("IV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\n"));
        assert!(s.contains("IV_NCP=2\n"));
        assert!(s.contains("UV_X=1\n"));
        assert!(!s.contains("IV_LZ4"));
        let legacy = PeerInfo {
            offer_ekm: false,
            ..pi
        };
        assert!(legacy.render().contains("IV_PROTO=470\n"));
        let v23 = PeerInfo {
            compat: Some(CompatVersion(2, 3, 0)),
            offer_ekm: true,
            ..legacy.clone()
        };
        let s = v23.render();
        assert!(s.contains("IV_PROTO=2\n"), "{s}");
        assert!(!s.contains("IV_NCP") && !s.contains("IV_CIPHERS"), "{s}");
        let v24 = PeerInfo {
            compat: Some(CompatVersion(2, 4, 9)),
            ..v23.clone()
        };
        let s = v24.render();
        assert!(s.contains("IV_NCP=2\n") && !s.contains("IV_CIPHERS"), "{s}");
        assert!(s.contains("IV_PROTO=2\n"), "{s}");
        let v25 = PeerInfo {
            compat: Some(CompatVersion(2, 5, 0)),
            ..v23
        };
        let s = v25.render();
        assert!(
            s.contains("IV_CIPHERS=") && s.contains("IV_PROTO=14\n"),
            "{s}"
        );
        let lz = PeerInfo {
            decompress: true,
            ..legacy.clone()
        }
        .render();
        assert!(
            lz.contains("IV_LZO=1\n") && lz.contains("IV_LZ4v2=1\n"),
            "{lz}"
        );
    }
}
