//! The typed server configuration: what a `server.conf` says after parsing, with OpenVPN 2.6's
//! defaults where the file is silent and the `server` / `server-ipv6` / `keepalive` helpers
//! already expanded (as OpenVPN's `helper.c` does) into explicit addresses, pools, routes and
//! pushed options.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use super::profile::{AllowCompression, Compression, TlsSettings, TlsWrap, Warning};
use crate::proto::keys::{Cipher, Digest};

/// A parsed server configuration.
#[derive(Clone, Debug)]
pub struct ServerProfile {
    /// The file the configuration came from (for messages).
    pub source: PathBuf,
    /// Sockets to listen on: one per `local` line, or one from `local`/`port`/`proto`.
    /// Default: one UDP listener on port 1194, both address families.
    pub listeners: Vec<Listener>,
    /// `dev` name (`tun`, `tun0`, or any name with `dev-type tun`). Default `tun`.
    pub dev: String,
    /// IPv4 tunnel addressing (`server` expanded, or `ifconfig` + `ifconfig-pool`).
    pub tunnel_v4: Option<TunnelV4>,
    /// IPv6 tunnel addressing (`server-ipv6` expanded, or `ifconfig-ipv6` + `ifconfig-ipv6-pool`).
    pub tunnel_v6: Option<TunnelV6>,
    /// `ifconfig-pool-persist FILE [SECONDS]`.
    pub ifconfig_pool_persist: Option<PoolPersist>,
    /// `tun-mtu` (default 1500).
    pub tun_mtu: u16,
    /// `mssfix` (default 1492), None when `mssfix 0`.
    pub mssfix: Option<u16>,
    /// `persist-tun`.
    pub persist_tun: bool,
    /// `persist-key`.
    pub persist_key: bool,
    /// `user`: drop privileges to this user after start-up.
    pub user: Option<String>,
    /// `group`.
    pub group: Option<String>,
    /// `chroot DIR`.
    pub chroot: Option<PathBuf>,
    /// `writepid FILE`.
    pub writepid: Option<PathBuf>,
    /// Options pushed to every client, in order: the `push` lines (after `push-reset` /
    /// `push-remove`), then what the helpers add (`tun-ipv6`, `route-gateway`, `route`,
    /// `topology`, `ping`, `ping-restart`), as OpenVPN orders them.
    pub push: Vec<String>,
    /// Routes the server installs towards the tunnel (`route` lines, plus the `server` network
    /// for net30/p2p topologies).
    pub routes: Vec<ServerRoute>,
    /// `route-ipv6` lines.
    pub routes_ipv6: Vec<ServerRoute6>,
    /// Default gateway for `route` lines without one (`route-gateway`, or the `server` helper's
    /// choice for topology subnet).
    pub route_gateway: Option<Ipv4Addr>,
    /// `client-to-client`: forward between clients inside the server.
    pub client_to_client: bool,
    /// `duplicate-cn`: several clients may use one certificate.
    pub duplicate_cn: bool,
    /// `max-clients` (default 1024).
    pub max_clients: u32,
    /// Ping interval the server itself uses (`ping`, or `keepalive`'s first value).
    pub ping: Option<Duration>,
    /// Ping timeout the server itself uses (`ping-restart`, or twice `keepalive`'s second value);
    /// on a server it drops the client.
    pub ping_restart: Option<Duration>,
    /// `ping-exit`.
    pub ping_exit: Option<Duration>,
    /// `inactive SECONDS [BYTES]`.
    pub inactive: Option<Inactive>,
    /// `reneg-sec` (default 3600 s; 0 disables).
    pub reneg_sec: Duration,
    /// `reneg-bytes` (None = disabled).
    pub reneg_bytes: Option<u64>,
    /// `hand-window` (default 60 s).
    pub hand_window: Duration,
    /// `tls-timeout` (default 2 s).
    pub tls_timeout: Duration,
    /// `tran-window` (default 3600 s).
    pub tran_window: Duration,
    /// `connect-freq N SEC`: new connections allowed per period (None = unlimited).
    pub connect_freq: Option<RateLimit>,
    /// `connect-freq-initial N SEC` (default 100 per 10 s): stateless replies to unknown peers.
    pub connect_freq_initial: RateLimit,
    /// `replay-window N [SEC]` (default 64 packets, 15 s).
    pub replay_window: ReplayWindow,
    /// TLS material and client checks (`ca`, `cert`, `key`, `extra-certs`, `crl-verify`,
    /// `verify-x509-name`, `remote-cert-tls`, `tls-version-*`).
    pub tls: TlsSettings,
    /// `crl-verify FILE` path, when the CRL came from a file: the server re-reads it when it
    /// changes (OpenVPN re-reads it on every new connection).
    pub crl_path: Option<PathBuf>,
    /// `tls-auth` / `tls-crypt` (never [`TlsWrap::CryptV2`]: see [`Self::tls_crypt_v2`]).
    pub tls_wrap: Option<TlsWrap>,
    /// `tls-crypt-v2 SERVER-KEY` and its companions.
    pub tls_crypt_v2: Option<TlsCryptV2Server>,
    /// `auth` (default SHA1).
    pub auth: Digest,
    /// `data-ciphers` (default AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305), with a legacy `cipher`
    /// appended when not listed (as 2.6 does).
    pub data_ciphers: Vec<Cipher>,
    /// `data-ciphers-fallback` (or a legacy `cipher`): for clients that cannot negotiate.
    pub data_ciphers_fallback: Option<Cipher>,
    /// `verify-client-cert` (default `require`).
    pub verify_client_cert: VerifyClientCert,
    /// `auth-user-pass-verify CMD via-env|via-file`.
    pub auth_user_pass_verify: Option<AuthUserPassVerify>,
    /// `username-as-common-name`.
    pub username_as_common_name: bool,
    /// `auth-gen-token [lifetime] [renewal] [external-auth]`.
    pub auth_gen_token: Option<AuthGenToken>,
    /// `auth-gen-token-secret FILE`: the HMAC key of the tokens (None: random per start).
    pub auth_gen_token_secret: Option<Key1>,
    /// `script-security` (default 1: no user scripts may be run).
    pub script_security: u8,
    /// `client-connect CMD`.
    pub client_connect: Option<String>,
    /// `client-disconnect CMD`.
    pub client_disconnect: Option<String>,
    /// `learn-address CMD`.
    pub learn_address: Option<String>,
    /// `client-config-dir DIR` (per-client files parsed with [`super::parse_ccd`]).
    pub client_config_dir: Option<PathBuf>,
    /// `ccd-exclusive`: refuse clients without a CCD file.
    pub ccd_exclusive: bool,
    /// Compression framing for clients (`compress stub|stub-v2`, `comp-lzo no`).
    pub compression: Compression,
    /// `compress migrate`: push stub framing only to clients that announce `comp-lzo`.
    pub compress_migrate: bool,
    /// `allow-compression` (default `no`).
    pub allow_compression: AllowCompression,
    /// `explicit-exit-notify [N]`: on shutdown, tell clients to reconnect (RESTART). 0 = off.
    pub explicit_exit_notify: u32,
    /// `status FILE [SECONDS]`.
    pub status: Option<StatusFile>,
    /// `status-version` (default 1).
    pub status_version: u8,
    /// `management ADDR PORT [PWFILE]` / `management PATH unix [PWFILE]`.
    pub management: Option<Management>,
    /// `log` / `log-append` / `syslog` (None: standard error).
    pub log: Option<LogTarget>,
    /// `verb` (default 1).
    pub verb: u8,
    /// `mute N` (None: off).
    pub mute: Option<u32>,
    /// `suppress-timestamps`.
    pub suppress_timestamps: bool,
    /// ferrovpn's `userspace-allow CIDR[:PORTS]` lines, kept as written for the netstack.
    pub userspace_allow: Vec<String>,
    /// Warnings for ignored or unsupported directives.
    pub warnings: Vec<Warning>,
}

/// One listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Address to bind (None: all addresses of `family`).
    pub addr: Option<IpAddr>,
    /// Port.
    pub port: u16,
    /// UDP or TCP.
    pub proto: Transport,
    /// Address family (from `udp4`/`tcp6-server`...; `Any` binds both where possible).
    pub family: Family,
}

/// Transport protocol of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (`tcp-server`; a server's `tcp` means the same).
    Tcp,
}

/// Address family of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 and IPv6 (`udp`, `tcp-server`).
    Any,
    /// IPv4 only (`udp4`, `tcp4-server`).
    V4,
    /// IPv6 only (`udp6`, `tcp6-server`).
    V6,
}

/// `topology`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One /30 per client (OpenVPN 2.6's default; deprecated for servers with pools).
    Net30,
    /// One address per client, point-to-point to the server's address.
    P2p,
    /// One address per client on a shared subnet.
    Subnet,
}

impl Topology {
    /// The name as written in configs and pushed in `topology NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Net30 => "net30",
            Self::P2p => "p2p",
            Self::Subnet => "subnet",
        }
    }
}

/// IPv4 addressing of the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelV4 {
    /// The server's own tunnel address (`ifconfig` first argument; `server` network + 1).
    pub local: Ipv4Addr,
    /// Topology subnet: the interface's prefix length. Net30/p2p: the prefix of the whole VPN
    /// network from `server` (32 when only `ifconfig` gave addresses).
    pub prefix_len: u8,
    /// Net30/p2p: the point-to-point peer address of the server's interface (`ifconfig` second
    /// argument; `server` network + 2). None for subnet.
    pub remote: Option<Ipv4Addr>,
    /// Topology.
    pub topology: Topology,
    /// Dynamic pool, first and last address inclusive (`ifconfig-pool`, or from `server`).
    pub pool: Option<(Ipv4Addr, Ipv4Addr)>,
}

impl TunnelV4 {
    /// The netmask for `prefix_len`.
    pub fn netmask(&self) -> Ipv4Addr {
        prefix_to_mask(self.prefix_len)
    }
}

/// IPv6 addressing of the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelV6 {
    /// The server's own tunnel address.
    pub local: Ipv6Addr,
    /// Prefix length of the tunnel network.
    pub prefix_len: u8,
    /// The peer address of the server's interface (`ifconfig-ipv6` second argument;
    /// `server-ipv6` network + 2).
    pub remote: Option<Ipv6Addr>,
    /// Dynamic pool: base address and prefix length (`ifconfig-ipv6-pool`, or from
    /// `server-ipv6`: network + 0x1000, or + 2 for prefixes of /112 and longer).
    pub pool: Option<(Ipv6Addr, u8)>,
}

/// `ifconfig-pool-persist FILE [SECONDS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPersist {
    /// The file.
    pub path: PathBuf,
    /// How often it is written (default 600 s); 0 = read only at start, never written.
    pub interval: Duration,
}

/// `route NETWORK [MASK] [GATEWAY] [METRIC]` on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRoute {
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length (from the netmask; default 32).
    pub prefix_len: u8,
    /// Gateway address or keyword (`vpn_gateway`, `net_gateway`, `remote_host`); None: the
    /// route gateway.
    pub gateway: Option<String>,
    /// Metric.
    pub metric: Option<u32>,
}

/// `route-ipv6 NETWORK/BITS [GATEWAY] [METRIC]` on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRoute6 {
    /// Network address.
    pub network: Ipv6Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Gateway.
    pub gateway: Option<Ipv6Addr>,
    /// Metric.
    pub metric: Option<u32>,
}

/// `inactive SECONDS [BYTES]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inactive {
    /// Idle time after which the client is dropped.
    pub timeout: Duration,
    /// Traffic below this many bytes within `timeout` counts as idle (0: any traffic counts).
    pub bytes: u64,
}

/// `N` events per `per` (`connect-freq`, `connect-freq-initial`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Events allowed per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

/// `replay-window N [SECONDS]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Packets.
    pub size: u32,
    /// Time window.
    pub time: Duration,
}

/// OpenVPN's `struct key`: a 64-byte cipher key and a 64-byte HMAC key (the tls-crypt-v2 server
/// key and the auth-token key have this form).
#[derive(Clone)]
pub struct Key1(Zeroizing<[u8; 128]>);

impl Key1 {
    /// Wraps 128 key bytes.
    pub fn from_bytes(bytes: &[u8; 128]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// The cipher half (AES-256-CTR uses its first 32 bytes).
    pub fn cipher(&self) -> &[u8] {
        &self.0[..64]
    }

    /// The HMAC half (HMAC-SHA256 uses its first 32 bytes).
    pub fn hmac(&self) -> &[u8] {
        &self.0[64..]
    }

    /// All 128 bytes.
    pub fn as_bytes(&self) -> &[u8; 128] {
        &self.0
    }
}

impl std::fmt::Debug for Key1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key1(..)")
    }
}

/// `tls-crypt-v2 SERVER-KEY` with `tls-crypt-v2-verify` and `tls-crypt-v2-max-age`.
#[derive(Clone, Debug)]
pub struct TlsCryptV2Server {
    /// The server key that unwraps clients' WKc.
    pub key: Key1,
    /// `tls-crypt-v2-verify CMD`.
    pub verify: Option<String>,
    /// `tls-crypt-v2-max-age DAYS`: refuse client keys older than this.
    pub max_age: Option<Duration>,
    /// `tls-crypt-v2 FILE allow-noncookie`: also accept clients that do not do the
    /// HMAC-cookie handshake (default: only cookie clients, as `force-cookie`).
    pub allow_noncookie: bool,
}

/// `verify-client-cert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VerifyClientCert {
    /// `none`: clients send no certificate (needs `auth-user-pass-verify`).
    None,
    /// `optional`: a certificate is checked if sent.
    Optional,
    /// `require` (default).
    #[default]
    Require,
}

/// `auth-user-pass-verify CMD METHOD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthUserPassVerify {
    /// The command line, as written.
    pub command: String,
    /// How the credentials are handed over.
    pub method: CredentialsVia,
}

/// The METHOD of `auth-user-pass-verify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialsVia {
    /// `via-env`: `username` and `password` environment variables (needs script-security 3).
    Env,
    /// `via-file`: a temporary file with the user name and password lines.
    File,
}

/// `auth-gen-token [LIFETIME] [RENEWAL] [external-auth]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthGenToken {
    /// Token lifetime (None: as long as the session; `0` is written for that).
    pub lifetime: Option<Duration>,
    /// How often the token is renewed (default: `reneg-sec`).
    pub renewal: Option<Duration>,
    /// `external-auth`: an expired-session token is checked again by the verify script.
    pub external_auth: bool,
}

/// `status FILE [SECONDS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusFile {
    /// The file.
    pub path: PathBuf,
    /// Write interval (default 60 s).
    pub interval: Duration,
}

/// `management ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Management {
    /// Where it listens.
    pub listen: ManagementListen,
    /// `PWFILE`: password file (or `stdin`).
    pub password_file: Option<PathBuf>,
}

/// Where the management interface listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagementListen {
    /// `management ADDR PORT`.
    Tcp {
        /// Address (host name as written).
        host: String,
        /// Port.
        port: u16,
    },
    /// `management PATH unix`.
    Unix(PathBuf),
}

/// Where log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// `log FILE` (truncate) / `log-append FILE`.
    File {
        /// The file.
        path: PathBuf,
        /// `log-append`.
        append: bool,
    },
    /// `syslog [NAME]` (default name `openvpn`).
    Syslog(String),
}

/// A client-config-dir file, or the file a `client-connect` script writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CcdEntry {
    /// `ifconfig-push LOCAL REMOTE_OR_NETMASK [alias]`.
    pub ifconfig_push: Option<IfconfigPush>,
    /// `ifconfig-ipv6-push ADDR/BITS [REMOTE]`.
    pub ifconfig_ipv6_push: Option<IfconfigIpv6Push>,
    /// `iroute NET [MASK]`: networks behind this client.
    pub iroutes: Vec<(Ipv4Addr, u8)>,
    /// `iroute-ipv6 NET/BITS`.
    pub iroutes_ipv6: Vec<(Ipv6Addr, u8)>,
    /// `push-reset`: the server's push list is not sent to this client (only its own pushes
    /// and what the server adds per client).
    pub push_reset: bool,
    /// `push-remove OPT`: pushed options starting with these words are removed, in order.
    pub push_remove: Vec<String>,
    /// `push "..."` lines, in order.
    pub push: Vec<String>,
    /// `disable`: the client is refused.
    pub disable: bool,
    /// Warnings for ignored or unsupported directives.
    pub warnings: Vec<Warning>,
}

/// `ifconfig-push LOCAL REMOTE_OR_NETMASK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfconfigPush {
    /// The client's address.
    pub local: Ipv4Addr,
    /// Netmask (topology subnet) or the point-to-point peer (net30/p2p): the server knows which.
    pub remote_netmask: Ipv4Addr,
}

/// `ifconfig-ipv6-push ADDR/BITS [REMOTE]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfconfigIpv6Push {
    /// The client's address.
    pub local: Ipv6Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// The peer (default: the server's `ifconfig-ipv6` address).
    pub remote: Option<Ipv6Addr>,
}

/// The netmask of a prefix length (0..=32).
pub fn prefix_to_mask(prefix_len: u8) -> Ipv4Addr {
    match prefix_len {
        0 => Ipv4Addr::UNSPECIFIED,
        n => Ipv4Addr::from(u32::MAX << (32 - u32::from(n.min(32)))),
    }
}

/// The prefix length of a contiguous netmask, or None.
pub fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}
