//! The `server.conf` parser: directives in, [`ServerProfile`] out, with OpenVPN 2.6's meaning of
//! each directive. Pure except for reading the files the configuration refers to, which goes
//! through a [`FileLoader`]. Also [`parse_ccd`] for client-config-dir files.
//!
//! Helpers are expanded the way OpenVPN's `helper.c` does, after the whole file is read:
//! `server-ipv6` first, then `server`, then `keepalive`; what they push is appended to the `push`
//! lines in that order.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::common::{Common, HasFields, Side, Wrap};
use super::directive::{Ctx, Dir, FileArg, Handled, Res};
use super::lexer::{RawDirective, split_directives};
use super::material;
use super::parser::{FileLoader, FsLoader, ProfileError, read_config_text};
use super::profile::{AllowCompression, Compression, TlsSettings, TlsWrap, Warning};
use super::server_profile::*;
use crate::proto::keys::{Cipher, Digest, KeyDirection};

/// Reads and parses the server configuration at `path`; referenced files are read relative to
/// its directory.
pub fn load_server_profile(path: &Path) -> Result<ServerProfile, ProfileError> {
    let text = read_config_text(path)?;
    parse_server_profile(&text, path, &FsLoader::for_profile(path))
}

/// Parses server configuration `text`. `source` names it in messages (and in
/// [`ServerProfile::source`]); files it refers to are read through `loader`.
pub fn parse_server_profile(
    text: &str,
    source: &Path,
    loader: &dyn FileLoader,
) -> Result<ServerProfile, ProfileError> {
    let directives = split(text, source)?;
    let mut p = ServerParser::new(source, loader);
    for d in &directives {
        if let Some(body) = &d.inline {
            p.cx.blocks.insert(d.name.clone(), body.clone());
        }
        if d.name == "ignore-unknown-option" {
            p.ignore_unknown.extend(d.args.iter().cloned());
        }
    }
    for d in &directives {
        p.directive(d)?;
    }
    p.finish()
}

/// Parses a client-config-dir file (or the file a `client-connect` script wrote). `file` names
/// it in messages.
pub fn parse_ccd(text: &str, file: &Path) -> Result<CcdEntry, ProfileError> {
    let directives = split(text, file)?;
    let loader = FsLoader::new("");
    let cx = Ctx::new(file, &loader);
    let mut e = CcdEntry::default();
    for raw in &directives {
        let d = Dir::of(raw);
        ccd_directive(&cx, d, &mut e)?;
    }
    Ok(e)
}

/// Directives that may be given as an inline `<name>` block.
const INLINE_OK: &[&str] = &[
    "ca",
    "cert",
    "key",
    "extra-certs",
    "dh",
    "tls-auth",
    "tls-crypt",
    "tls-crypt-v2",
    "crl-verify",
    "auth-gen-token-secret",
];

/// Directives only a client uses; in a server configuration they are an error.
const CLIENT_ONLY: &[&str] = &[
    "client",
    "pull",
    "tls-client",
    "remote",
    "remote-random",
    "remote-random-hostname",
    "nobind",
    "connection",
    "auth-user-pass",
    "auth-retry",
    "auth-nocache",
    "pull-filter",
    "route-nopull",
    "connect-retry",
    "connect-retry-max",
    "server-poll-timeout",
    "http-proxy",
    "socks-proxy",
    "static-challenge",
    "push-peer-info",
];

/// Directives that only mean something for one client (CCD files, `client-connect` output).
const CLIENT_CONTEXT: &[&str] = &[
    "push-reset",
    "push-remove",
    "iroute",
    "iroute-ipv6",
    "ifconfig-push",
    "ifconfig-ipv6-push",
    "disable",
];

/// Default listening port.
const DEFAULT_PORT: u16 = 1194;

fn split(text: &str, file: &Path) -> Res<Vec<RawDirective>> {
    split_directives(text, 1).map_err(|e| ProfileError::Syntax {
        file: file.to_owned(),
        line: e.line,
        message: e.message,
    })
}

/// A `local` line before defaults are applied.
#[derive(Clone, Copy, Debug)]
struct LocalLine {
    line: usize,
    addr: Option<IpAddr>,
    port: Option<u16>,
    proto: Option<(Transport, Family)>,
}

/// `server NET MASK [nopool]`.
#[derive(Clone, Copy, Debug)]
struct ServerLine {
    line: usize,
    network: Ipv4Addr,
    prefix_len: u8,
    nopool: bool,
}

/// `ifconfig-pool START END [MASK]`.
#[derive(Clone, Copy, Debug)]
struct PoolLine {
    line: usize,
    start: Ipv4Addr,
    end: Ipv4Addr,
}

struct ServerParser<'a> {
    cx: Ctx<'a>,
    ignore_unknown: HashSet<String>,
    p: ServerProfile,
    mode_server: bool,
    tls_server: bool,
    server: Option<ServerLine>,
    server_ipv6: Option<(usize, Ipv6Addr, u8)>,
    topology: Option<Topology>,
    ifconfig: Option<(usize, Ipv4Addr, Ipv4Addr)>,
    ifconfig_ipv6: Option<(usize, Ipv6Addr, u8, Option<Ipv6Addr>)>,
    pool: Option<PoolLine>,
    pool_v6: Option<(usize, Ipv6Addr, u8)>,
    port: u16,
    proto: (Transport, Family),
    locals: Vec<LocalLine>,
    dev: Option<(usize, String)>,
    dev_type: bool,
    /// State of the directives shared with the client parser.
    common: Common,
    tc2_verify: Option<String>,
    tc2_max_age: Option<Duration>,
    tc2_allow_noncookie: bool,
    auth_token_secret: Option<FileArg>,
    /// A `compress`/`comp-lzo` that asks clients to really compress: (line, directive, text).
    real_compression: Option<(usize, &'static str, String)>,
    script_security_line: Option<usize>,
    verify_client_cert_line: Option<usize>,
}

impl<'a> ServerParser<'a> {
    fn new(source: &Path, loader: &'a dyn FileLoader) -> Self {
        Self {
            cx: Ctx::new(source, loader),
            ignore_unknown: HashSet::new(),
            p: default_server_profile(source),
            mode_server: false,
            tls_server: false,
            server: None,
            server_ipv6: None,
            topology: None,
            ifconfig: None,
            ifconfig_ipv6: None,
            pool: None,
            pool_v6: None,
            port: DEFAULT_PORT,
            proto: (Transport::Udp, Family::Any),
            locals: Vec::new(),
            dev: None,
            dev_type: false,
            common: Common::default(),
            tc2_verify: None,
            tc2_max_age: None,
            tc2_allow_noncookie: false,
            auth_token_secret: None,
            real_compression: None,
            script_security_line: None,
            verify_client_cert_line: None,
        }
    }

    fn err(&self, d: Dir<'_>, message: impl Into<String>) -> ProfileError {
        self.cx.err(d, message)
    }

    fn warn(&mut self, d: Dir<'_>, message: impl Into<String>) {
        let w = self.cx.warning(d, message);
        self.p.warnings.push(w);
    }

    fn directive(&mut self, raw: &RawDirective) -> Res<()> {
        let d = Dir::of(raw);
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
            let before = self.p.warnings.len();
            match self.handle(sub) {
                Ok(Handled::Yes) => {}
                Ok(Handled::Unknown) => {
                    self.p.warnings.truncate(before);
                    self.warn(
                        sub,
                        "unknown directive marked optional by 'setenv opt', ignored",
                    );
                }
                Err(e) => {
                    self.p.warnings.truncate(before);
                    self.warn(sub, format!("ignored (optional via 'setenv opt'): {e}"));
                }
            }
            return Ok(());
        }
        match self.handle(d)? {
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
    fn handle(&mut self, d: Dir<'_>) -> Res<Handled> {
        if d.inline.is_some() && !INLINE_OK.contains(&d.name) {
            return Err(self.err(d, "cannot be given as an inline <block>"));
        }
        if CLIENT_ONLY.contains(&d.name) {
            return Err(self.err(
                d,
                format!(
                    "'{}' is a client directive; this is a server configuration",
                    d.name
                ),
            ));
        }
        if CLIENT_CONTEXT.contains(&d.name) {
            return Err(self.err(
                d,
                format!(
                    "'{}' only works for one client: put it in a client-config-dir file or in \
                     the output of a client-connect script",
                    d.name
                ),
            ));
        }
        if self
            .common
            .handle(&self.cx, d, Side::Server, self.p.fields())?
            || self.handle_mode(d)?
            || self.handle_addressing(d)?
            || self.handle_tls(d)?
            || self.handle_session(d)?
            || self.handle_ops(d)?
        {
            return Ok(Handled::Yes);
        }
        Ok(Handled::Unknown)
    }

    /// Mode, device and listeners. Returns whether `d` was one of them.
    fn handle_mode(&mut self, d: Dir<'_>) -> Res<bool> {
        let a = d.args;
        let cx = &self.cx;
        match d.name {
            "mode" => {
                cx.nargs(d, 1, 1)?;
                match a[0].as_str() {
                    "server" => self.mode_server = true,
                    "p2p" => {
                        return Err(self.err(
                            d,
                            "point-to-point mode is not supported by the server; use \
                             'mode server' (or 'server NET MASK')",
                        ));
                    }
                    m => return Err(self.err(d, format!("unknown mode '{m}' (server or p2p)"))),
                }
            }
            "tls-server" => {
                cx.nargs(d, 0, 0)?;
                self.tls_server = true;
            }
            "secret" => {
                return Err(self.err(
                    d,
                    "static-key mode is not supported (and has been removed from OpenVPN); use \
                     TLS: ca, cert, key",
                ));
            }
            "server-bridge" => {
                return Err(self.err(d, "ethernet bridging (dev tap) is not supported"));
            }
            "dev" => {
                cx.nargs(d, 1, 1)?;
                let name = &a[0];
                if name.starts_with("tap") {
                    return Err(self.err(
                        d,
                        "dev tap is not supported (ferrovpn routes IP packets only); use 'dev tun'",
                    ));
                }
                if name == "null" {
                    return Err(self.err(d, "'dev null' is not supported"));
                }
                self.dev = Some((d.line, name.clone()));
            }
            "dev-type" => {
                cx.nargs(d, 1, 1)?;
                match a[0].as_str() {
                    "tun" => self.dev_type = true,
                    "tap" => {
                        return Err(self.err(
                            d,
                            "dev tap is not supported (ferrovpn routes IP packets only)",
                        ));
                    }
                    t => return Err(self.err(d, format!("unknown device type '{t}' (tun)"))),
                }
            }
            "port" | "lport" => {
                cx.nargs(d, 1, 1)?;
                self.port = cx.port(d, &a[0])?;
            }
            "rport" => {
                cx.nargs(d, 1, 1)?;
                self.warn(d, "ignored: a server does not connect out");
            }
            "proto" => {
                cx.nargs(d, 1, 1)?;
                self.proto = self.proto(d, &a[0])?;
            }
            "local" => {
                cx.nargs(d, 1, 3)?;
                let addr = match a[0].as_str() {
                    "*" | "" => None,
                    s => Some(s.parse::<IpAddr>().map_err(|_| {
                        self.err(
                            d,
                            format!(
                                "'{s}' is not an IP address (host names are not resolved here; \
                                 write the address, or '*' for all)"
                            ),
                        )
                    })?),
                };
                let port = a.get(1).map(|p| cx.port(d, p)).transpose()?;
                let proto = a.get(2).map(|p| self.proto(d, p)).transpose()?;
                self.locals.push(LocalLine {
                    line: d.line,
                    addr,
                    port,
                    proto,
                });
            }
            "bind" => {
                cx.nargs(d, 0, 1)?;
                if let Some(x) = a.first().filter(|x| *x != "ipv6only") {
                    return Err(self.err(d, format!("unknown flag '{x}' (only 'ipv6only')")));
                }
                if !a.is_empty() {
                    self.warn(d, "'ipv6only' is not supported: use 'proto udp6'");
                }
            }
            "multihome" => {
                cx.nargs(d, 0, 1)?;
                self.warn(
                    d,
                    "not supported: replies leave by the system's route; bind each address \
                     with its own 'local' line instead",
                );
            }
            "float"
            | "persist-local-ip"
            | "persist-remote-ip"
            | "fast-io"
            | "tun-ipv6"
            | "mute-replay-warnings"
            | "ping-timer-rem"
            | "ifconfig-nowarn" => {
                cx.nargs(d, 0, 0)?;
            }
            "persist-tun" | "persist-key" => {
                cx.nargs(d, 0, 0)?;
                if d.name == "persist-tun" {
                    self.p.persist_tun = true;
                } else {
                    self.p.persist_key = true;
                }
            }
            "fragment" => {
                return Err(self.err(d, "'fragment' is not supported"));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tunnel addresses, routes and pushes.
    fn handle_addressing(&mut self, d: Dir<'_>) -> Res<bool> {
        let a = d.args;
        let cx = &self.cx;
        match d.name {
            "server" => {
                cx.nargs(d, 2, 3)?;
                let network = self.ipv4(d, &a[0])?;
                let prefix_len = self.netmask(d, &a[1])?;
                let nopool = match a.get(2).map(String::as_str) {
                    None => false,
                    Some("nopool") => true,
                    Some(x) => return Err(self.err(d, format!("unknown flag '{x}' (nopool)"))),
                };
                if u32::from(network) & !u32::from(prefix_to_mask(prefix_len)) != 0 {
                    return Err(self.err(
                        d,
                        format!(
                            "{network} is not the network address of a /{prefix_len} (the host \
                             part must be zero)"
                        ),
                    ));
                }
                if prefix_len < 16 {
                    return Err(self.err(
                        d,
                        "the netmask allows too many addresses (at most /16, e.g. 255.255.0.0)",
                    ));
                }
                if prefix_len > 29 {
                    return Err(self.err(
                        d,
                        "the network is too small for a tun server (at least /29, \
                         255.255.255.248)",
                    ));
                }
                self.server = Some(ServerLine {
                    line: d.line,
                    network,
                    prefix_len,
                    nopool,
                });
            }
            "server-ipv6" => {
                cx.nargs(d, 1, 1)?;
                let (net, bits) = self.ipv6_net(d, &a[0])?;
                if !(64..=124).contains(&bits) {
                    return Err(self.err(d, "the prefix length must be between /64 and /124"));
                }
                self.server_ipv6 = Some((d.line, net, bits));
            }
            "topology" => {
                cx.nargs(d, 1, 1)?;
                self.topology = Some(match a[0].as_str() {
                    "net30" => Topology::Net30,
                    "p2p" => Topology::P2p,
                    "subnet" => Topology::Subnet,
                    t => {
                        return Err(
                            self.err(d, format!("unknown topology '{t}' (net30, p2p or subnet)"))
                        );
                    }
                });
            }
            "ifconfig-pool-linear" => {
                cx.nargs(d, 0, 0)?;
                self.topology = Some(Topology::P2p);
                self.warn(
                    d,
                    "removed in OpenVPN 2.6; treated as 'topology p2p' (better: 'topology subnet')",
                );
            }
            "ifconfig" => {
                cx.nargs(d, 2, 2)?;
                let local = self.ipv4(d, &a[0])?;
                let other = self.ipv4(d, &a[1])?;
                self.ifconfig = Some((d.line, local, other));
            }
            "ifconfig-ipv6" => {
                cx.nargs(d, 1, 2)?;
                let (addr, bits) = self.ipv6_net(d, &a[0])?;
                let remote = a.get(1).map(|r| self.ipv6(d, r)).transpose()?;
                self.ifconfig_ipv6 = Some((d.line, addr, bits, remote));
            }
            "ifconfig-pool" => {
                cx.nargs(d, 2, 3)?;
                let start = self.ipv4(d, &a[0])?;
                let end = self.ipv4(d, &a[1])?;
                if let Some(m) = a.get(2) {
                    self.netmask(d, m)?;
                }
                if u32::from(start) > u32::from(end) {
                    return Err(self.err(
                        d,
                        format!("the pool starts ({start}) after it ends ({end})"),
                    ));
                }
                if u32::from(end) - u32::from(start) >= 65536 {
                    return Err(self.err(d, "the pool is too large (at most 65536 addresses)"));
                }
                self.pool = Some(PoolLine {
                    line: d.line,
                    start,
                    end,
                });
            }
            "ifconfig-ipv6-pool" => {
                cx.nargs(d, 1, 1)?;
                let (base, bits) = self.ipv6_net(d, &a[0])?;
                self.pool_v6 = Some((d.line, base, bits));
            }
            "ifconfig-pool-persist" => {
                cx.nargs(d, 1, 2)?;
                let interval = match a.get(1) {
                    Some(s) => cx.seconds(d, s)?,
                    None => Duration::from_secs(600),
                };
                self.p.ifconfig_pool_persist = Some(PoolPersist {
                    path: PathBuf::from(&a[0]),
                    interval,
                });
            }
            "route" => {
                cx.nargs(d, 1, 4)?;
                let kw = |i: usize| a.get(i).filter(|s| *s != "default");
                let network = self.ipv4(d, &a[0])?;
                let prefix_len = match kw(1) {
                    Some(m) => self.netmask(d, m)?,
                    None => 32,
                };
                if u32::from(network) & !u32::from(prefix_to_mask(prefix_len)) != 0 {
                    return Err(self.err(
                        d,
                        format!("{network} has bits outside the netmask {}", a[1]),
                    ));
                }
                let metric = kw(3).map(|m| cx.number(d, "metric", m)).transpose()?;
                self.p.routes.push(ServerRoute {
                    network,
                    prefix_len,
                    gateway: kw(2).cloned(),
                    metric,
                });
            }
            "route-ipv6" => {
                cx.nargs(d, 1, 3)?;
                let (network, prefix_len) = self.ipv6_net(d, &a[0])?;
                let gateway = a
                    .get(1)
                    .filter(|s| *s != "default")
                    .map(|g| self.ipv6(d, g))
                    .transpose()?;
                let metric = a.get(2).map(|m| cx.number(d, "metric", m)).transpose()?;
                self.p.routes_ipv6.push(ServerRoute6 {
                    network,
                    prefix_len,
                    gateway,
                    metric,
                });
            }
            "route-gateway" => {
                cx.nargs(d, 1, 1)?;
                if a[0] == "dhcp" {
                    return Err(self.err(d, "'route-gateway dhcp' needs dev tap (not supported)"));
                }
                self.p.route_gateway = Some(self.ipv4(d, &a[0])?);
            }
            "route-metric" | "route-delay" | "route-noexec" | "ifconfig-noexec" | "route-up"
            | "route-pre-down" | "up" | "down" | "up-delay" | "down-pre" | "up-restart" => {
                self.warn(d, "ignored by ferrovpn");
            }
            "push" => {
                cx.nargs(d, 1, 1)?;
                if a[0].trim().is_empty() {
                    return Err(self.err(d, "empty option"));
                }
                self.p.push.push(a[0].clone());
            }
            "client-to-client" => {
                cx.nargs(d, 0, 0)?;
                self.p.client_to_client = true;
            }
            "duplicate-cn" => {
                cx.nargs(d, 0, 0)?;
                self.p.duplicate_cn = true;
            }
            "max-clients" => {
                cx.nargs(d, 1, 1)?;
                let n: u32 = cx.number(d, "value", &a[0])?;
                if n == 0 {
                    return Err(self.err(d, "must be at least 1"));
                }
                self.p.max_clients = n;
            }
            "userspace-allow" => {
                cx.nargs(d, 1, 2)?;
                let cidr = &a[0];
                let (addr, bits) = cidr.split_once('/').unwrap_or((cidr, ""));
                let ip_ok = addr.parse::<IpAddr>().is_ok();
                let bits_ok = bits.is_empty() || bits.parse::<u8>().is_ok();
                if !ip_ok || !bits_ok {
                    return Err(self.err(
                        d,
                        format!("'{cidr}' is not an address or ADDRESS/BITS network"),
                    ));
                }
                self.p.userspace_allow.push(match a.get(1) {
                    Some(ports) => format!("{cidr}:{ports}"),
                    None => cidr.clone(),
                });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// TLS material, control-channel wrapping, data-channel crypto and client authentication.
    fn handle_tls(&mut self, d: Dir<'_>) -> Res<bool> {
        let a = d.args;
        let cx = &self.cx;
        match d.name {
            "dh" => {
                cx.nargs(d, 1, 1)?;
                if a.first().is_some_and(|x| x != "none") || d.inline.is_some() {
                    self.warn(
                        d,
                        "ignored: key exchange is ECDHE (finite-field DH parameters are not used)",
                    );
                }
            }
            "pkcs12"
            | "pkcs11-providers"
            | "pkcs11-id"
            | "cryptoapicert"
            | "management-external-key"
            | "management-external-cert" => {
                return Err(self.err(
                    d,
                    "not supported; give the server's certificate and key as PEM files (cert, key)",
                ));
            }
            "tls-verify" | "verify-hash" | "remote-cert-ku" | "remote-cert-eku"
            | "ns-cert-type" => {
                return Err(self.err(
                    d,
                    "not supported; check clients with 'remote-cert-tls client' and \
                     'verify-x509-name'",
                ));
            }
            "tls-crypt-v2" => {
                cx.nargs(d, 1, 2)?;
                match a.get(1).map(String::as_str) {
                    None | Some("force-cookie") => self.tc2_allow_noncookie = false,
                    Some("allow-noncookie") => self.tc2_allow_noncookie = true,
                    Some(x) => {
                        return Err(self.err(
                            d,
                            format!("unknown flag '{x}' (force-cookie or allow-noncookie)"),
                        ));
                    }
                }
                let f = cx.file_arg(d)?;
                self.common.wraps.push((Wrap::CryptV2, f));
            }
            "tls-crypt-v2-verify" => {
                cx.nargs(d, 1, 1)?;
                self.tc2_verify = Some(a[0].clone());
            }
            "tls-crypt-v2-max-age" => {
                cx.nargs(d, 1, 1)?;
                let days: u64 = cx.number(d, "days", &a[0])?;
                if days == 0 {
                    return Err(self.err(d, "must be at least 1 day"));
                }
                self.tc2_max_age = Some(Duration::from_secs(days * 24 * 3600));
            }
            "force-cookie" => cx.nargs(d, 0, 0)?,
            "ncp-disable" => {
                return Err(self.err(
                    d,
                    "removed in OpenVPN 2.6: cipher negotiation is always on; list the ciphers \
                     in 'data-ciphers' (and 'data-ciphers-fallback' for old clients)",
                ));
            }
            "verify-client-cert" => {
                cx.nargs(d, 1, 1)?;
                self.p.verify_client_cert = match a[0].as_str() {
                    "none" => VerifyClientCert::None,
                    "optional" => VerifyClientCert::Optional,
                    "require" => VerifyClientCert::Require,
                    x => {
                        return Err(
                            self.err(d, format!("unknown mode '{x}' (none, optional or require)"))
                        );
                    }
                };
                self.verify_client_cert_line = Some(d.line);
            }
            "client-cert-not-required" => {
                return Err(self.err(d, "removed in OpenVPN 2.5; use 'verify-client-cert none'"));
            }
            "auth-user-pass-verify" => {
                cx.nargs(d, 2, 2)?;
                let method = match a[1].as_str() {
                    "via-env" => CredentialsVia::Env,
                    "via-file" => CredentialsVia::File,
                    x => {
                        return Err(
                            self.err(d, format!("unknown method '{x}' (via-env or via-file)"))
                        );
                    }
                };
                if a[0].trim().is_empty() {
                    return Err(self.err(d, "empty command"));
                }
                self.p.auth_user_pass_verify = Some(AuthUserPassVerify {
                    command: a[0].clone(),
                    method,
                });
            }
            "username-as-common-name" => {
                cx.nargs(d, 0, 0)?;
                self.p.username_as_common_name = true;
            }
            "auth-gen-token" => {
                cx.nargs(d, 0, 3)?;
                let mut t = AuthGenToken {
                    lifetime: None,
                    renewal: None,
                    external_auth: false,
                };
                let mut numbers = Vec::new();
                for x in a {
                    if x == "external-auth" {
                        t.external_auth = true;
                    } else if t.external_auth {
                        return Err(self.err(d, "'external-auth' must come last"));
                    } else {
                        numbers.push(cx.seconds(d, x)?);
                    }
                }
                t.lifetime = numbers.first().copied().filter(|s| !s.is_zero());
                t.renewal = numbers.get(1).copied().filter(|s| !s.is_zero());
                self.p.auth_gen_token = Some(t);
            }
            "auth-gen-token-secret" => {
                cx.nargs(d, 1, 1)?;
                self.auth_token_secret = Some(cx.file_arg(d)?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Timers, compression and client handling.
    fn handle_session(&mut self, d: Dir<'_>) -> Res<bool> {
        let a = d.args;
        let cx = &self.cx;
        match d.name {
            "inactive" => {
                cx.nargs(d, 1, 2)?;
                let timeout = cx.seconds(d, &a[0])?;
                let bytes = a.get(1).map(|b| cx.number(d, "bytes", b)).transpose()?;
                self.p.inactive = (!timeout.is_zero()).then_some(Inactive {
                    timeout,
                    bytes: bytes.unwrap_or(0),
                });
            }
            "reneg-pkts" => {
                cx.nargs(d, 1, 1)?;
                let _: u64 = cx.number(d, "value", &a[0])?;
                self.warn(d, "not supported, ignored (use reneg-bytes or reneg-sec)");
            }
            "connect-freq" | "connect-freq-initial" => {
                cx.nargs(d, 2, 2)?;
                let count: u32 = cx.number(d, "count", &a[0])?;
                let per = cx.seconds(d, &a[1])?;
                if per.is_zero() {
                    return Err(self.err(d, "the period must be at least 1 second"));
                }
                let limit = RateLimit { count, per };
                if d.name == "connect-freq" {
                    self.p.connect_freq = Some(limit);
                } else {
                    self.p.connect_freq_initial = limit;
                }
            }
            "replay-window" => {
                cx.nargs(d, 1, 2)?;
                let size: u32 = cx.number(d, "size", &a[0])?;
                if !(1..=65536).contains(&size) {
                    return Err(self.err(d, "the window must be between 1 and 65536 packets"));
                }
                let time = match a.get(1) {
                    Some(t) => cx.seconds(d, t)?,
                    None => Duration::from_secs(15),
                };
                self.p.replay_window = ReplayWindow { size, time };
            }
            "comp-lzo" => {
                cx.nargs(d, 0, 1)?;
                match a.first().map(String::as_str) {
                    Some("no") => {}
                    None | Some("yes" | "adaptive") => {
                        let text = a.first().map_or("comp-lzo", |_| "comp-lzo yes");
                        self.real_compression = Some((d.line, "comp-lzo", text.to_owned()));
                    }
                    Some(x) => {
                        return Err(
                            self.err(d, format!("unknown mode '{x}' (yes, no or adaptive)"))
                        );
                    }
                }
                self.p.compression = Compression::LzoFraming;
            }
            "compress" => {
                cx.nargs(d, 0, 1)?;
                let algo = a.first().map(String::as_str);
                self.p.compress_migrate = false;
                self.p.compression = match algo {
                    None | Some("stub") => Compression::Stub,
                    Some("stub-v2") => Compression::StubV2,
                    Some("lz4") => Compression::Stub,
                    Some("lz4-v2") => Compression::StubV2,
                    Some("lzo") => Compression::LzoFraming,
                    Some("migrate") => {
                        self.p.compress_migrate = true;
                        Compression::None
                    }
                    Some(x) => {
                        return Err(self.err(
                            d,
                            format!(
                                "unknown algorithm '{x}' (stub, stub-v2, lz4, lz4-v2, lzo, migrate)"
                            ),
                        ));
                    }
                };
                if let Some(x @ ("lz4" | "lz4-v2" | "lzo")) = algo {
                    self.real_compression = Some((d.line, "compress", format!("compress {x}")));
                }
            }
            "script-security" => {
                cx.nargs(d, 1, 1)?;
                let n: u8 = cx.number(d, "level", &a[0])?;
                if n > 3 {
                    return Err(self.err(d, "the level is 0, 1, 2 or 3"));
                }
                self.p.script_security = n;
                self.script_security_line = Some(d.line);
            }
            "client-connect" | "client-disconnect" | "learn-address" => {
                cx.nargs(d, 1, 1)?;
                if a[0].trim().is_empty() {
                    return Err(self.err(d, "empty command"));
                }
                let cmd = Some(a[0].clone());
                match d.name {
                    "client-connect" => self.p.client_connect = cmd,
                    "client-disconnect" => self.p.client_disconnect = cmd,
                    _ => self.p.learn_address = cmd,
                }
            }
            "client-config-dir" => {
                cx.nargs(d, 1, 1)?;
                self.p.client_config_dir = Some(PathBuf::from(&a[0]));
            }
            "ccd-exclusive" => {
                cx.nargs(d, 0, 0)?;
                self.p.ccd_exclusive = true;
            }
            "plugin"
            | "tls-export-cert"
            | "auth-user-pass-optional"
            | "opt-verify"
            | "vlan-tagging"
            | "port-share"
            | "stale-routes-check"
            | "max-routes-per-client"
            | "bcast-buffers"
            | "tcp-queue-limit"
            | "tcp-nodelay"
            | "hash-size"
            | "push-peer-info-env"
            | "client-nat"
            | "session-timeout" => {
                self.warn(d, "not supported, ignored");
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Process, logging and management.
    fn handle_ops(&mut self, d: Dir<'_>) -> Res<bool> {
        let a = d.args;
        let cx = &self.cx;
        match d.name {
            "user" | "group" => {
                cx.nargs(d, 1, 1)?;
                if d.name == "user" {
                    self.p.user = Some(a[0].clone());
                } else {
                    self.p.group = Some(a[0].clone());
                }
            }
            "chroot" => {
                cx.nargs(d, 1, 1)?;
                self.p.chroot = Some(PathBuf::from(&a[0]));
            }
            "writepid" => {
                cx.nargs(d, 1, 1)?;
                self.p.writepid = Some(PathBuf::from(&a[0]));
            }
            "daemon" => {
                cx.nargs(d, 0, 1)?;
                self.warn(
                    d,
                    "ignored: ferrovpn runs in the foreground (use a service manager)",
                );
            }
            "cd" | "nice" | "mlock" | "machine-readable-output" | "echo" => {
                self.warn(d, "ignored by ferrovpn");
            }
            "status" => {
                cx.nargs(d, 1, 2)?;
                let interval = match a.get(1) {
                    Some(s) => cx.seconds(d, s)?,
                    None => Duration::from_secs(60),
                };
                if interval.is_zero() {
                    return Err(self.err(d, "the interval must be at least 1 second"));
                }
                self.p.status = Some(StatusFile {
                    path: PathBuf::from(&a[0]),
                    interval,
                });
            }
            "status-version" => {
                cx.nargs(d, 1, 1)?;
                let v: u8 = cx.number(d, "version", &a[0])?;
                if !(1..=3).contains(&v) {
                    return Err(self.err(d, "the version is 1, 2 or 3"));
                }
                self.p.status_version = v;
            }
            "management" => {
                cx.nargs(d, 2, 3)?;
                let listen = if a[1] == "unix" {
                    ManagementListen::Unix(PathBuf::from(&a[0]))
                } else {
                    ManagementListen::Tcp {
                        host: a[0].clone(),
                        port: cx.port(d, &a[1])?,
                    }
                };
                if let ManagementListen::Tcp { host, .. } = &listen {
                    let local = host == "localhost"
                        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
                    if !local && a.get(2).is_none() {
                        self.warn(
                            d,
                            "listens beyond this host without a password file: anyone who can \
                             reach it controls the server",
                        );
                    }
                }
                self.p.management = Some(Management {
                    listen,
                    password_file: a.get(2).map(PathBuf::from),
                });
            }
            "management-client-auth"
            | "management-client-pf"
            | "management-hold"
            | "management-query-passwords"
            | "management-query-remote"
            | "management-query-proxy"
            | "management-client"
            | "management-client-user"
            | "management-client-group"
            | "management-signal"
            | "management-forget-disconnect"
            | "management-up-down"
            | "management-log-cache" => {
                if d.name == "management-client-auth" {
                    return Err(self.err(
                        d,
                        "not supported: clients could not be authorised; use \
                         'auth-user-pass-verify'",
                    ));
                }
                self.warn(d, "not supported, ignored");
            }
            "log" | "log-append" => {
                cx.nargs(d, 1, 1)?;
                self.p.log = Some(LogTarget::File {
                    path: PathBuf::from(&a[0]),
                    append: d.name == "log-append",
                });
            }
            "syslog" => {
                cx.nargs(d, 0, 1)?;
                self.p.log = Some(LogTarget::Syslog(
                    a.first().cloned().unwrap_or_else(|| "openvpn".to_owned()),
                ));
            }
            "mute" => {
                cx.nargs(d, 1, 1)?;
                let n: u32 = cx.number(d, "value", &a[0])?;
                self.p.mute = (n != 0).then_some(n);
            }
            "suppress-timestamps" => {
                cx.nargs(d, 0, 0)?;
                self.p.suppress_timestamps = true;
            }
            "setenv" | "setenv-safe" => {
                cx.nargs(d, 1, 2)?;
                if a[0] == "GENERIC_CONFIG" {
                    return Err(self.err(
                        d,
                        "this is a generic configuration and cannot be used directly",
                    ));
                }
            }
            "config" => {
                return Err(self.err(
                    d,
                    "including other files is not supported; merge them into this file",
                ));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `proto` values on a server.
    fn proto(&self, d: Dir<'_>, s: &str) -> Res<(Transport, Family)> {
        Ok(match s {
            "udp" => (Transport::Udp, Family::Any),
            "udp4" => (Transport::Udp, Family::V4),
            "udp6" => (Transport::Udp, Family::V6),
            "tcp" | "tcp-server" => (Transport::Tcp, Family::Any),
            "tcp4" | "tcp4-server" => (Transport::Tcp, Family::V4),
            "tcp6" | "tcp6-server" => (Transport::Tcp, Family::V6),
            "tcp-client" | "tcp4-client" | "tcp6-client" => {
                return Err(self.err(
                    d,
                    format!("'{s}' is for clients; a server listens with tcp-server (or tcp)"),
                ));
            }
            _ => {
                return Err(self.err(
                    d,
                    format!(
                        "unknown protocol '{s}' (expected udp, udp4, udp6, tcp-server, \
                         tcp4-server or tcp6-server)"
                    ),
                ));
            }
        })
    }

    fn ipv4(&self, d: Dir<'_>, s: &str) -> Res<Ipv4Addr> {
        s.parse()
            .map_err(|_| self.err(d, format!("'{s}' is not an IPv4 address")))
    }

    fn ipv6(&self, d: Dir<'_>, s: &str) -> Res<Ipv6Addr> {
        s.parse()
            .map_err(|_| self.err(d, format!("'{s}' is not an IPv6 address")))
    }

    /// A dotted netmask, as a prefix length.
    fn netmask(&self, d: Dir<'_>, s: &str) -> Res<u8> {
        let m = self.ipv4(d, s)?;
        mask_to_prefix(m).ok_or_else(|| {
            self.err(
                d,
                format!("'{s}' is not a netmask (its bits must be contiguous)"),
            )
        })
    }

    /// `ADDR/BITS` (IPv6; the prefix length is required).
    fn ipv6_net(&self, d: Dir<'_>, s: &str) -> Res<(Ipv6Addr, u8)> {
        let Some((addr, bits)) = s.split_once('/') else {
            return Err(self.err(d, format!("'{s}' needs a prefix length, e.g. '{s}/64'")));
        };
        let addr = self.ipv6(d, addr)?;
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= 128)
            .ok_or_else(|| self.err(d, format!("'/{bits}' is not a prefix length (0-128)")))?;
        Ok((addr, bits))
    }

    /// Applies helpers, defaults and cross-checks; loads the referenced files.
    fn finish(mut self) -> Res<ServerProfile> {
        let has_server = self.server.is_some() || self.server_ipv6.is_some();
        if !has_server && !self.mode_server {
            return Err(self.cx.incomplete(
                "not a server configuration: it has neither 'server NETWORK NETMASK' nor \
                 'mode server' (with 'tls-server')",
            ));
        }
        if !has_server && !self.tls_server {
            return Err(self.cx.incomplete(
                "'mode server' needs 'tls-server' (or use the 'server NETWORK NETMASK' helper, \
                 which sets both)",
            ));
        }
        self.finish_dev();
        self.finish_listeners()?;
        self.finish_tunnel()?;
        self.finish_keepalive();
        self.finish_ciphers()?;
        self.finish_compression()?;
        self.finish_tls()?;
        self.finish_wrap()?;
        self.finish_auth()?;
        Ok(self.p)
    }

    fn finish_dev(&mut self) {
        if let Some((line, name)) = self.dev.clone() {
            if !name.starts_with("tun") && !self.dev_type {
                self.warn(
                    Dir::at(line, "dev"),
                    format!("'{name}' is taken to be a tun device (add 'dev-type tun')"),
                );
            }
            self.p.dev = name;
        }
    }

    fn finish_listeners(&mut self) -> Res<()> {
        let (port, proto) = (self.port, self.proto);
        let mut out: Vec<Listener> = Vec::new();
        let locals = if self.locals.is_empty() {
            vec![LocalLine {
                line: 0,
                addr: None,
                port: None,
                proto: None,
            }]
        } else {
            self.locals.clone()
        };
        for l in locals {
            let (transport, family) = l.proto.unwrap_or(proto);
            let family = match (l.addr, family) {
                (Some(IpAddr::V4(_)), Family::V6) | (Some(IpAddr::V6(_)), Family::V4) => {
                    return Err(self.err(
                        Dir::at(l.line, "local"),
                        format!(
                            "address {} does not match the protocol's address family",
                            l.addr.map(|a| a.to_string()).unwrap_or_default()
                        ),
                    ));
                }
                (Some(IpAddr::V4(_)), _) => Family::V4,
                (Some(IpAddr::V6(_)), _) => Family::V6,
                (None, f) => f,
            };
            let listener = Listener {
                addr: l.addr,
                port: l.port.unwrap_or(port),
                proto: transport,
                family,
            };
            if out.contains(&listener) {
                return Err(self.err(
                    Dir::at(l.line, "local"),
                    "the same address, port and protocol are already listened on",
                ));
            }
            out.push(listener);
        }
        self.p.listeners = out;
        Ok(())
    }

    /// Expands `server-ipv6` and `server`, or checks `ifconfig`/`ifconfig-pool`.
    fn finish_tunnel(&mut self) -> Res<()> {
        let topology = self.topology.unwrap_or(Topology::Net30);
        let mut helper_push = Vec::new();

        if let Some((line, net, bits)) = self.server_ipv6 {
            let d = Dir::at(line, "server-ipv6");
            if let Some((pl, ..)) = self.pool_v6 {
                return Err(self.err(
                    d,
                    format!(
                        "'server-ipv6' already defines the IPv6 pool; remove 'ifconfig-ipv6-pool' \
                         (line {pl})"
                    ),
                ));
            }
            let base = u128::from(net) & prefix_mask6(bits);
            self.p.tunnel_v6 = Some(TunnelV6 {
                local: Ipv6Addr::from(base + 1),
                prefix_len: bits,
                remote: Some(Ipv6Addr::from(base + 2)),
                pool: Some((
                    Ipv6Addr::from(base + if bits < 112 { 0x1000 } else { 2 }),
                    bits,
                )),
            });
            helper_push.push("tun-ipv6".to_owned());
        } else if let Some((line, addr, bits, remote)) = self.ifconfig_ipv6 {
            let pool = self.pool_v6.map(|(_, b, n)| (b, n));
            if pool.is_none() {
                self.warn(
                    Dir::at(line, "ifconfig-ipv6"),
                    "no 'ifconfig-ipv6-pool': clients get IPv6 addresses only from \
                     'ifconfig-ipv6-push'",
                );
            }
            self.p.tunnel_v6 = Some(TunnelV6 {
                local: addr,
                prefix_len: bits,
                remote,
                pool,
            });
        } else if let Some((pl, ..)) = self.pool_v6 {
            return Err(self.err(
                Dir::at(pl, "ifconfig-ipv6-pool"),
                "needs 'ifconfig-ipv6' (or use 'server-ipv6')",
            ));
        }

        if let Some(s) = self.server {
            let d = Dir::at(s.line, "server");
            if let Some(pool) = self.pool.filter(|_| !s.nopool) {
                return Err(self.err(
                    d,
                    format!(
                        "'server' already defines the pool; remove 'ifconfig-pool' (line {}) \
                         or add 'nopool'",
                        pool.line
                    ),
                ));
            }
            if let Some((il, ..)) = self.ifconfig {
                return Err(self.err(
                    d,
                    format!(
                        "'server' already sets the server's addresses; remove 'ifconfig' (line \
                         {il})"
                    ),
                ));
            }
            let net = u32::from(s.network);
            let broadcast = net | !u32::from(prefix_to_mask(s.prefix_len));
            let at = |off: u32| Ipv4Addr::from(net + off);
            let mut pool = None;
            match topology {
                Topology::Net30 | Topology::P2p => {
                    if !s.nopool {
                        let reserve = if s.prefix_len == 29 { 0 } else { 4 };
                        pool = Some((at(4), Ipv4Addr::from(broadcast - reserve)));
                    }
                    self.p.routes.push(ServerRoute {
                        network: s.network,
                        prefix_len: s.prefix_len,
                        gateway: None,
                        metric: None,
                    });
                    if self.p.client_to_client {
                        helper_push.push(format!(
                            "route {} {}",
                            s.network,
                            prefix_to_mask(s.prefix_len)
                        ));
                    } else if topology == Topology::Net30 {
                        helper_push.push(format!("route {}", at(1)));
                    }
                    self.p.tunnel_v4 = Some(TunnelV4 {
                        local: at(1),
                        prefix_len: s.prefix_len,
                        remote: Some(at(2)),
                        topology,
                        pool,
                    });
                }
                Topology::Subnet => {
                    if !s.nopool {
                        pool = Some((at(2), Ipv4Addr::from(broadcast - 1)));
                    }
                    helper_push.push(format!("route-gateway {}", at(1)));
                    if self.p.route_gateway.is_none() {
                        self.p.route_gateway = Some(at(2));
                    }
                    self.p.tunnel_v4 = Some(TunnelV4 {
                        local: at(1),
                        prefix_len: s.prefix_len,
                        remote: None,
                        topology,
                        pool,
                    });
                }
            }
            helper_push.push(format!("topology {}", topology.name()));
            if topology == Topology::Net30 && !s.nopool {
                self.warn(
                    d,
                    "topology net30 (OpenVPN 2.6's default) is deprecated for servers with a \
                     pool; add 'topology subnet'",
                );
            }
        } else if let Some((line, local, other)) = self.ifconfig {
            let d = Dir::at(line, "ifconfig");
            let (prefix_len, remote) = match topology {
                Topology::Subnet => (
                    mask_to_prefix(other).ok_or_else(|| {
                        self.err(
                            d,
                            format!(
                                "with topology subnet the second argument is the netmask; \
                                 '{other}' is not one"
                            ),
                        )
                    })?,
                    None,
                ),
                Topology::Net30 | Topology::P2p => {
                    if mask_to_prefix(other).is_some_and(|p| p >= 8) {
                        self.warn(
                            d,
                            format!(
                                "'{other}' looks like a netmask, but with topology {} the \
                                 second argument is the peer address (add 'topology subnet'?)",
                                topology.name()
                            ),
                        );
                    }
                    (32, Some(other))
                }
            };
            let pool = self.pool.map(|p| (p.start, p.end));
            if let (Some((start, end)), Topology::Subnet) = (pool, topology) {
                let mask = u32::from(prefix_to_mask(prefix_len));
                let net = u32::from(local) & mask;
                if u32::from(start) & mask != net || u32::from(end) & mask != net {
                    return Err(self.err(
                        Dir::at(self.pool.map_or(line, |p| p.line), "ifconfig-pool"),
                        format!(
                            "the pool {start}-{end} is not inside the server's subnet \
                             {local}/{prefix_len}"
                        ),
                    ));
                }
            }
            self.p.tunnel_v4 = Some(TunnelV4 {
                local,
                prefix_len,
                remote,
                topology,
                pool,
            });
        } else if let Some(p) = self.pool {
            return Err(self.err(
                Dir::at(p.line, "ifconfig-pool"),
                "needs 'ifconfig' (or use 'server NETWORK NETMASK')",
            ));
        }

        if self.p.tunnel_v4.is_none() && self.p.tunnel_v6.is_none() {
            return Err(self.cx.incomplete(
                "no tunnel addresses: add 'server 10.8.0.0 255.255.255.0' (and/or 'server-ipv6 \
                 fd00::/64'), or 'ifconfig' with 'ifconfig-pool'",
            ));
        }
        self.p.push.extend(helper_push);
        Ok(())
    }

    /// `keepalive A B` on a server: push `ping A` / `ping-restart B`, use `ping A` and
    /// `ping-restart 2*B` locally.
    fn finish_keepalive(&mut self) {
        match self.common.keepalive {
            Some((_, ping, restart)) => {
                self.p.ping = Some(ping);
                self.p.ping_restart = Some(restart * 2);
                self.p.push.push(format!("ping {}", ping.as_secs()));
                self.p
                    .push
                    .push(format!("ping-restart {}", restart.as_secs()));
            }
            None if self.common.ping_line.is_none() => {
                self.p.warnings.push(Warning {
                    file: self.cx.file.clone(),
                    line: 0,
                    directive: "keepalive".to_owned(),
                    message: "no 'keepalive' (e.g. 'keepalive 10 120'): dead clients are never \
                              noticed"
                        .to_owned(),
                });
            }
            None => {}
        }
    }

    fn finish_ciphers(&mut self) -> Res<()> {
        self.common
            .finish_ciphers(&self.cx, Side::Server, self.p.fields())
    }

    fn finish_compression(&mut self) -> Res<()> {
        let Some((line, directive, text)) = self.real_compression.clone() else {
            return Ok(());
        };
        let d = Dir::at(line, directive);
        if self.p.allow_compression == AllowCompression::No {
            let hint = if self.common.allow_compression_set {
                "'allow-compression no' is set"
            } else {
                "compression is off by default"
            };
            return Err(self.err(
                d,
                format!(
                    "'{text}' makes clients compress, which leaks plaintext through packet sizes \
                     (VORACLE) and {hint}; use 'compress stub-v2' or 'compress migrate' (or, to \
                     accept it anyway, 'allow-compression asym')"
                ),
            ));
        }
        self.warn(
            d,
            "the server never compresses; compressed packets from clients are decompressed",
        );
        Ok(())
    }

    fn finish_tls(&mut self) -> Res<()> {
        let Some(ca) = self.common.ca.clone() else {
            return Err(self.cx.incomplete(
                "no 'ca': the certificate authority that signed the client certificates is \
                 needed (e.g. 'ca ca.crt')",
            ));
        };
        let (cert, key) = match (self.common.cert.clone(), self.common.key.clone()) {
            (Some(c), Some(k)) => (c, k),
            (Some(c), None) => return Err(self.cx.file_err(&c, "a 'cert' needs its 'key'")),
            (None, Some(k)) => return Err(self.cx.file_err(&k, "a 'key' needs its 'cert'")),
            (None, None) => {
                return Err(self.cx.incomplete(
                    "no 'cert' and 'key': the server needs its own certificate and private key \
                     (e.g. 'cert server.crt' and 'key server.key')",
                ));
            }
        };
        let cx = &self.cx;
        let b = cx.load_with(&ca, |b| {
            material::check_pem(b, "CERTIFICATE", "CA certificates").map(|()| b.to_vec())
        })?;
        self.p.tls.ca = Some(b);
        let b = cx.load_with(&cert, |b| {
            material::check_pem(b, "CERTIFICATE", "a certificate").map(|()| b.to_vec())
        })?;
        self.p.tls.cert = Some(b);
        let b = cx.load(&key)?;
        material::check_private_key(&b)
            .map_err(|m| cx.file_err(&key, format!("{}: {m}", Ctx::describe(&key))))?;
        self.p.tls.key = Some(b);
        if let Some(f) = self.common.extra_certs.clone() {
            let b = cx.load_with(&f, |b| {
                material::check_pem(b, "CERTIFICATE", "certificates").map(|()| b.to_vec())
            })?;
            self.p.tls.extra_certs = Some(b);
        }
        if let Some(f) = self.common.crl.clone() {
            let b = cx.load(&f)?;
            if b.iter().all(u8::is_ascii_whitespace) {
                return Err(cx.file_err(&f, format!("{} is empty", Ctx::describe(&f))));
            }
            self.p.tls.crl = Some(b);
            if let super::directive::Source::Path(p) = &f.source {
                self.p.crl_path = Some(cx.loader.display_path(Path::new(p)));
            }
        }
        let tls = &self.p.tls;
        match (&tls.tls_version_min, &tls.tls_version_max) {
            (Some(min), Some(max)) if min > max => Err(self.cx.incomplete(format!(
                "'tls-version-min {min}' is above 'tls-version-max {max}'"
            ))),
            _ => Ok(()),
        }
    }

    fn finish_wrap(&mut self) -> Res<()> {
        let has_v2 = self.common.wraps.iter().any(|(k, _)| *k == Wrap::CryptV2);
        if (self.tc2_verify.is_some() || self.tc2_max_age.is_some()) && !has_v2 {
            return Err(self.cx.incomplete(
                "'tls-crypt-v2-verify' / 'tls-crypt-v2-max-age' need 'tls-crypt-v2 SERVER-KEY'",
            ));
        }
        let Some((kind, f)) = self.common.last_wrap(&self.cx)? else {
            return Ok(());
        };
        let cx = &self.cx;
        match kind {
            Wrap::Auth => {
                let key = cx.load_with(&f, material::static_key)?;
                let direction = match self.common.key_direction {
                    Some(dir) => dir,
                    None => {
                        self.warn(
                            Dir::at(f.line, "tls-auth"),
                            "no key direction: both directions use the same key; the usual \
                             server setting is 'tls-auth FILE 0' (clients use 1)",
                        );
                        KeyDirection::Bidirectional
                    }
                };
                self.p.tls_wrap = Some(TlsWrap::Auth { key, direction });
            }
            Wrap::Crypt => {
                let key = cx.load_with(&f, material::static_key)?;
                self.p.tls_wrap = Some(TlsWrap::Crypt { key });
            }
            Wrap::CryptV2 => {
                let key = cx.load_with(&f, |b| {
                    material::key1_pem(b, material::TLS_CRYPT_V2_SERVER_LABEL)
                })?;
                self.p.tls_crypt_v2 = Some(TlsCryptV2Server {
                    key,
                    verify: self.tc2_verify.clone(),
                    max_age: self.tc2_max_age,
                    allow_noncookie: self.tc2_allow_noncookie,
                });
            }
        }
        Ok(())
    }

    fn finish_auth(&mut self) -> Res<()> {
        if let Some(f) = self.auth_token_secret.clone() {
            if self.p.auth_gen_token.is_none() {
                self.warn(
                    Dir::at(f.line, "auth-gen-token-secret"),
                    "has no effect without 'auth-gen-token'",
                );
            }
            let key = self
                .cx
                .load_with(&f, |b| material::key1_pem(b, material::AUTH_TOKEN_LABEL))?;
            self.p.auth_gen_token_secret = Some(key);
        }
        let verify = self.p.auth_user_pass_verify.clone();
        if self.p.verify_client_cert != VerifyClientCert::Require && verify.is_none() {
            let line = self.verify_client_cert_line.unwrap_or(0);
            return Err(self.err(
                Dir::at(line, "verify-client-cert"),
                "without a client certificate nothing authenticates the clients; add \
                 'auth-user-pass-verify SCRIPT via-file' (or use 'verify-client-cert require')",
            ));
        }
        if self.p.username_as_common_name && verify.is_none() {
            return Err(self
                .cx
                .incomplete("'username-as-common-name' needs 'auth-user-pass-verify'"));
        }
        let needed = match &verify {
            Some(v) if v.method == CredentialsVia::Env => Some((3, "auth-user-pass-verify")),
            Some(_) => Some((2, "auth-user-pass-verify")),
            None if self.p.client_connect.is_some() => Some((2, "client-connect")),
            None if self.p.client_disconnect.is_some() => Some((2, "client-disconnect")),
            None if self.p.learn_address.is_some() => Some((2, "learn-address")),
            None if self.tc2_verify.is_some() => Some((2, "tls-crypt-v2-verify")),
            None => None,
        };
        if let Some((level, what)) = needed.filter(|(l, _)| self.p.script_security < *l) {
            let why = if level == 3 {
                " (via-env passes the password in the environment; 'via-file' needs only 2)"
            } else {
                ""
            };
            return Err(self.cx.incomplete(format!(
                "'{what}' runs a script, which needs 'script-security {level}'{why}; the \
                 level is {}",
                self.p.script_security
            )));
        }
        Ok(())
    }
}

/// The network mask of an IPv6 prefix length.
fn prefix_mask6(bits: u8) -> u128 {
    match bits {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n.min(128))),
    }
}

/// One CCD directive.
fn ccd_directive(cx: &Ctx<'_>, d: Dir<'_>, e: &mut CcdEntry) -> Res<()> {
    let a = d.args;
    if d.inline.is_some() {
        return Err(cx.err(
            d,
            "inline blocks are not allowed in a client-config-dir file",
        ));
    }
    let ipv4 = |s: &str| -> Res<Ipv4Addr> {
        s.parse()
            .map_err(|_| cx.err(d, format!("'{s}' is not an IPv4 address")))
    };
    let ipv6_net = |s: &str| -> Res<(Ipv6Addr, u8)> {
        let (addr, bits) = s.split_once('/').unwrap_or((s, "128"));
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| cx.err(d, format!("'{addr}' is not an IPv6 address")))?;
        let bits = bits
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= 128)
            .ok_or_else(|| cx.err(d, format!("'/{bits}' is not a prefix length (0-128)")))?;
        Ok((addr, bits))
    };
    match d.name {
        "ifconfig-push" => {
            cx.nargs(d, 2, 3)?;
            e.ifconfig_push = Some(IfconfigPush {
                local: ipv4(&a[0])?,
                remote_netmask: ipv4(&a[1])?,
            });
        }
        "ifconfig-ipv6-push" => {
            cx.nargs(d, 1, 2)?;
            if !a[0].contains('/') {
                return Err(cx.err(d, format!("'{}' needs a prefix length, e.g. /64", a[0])));
            }
            let (local, prefix_len) = ipv6_net(&a[0])?;
            let remote = a
                .get(1)
                .map(|r| {
                    r.parse::<Ipv6Addr>()
                        .map_err(|_| cx.err(d, format!("'{r}' is not an IPv6 address")))
                })
                .transpose()?;
            e.ifconfig_ipv6_push = Some(IfconfigIpv6Push {
                local,
                prefix_len,
                remote,
            });
        }
        "iroute" => {
            cx.nargs(d, 1, 2)?;
            let net = ipv4(&a[0])?;
            let bits = match a.get(1) {
                Some(m) => mask_to_prefix(ipv4(m)?)
                    .ok_or_else(|| cx.err(d, format!("'{m}' is not a netmask")))?,
                None => 32,
            };
            if u32::from(net) & !u32::from(prefix_to_mask(bits)) != 0 {
                return Err(cx.err(d, format!("{net} has bits outside the netmask")));
            }
            e.iroutes.push((net, bits));
        }
        "iroute-ipv6" => {
            cx.nargs(d, 1, 1)?;
            e.iroutes_ipv6.push(ipv6_net(&a[0])?);
        }
        "push" => {
            cx.nargs(d, 1, 1)?;
            e.push.push(a[0].clone());
        }
        "push-reset" => {
            cx.nargs(d, 0, 0)?;
            e.push_reset = true;
            e.push.clear();
        }
        "push-remove" => {
            cx.nargs(d, 1, 1)?;
            e.push.retain(|p| !p.contains(a[0].as_str()));
            e.push_remove.push(a[0].clone());
        }
        "disable" => {
            cx.nargs(d, 0, 0)?;
            e.disable = true;
        }
        "config" => {
            e.warnings.push(cx.warning(
                d,
                "including other files is not supported in client-config-dir files, ignored",
            ));
        }
        "echo" | "setenv" | "vlan-pvid" | "inactive" | "override-username" => {
            e.warnings
                .push(cx.warning(d, "not supported here, ignored"));
        }
        name if CLIENT_ONLY.contains(&name) => {
            return Err(cx.err(
                d,
                format!("'{name}' is a client directive; this is a client-config-dir file"),
            ));
        }
        _ => {
            e.warnings.push(cx.warning(
                d,
                "unknown or not allowed in a client-config-dir file, ignored",
            ));
        }
    }
    Ok(())
}

/// A server configuration with every OpenVPN default and nothing else.
fn default_server_profile(source: &Path) -> ServerProfile {
    ServerProfile {
        source: source.to_owned(),
        listeners: Vec::new(),
        dev: "tun".to_owned(),
        tunnel_v4: None,
        tunnel_v6: None,
        ifconfig_pool_persist: None,
        tun_mtu: 1500,
        mssfix: Some(1492),
        persist_tun: false,
        persist_key: false,
        user: None,
        group: None,
        chroot: None,
        writepid: None,
        push: Vec::new(),
        routes: Vec::new(),
        routes_ipv6: Vec::new(),
        route_gateway: None,
        client_to_client: false,
        duplicate_cn: false,
        max_clients: 1024,
        ping: None,
        ping_restart: None,
        ping_exit: None,
        inactive: None,
        reneg_sec: Duration::from_secs(3600),
        reneg_bytes: None,
        hand_window: Duration::from_secs(60),
        tls_timeout: Duration::from_secs(2),
        tran_window: Duration::from_secs(3600),
        connect_freq: None,
        connect_freq_initial: RateLimit {
            count: 100,
            per: Duration::from_secs(10),
        },
        replay_window: ReplayWindow {
            size: 64,
            time: Duration::from_secs(15),
        },
        tls: TlsSettings::default(),
        crl_path: None,
        tls_wrap: None,
        tls_crypt_v2: None,
        auth: Digest::Sha1,
        data_ciphers: Cipher::default_list(),
        data_ciphers_fallback: None,
        verify_client_cert: VerifyClientCert::Require,
        auth_user_pass_verify: None,
        username_as_common_name: false,
        auth_gen_token: None,
        auth_gen_token_secret: None,
        script_security: 1,
        client_connect: None,
        client_disconnect: None,
        learn_address: None,
        client_config_dir: None,
        ccd_exclusive: false,
        compression: Compression::None,
        compress_migrate: false,
        allow_compression: AllowCompression::No,
        explicit_exit_notify: 0,
        status: None,
        status_version: 1,
        management: None,
        log: None,
        verb: 1,
        mute: None,
        suppress_timestamps: false,
        userspace_allow: Vec::new(),
        warnings: Vec::new(),
    }
}
