//! The `.ovpn` parser: directives in, [`Profile`] out. Pure except for reading the files the
//! profile refers to, which goes through a [`FileLoader`].

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::common::{Common, HasFields, Side, Wrap};
use super::compression;
use super::directive::{Ctx, Dir, FileArg, Handled, Res};
use super::lexer::{RawDirective, split_directives};
use super::material;
use super::profile::*;
use super::tls_options;
use super::upstream_proxy;
use crate::proto::keys::{Cipher, Digest, KeyDirection};

mod p2p;

/// Reads the files a profile refers to (`ca`, `tls-crypt`, `auth-user-pass`, ...).
pub trait FileLoader {
    /// Reads `path` as written in the profile (relative paths are the loader's business).
    fn load(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// How to show `path` in messages (e.g. resolved against the profile's directory).
    fn display_path(&self, path: &Path) -> PathBuf {
        path.to_owned()
    }
}

/// A [`FileLoader`] on the file system; relative paths are resolved against `base_dir` (the
/// profile's directory).
#[derive(Clone, Debug)]
pub struct FsLoader {
    /// Directory that relative paths are resolved against.
    pub base_dir: PathBuf,
}

impl FsLoader {
    /// A loader resolving relative paths against `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        Self {
            base_dir: base_dir.into(),
        }
    }

    /// A loader for the profile at `profile_path` (relative paths resolve against its directory).
    pub fn for_profile(profile_path: &Path) -> Self {
        Self::new(
            profile_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        )
    }

    /// `path` made absolute against `base_dir` when it is relative.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }
}

impl FileLoader for FsLoader {
    fn load(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(self.resolve(path))
    }

    fn display_path(&self, path: &Path) -> PathBuf {
        self.resolve(path)
    }
}

/// Why a profile could not be used. Every variant names the file; directive errors also name the
/// line and the directive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The profile file itself could not be read.
    #[error("{}: cannot read the profile: {source}", path.display())]
    Read {
        /// The profile path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A line could not be split into tokens (quotes, backslashes, unclosed blocks).
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        /// The profile.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A directive is wrong, unsupported or unsafe.
    #[error("{}:{line}: '{directive}': {message}", file.display())]
    Directive {
        /// The profile.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The directive name.
        directive: String,
        /// What is wrong.
        message: String,
    },
    /// The profile as a whole lacks something (no `remote`, no `ca`, not a client profile...).
    #[error("{}: {message}", file.display())]
    Incomplete {
        /// The profile.
        file: PathBuf,
        /// What is missing.
        message: String,
    },
}

impl ProfileError {
    /// The 1-based line the error is about, if it is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. } | Self::Directive { line, .. } => Some(*line),
            Self::Read { .. } | Self::Incomplete { .. } => None,
        }
    }

    /// The directive the error is about, if any.
    pub fn directive(&self) -> Option<&str> {
        match self {
            Self::Directive { directive, .. } => Some(directive),
            _ => None,
        }
    }
}

/// Reads and parses the profile at `path`; referenced files are read relative to its directory.
pub fn load_profile(path: &Path) -> Result<Profile, ProfileError> {
    let text = read_config_text(path)?;
    parse_profile(&text, path, &FsLoader::for_profile(path))
}

/// Reads a configuration file as UTF-8 text (a bad byte is a syntax error on its line).
pub(super) fn read_config_text(path: &Path) -> Result<String, ProfileError> {
    let bytes = std::fs::read(path).map_err(|source| ProfileError::Read {
        path: path.to_owned(),
        source,
    })?;
    match String::from_utf8(bytes) {
        Ok(t) => Ok(t),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            Err(ProfileError::Syntax {
                file: path.to_owned(),
                line,
                message: "the profile is not valid UTF-8".to_owned(),
            })
        }
    }
}

/// Parses profile `text`. `source` names the profile in messages (and in [`Profile::source`]);
/// files it refers to are read through `loader`.
pub fn parse_profile(
    text: &str,
    source: &Path,
    loader: &dyn FileLoader,
) -> Result<Profile, ProfileError> {
    let directives = split_directives(text, 1).map_err(|e| ProfileError::Syntax {
        file: source.to_owned(),
        line: e.line,
        message: e.message,
    })?;
    let mut p = Parser::new(source, loader);
    p.prescan(&directives);
    for d in &directives {
        p.directive(d, None)?;
    }
    p.finish()
}

/// Directives that may be given as an inline `<name>` block.
const INLINE_OK: &[&str] = &[
    "ca",
    "cert",
    "key",
    "extra-certs",
    "tls-auth",
    "tls-crypt",
    "tls-crypt-v2",
    "crl-verify",
    "peer-fingerprint",
    "auth-user-pass",
    "connection",
    "pkcs12",
    "secret",
    "dh",
    "http-proxy-user-pass",
    "tls-crypt-v2-verify",
    "verify-hash",
];

/// Default `remote` port.
const DEFAULT_PORT: u16 = 1194;

/// The per-connection settings (OpenVPN's `connection_entry`) that a `Remote` is built from.
#[derive(Clone, Debug)]
struct ConnDefaults {
    proto: Proto,
    port: u16,
    proxy: upstream_proxy::ProxyDefaults,
}

/// A `remote` line before defaults are applied.
#[derive(Clone, Debug)]
struct RemoteLine {
    host: String,
    port: Option<u16>,
    proto: Option<Proto>,
}

/// The `<connection>` block being parsed.
#[derive(Debug)]
struct ConnBlock {
    ce: ConnDefaults,
    remote: Option<RemoteLine>,
}

struct Parser<'a> {
    /// File name, loader and inline blocks, with the argument helpers.
    cx: Ctx<'a>,
    /// `ignore-unknown-option` names.
    ignore_unknown: HashSet<String>,
    profile: Profile,
    ce: ConnDefaults,
    global_remotes: Vec<(usize, RemoteLine)>,
    connections: Vec<Remote>,
    client: bool,
    tls_client: bool,
    /// State of the directives shared with the server parser.
    common: Common,
    auth_user_pass: Option<(usize, Option<FileArg>)>,
    dev: Option<(usize, String)>,
    dev_type: Option<(usize, String)>,
    push_peer_info: bool,
    user_vars: Vec<(String, String)>,
    /// Point-to-point directives (`secret`, `ifconfig`, ...).
    p2p: p2p::P2pDirectives,
    /// The last `comp-lzo`/`compress`: (line, directive).
    compression_line: Option<(usize, &'static str)>,
    http_proxy_user_pass: Option<FileArg>,
    pkcs12: Option<FileArg>,
}

impl<'a> std::ops::Deref for Parser<'a> {
    type Target = Ctx<'a>;

    fn deref(&self) -> &Ctx<'a> {
        &self.cx
    }
}

impl std::ops::DerefMut for Parser<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.cx
    }
}

impl<'a> Parser<'a> {
    fn new(source: &Path, loader: &'a dyn FileLoader) -> Self {
        Self {
            cx: Ctx::new(source, loader),
            ignore_unknown: HashSet::new(),
            profile: default_profile(source),
            ce: ConnDefaults {
                proto: Proto::Udp,
                port: DEFAULT_PORT,
                proxy: Default::default(),
            },
            global_remotes: Vec::new(),
            connections: Vec::new(),
            client: false,
            tls_client: false,
            common: Common::default(),
            auth_user_pass: None,
            dev: None,
            dev_type: None,
            push_peer_info: false,
            user_vars: Vec::new(),
            p2p: p2p::P2pDirectives::default(),
            compression_line: None,
            http_proxy_user_pass: None,
            pkcs12: None,
        }
    }

    /// Collects inline blocks (for `[inline]`) and `ignore-unknown-option` lists.
    fn prescan(&mut self, directives: &[RawDirective]) {
        for d in directives {
            if let Some(body) = &d.inline {
                self.blocks.insert(d.name.clone(), body.clone());
            }
            if d.name == "ignore-unknown-option" {
                self.ignore_unknown.extend(d.args.iter().cloned());
            }
        }
    }

    fn warn(&mut self, d: Dir<'_>, message: impl Into<String>) {
        let w = self.cx.warning(d, message);
        self.profile.warnings.push(w);
    }

    fn proto(&self, d: Dir<'_>, s: &str) -> Res<Proto> {
        Ok(match s {
            "udp" => Proto::Udp,
            "udp4" => Proto::Udp4,
            "udp6" => Proto::Udp6,
            "tcp" | "tcp-client" => Proto::Tcp,
            "tcp4" | "tcp4-client" => Proto::Tcp4,
            "tcp6" | "tcp6-client" => Proto::Tcp6,
            "tcp-server" | "tcp4-server" | "tcp6-server" => {
                return Err(self.err(d, format!("'{s}' is for servers; this is a client")));
            }
            _ => {
                return Err(self.err(
                    d,
                    format!(
                        "unknown protocol '{s}' (expected udp, udp4, udp6, tcp, tcp4, tcp6 or \
                         tcp-client, tcp4-client, tcp6-client)"
                    ),
                ));
            }
        })
    }

    /// Handles one directive. `conn` is the `<connection>` block being read, if any.
    fn directive(&mut self, raw: &RawDirective, conn: Option<&mut ConnBlock>) -> Res<()> {
        let d = Dir {
            line: raw.line,
            name: &raw.name,
            args: &raw.args,
            inline: raw.inline.as_deref(),
        };
        if d.name == "setenv" && d.args.first().is_some_and(|a| a == "opt") {
            // `setenv opt X ...`: X is optional; if it is unknown or wrong, warn and go on.
            let Some(name) = d.args.get(1) else {
                return Err(self.err(d, "'setenv opt' needs a directive after it"));
            };
            let sub = Dir {
                line: d.line,
                name,
                args: &d.args[2..],
                inline: None,
            };
            let before = self.profile.warnings.len();
            match self.handle(sub, conn) {
                Ok(Handled::Yes) => {}
                Ok(Handled::Unknown) => {
                    self.profile.warnings.truncate(before);
                    self.warn(
                        sub,
                        "unknown directive marked optional by 'setenv opt', ignored",
                    );
                }
                Err(e) => {
                    self.profile.warnings.truncate(before);
                    self.warn(sub, format!("ignored (optional via 'setenv opt'): {e}"));
                }
            }
            return Ok(());
        }
        match self.handle(d, conn)? {
            Handled::Yes => Ok(()),
            Handled::Unknown => {
                if d.name.starts_with('<') || d.name.starts_with("</") {
                    return Err(self.err(d, "unexpected tag"));
                }
                if !self.ignore_unknown.contains(d.name) {
                    self.warn(d, "unknown directive, ignored");
                }
                Ok(())
            }
        }
    }

    /// Dispatches one directive. Returns `Unknown` for directives this parser does not know.
    fn handle(&mut self, d: Dir<'_>, conn: Option<&mut ConnBlock>) -> Res<Handled> {
        if d.inline.is_some() && !INLINE_OK.contains(&d.name) {
            if !self.is_known(d.name) {
                return Ok(Handled::Unknown);
            }
            return Err(self.err(d, "cannot be given as an inline <block>"));
        }
        if let Some(block) = conn {
            return self.handle_in_connection(d, block);
        }
        if d.name == "askpass" {
            // The client's: the password of a `pkcs12` file (a file's first line, or asked).
            self.nargs(d, 0, 1)?;
            let pass = match d.args.first() {
                Some(_) => {
                    let f = self.file_arg(d)?;
                    let b = self.load(&f)?;
                    let text = String::from_utf8_lossy(&b);
                    Some(text.lines().next().unwrap_or("").to_owned())
                }
                None => None,
            };
            self.profile.tls.askpass = Some(pass);
            return Ok(Handled::Yes);
        }
        if self
            .common
            .handle(&self.cx, d, Side::Client, self.profile.fields())?
        {
            return Ok(Handled::Yes);
        }
        let a = d.args;
        match d.name {
            // --- mode -------------------------------------------------------------------------
            "client" => {
                self.nargs(d, 0, 0)?;
                self.client = true;
                self.tls_client = true;
                self.profile.pull = true;
            }
            "pull" => {
                self.nargs(d, 0, 0)?;
                self.profile.pull = true;
            }
            "tls-client" => {
                self.nargs(d, 0, 0)?;
                self.tls_client = true;
            }
            "tls-server" | "server" | "server-bridge" | "server-ipv6" => {
                return Err(self.err(d, "this is a server configuration, not a client profile"));
            }
            "mode" => {
                self.nargs(d, 1, 1)?;
                match a[0].as_str() {
                    "p2p" => {}
                    "server" => {
                        return Err(
                            self.err(d, "this is a server configuration, not a client profile")
                        );
                    }
                    m => return Err(self.err(d, format!("unknown mode '{m}'"))),
                }
            }
            "secret" => self.p2p_secret(d)?,
            "dev" => {
                self.nargs(d, 1, 1)?;
                self.no_inline(d)?;
                self.dev = Some((d.line, a[0].clone()));
            }
            "dev-type" => {
                self.nargs(d, 1, 1)?;
                match a[0].as_str() {
                    "tun" | "tap" => {}
                    t => {
                        return Err(self.err(d, format!("unknown device type '{t}' (tun or tap)")));
                    }
                }
                self.dev_type = Some((d.line, a[0].clone()));
            }
            "topology" => {
                self.nargs(d, 1, 1)?;
            }

            // --- remotes ----------------------------------------------------------------------
            "remote" => {
                let r = self.remote(d)?;
                self.global_remotes.push((d.line, r));
            }
            "port" | "rport" => {
                self.nargs(d, 1, 1)?;
                self.ce.port = self.port(d, &a[0])?;
            }
            "proto" => {
                self.nargs(d, 1, 1)?;
                self.ce.proto = self.proto(d, &a[0])?;
            }
            "connection" => {
                let Some(body) = d.inline else {
                    return Err(
                        self.err(d, "must be an inline <connection> ... </connection> block")
                    );
                };
                self.connection(d, body)?;
            }
            "remote-random" => {
                self.nargs(d, 0, 0)?;
                self.profile.remote_random = true;
            }
            "remote-random-hostname" => {
                self.nargs(d, 0, 0)?;
                self.profile.remote_random_hostname = true;
            }
            "resolv-retry" => self.nargs(d, 1, 1)?,
            "nobind"
            | "float"
            | "persist-key"
            | "persist-tun"
            | "persist-remote-ip"
            | "persist-local-ip"
            | "mute-replay-warnings"
            | "fast-io"
            | "tun-ipv6"
            | "ping-timer-rem"
            | "auth-nocache"
            | "push-peer-info"
            | "route-nopull"
            | "block-ipv6"
            | "remote-random-ip"
            | "ifconfig-nowarn"
            | "suppress-timestamps"
            | "allow-pull-fqdn"
            | "single-session"
            | "tls-exit"
            | "machine-readable-output" => {
                self.nargs(d, 0, 0)?;
                match d.name {
                    "auth-nocache" => self.profile.auth_nocache = true,
                    "push-peer-info" => self.push_peer_info = true,
                    "route-nopull" => self.profile.route_nopull = true,
                    "block-ipv6" => self.profile.block_ipv6 = true,
                    "nobind" => self.p2p.nobind = true,
                    "float" => self.p2p.float = true,
                    _ => {}
                }
            }
            "lport" | "bind" | "local" => {
                self.nargs(d, 0, 2)?;
                self.warn(
                    d,
                    "ignored: the local address and port are chosen by the system",
                );
            }
            "http-proxy" | "socks-proxy" | "http-proxy-option" | "http-proxy-timeout" => {
                let mut pd = std::mem::take(&mut self.ce.proxy);
                let r = match upstream_proxy::custom_header(&self.cx, d, &mut pd) {
                    Ok(false) => upstream_proxy::handle(&self.cx, d, &mut pd),
                    r => r,
                };
                self.ce.proxy = pd;
                r?;
            }
            "http-proxy-user-pass" => {
                self.nargs(d, 1, 1)?;
                self.http_proxy_user_pass = Some(self.file_arg(d)?);
            }
            "http-proxy-retry" | "socks-proxy-retry" => {
                self.warn(d, "ignored (removed in OpenVPN 2.5; connect-retry applies)");
            }

            // --- TLS material -----------------------------------------------------------------
            "pkcs12" => {
                self.nargs(d, 0, 1)?;
                self.pkcs12 = Some(self.file_arg(d)?);
            }
            "pkcs11-providers"
            | "pkcs11-id"
            | "cryptoapicert"
            | "management-external-key"
            | "management-external-cert" => {
                return Err(self.err(
                    d,
                    "external keys (PKCS#11, CryptoAPI, management) are not \
                                        supported; use cert and key files",
                ));
            }
            "ns-cert-type" => {
                self.nargs(d, 1, 1)?;
                self.profile.tls.remote_cert_tls = Some(self.cert_role(d, &a[0])?);
                self.warn(
                    d,
                    format!(
                        "removed in OpenVPN 2.5; checked as 'remote-cert-tls {}' (extended \
                         and plain key usage): replace the line with that",
                        a[0]
                    ),
                );
            }
            "remote-cert-eku" => {
                self.profile.tls.remote_cert_eku = Some(tls_options::remote_cert_eku(&self.cx, d)?);
            }
            "remote-cert-ku" => {
                self.profile.tls.remote_cert_ku = Some(tls_options::remote_cert_ku(&self.cx, d)?);
            }
            "tls-remote" => {
                return Err(self.err(
                    d,
                    "removed in OpenVPN 2.4; use 'verify-x509-name NAME name' instead",
                ));
            }
            "tls-verify" => {
                return Err(self.err(
                    d,
                    "verification scripts are not run; use verify-x509-name or \
                     peer-fingerprint instead",
                ));
            }
            "peer-fingerprint" => {
                self.nargs(d, 1, 1)?;
                let fps = match d.inline {
                    Some(body) => material::fingerprint_lines(body),
                    None => material::fingerprint(&a[0]).map(|f| vec![f]),
                }
                .map_err(|m| self.err(d, m))?;
                self.profile.tls.peer_fingerprints.extend(fps);
            }
            "verify-hash" => {
                self.profile.tls.verify_hash = Some(tls_options::verify_hash(&self.cx, d)?);
            }

            // --- control-channel wrapping -----------------------------------------------------
            "tls-crypt-v2" => {
                self.nargs(d, 1, 2)?;
                if let Some(x) = a.get(1) {
                    match x.as_str() {
                        "force-cookie" | "allow-noncookie" => {
                            self.warn(d, format!("'{x}' is a server flag, ignored"));
                        }
                        _ => return Err(self.err(d, format!("unknown flag '{x}'"))),
                    }
                }
                let f = self.file_arg(d)?;
                self.common.wraps.push((Wrap::CryptV2, f));
            }

            // --- data channel -----------------------------------------------------------------
            "ncp-disable" => {
                self.warn(d, "obsolete, ignored");
            }
            "replay-window" => {
                self.nargs(d, 1, 2)?;
                for x in a {
                    let _: u32 = self.number(d, "value", x)?;
                }
            }
            "comp-lzo" => {
                self.nargs(d, 0, 1)?;
                let c = compression::comp_lzo(a.first().map(String::as_str));
                self.profile.compression = c.map_err(|e| self.err(d, e))?;
                self.compression_line = Some((d.line, "comp-lzo"));
            }
            "compress" => {
                self.nargs(d, 0, 1)?;
                match compression::compress(a.first().map(String::as_str)) {
                    Ok(Some(c)) => self.profile.compression = c,
                    Ok(None) => self.warn(
                        d,
                        "'compress migrate' is a server option (the server then pushes a stub \
                         framing to clients that announce compression), ignored",
                    ),
                    Err(e) => return Err(self.err(d, e)),
                }
                self.compression_line = Some((d.line, "compress"));
            }
            "comp-noadapt" => {
                self.nargs(d, 0, 0)?;
            }

            // --- credentials ------------------------------------------------------------------
            "auth-user-pass" => {
                self.nargs(d, 0, 1)?;
                let f = if d.inline.is_some() || !a.is_empty() {
                    Some(self.file_arg(d)?)
                } else {
                    None
                };
                self.auth_user_pass = Some((d.line, f));
            }
            "auth-retry" => {
                self.nargs(d, 1, 1)?;
                self.profile.auth_retry = match a[0].as_str() {
                    "none" => AuthRetry::None,
                    "nointeract" => AuthRetry::NoInteract,
                    "interact" => AuthRetry::Interact,
                    x => {
                        return Err(self.err(
                            d,
                            format!("unknown value '{x}' (none, nointeract or interact)"),
                        ));
                    }
                };
            }
            "auth-token" | "auth-token-user" => self.nargs(d, 1, 1)?,
            "static-challenge" => {
                self.nargs(d, 2, 3)?;
                let echo = match a[1].as_str() {
                    "0" => false,
                    "1" => true,
                    x => {
                        return Err(self.err(d, format!("echo flag '{x}' must be 0 or 1")));
                    }
                };
                let concat = match a.get(2).map(String::as_str) {
                    None | Some("scrv1") => false,
                    Some("concat") => true,
                    Some(x) => {
                        return Err(self.err(d, format!("unknown format '{x}' (scrv1 or concat)")));
                    }
                };
                self.profile.static_challenge = Some(StaticChallenge {
                    text: a[0].clone(),
                    echo,
                    concat,
                });
            }
            "auth-user-pass-optional" => {}

            // --- timers -----------------------------------------------------------------------
            "reneg-pkts" => {
                self.nargs(d, 1, 1)?;
                let n: u64 = self.number(d, "value", &a[0])?;
                self.profile.reneg_pkts = (n != 0).then_some(n);
            }
            "server-poll-timeout" | "connect-timeout" => {
                self.nargs(d, 1, 1)?;
                self.profile.server_poll_timeout = self.seconds(d, &a[0])?;
            }
            "connect-retry" => {
                self.nargs(d, 1, 2)?;
                self.profile.connect_retry = self.seconds(d, &a[0])?;
                if let Some(max) = a.get(1) {
                    self.profile.connect_retry_backoff_max = self.seconds(d, max)?;
                }
                if self.profile.connect_retry_backoff_max < self.profile.connect_retry {
                    self.profile.connect_retry_backoff_max = self.profile.connect_retry;
                }
            }
            "connect-retry-max" => {
                self.nargs(d, 1, 1)?;
                let n: u32 = self.number(d, "value", &a[0])?;
                self.profile.connect_retry_max = (n != 0).then_some(n);
            }
            "inactive" => {
                self.nargs(d, 1, 2)?;
                let secs = self.seconds(d, &a[0])?;
                let bytes: u64 = match a.get(1) {
                    Some(b) => self.number(d, "bytes", b)?,
                    None => 0,
                };
                self.profile.inactive = (!secs.is_zero()).then_some((secs, bytes));
            }
            "session-timeout" => {
                self.nargs(d, 1, 1)?;
                let secs = self.seconds(d, &a[0])?;
                self.profile.session_timeout = (!secs.is_zero()).then_some(secs);
            }

            // --- MTU --------------------------------------------------------------------------
            "tun-mtu-max" => {
                self.nargs(d, 1, 1)?;
                self.profile.tun_mtu_max = self.mtu(d, &a[0])?;
            }
            "fragment" => {
                return Err(self.err(
                    d,
                    "'fragment' is not supported yet; the server must not use it either",
                ));
            }

            // --- routes and DNS ---------------------------------------------------------------
            "pull-filter" => {
                self.nargs(d, 2, 2)?;
                let action = match a[0].as_str() {
                    "accept" => PullFilterAction::Accept,
                    "ignore" => PullFilterAction::Ignore,
                    "reject" => PullFilterAction::Reject,
                    x => {
                        return Err(self.err(
                            d,
                            format!("unknown action '{x}' (accept, ignore or reject)"),
                        ));
                    }
                };
                self.profile.pull_filters.push(PullFilter {
                    action,
                    prefix: a[1].clone(),
                });
            }
            "route" => {
                self.nargs(d, 1, 4)?;
                let kw = |i: usize| a.get(i).filter(|s| *s != "default").cloned();
                let netmask = kw(1);
                if let Some(m) = netmask.as_ref().filter(|m| m.parse::<Ipv4Addr>().is_err()) {
                    return Err(self.err(d, format!("netmask '{m}' is not an IPv4 address")));
                }
                let metric = match kw(3) {
                    Some(m) => Some(self.number(d, "metric", &m)?),
                    None => None,
                };
                self.profile.routes.push(RouteSpec {
                    network: a[0].clone(),
                    netmask,
                    gateway: kw(2),
                    metric,
                });
            }
            "route-ipv6" => {
                self.nargs(d, 1, 3)?;
                let metric = match a.get(2) {
                    Some(m) => Some(self.number(d, "metric", m)?),
                    None => None,
                };
                self.profile.routes_ipv6.push(Route6Spec {
                    network: a[0].clone(),
                    gateway: a.get(1).filter(|s| *s != "default").cloned(),
                    metric,
                });
            }
            "redirect-gateway" => {
                let mut rg = RedirectGateway::default();
                for f in a {
                    if rg.set_flag(f) {
                        continue;
                    }
                    if f == "autolocal" {
                        self.warn(d, "'autolocal' is not supported, treated as absent");
                    } else {
                        return Err(self.err(d, format!("unknown flag '{f}'")));
                    }
                }
                self.profile.redirect_gateway = Some(rg);
            }
            "redirect-private" => {
                self.warn(d, "not supported, ignored");
            }
            "dhcp-option" => {
                self.nargs(d, 1, 2)?;
                let val = a.get(1).cloned().unwrap_or_default();
                let opt = match a[0].as_str() {
                    "DNS" | "DNS6" => {
                        let ip: IpAddr = val.parse().map_err(|_| {
                            self.err(d, format!("DNS server '{val}' is not an IP address"))
                        })?;
                        DhcpOption::Dns(ip)
                    }
                    "DOMAIN" | "ADAPTER_DOMAIN_SUFFIX" => DhcpOption::Domain(val),
                    "DOMAIN-SEARCH" => DhcpOption::DomainSearch(val),
                    t => DhcpOption::Other(t.to_owned(), val),
                };
                self.profile.dhcp_options.push(opt);
            }
            "dns" => {
                self.warn(
                    d,
                    "the 'dns' option is not supported yet in profiles, ignored",
                );
            }
            "route-metric" => {
                self.nargs(d, 1, 1)?;
                let m: u32 = self.number(d, "metric", &a[0])?;
                self.profile.route_metric = (m != 0).then_some(m);
            }
            "route-delay" | "route-noexec" | "ifconfig-noexec" | "disable-dco" | "disable-occ" => {
                self.warn(d, "ignored");
            }
            "route-method" | "ip-win32" | "register-dns" | "block-outside-dns" | "dhcp-renew"
            | "dhcp-release" | "dhcp-pre-release" | "windows-driver" | "win-sys" | "tap-sleep"
            | "service" | "show-net-up" | "allow-nonadmin" => {
                self.warn(d, "Windows-only option, ignored on this system");
            }
            "ifconfig" => self.p2p_ifconfig(d)?,
            "ifconfig-ipv6" => {
                self.warn(d, "ignored: a client gets its addresses from the server");
            }

            // --- logging, environment, processes ---------------------------------------------
            "log" | "log-append" => {
                self.nargs(d, 1, 1)?;
                self.profile.log = Some((PathBuf::from(&a[0]), d.name == "log-append"));
            }
            "mute" | "writepid" => {}
            "status" => {
                self.nargs(d, 1, 2)?;
                let every = match a.get(1) {
                    Some(n) => self.seconds(d, n)?,
                    None => Duration::from_secs(60),
                };
                self.profile.status = Some((PathBuf::from(&a[0]), every));
            }
            "status-version" => {}
            "syslog" => {
                self.warn(
                    d,
                    "not supported by the client yet, ignored (logs go to stderr, or to 'log FILE')",
                );
            }
            "setenv" => {
                self.nargs(d, 1, 2)?;
                let val = a.get(1).cloned().unwrap_or_default();
                match a[0].as_str() {
                    "GENERIC_CONFIG" => {
                        return Err(self.err(
                            d,
                            "this is a generic configuration and cannot be used directly",
                        ));
                    }
                    "PUSH_PEER_INFO" => self.push_peer_info = true,
                    "SERVER_POLL_TIMEOUT" => {
                        self.profile.server_poll_timeout = self.seconds(d, &val)?;
                    }
                    n if n.starts_with("UV_") => self.user_vars.push((n.to_owned(), val)),
                    _ => {}
                }
            }
            "setenv-safe" => self.nargs(d, 1, 2)?,
            "script-security" => {
                self.nargs(d, 1, 1)?;
                let n: u8 = self.number(d, "level", &a[0])?;
                if n > 3 {
                    return Err(self.err(d, format!("level {n}: 0 to 3")));
                }
                self.profile.script_security = n;
            }
            "up" | "down" | "route-up" => {
                self.nargs(d, 1, 1)?;
                let cmd = Some(a[0].clone());
                match d.name {
                    "up" => self.profile.up = cmd,
                    "down" => self.profile.down = cmd,
                    _ => self.profile.route_up = cmd,
                }
            }
            "route-pre-down" | "ipchange" | "up-delay" | "up-restart" | "down-pre" | "plugin"
            | "learn-address" => {
                self.warn(
                    d,
                    "not run by ferrovpn (up, route-up and down are), ignored",
                );
            }
            "user" | "group" | "chroot" | "daemon" | "cd" | "nice" => {
                self.warn(d, "ignored by ferrovpn");
            }
            n if n.starts_with("management") && !n.starts_with("management-external") => {
                match self.profile.management.directive(n, a) {
                    Some(Ok(None)) => {}
                    Some(Ok(Some(w))) => self.warn(d, w),
                    Some(Err(e)) => return Err(self.err(d, e)),
                    None => return Ok(Handled::Unknown),
                }
            }
            "push"
            | "dh"
            | "ifconfig-pool"
            | "client-to-client"
            | "duplicate-cn"
            | "client-config-dir"
            | "tls-crypt-v2-verify" => {
                self.warn(d, "server option, ignored");
            }
            _ => return Ok(Handled::Unknown),
        }
        Ok(Handled::Yes)
    }

    fn remote(&self, d: Dir<'_>) -> Res<RemoteLine> {
        self.nargs(d, 1, 3)?;
        self.no_inline(d)?;
        let a = d.args;
        if a[0].is_empty() {
            return Err(self.err(d, "empty host name"));
        }
        Ok(RemoteLine {
            host: a[0].clone(),
            port: a.get(1).map(|p| self.port(d, p)).transpose()?,
            proto: a.get(2).map(|p| self.proto(d, p)).transpose()?,
        })
    }

    /// Parses a `<connection>` block into one [`Remote`].
    fn connection(&mut self, d: Dir<'_>, body: &str) -> Res<()> {
        let inner = split_directives(body, d.line + 1).map_err(|e| ProfileError::Syntax {
            file: self.file.clone(),
            line: e.line,
            message: e.message,
        })?;
        let mut block = ConnBlock {
            ce: self.ce.clone(),
            remote: None,
        };
        for raw in &inner {
            if let Some(b) = &raw.inline {
                self.blocks
                    .entry(raw.name.clone())
                    .or_insert_with(|| b.clone());
            }
            self.directive(raw, Some(&mut block))?;
        }
        let Some(r) = block.remote else {
            return Err(self.err(d, "each <connection> block needs one 'remote'"));
        };
        let proto = r.proto.unwrap_or(block.ce.proto);
        let proxy = upstream_proxy::finish(
            &self.cx,
            &block.ce.proxy,
            self.http_proxy_user_pass.as_ref(),
            proto.is_tcp(),
        )?;
        self.connections.push(Remote {
            host: r.host,
            port: r.port.unwrap_or(block.ce.port),
            proto,
            proxy,
        });
        Ok(())
    }

    /// Directives inside a `<connection>` block.
    fn handle_in_connection(&mut self, d: Dir<'_>, block: &mut ConnBlock) -> Res<Handled> {
        let a = d.args;
        match d.name {
            "remote" => {
                let r = self.remote(d)?;
                if block.remote.is_some() {
                    self.warn(
                        d,
                        "a <connection> block has one 'remote'; the last one is used",
                    );
                }
                block.remote = Some(r);
            }
            "port" | "rport" => {
                self.nargs(d, 1, 1)?;
                block.ce.port = self.port(d, &a[0])?;
            }
            "proto" => {
                self.nargs(d, 1, 1)?;
                block.ce.proto = self.proto(d, &a[0])?;
            }
            "nobind" | "float" => self.nargs(d, 0, 0)?,
            "http-proxy" | "socks-proxy" | "http-proxy-option" | "http-proxy-timeout" => {
                if !upstream_proxy::custom_header(&self.cx, d, &mut block.ce.proxy)? {
                    upstream_proxy::handle(&self.cx, d, &mut block.ce.proxy)?;
                }
            }
            "lport" | "bind" | "local" | "mtu-disc" | "link-mtu" | "tun-mtu-extra" | "udp-mtu"
            | "max-packet-size" | "http-proxy-retry" | "socks-proxy-retry" | "fragment" => {
                return self.handle(d, None);
            }
            "connect-retry"
            | "connect-retry-max"
            | "connect-timeout"
            | "server-poll-timeout"
            | "explicit-exit-notify"
            | "tun-mtu"
            | "tun-mtu-max"
            | "mssfix"
            | "key-direction"
            | "tls-auth"
            | "tls-crypt"
            | "tls-crypt-v2" => {
                let r = self.handle(d, None)?;
                self.warn(d, "inside <connection> this applies to every connection");
                return Ok(r);
            }
            _ => {
                if self.is_known(d.name) {
                    return Err(self.err(d, "not allowed inside a <connection> block"));
                }
                return Ok(Handled::Unknown);
            }
        }
        Ok(Handled::Yes)
    }

    /// Whether `name` is a directive this parser knows (whatever its arguments).
    fn is_known(&self, name: &str) -> bool {
        // Dispatch it without arguments on a scratch parser: every arm checks its argument
        // count before touching arguments, so this only finds out whether an arm exists.
        let mut probe = Parser::new(&self.file, self.loader);
        let d = Dir {
            line: 0,
            name,
            args: &[],
            inline: None,
        };
        !matches!(probe.handle(d, None), Ok(Handled::Unknown))
    }

    /// Applies defaults and cross-checks, loads the referenced files.
    fn finish(mut self) -> Res<Profile> {
        if self.p2p.is_static_key() {
            return self.finish_static_key();
        }
        self.p2p_ifconfig_ignored();
        if !(self.client || self.profile.pull || self.tls_client) {
            return Err(self.incomplete(
                "not a client profile: it has none of 'client', 'pull' or 'tls-client'",
            ));
        }
        if let Some((_, ping, restart)) = self.common.keepalive {
            self.profile.ping = Some(ping);
            self.profile.ping_restart = Some(restart);
        }
        self.finish_dev()?;
        self.finish_remotes()?;
        self.finish_ciphers()?;
        self.finish_tls()?;
        self.finish_wrap()?;
        self.finish_auth()?;
        self.finish_compression()?;
        if self.push_peer_info {
            self.profile.peer_info_extra = std::mem::take(&mut self.user_vars);
        }
        Ok(self.profile)
    }

    fn finish_compression(&mut self) -> Res<()> {
        let p = &self.profile;
        let settled = compression::settle(
            p.compression,
            p.allow_compression,
            self.common.allow_compression_set,
        );
        let Some((line, name)) = self.compression_line else {
            return Ok(());
        };
        let d = Dir::at(line, name);
        let (allow, warning) = settled.map_err(|e| self.err(d, e))?;
        self.profile.allow_compression = allow;
        if let Some(w) = warning {
            self.warn(d, w);
        }
        Ok(())
    }

    fn finish_dev(&mut self) -> Res<()> {
        let dev = self.dev.clone();
        if let Some((line, name)) = &dev {
            let d = Dir {
                line: *line,
                name: "dev",
                args: &[],
                inline: None,
            };
            let ty = match &self.dev_type {
                Some((_, t)) => t.clone(),
                None if name.starts_with("tun") => "tun".to_owned(),
                None if name.starts_with("tap") => "tap".to_owned(),
                None if name == "null" => {
                    return Err(self.err(d, "'dev null' is not supported"));
                }
                None => {
                    return Err(self.err(
                        d,
                        format!(
                            "cannot tell the type of device '{name}'; add 'dev-type tun' or \
                             'dev-type tap'"
                        ),
                    ));
                }
            };
            self.profile.layer2 = ty == "tap";
            self.profile.dev = Some(name.clone());
        }
        Ok(())
    }

    fn finish_remotes(&mut self) -> Res<()> {
        if !self.connections.is_empty() {
            let globals = std::mem::take(&mut self.global_remotes);
            for (line, _) in globals {
                let d = Dir {
                    line,
                    name: "remote",
                    args: &[],
                    inline: None,
                };
                self.warn(d, "ignored because the profile has <connection> blocks");
            }
            self.profile.remotes = std::mem::take(&mut self.connections);
        } else {
            let ce = self.ce.clone();
            let mut remotes = Vec::new();
            for (_, r) in std::mem::take(&mut self.global_remotes) {
                let proto = r.proto.unwrap_or(ce.proto);
                let proxy = upstream_proxy::finish(
                    &self.cx,
                    &ce.proxy,
                    self.http_proxy_user_pass.as_ref(),
                    proto.is_tcp(),
                )?;
                remotes.push(Remote {
                    host: r.host,
                    port: r.port.unwrap_or(ce.port),
                    proto,
                    proxy,
                });
            }
            self.profile.remotes = remotes;
        }
        if self.profile.remotes.is_empty() {
            return Err(self.incomplete("no 'remote' directive: there is no server to connect to"));
        }
        Ok(())
    }

    fn finish_ciphers(&mut self) -> Res<()> {
        self.common
            .finish_ciphers(&self.cx, Side::Client, self.profile.fields())?;
        self.finish_compat()
    }

    /// `compat-mode` and an unusable `cipher` (see `legacy_client.rs`).
    fn finish_compat(&mut self) -> Res<()> {
        super::legacy_client::finish(&self.cx, &self.common, &mut self.profile)
    }

    fn finish_tls(&mut self) -> Res<()> {
        if let Some(f) = self.pkcs12.clone() {
            let b = self.load(&f)?;
            let der = if b.starts_with(&[0x30]) {
                b
            } else {
                // Inline `<pkcs12>`: base64 of the DER file.
                use base64::Engine as _;
                let text: String = String::from_utf8_lossy(&b)
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| {
                        self.file_err(
                            &f,
                            format!("{}: not PKCS#12 (DER or base64): {e}", Ctx::describe(&f)),
                        )
                    })?
            };
            self.profile.tls.pkcs12 = Some(der);
            if self.common.cert.is_some() || self.common.key.is_some() {
                return Err(self.file_err(
                    &f,
                    "'pkcs12' already holds the certificate and key: remove 'cert'/'key' or 'pkcs12'",
                ));
            }
        }
        // With `pkcs12` the CA may come from the file: checked when it is unlocked.
        let has_p12 = self.profile.tls.pkcs12.is_some();
        if self.common.ca.is_none() && self.profile.tls.peer_fingerprints.is_empty() && !has_p12 {
            return Err(self.incomplete(
                "no 'ca' or 'peer-fingerprint': the server could not be authenticated",
            ));
        }
        if let Some(f) = self.common.ca.clone() {
            let b = self.load(&f)?;
            material::check_pem(&b, "CERTIFICATE", "CA certificates")
                .map_err(|m| self.file_err(&f, format!("{}: {m}", Ctx::describe(&f))))?;
            self.profile.tls.ca = Some(b);
        }
        match (self.common.cert.clone(), self.common.key.clone()) {
            (Some(c), Some(k)) => {
                let cb = self.load(&c)?;
                material::check_pem(&cb, "CERTIFICATE", "a certificate")
                    .map_err(|m| self.file_err(&c, format!("{}: {m}", Ctx::describe(&c))))?;
                let kb = self.load(&k)?;
                material::check_client_private_key(&kb)
                    .map_err(|m| self.file_err(&k, format!("{}: {m}", Ctx::describe(&k))))?;
                self.profile.tls.cert = Some(cb);
                self.profile.tls.key = Some(kb);
            }
            (Some(c), None) => return Err(self.file_err(&c, "a 'cert' needs its 'key'")),
            (None, Some(k)) => return Err(self.file_err(&k, "a 'key' needs its 'cert'")),
            (None, None) => {
                if self.auth_user_pass.is_none() && !has_p12 {
                    return Err(self.incomplete(
                        "no client authentication: the profile needs 'cert' and 'key', or \
                         'auth-user-pass'",
                    ));
                }
            }
        }
        if let Some(f) = self.common.extra_certs.clone() {
            let b = self.load(&f)?;
            material::check_pem(&b, "CERTIFICATE", "certificates")
                .map_err(|m| self.file_err(&f, format!("{}: {m}", Ctx::describe(&f))))?;
            self.profile.tls.extra_certs = Some(b);
        }
        if let Some(f) = self.common.crl.clone() {
            let b = self.load(&f)?;
            if b.iter().all(u8::is_ascii_whitespace) {
                return Err(self.file_err(&f, format!("{} is empty", Ctx::describe(&f))));
            }
            self.profile.tls.crl = Some(b);
        }
        let tls = &self.profile.tls;
        // "1.2" < "1.3" compares correctly as text.
        match (&tls.tls_version_min, &tls.tls_version_max) {
            (Some(min), Some(max)) if min > max => Err(self.incomplete(format!(
                "'tls-version-min {min}' is above 'tls-version-max {max}'"
            ))),
            _ => Ok(()),
        }
    }

    fn finish_wrap(&mut self) -> Res<()> {
        let Some((kind, f)) = self.common.last_wrap(&self.cx)? else {
            return Ok(());
        };
        let bytes = self.load(&f)?;
        let wrap = match kind {
            Wrap::Auth | Wrap::Crypt => {
                let key = material::static_key(&bytes)
                    .map_err(|m| self.file_err(&f, format!("{}: {m}", Ctx::describe(&f))))?;
                if kind == Wrap::Auth {
                    TlsWrap::Auth {
                        key,
                        direction: self
                            .common
                            .key_direction
                            .unwrap_or(KeyDirection::Bidirectional),
                    }
                } else {
                    TlsWrap::Crypt { key }
                }
            }
            Wrap::CryptV2 => {
                let (key, wkc) = material::tls_crypt_v2_client_key(&bytes)
                    .map_err(|m| self.file_err(&f, format!("{}: {m}", Ctx::describe(&f))))?;
                TlsWrap::CryptV2 { key, wkc }
            }
        };
        self.profile.tls_wrap = Some(wrap);
        Ok(())
    }

    fn finish_auth(&mut self) -> Res<()> {
        let Some((_, f)) = self.auth_user_pass.clone() else {
            return Ok(());
        };
        self.profile.auth_user_pass = Some(match f {
            None => AuthUserPass::Prompt,
            Some(f) => {
                let bytes = zeroize::Zeroizing::new(self.load(&f)?);
                material::user_pass(&bytes)
                    .map_err(|m| self.file_err(&f, format!("{}: {m}", Ctx::describe(&f))))?
            }
        });
        Ok(())
    }
}

/// A profile with every OpenVPN default and nothing else.
fn default_profile(source: &Path) -> Profile {
    Profile {
        source: source.to_owned(),
        remotes: Vec::new(),
        remote_random: false,
        dev: None,
        layer2: false,
        static_key: None,
        tls: TlsSettings::default(),
        tls_wrap: None,
        auth: Digest::Sha1,
        data_ciphers: Cipher::default_list(),
        data_ciphers_fallback: None,
        auth_user_pass: None,
        auth_nocache: false,
        static_challenge: None,
        auth_retry: AuthRetry::None,
        remote_random_hostname: false,
        log: None,
        status: None,
        inactive: None,
        session_timeout: None,
        script_security: 1,
        up: None,
        route_up: None,
        down: None,
        compression: Compression::None,
        allow_compression: AllowCompression::No,
        ping: None,
        ping_restart: None,
        ping_exit: None,
        reneg_sec: Duration::from_secs(3600),
        reneg_bytes: None,
        reneg_pkts: None,
        hand_window: Duration::from_secs(60),
        tls_timeout: Duration::from_secs(2),
        tran_window: Duration::from_secs(3600),
        server_poll_timeout: Duration::from_secs(120),
        connect_retry: Duration::from_secs(1),
        connect_retry_backoff_max: Duration::from_secs(300),
        connect_retry_max: None,
        explicit_exit_notify: 0,
        tun_mtu: 1500,
        tun_mtu_max: 1600,
        mssfix: Some(1492),
        route_nopull: false,
        pull_filters: Vec::new(),
        routes: Vec::new(),
        routes_ipv6: Vec::new(),
        redirect_gateway: None,
        dhcp_options: Vec::new(),
        route_metric: None,
        block_ipv6: false,
        verb: 1,
        peer_info_extra: Vec::new(),
        pull: false,
        management: super::ClientManagement::default(),
        warnings: Vec::new(),
        compat_mode: None,
        unusable_cipher: None,
    }
}
