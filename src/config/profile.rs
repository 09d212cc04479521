//! The typed client profile: what a `.ovpn` file says, after parsing. Every field has OpenVPN's
//! default when the profile is silent.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::proto::keys::{Cipher, Digest, Key2, KeyDirection};

pub use super::tls_options::{CertProfile, CompatVersion, HashAlg, TlsGroup, TlsSuite};

/// A parsed client profile.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The file the profile came from (for messages), or `<inline>`.
    pub source: PathBuf,
    /// `remote` lines (and `<connection>` blocks), in order.
    pub remotes: Vec<Remote>,
    /// `remote-random`.
    pub remote_random: bool,
    /// `remote-random-hostname`: a random label is put in front of each remote host name
    /// (`a3f09c1b2d4e.vpn.example.org`), for servers behind wildcard DNS.
    pub remote_random_hostname: bool,
    /// `dev` name, if one was given (`tun`, `tun0`, `tap`, `tap3`, `vpn0` with `dev-type`).
    pub dev: Option<String>,
    /// `dev tap` / `dev-type tap`: layer 2, Ethernet frames in the data channel.
    pub layer2: bool,
    /// Static-key point-to-point mode (`secret`): no TLS, no server, no pull.
    pub static_key: Option<StaticKeyMode>,
    /// TLS material.
    pub tls: TlsSettings,
    /// Control-channel wrapping (`tls-auth`, `tls-crypt`, `tls-crypt-v2`).
    pub tls_wrap: Option<TlsWrap>,
    /// `auth` (HMAC digest for tls-auth and CBC data channel). Default SHA1.
    pub auth: Digest,
    /// `data-ciphers` (default AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305), with `cipher` appended
    /// when it is set and not already listed (as 2.6 does).
    pub data_ciphers: Vec<Cipher>,
    /// `data-ciphers-fallback` (or a legacy `cipher`), used when the server pushes no cipher.
    pub data_ciphers_fallback: Option<Cipher>,
    /// `auth-user-pass`.
    pub auth_user_pass: Option<AuthUserPass>,
    /// `auth-nocache`.
    pub auth_nocache: bool,
    /// `static-challenge TEXT ECHO [FORMAT]`: a second factor asked with the password.
    pub static_challenge: Option<StaticChallenge>,
    /// `auth-retry`: what an `AUTH_FAILED` does.
    pub auth_retry: AuthRetry,
    /// `status FILE [SECONDS]`: the client's traffic counters, rewritten every SECONDS (60).
    pub status: Option<(PathBuf, Duration)>,
    /// `log FILE` (false) / `log-append FILE` (true): log there instead of stderr.
    pub log: Option<(PathBuf, bool)>,
    /// `inactive N [BYTES]`: exit when the tunnel carried fewer than BYTES (default: no byte) in
    /// N seconds.
    pub inactive: Option<(Duration, u64)>,
    /// `session-timeout N`: exit N seconds after the tunnel came up.
    pub session_timeout: Option<Duration>,
    /// `script-security N` (default 1: no user scripts).
    pub script_security: u8,
    /// `up CMD`: run when the device is up, before routes.
    pub up: Option<String>,
    /// `route-up CMD`: run after the routes are in place.
    pub route_up: Option<String>,
    /// `down CMD`: run when the device goes away.
    pub down: Option<String>,
    /// Compression framing requested by the profile (`comp-lzo`, `compress`).
    pub compression: Compression,
    /// `allow-compression` (default `no`: stubs only).
    pub allow_compression: AllowCompression,
    /// `ping` seconds (also from `keepalive`), if set in the profile.
    pub ping: Option<Duration>,
    /// `ping-restart` seconds (also from `keepalive`), if set in the profile.
    pub ping_restart: Option<Duration>,
    /// `ping-exit`, if set.
    pub ping_exit: Option<Duration>,
    /// `reneg-sec` (default 3600 s; 0 disables).
    pub reneg_sec: Duration,
    /// `reneg-bytes` (None = disabled).
    pub reneg_bytes: Option<u64>,
    /// `reneg-pkts` (None = disabled).
    pub reneg_pkts: Option<u64>,
    /// `hand-window` (default 60 s).
    pub hand_window: Duration,
    /// `tls-timeout` (default 2 s): initial control-channel retransmit timeout.
    pub tls_timeout: Duration,
    /// `tran-window` (default 3600 s): how long the lame-duck key is kept.
    pub tran_window: Duration,
    /// `server-poll-timeout` / `connect-timeout` (default 120 s).
    pub server_poll_timeout: Duration,
    /// `connect-retry N [MAX]` (default 1 s, max 300 s for the backoff).
    pub connect_retry: Duration,
    /// Upper bound of the reconnect backoff.
    pub connect_retry_backoff_max: Duration,
    /// `connect-retry-max N` (None = retry forever).
    pub connect_retry_max: Option<u32>,
    /// `explicit-exit-notify [n]` (0 = off; default 0; bare directive = 1).
    pub explicit_exit_notify: u32,
    /// `tun-mtu` (default 1500).
    pub tun_mtu: u16,
    /// `tun-mtu-max` (default 1600), announced as IV_MTU.
    pub tun_mtu_max: u16,
    /// `mssfix` (default 1492), None when `mssfix 0`.
    pub mssfix: Option<u16>,
    /// `route-nopull`.
    pub route_nopull: bool,
    /// `pull-filter accept|ignore|reject "prefix"`, in order.
    pub pull_filters: Vec<PullFilter>,
    /// `route` lines in the profile itself.
    pub routes: Vec<RouteSpec>,
    /// `route-ipv6` lines in the profile itself.
    pub routes_ipv6: Vec<Route6Spec>,
    /// `redirect-gateway` in the profile itself.
    pub redirect_gateway: Option<RedirectGateway>,
    /// `dhcp-option` lines in the profile itself.
    pub dhcp_options: Vec<DhcpOption>,
    /// `route-metric` (default 0 = unset).
    pub route_metric: Option<u32>,
    /// `block-ipv6`.
    pub block_ipv6: bool,
    /// `verb` (default 1).
    pub verb: u8,
    /// `setenv UV_*` / `push-peer-info` user variables to add to peer-info.
    pub peer_info_extra: Vec<(String, String)>,
    /// `pull` / `client` given (a profile without it is not a client profile).
    pub pull: bool,
    /// `management` and its companions.
    pub management: crate::config::ClientManagement,
    /// Warnings for ignored or unsupported directives.
    pub warnings: Vec<Warning>,
    /// `compat-mode`: the OpenVPN version whose defaults and peer-info to mimic.
    pub compat_mode: Option<CompatVersion>,
    /// A `cipher` line naming a cipher ferrovpn cannot run: what to tell the user when the
    /// server does not negotiate (`file:line: advice`).
    pub unusable_cipher: Option<String>,
}

/// Static-key point-to-point mode: `secret KEY [DIRECTION]`, `ifconfig LOCAL REMOTE`.
#[derive(Clone, Debug)]
pub struct StaticKeyMode {
    /// The 2048-bit key (cipher and HMAC keys for both directions).
    pub key: Key2,
    /// Which halves send and receive (`secret FILE 0|1` or `key-direction`).
    pub direction: KeyDirection,
    /// The CBC cipher (`cipher`), with the profile's `auth` digest.
    pub cipher: Cipher,
    /// `ifconfig LOCAL REMOTE` for the device.
    pub ifconfig: Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
    /// The UDP port to listen on (`port`/`lport`), None with `nobind`.
    pub local_port: Option<u16>,
    /// `float`: accept the peer from a new address once its packets authenticate.
    pub float: bool,
}

/// A `remote host [port] [proto]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// Host name or address literal.
    pub host: String,
    /// Port (default from `port`/`rport`, else 1194).
    pub port: u16,
    /// Transport (default from `proto`, else UDP).
    pub proto: Proto,
    /// `http-proxy` / `socks-proxy` this remote is reached through.
    pub proxy: Option<super::UpstreamProxy>,
}

/// `proto` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Proto {
    /// `udp` (any family).
    #[default]
    Udp,
    /// `udp4`.
    Udp4,
    /// `udp6`.
    Udp6,
    /// `tcp` / `tcp-client` (any family).
    Tcp,
    /// `tcp4` / `tcp4-client`.
    Tcp4,
    /// `tcp6` / `tcp6-client`.
    Tcp6,
}

impl Proto {
    /// Whether this is a TCP transport.
    pub fn is_tcp(self) -> bool {
        matches!(self, Self::Tcp | Self::Tcp4 | Self::Tcp6)
    }
}

/// TLS material and peer checks.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// `ca` PEM bytes (file contents or inline block).
    pub ca: Option<Vec<u8>>,
    /// `cert` PEM bytes.
    pub cert: Option<Vec<u8>>,
    /// `key` PEM bytes (zeroized by the consumer after use).
    pub key: Option<Vec<u8>>,
    /// `extra-certs` PEM bytes.
    pub extra_certs: Option<Vec<u8>>,
    /// `pkcs12` DER bytes (file, or the inline block's base64 decoded): certificate, key and
    /// CA, unlocked before connecting (see `runtime::credentials::unlock_pkcs12`).
    pub pkcs12: Option<Vec<u8>>,
    /// `askpass [FILE]`: the password of the `pkcs12` file (`None` inside: ask on the terminal).
    pub askpass: Option<Option<String>>,
    /// `remote-cert-tls server|client`.
    pub remote_cert_tls: Option<CertRole>,
    /// `verify-x509-name name [type]`.
    pub verify_x509_name: Option<VerifyX509Name>,
    /// `peer-fingerprint` SHA-256 fingerprints (directive or inline block).
    pub peer_fingerprints: Vec<[u8; 32]>,
    /// `crl-verify` PEM or DER bytes.
    pub crl: Option<Vec<u8>>,
    /// `tls-version-min` ("1.2" or "1.3").
    pub tls_version_min: Option<String>,
    /// `tls-version-max`.
    pub tls_version_max: Option<String>,
    /// `tls-cipher`: TLS 1.2 suites in order (None: the defaults).
    pub tls12_suites: Option<Vec<TlsSuite>>,
    /// `tls-ciphersuites`: TLS 1.3 suites in order (None: the defaults).
    pub tls13_suites: Option<Vec<TlsSuite>>,
    /// `tls-groups` / `ecdh-curve` (None: the defaults).
    pub groups: Option<Vec<TlsGroup>>,
    /// `tls-cert-profile` (default `legacy`).
    pub cert_profile: CertProfile,
    /// `remote-cert-eku`: the DER content bytes of the required extended key usage OID.
    pub remote_cert_eku: Option<Vec<u8>>,
    /// `remote-cert-ku`: accepted key-usage bit sets (OpenSSL order); empty list = present.
    pub remote_cert_ku: Option<Vec<u16>>,
    /// `verify-hash`: fingerprints, one of which the leaf's issuer must have.
    pub verify_hash: Option<(HashAlg, Vec<Vec<u8>>)>,
}

/// `remote-cert-tls` role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertRole {
    /// `server`.
    Server,
    /// `client`.
    Client,
}

/// `verify-x509-name NAME [TYPE]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyX509Name {
    /// The name or prefix or full subject.
    pub name: String,
    /// How to compare.
    pub kind: X509NameKind,
}

/// The TYPE argument of `verify-x509-name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X509NameKind {
    /// `subject` (default): the full subject DN in OpenVPN's `C=.., O=.., CN=..` form.
    Subject,
    /// `name`: the CN equals.
    Name,
    /// `name-prefix`: the CN starts with.
    NamePrefix,
}

/// Control-channel wrapping.
#[derive(Clone, Debug)]
pub enum TlsWrap {
    /// `tls-auth FILE [dir]` / `<tls-auth>` + `key-direction`.
    Auth {
        /// The key2.
        key: Key2,
        /// Direction.
        direction: KeyDirection,
    },
    /// `tls-crypt FILE` / `<tls-crypt>`.
    Crypt {
        /// The key2.
        key: Key2,
    },
    /// `tls-crypt-v2 FILE` / `<tls-crypt-v2>` (client key).
    CryptV2 {
        /// Kc.
        key: Key2,
        /// The wrapped client key, sent in clear after the first packet.
        wkc: Vec<u8>,
    },
}

/// `auth-user-pass [FILE]` or inline block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthUserPass {
    /// Bare directive: prompt on the terminal.
    Prompt,
    /// Read from a file (user on line 1, password on line 2); if the file has only a
    /// username, the password is prompted.
    File {
        /// Username.
        username: String,
        /// Password (None: prompt for it).
        password: Option<String>,
    },
}

/// Compression asked for by `comp-lzo`/`compress` (in the profile or pushed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// No framing.
    #[default]
    None,
    /// `comp-lzo no` (1-byte 0xFA prefix framing, never compresses).
    LzoFraming,
    /// `compress` / `compress stub` (swap framing 0xFB).
    Stub,
    /// `compress stub-v2` (V2 framing).
    StubV2,
    /// `comp-lzo [yes|adaptive]`, `compress lzo`: LZO framing, LZO compression.
    Lzo,
    /// `compress lz4`: swap framing, LZ4 compression.
    Lz4,
    /// `compress lz4-v2`: V2 framing, LZ4 compression.
    Lz4V2,
}

impl Compression {
    /// Whether this asks for real compression (not only a stub framing).
    pub fn compresses(self) -> bool {
        matches!(self, Self::Lzo | Self::Lz4 | Self::Lz4V2)
    }
}

/// `allow-compression`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AllowCompression {
    /// `no` (default): refuse compressed packets, stubs only (but see
    /// `config::compression`: a profile asking for compression itself gets `asym`).
    #[default]
    No,
    /// `asym`: decompress but never compress.
    Asym,
    /// `yes`: decompress, and compress what we send as the framing says.
    Yes,
}

/// One `pull-filter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullFilter {
    /// What to do on a match.
    pub action: PullFilterAction,
    /// Prefix to match against the pushed option text.
    pub prefix: String,
}

/// `pull-filter` action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullFilterAction {
    /// `accept`.
    Accept,
    /// `ignore`.
    Ignore,
    /// `reject` (the whole push is refused).
    Reject,
}

/// `route NETWORK [MASK] [GATEWAY] [METRIC]` (as written; gateway keywords kept as text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Network (address or host name).
    pub network: String,
    /// Netmask (default 255.255.255.255).
    pub netmask: Option<String>,
    /// Gateway or keyword (`vpn_gateway`, `net_gateway`, `remote_host`).
    pub gateway: Option<String>,
    /// Metric.
    pub metric: Option<u32>,
}

/// `route-ipv6 NET/BITS [GATEWAY] [METRIC]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route6Spec {
    /// `2001:db8::/32`.
    pub network: String,
    /// Gateway.
    pub gateway: Option<String>,
    /// Metric.
    pub metric: Option<u32>,
}

/// `redirect-gateway` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RedirectGateway {
    /// `def1`: use 0/1 + 128/1 instead of replacing the default route.
    pub def1: bool,
    /// `local`: no host route to the server.
    pub local: bool,
    /// `ipv6`: redirect IPv6 too.
    pub ipv6: bool,
    /// `!ipv4`: do not redirect IPv4.
    pub no_ipv4: bool,
    /// `block-local`.
    pub block_local: bool,
    /// `bypass-dhcp`.
    pub bypass_dhcp: bool,
    /// `bypass-dns`.
    pub bypass_dns: bool,
}

impl RedirectGateway {
    /// Sets one flag by its OpenVPN name; returns `false` for a flag this type does not know.
    pub fn set_flag(&mut self, flag: &str) -> bool {
        match flag {
            "def1" => self.def1 = true,
            "local" => self.local = true,
            "ipv6" => self.ipv6 = true,
            "!ipv4" => self.no_ipv4 = true,
            "block-local" => self.block_local = true,
            "bypass-dhcp" => self.bypass_dhcp = true,
            "bypass-dns" => self.bypass_dns = true,
            _ => return false,
        }
        true
    }
}

/// `dhcp-option TYPE VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DhcpOption {
    /// `DNS a.b.c.d` or `DNS6 x::y` (2.6 accepts IPv6 in `DNS` too).
    Dns(IpAddr),
    /// `DOMAIN name` (also ADAPTER_DOMAIN_SUFFIX).
    Domain(String),
    /// `DOMAIN-SEARCH name`.
    DomainSearch(String),
    /// Anything else, kept as text.
    Other(String, String),
}

/// A warning about the profile, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// File the directive is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The directive name.
    pub directive: String,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: '{}': {}",
            self.file.display(),
            self.line,
            self.directive,
            self.message
        )
    }
}

/// `static-challenge TEXT ECHO [FORMAT]` (OpenVPN's SCRV1 protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticChallenge {
    /// The prompt shown to the user.
    pub text: String,
    /// Whether the response is echoed while typed.
    pub echo: bool,
    /// `concat`: the response is appended to the password instead of the SCRV1 encoding.
    pub concat: bool,
}

impl StaticChallenge {
    /// The password sent to the server: `SCRV1:base64(password):base64(response)`, or
    /// password and response concatenated with `concat`.
    pub fn encode(&self, password: &str, response: &str) -> String {
        use base64::Engine as _;
        if self.concat {
            return format!("{password}{response}");
        }
        let b = base64::engine::general_purpose::STANDARD;
        format!("SCRV1:{}:{}", b.encode(password), b.encode(response))
    }
}

/// `auth-retry`: what the client does after `AUTH_FAILED`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthRetry {
    /// `none` (the default): stop.
    #[default]
    None,
    /// `nointeract`: reconnect with the same credentials.
    NoInteract,
    /// `interact`: ask again, then reconnect.
    Interact,
}
