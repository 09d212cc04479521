//! What the server state machine is configured with, and what the shell answers when a client
//! asks to be let in.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use zeroize::Zeroizing;

use super::link::Link;
use super::tls_crypt_v2::TlsCryptV2ServerKey;
use crate::proto::client::Rng;
use crate::proto::keys::{Cipher, Digest, Key2, KeyDirection};

/// Control-channel protection on the server.
#[derive(Clone)]
pub enum ServerWrap {
    /// None (tls-plain).
    None,
    /// `tls-auth KEY [dir]` (the server usually uses direction 0).
    Auth {
        /// The static key.
        key: Key2,
        /// The server's direction.
        direction: KeyDirection,
    },
    /// `tls-crypt KEY`.
    Crypt {
        /// The static key.
        key: Key2,
    },
    /// `tls-crypt-v2 SERVERKEY`: every client brings its own key, wrapped.
    CryptV2 {
        /// The server key.
        server_key: Arc<TlsCryptV2ServerKey>,
    },
}

/// The server's configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// rustls server configuration (CA, certificate, client checks, CRL).
    pub tls: Arc<rustls::ServerConfig>,
    /// Control-channel wrapping.
    pub wrap: ServerWrap,
    /// `auth` (tls-auth HMAC and CBC data-channel HMAC).
    pub auth: Digest,
    /// `data-ciphers`, in preference order.
    pub ciphers: Vec<Cipher>,
    /// `data-ciphers-fallback`: used with clients that announce no cipher list.
    pub fallback_cipher: Option<Cipher>,
    /// `tls-timeout`.
    pub tls_timeout: Duration,
    /// `hand-window`.
    pub hand_window: Duration,
    /// `reneg-sec` (None: the server never starts a renegotiation).
    pub reneg_sec: Option<Duration>,
    /// The server's own ping interval (`keepalive` A).
    pub ping: Option<Duration>,
    /// The server's own dead-peer timeout (`keepalive` 2×B).
    pub ping_restart: Option<Duration>,
    /// Data-channel replay window.
    pub replay_window: u32,
    /// `client-to-client`: packets between clients are forwarded inside the server.
    pub client_to_client: bool,
    /// `max-clients`.
    pub max_clients: usize,
    /// `connect-freq-initial N SECS`: stateless replies allowed per window.
    pub connect_freq_initial: (u32, Duration),
    /// Wall-clock seconds when the server started (replay-id times).
    pub unix_time_at_start: u32,
    /// `comp-lzo`/`compress`: the framing every client's packets use (the server never
    /// compresses).
    pub compression: crate::config::Compression,
    /// `allow-compression asym|yes`: decompress what clients send compressed.
    pub decompress: bool,
    /// `tun-mtu`: the largest packet a decompression may produce.
    pub tun_mtu: u16,
    /// Randomness.
    pub rng: Rng,
}

impl ServerConfig {
    /// A configuration with OpenVPN 2.6's defaults around the given TLS and wrapping.
    pub fn new(tls: Arc<rustls::ServerConfig>, wrap: ServerWrap, rng: Rng) -> Self {
        Self {
            tls,
            wrap,
            auth: Digest::Sha1,
            ciphers: Cipher::default_list(),
            fallback_cipher: None,
            tls_timeout: Duration::from_secs(2),
            hand_window: Duration::from_secs(60),
            reneg_sec: Some(Duration::from_secs(3600)),
            ping: Some(Duration::from_secs(10)),
            ping_restart: Some(Duration::from_secs(120)),
            replay_window: 64,
            client_to_client: false,
            max_clients: 1024,
            connect_freq_initial: (100, Duration::from_secs(10)),
            unix_time_at_start: 0,
            compression: crate::config::Compression::None,
            decompress: false,
            tun_mtu: 1500,
            rng,
        }
    }
}

/// A client asking to be let in: its key exchange is done and its certificate (if any) verified.
/// Answer with [`super::Server::accept`] or [`super::Server::refuse`].
#[derive(Debug)]
pub struct AuthRequest {
    /// The session.
    pub peer_id: u32,
    /// Where it comes from.
    pub link: Link,
    /// The certificate's common name (None without a client certificate).
    pub common_name: Option<String>,
    /// Certificate serial number (decimal), when there is a certificate.
    pub cert_serial: Option<String>,
    /// `auth-user-pass` user name (empty if none).
    pub username: String,
    /// `auth-user-pass` password (empty if none).
    pub password: Zeroizing<String>,
    /// The client's `IV_*` peer-info lines.
    pub peer_info: String,
    /// The negotiated data cipher.
    pub cipher: Cipher,
    /// tls-crypt-v2 metadata of the client's key.
    pub tls_crypt_v2_metadata: Option<Vec<u8>>,
}

impl AuthRequest {
    /// A peer-info variable (`IV_VER`, `IV_PLAT`, ...).
    pub fn iv(&self, name: &str) -> Option<&str> {
        iv_var(&self.peer_info, name)
    }
}

pub(crate) fn iv_var<'a>(peer_info: &'a str, name: &str) -> Option<&'a str> {
    peer_info
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// What the shell decided for an accepted client.
#[derive(Debug, Clone, Default)]
pub struct PeerSetup {
    /// Options pushed (`ifconfig`, `route`, `dhcp-option`, `ping`, ...), without the negotiated
    /// `peer-id`, `cipher` and `protocol-flags` which the state machine adds.
    pub push: Vec<String>,
    /// The client's IPv4 tunnel address.
    pub v4: Option<Ipv4Addr>,
    /// The client's IPv6 tunnel address.
    pub v6: Option<Ipv6Addr>,
    /// Subnets behind the client (`iroute`, `iroute-ipv6`).
    pub iroutes: Vec<IpNet>,
    /// The name the client is known by from now on (`username-as-common-name`).
    pub common_name: Option<String>,
}
