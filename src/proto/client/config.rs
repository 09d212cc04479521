//! Everything a client session needs, resolved from the profile by the shell (credentials
//! already read, TLS configuration built).

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::config::{Compression, Profile, TlsWrap};
use crate::proto::handshake::peer_info::{PeerInfo, occ_options_string};
use crate::proto::handshake::push::PullPolicy;
use crate::proto::keys::{Cipher, Digest};
use crate::proto::tls::{ClientTlsOptions, TlsConfigError, client_config};
use crate::proto::wire::{ControlWrap, Role, WrapError};

/// The injected randomness source (fills the buffer).
pub type Rng = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

/// `auth-user-pass` credentials (wiped on drop).
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: Zeroizing<String>,
    /// Password.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &*self.username)
            .finish_non_exhaustive()
    }
}

/// Client session configuration.
#[derive(Clone)]
pub struct ClientConfig {
    /// rustls configuration (verifier included).
    pub tls: Arc<rustls::ClientConfig>,
    /// Control-channel wrapping from the profile.
    pub wrap: Option<TlsWrap>,
    /// `auth` digest.
    pub auth: Digest,
    /// `data-ciphers`.
    pub ciphers: Vec<Cipher>,
    /// `data-ciphers-fallback`.
    pub fallback_cipher: Option<Cipher>,
    /// Advice for a profile whose `cipher` ferrovpn cannot run, shown when the server does not
    /// negotiate.
    pub unusable_cipher: Option<String>,
    /// Profile compression framing (a push overrides it).
    pub compression: Compression,
    /// `allow-compression yes`: compress outgoing packets as the framing says.
    pub compress_outgoing: bool,
    /// `pull-filter`, `route-nopull`, `allow-compression`.
    pub pull: PullPolicy,
    /// Rendered peer-info.
    pub peer_info: String,
    /// OCC options string.
    pub occ_options: String,
    /// Credentials, if the profile has `auth-user-pass`.
    pub credentials: Option<Credentials>,
    /// A token from an earlier session (sent instead of the password).
    pub auth_token: Option<String>,
    /// TCP transport (no OCC exit notification, different OCC string).
    pub tcp: bool,
    /// `hand-window`.
    pub hand_window: Duration,
    /// `server-poll-timeout`.
    pub server_poll_timeout: Duration,
    /// `tls-timeout`.
    pub tls_timeout: Duration,
    /// `reneg-sec` (None = off).
    pub reneg_sec: Option<Duration>,
    /// `tran-window`.
    pub tran_window: Duration,
    /// Profile `ping`.
    pub ping: Option<Duration>,
    /// Profile `ping-restart`.
    pub ping_restart: Option<Duration>,
    /// Profile `ping-exit`.
    pub ping_exit: Option<Duration>,
    /// `explicit-exit-notify`.
    pub explicit_exit_notify: u32,
    /// Data-channel replay window.
    pub replay_window: u32,
    /// `tun-mtu`.
    pub tun_mtu: u16,
    /// `mssfix` (None: off): the largest encapsulated UDP/TCP packet, IP header included.
    pub mssfix: Option<u16>,
    /// `dev tap`: the data channel carries Ethernet frames.
    pub layer2: bool,
    /// The transport runs over IPv6 (for the MSS computation).
    pub ipv6_transport: bool,
    /// Wall-clock seconds at the session's start (for replay-id time fields).
    pub unix_time_at_start: u32,
    /// Randomness.
    pub rng: Rng,
}

impl ClientConfig {
    /// Resolves a profile. `credentials` were read by the shell (file, inline or prompt).
    pub fn from_profile(
        profile: &Profile,
        credentials: Option<Credentials>,
        tls_opts: ClientTlsOptions,
        ipv6_transport: bool,
        tcp: bool,
        unix_time_at_start: u32,
        rng: Rng,
    ) -> Result<Self, TlsConfigError> {
        let tls = client_config(&profile.tls, tls_opts)?;
        let tls_auth_digest = match &profile.tls_wrap {
            Some(TlsWrap::Auth { .. }) => Some(profile.auth.name()),
            _ => None,
        };
        let peer_info = PeerInfo {
            ciphers: profile.data_ciphers.clone(),
            mtu: profile.tun_mtu_max,
            tcp,
            extra: profile.peer_info_extra.clone(),
            platform: std::env::consts::OS,
            offer_ekm: !tls_opts.legacy_key_derivation,
            decompress: profile.allow_compression != crate::config::AllowCompression::No,
            compat: profile.compat_mode,
        }
        .render();
        Ok(Self {
            tls,
            wrap: profile.tls_wrap.clone(),
            auth: profile.auth,
            ciphers: profile.data_ciphers.clone(),
            fallback_cipher: profile.data_ciphers_fallback,
            unusable_cipher: profile.unusable_cipher.clone(),
            compression: profile.compression,
            compress_outgoing: profile.allow_compression == crate::config::AllowCompression::Yes,
            pull: PullPolicy {
                filters: profile.pull_filters.clone(),
                route_nopull: profile.route_nopull,
                allow_compression: profile.allow_compression != crate::config::AllowCompression::No,
            },
            peer_info,
            occ_options: dev_type(
                occ_options_string(tcp, ipv6_transport, profile.tun_mtu, tls_auth_digest),
                profile.layer2,
            ),
            credentials,
            auth_token: None,
            tcp,
            hand_window: profile.hand_window,
            server_poll_timeout: profile.server_poll_timeout,
            tls_timeout: profile.tls_timeout,
            reneg_sec: Some(profile.reneg_sec).filter(|d| !d.is_zero()),
            tran_window: profile.tran_window,
            ping: profile.ping,
            ping_restart: profile.ping_restart,
            ping_exit: profile.ping_exit,
            explicit_exit_notify: profile.explicit_exit_notify,
            replay_window: crate::proto::replay::DEFAULT_WINDOW.max(512),
            tun_mtu: profile.tun_mtu,
            mssfix: profile.mssfix,
            layer2: profile.layer2,
            ipv6_transport,
            unix_time_at_start,
            rng,
        })
    }

    pub(crate) fn control_wrap(&self) -> Result<ControlWrap, WrapError> {
        Ok(match &self.wrap {
            None => ControlWrap::none(),
            Some(TlsWrap::Auth { key, direction }) => {
                ControlWrap::tls_auth(key, *direction, self.auth)
            }
            Some(TlsWrap::Crypt { key }) => ControlWrap::tls_crypt(key, Role::Client),
            Some(TlsWrap::CryptV2 { key, wkc }) => {
                ControlWrap::tls_crypt_v2_client(key, wkc.clone())?
            }
        })
    }
}

/// The OCC options string names the device type; servers compare it with their own.
fn dev_type(occ: String, layer2: bool) -> String {
    if layer2 {
        occ.replacen("dev-type tun", "dev-type tap", 1)
    } else {
        occ
    }
}
