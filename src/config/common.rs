//! Directives that the client parser (`parser.rs`) and the server parser (`server_parser.rs`)
//! handle the same way: TLS material, control-channel wrapping, data-channel crypto, timers,
//! MTU and logging. [`Common`] is the parse state both keep for them; [`Fields`] is the part of
//! a [`Profile`] or [`ServerProfile`] they set; [`Side`] says which parser asks, for the few
//! messages and limits that differ.

use std::time::Duration;

use super::directive::{Ctx, Dir, FileArg, Res};
use super::profile::{AllowCompression, CertRole, Profile, TlsSettings, Warning};
use super::server_profile::ServerProfile;
use super::tls_options::{self, CompatVersion};
use crate::proto::keys::{Cipher, Digest, KeyDirection};

/// Which parser is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    Client,
    Server,
}

/// Which control-channel wrap a directive configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wrap {
    Auth,
    Crypt,
    CryptV2,
}

impl Wrap {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Auth => "tls-auth",
            Self::Crypt => "tls-crypt",
            Self::CryptV2 => "tls-crypt-v2",
        }
    }
}

/// The fields of a profile that the shared directives set.
pub(super) struct Fields<'p> {
    pub(super) tls: &'p mut TlsSettings,
    pub(super) warnings: &'p mut Vec<Warning>,
    pub(super) auth: &'p mut Digest,
    pub(super) data_ciphers: &'p mut Vec<Cipher>,
    pub(super) data_ciphers_fallback: &'p mut Option<Cipher>,
    pub(super) allow_compression: &'p mut AllowCompression,
    pub(super) ping: &'p mut Option<Duration>,
    pub(super) ping_restart: &'p mut Option<Duration>,
    pub(super) ping_exit: &'p mut Option<Duration>,
    pub(super) reneg_sec: &'p mut Duration,
    pub(super) reneg_bytes: &'p mut Option<u64>,
    pub(super) hand_window: &'p mut Duration,
    pub(super) tls_timeout: &'p mut Duration,
    pub(super) tran_window: &'p mut Duration,
    pub(super) explicit_exit_notify: &'p mut u32,
    pub(super) tun_mtu: &'p mut u16,
    pub(super) mssfix: &'p mut Option<u16>,
    pub(super) verb: &'p mut u8,
}

/// A profile type with the [`Fields`] the shared directives set.
pub(super) trait HasFields {
    fn fields(&mut self) -> Fields<'_>;
}

macro_rules! has_fields {
    ($($t:ty),*) => {$(
        impl HasFields for $t {
            fn fields(&mut self) -> Fields<'_> {
                Fields {
                    tls: &mut self.tls,
                    warnings: &mut self.warnings,
                    auth: &mut self.auth,
                    data_ciphers: &mut self.data_ciphers,
                    data_ciphers_fallback: &mut self.data_ciphers_fallback,
                    allow_compression: &mut self.allow_compression,
                    ping: &mut self.ping,
                    ping_restart: &mut self.ping_restart,
                    ping_exit: &mut self.ping_exit,
                    reneg_sec: &mut self.reneg_sec,
                    reneg_bytes: &mut self.reneg_bytes,
                    hand_window: &mut self.hand_window,
                    tls_timeout: &mut self.tls_timeout,
                    tran_window: &mut self.tran_window,
                    explicit_exit_notify: &mut self.explicit_exit_notify,
                    tun_mtu: &mut self.tun_mtu,
                    mssfix: &mut self.mssfix,
                    verb: &mut self.verb,
                }
            }
        }
    )*};
}

has_fields!(Profile, ServerProfile);

/// What both parsers remember about the shared directives until `finish`.
#[derive(Default)]
pub(super) struct Common {
    pub(super) ca: Option<FileArg>,
    pub(super) cert: Option<FileArg>,
    pub(super) key: Option<FileArg>,
    pub(super) extra_certs: Option<FileArg>,
    pub(super) crl: Option<FileArg>,
    pub(super) wraps: Vec<(Wrap, FileArg)>,
    /// `key-direction` or the direction argument of `tls-auth`.
    pub(super) key_direction: Option<KeyDirection>,
    /// The last supported `cipher`, with its line.
    pub(super) cipher: Option<(usize, Cipher)>,
    pub(super) data_ciphers_set: bool,
    pub(super) fallback_set: bool,
    pub(super) allow_compression_set: bool,
    /// `compat-mode`.
    pub(super) compat: Option<CompatVersion>,
    /// Line of the last `auth` (0: none).
    pub(super) auth_line: usize,
    /// A `cipher` ferrovpn cannot run: (line, advice).
    pub(super) unusable_cipher: Option<(usize, String)>,
    /// `keepalive A B`: (line, A, B).
    pub(super) keepalive: Option<(usize, Duration, Duration)>,
    /// The last `ping`, `ping-restart` or `ping-exit`: (line, directive).
    pub(super) ping_line: Option<(usize, &'static str)>,
}

impl Common {
    /// Handles `d` if it is a directive both parsers treat the same way. Returns whether it was.
    pub(super) fn handle(
        &mut self,
        cx: &Ctx<'_>,
        d: Dir<'_>,
        side: Side,
        f: Fields<'_>,
    ) -> Res<bool> {
        let a = d.args;
        match d.name {
            // --- device and MTU ---------------------------------------------------------------
            "dev-node" => {
                cx.nargs(d, 1, 1)?;
                f.warnings
                    .push(cx.warning(d, "ignored: the device is created by ferrovpn"));
            }
            "sndbuf" | "rcvbuf" | "txqueuelen" => {
                cx.nargs(d, 1, 1)?;
                let _: u64 = cx.number(d, "size", &a[0])?;
            }
            "tun-mtu" => {
                // A client accepts (and ignores) OpenVPN's second argument.
                let max = match side {
                    Side::Client => 2,
                    Side::Server => 1,
                };
                cx.nargs(d, 1, max)?;
                *f.tun_mtu = cx.mtu(d, &a[0])?;
            }
            "mssfix" => {
                cx.nargs(d, 0, 2)?;
                if let Some(flag) = a.get(1).filter(|f| *f != "mtu" && *f != "fixed") {
                    return Err(cx.err(d, format!("unknown flag '{flag}' (mtu or fixed)")));
                }
                *f.mssfix = match a.first() {
                    None => Some(1492),
                    Some(n) => {
                        let n: u16 = cx.number(d, "value", n)?;
                        (n != 0).then_some(n)
                    }
                };
            }
            "link-mtu" | "tun-mtu-extra" | "mtu-disc" | "udp-mtu" | "max-packet-size" => {
                f.warnings.push(cx.warning(d, "ignored"));
            }

            // --- TLS material -----------------------------------------------------------------
            "ca" | "cert" | "key" | "extra-certs" => {
                cx.nargs(d, 1, 1)?;
                let file = cx.file_arg(d)?;
                match d.name {
                    "ca" => self.ca = Some(file),
                    "cert" => self.cert = Some(file),
                    "key" => self.key = Some(file),
                    _ => self.extra_certs = Some(file),
                }
            }
            "crl-verify" => {
                cx.nargs(d, 1, 2)?;
                if a.get(1).is_some_and(|x| x == "dir") {
                    return Err(cx.err(
                        d,
                        "'crl-verify DIR dir' is not supported; give a CRL file (PEM or DER)",
                    ));
                }
                if let Some(x) = a.get(1) {
                    return Err(cx.err(d, format!("unknown flag '{x}' (only 'dir' exists)")));
                }
                self.crl = Some(cx.file_arg(d)?);
            }
            "askpass" => {
                return Err(cx.err(
                    d,
                    "encrypted private keys are not supported yet; decrypt the key with \
                     'openssl pkey'",
                ));
            }
            "remote-cert-tls" => {
                cx.nargs(d, 1, 1)?;
                let role = cx.cert_role(d, &a[0])?;
                if side == Side::Server && role == CertRole::Server {
                    return Err(cx.err(
                        d,
                        "a server checks its clients: use 'remote-cert-tls client'",
                    ));
                }
                f.tls.remote_cert_tls = Some(role);
            }
            "verify-x509-name" => {
                f.tls.verify_x509_name = Some(cx.verify_x509_name(d)?);
            }
            "tls-version-min" => {
                let v = cx.tls_version_min(d, f.warnings)?;
                f.tls.tls_version_min = Some(v);
            }
            "tls-version-max" => {
                f.tls.tls_version_max = Some(cx.tls_version_max(d)?);
            }
            "tls-cipher" => f.tls.tls12_suites = tls_options::tls_cipher(cx, d, f.warnings)?,
            "tls-ciphersuites" => {
                f.tls.tls13_suites = Some(tls_options::tls_ciphersuites(cx, d, f.warnings)?);
            }
            "tls-groups" | "ecdh-curve" => {
                f.tls.groups = Some(tls_options::tls_groups(cx, d, f.warnings)?);
            }
            "tls-cert-profile" => f.tls.cert_profile = tls_options::cert_profile(cx, d)?,
            "compat-mode" => self.compat = Some(tls_options::compat_mode(cx, d)?),
            "key-method" => {
                cx.nargs(d, 1, 1)?;
                if a[0] != "2" {
                    return Err(cx.err(d, "only key-method 2 is supported"));
                }
            }

            // --- control-channel wrapping -----------------------------------------------------
            "tls-auth" => {
                cx.nargs(d, 1, 2)?;
                let file = cx.file_arg(d)?;
                if let Some(dir) = a.get(1) {
                    self.key_direction = Some(cx.key_dir(d, dir)?);
                }
                self.wraps.push((Wrap::Auth, file));
            }
            "tls-crypt" => {
                cx.nargs(d, 1, 1)?;
                let file = cx.file_arg(d)?;
                self.wraps.push((Wrap::Crypt, file));
            }
            "key-direction" => {
                cx.nargs(d, 1, 1)?;
                cx.no_inline(d)?;
                self.key_direction = Some(cx.key_dir(d, &a[0])?);
            }

            // --- data channel -----------------------------------------------------------------
            "auth" => {
                *f.auth = cx.auth_digest(d)?;
                self.auth_line = d.line;
            }
            "cipher" => {
                cx.nargs(d, 1, 1)?;
                if a[0].eq_ignore_ascii_case("none") {
                    return Err(cx.err(d, "'cipher none' disables encryption and is refused"));
                }
                match a[0].parse::<Cipher>() {
                    Ok(c) => self.cipher = Some((d.line, c)),
                    Err(_) => {
                        self.cipher = None;
                        if let Some(advice) = tls_options::legacy_cipher_advice(&a[0]) {
                            self.unusable_cipher = Some((d.line, advice));
                        }
                        let how = match side {
                            Side::Client => "the cipher is negotiated from data-ciphers",
                            Side::Server => "clients negotiate one from data-ciphers",
                        };
                        f.warnings.push(cx.warning(
                            d,
                            format!("cipher '{}' is not supported; ignored ({how})", a[0]),
                        ));
                    }
                }
            }
            "data-ciphers" | "ncp-ciphers" => {
                *f.data_ciphers = cx.data_ciphers(d, f.warnings)?;
                self.data_ciphers_set = true;
            }
            "data-ciphers-fallback" => {
                *f.data_ciphers_fallback = Some(cx.data_ciphers_fallback(d)?);
                self.fallback_set = true;
            }
            "keysize" | "engine" | "providers" => {
                f.warnings.push(cx.warning(d, "obsolete, ignored"))
            }
            "allow-compression" => {
                cx.nargs(d, 1, 1)?;
                *f.allow_compression = match a[0].as_str() {
                    "no" => AllowCompression::No,
                    "asym" => AllowCompression::Asym,
                    "yes" => {
                        if side == Side::Server {
                            f.warnings.push(cx.warning(
                                d,
                                "packets are still never compressed (treated as 'asym')",
                            ));
                        }
                        AllowCompression::Yes
                    }
                    x => return Err(cx.err(d, format!("unknown value '{x}' (no, asym or yes)"))),
                };
                self.allow_compression_set = true;
            }

            // --- timers -----------------------------------------------------------------------
            "keepalive" => {
                cx.nargs(d, 2, 2)?;
                let ping = cx.seconds(d, &a[0])?;
                let restart = cx.seconds(d, &a[1])?;
                if ping.is_zero() || restart.is_zero() {
                    return Err(cx.err(d, "both values must be greater than 0"));
                }
                if restart < ping * 2 {
                    return Err(cx.err(
                        d,
                        format!(
                            "the restart timeout ({}) must be at least twice the ping interval \
                             ({})",
                            a[1], a[0]
                        ),
                    ));
                }
                if let Some((l, name)) = self.ping_line {
                    return Err(cx.err(
                        d,
                        format!("conflicts with '{name}' on line {l}; use only one of them"),
                    ));
                }
                self.keepalive = Some((d.line, ping, restart));
            }
            "ping" | "ping-restart" | "ping-exit" => {
                cx.nargs(d, 1, 1)?;
                if let Some((l, _, _)) = self.keepalive {
                    return Err(cx.err(
                        d,
                        format!("conflicts with 'keepalive' on line {l}; use only one of them"),
                    ));
                }
                let v = cx.seconds(d, &a[0])?;
                let v = (!v.is_zero()).then_some(v);
                let (field, name) = match d.name {
                    "ping" => (f.ping, "ping"),
                    "ping-restart" => (f.ping_restart, "ping-restart"),
                    _ => (f.ping_exit, "ping-exit"),
                };
                *field = v;
                self.ping_line = Some((d.line, name));
            }
            "reneg-sec" => {
                cx.nargs(d, 1, 2)?;
                *f.reneg_sec = cx.seconds(d, &a[0])?;
                if let Some(min) = a.get(1) {
                    let _: u64 = cx.number(d, "value", min)?;
                }
            }
            "reneg-bytes" => {
                cx.nargs(d, 1, 1)?;
                let n: u64 = cx.number(d, "value", &a[0])?;
                *f.reneg_bytes = (n != 0).then_some(n);
            }
            "hand-window" | "tls-timeout" | "tran-window" => {
                cx.nargs(d, 1, 1)?;
                let v = cx.seconds(d, &a[0])?;
                *match d.name {
                    "hand-window" => f.hand_window,
                    "tls-timeout" => f.tls_timeout,
                    _ => f.tran_window,
                } = v;
            }
            "explicit-exit-notify" => {
                cx.nargs(d, 0, 1)?;
                *f.explicit_exit_notify = match a.first() {
                    Some(n) => cx.number(d, "value", n)?,
                    None => 1,
                };
            }

            // --- logging ----------------------------------------------------------------------
            "verb" => {
                cx.nargs(d, 1, 1)?;
                let v: u32 = cx.number(d, "level", &a[0])?;
                *f.verb = v.min(11) as u8;
            }
            "ignore-unknown-option" => cx.nargs(d, 1, usize::MAX)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Applies `cipher` after all directives: it joins `data-ciphers` unless that was given
    /// (then it only warns), and it is the fallback unless `data-ciphers-fallback` was given.
    ///
    /// `compat-mode` below 2.5.0 appends `cipher` to `data-ciphers` even when that was given
    /// (2.6's rule). `auth none` is refused when a CBC cipher may be used (it would leave the
    /// packets unauthenticated); with AEAD ciphers only it is what 2.6 allows.
    pub(super) fn finish_ciphers(&self, cx: &Ctx<'_>, side: Side, f: Fields<'_>) -> Res<()> {
        self.apply_cipher(
            cx,
            side,
            &mut *f.data_ciphers,
            &mut *f.data_ciphers_fallback,
            f.warnings,
        );
        if *f.auth == Digest::None {
            let cbc = f
                .data_ciphers
                .iter()
                .chain(f.data_ciphers_fallback.iter())
                .find(|c| !c.is_aead());
            if let Some(c) = cbc {
                return Err(cx.err(
                    Dir::at(self.auth_line, "auth"),
                    format!(
                        "'auth none' would leave the {c} data channel unauthenticated and is \
                         refused; use 'auth SHA256' (the same on the server), or list only AEAD \
                         ciphers (AES-GCM, CHACHA20-POLY1305) in data-ciphers"
                    ),
                ));
            }
            if self.wraps.iter().any(|(w, _)| *w == Wrap::Auth) {
                return Err(cx.err(
                    Dir::at(self.auth_line, "auth"),
                    "'tls-auth' needs an HMAC digest: 'auth none' is refused with it (use \
                     'auth SHA256', the same as the server)",
                ));
            }
        }
        Ok(())
    }

    fn apply_cipher(
        &self,
        cx: &Ctx<'_>,
        side: Side,
        data_ciphers: &mut Vec<Cipher>,
        fallback: &mut Option<Cipher>,
        warnings: &mut Vec<Warning>,
    ) {
        let Some((line, c)) = self.cipher else {
            return;
        };
        let old_peer = self.compat.is_some_and(|v| v.below(2, 5));
        if !data_ciphers.contains(&c) {
            if self.data_ciphers_set && !old_peer {
                let peers = match side {
                    Side::Client => "servers that do not negotiate ciphers",
                    Side::Server => "clients that cannot negotiate",
                };
                warnings.push(cx.warning(
                    Dir::at(line, "cipher"),
                    format!("'{c}' is not in 'data-ciphers', so it is only used with {peers}"),
                ));
            } else {
                data_ciphers.push(c);
            }
        }
        if !self.fallback_set {
            *fallback = Some(c);
        }
    }

    /// The control-channel wrap to use (the last one given); an error if different kinds were
    /// given.
    pub(super) fn last_wrap(&self, cx: &Ctx<'_>) -> Res<Option<(Wrap, FileArg)>> {
        let Some((kind, f)) = self.wraps.last().cloned() else {
            return Ok(None);
        };
        if let Some((other, of)) = self.wraps.iter().find(|(k, _)| *k != kind) {
            return Err(cx.file_err(
                &f,
                format!(
                    "'{}' (line {}) and '{}' cannot be used together",
                    other.name(),
                    of.line,
                    kind.name()
                ),
            ));
        }
        Ok(Some((kind, f)))
    }
}
