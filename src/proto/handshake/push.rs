//! PUSH_REPLY parsing: the server's options, typed, after `pull-filter` and `route-nopull`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::config::{
    Compression, DhcpOption, PullFilter, PullFilterAction, RedirectGateway, Route6Spec, RouteSpec,
};
use crate::proto::keys::Cipher;

/// `topology`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Topology {
    /// `net30` (the 2.x default when not pushed).
    #[default]
    Net30,
    /// `p2p`.
    P2p,
    /// `subnet`.
    Subnet,
}

/// One server of the 2.6 `dns` option.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DnsServer {
    /// Priority (lower first).
    pub priority: i32,
    /// Addresses (port ignored unless 53).
    pub addresses: Vec<IpAddr>,
    /// `resolve-domains` (split DNS).
    pub resolve_domains: Vec<String>,
}

/// Everything the server pushed that the client uses.
#[derive(Clone, Debug, Default)]
pub struct PushedOptions {
    /// `ifconfig a b`: local and netmask (subnet) or remote (net30/p2p).
    pub ifconfig: Option<(Ipv4Addr, Ipv4Addr)>,
    /// `ifconfig-ipv6 addr/bits [gw]`.
    pub ifconfig_ipv6: Option<(Ipv6Addr, u8, Option<Ipv6Addr>)>,
    /// `topology`.
    pub topology: Topology,
    /// `route`.
    pub routes: Vec<RouteSpec>,
    /// `route-ipv6`.
    pub routes_ipv6: Vec<Route6Spec>,
    /// `route-gateway`.
    pub route_gateway: Option<Ipv4Addr>,
    /// `redirect-gateway`.
    pub redirect_gateway: Option<RedirectGateway>,
    /// `dhcp-option`.
    pub dhcp_options: Vec<DhcpOption>,
    /// `dns server N address ...`.
    pub dns_servers: Vec<DnsServer>,
    /// `dns search-domains ...`.
    pub dns_search_domains: Vec<String>,
    /// `peer-id`.
    pub peer_id: Option<u32>,
    /// `cipher`.
    pub cipher: Option<Cipher>,
    /// `tun-mtu`.
    pub tun_mtu: Option<u16>,
    /// `protocol-flags cc-exit`.
    pub cc_exit: bool,
    /// `key-derivation tls-ekm` or `protocol-flags tls-ekm`.
    pub tls_ekm: bool,
    /// `ping`.
    pub ping: Option<Duration>,
    /// `ping-restart`.
    pub ping_restart: Option<Duration>,
    /// `ping-exit`.
    pub ping_exit: Option<Duration>,
    /// `auth-token`.
    pub auth_token: Option<String>,
    /// `auth-token-user` (decoded).
    pub auth_token_user: Option<String>,
    /// `comp-lzo` / `compress`.
    pub compression: Option<Compression>,
    /// `block-ipv6`.
    pub block_ipv6: bool,
    /// `route-metric`.
    pub route_metric: Option<u32>,
    /// `explicit-exit-notify`.
    pub explicit_exit_notify: Option<u32>,
    /// Options ignored, with the reason (for warnings).
    pub ignored: Vec<String>,
    /// Chunks and bytes applied so far (bounded by [`MAX_PUSH_CHUNKS`], [`MAX_PUSH_BYTES`]).
    received: (u32, usize),
}

/// A push the client cannot accept.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    /// `pull-filter reject` matched.
    #[error("the pushed option '{0}' matches a 'pull-filter reject' of the profile")]
    Rejected(String),
    /// Unsupported data cipher.
    #[error("the server pushed data cipher '{0}', which is not supported")]
    Cipher(String),
    /// Compression the profile does not allow.
    #[error(
        "the server pushed '{0}', but compression is refused ('allow-compression no', the default): compression leaks plaintext through packet sizes (VORACLE). Ask the server's admin for 'compress stub-v2' or 'compress migrate', or add 'allow-compression asym' to the profile to accept compressed packets (ours stay uncompressed)"
    )]
    Compression(String),
    /// A malformed option.
    #[error("malformed pushed option '{0}'")]
    Malformed(String),
    /// `dev-type tap` etc.
    #[error("the server pushed '{0}', which this client cannot honour")]
    Unsupported(String),
    /// More continuation chunks or option bytes than any real push needs.
    #[error(
        "the server's push reply exceeds {MAX_PUSH_CHUNKS} chunks or {MAX_PUSH_BYTES} bytes (endless 'push-continuation 2'?): refusing it"
    )]
    TooLarge,
}

/// At most this many PUSH_REPLY chunks (`push-continuation 2`) make one push...
pub const MAX_PUSH_CHUNKS: u32 = 1024;
/// ... and at most this many bytes of options in all of them together.
pub const MAX_PUSH_BYTES: usize = 1 << 20;

/// How the profile restricts pushed options.
#[derive(Clone, Debug, Default)]
pub struct PullPolicy {
    /// `pull-filter` rules.
    pub filters: Vec<PullFilter>,
    /// `route-nopull`.
    pub route_nopull: bool,
    /// Whether compressed framing beyond stubs may be accepted (`allow-compression asym|yes`).
    pub allow_compression: bool,
}

fn secs(tok: Option<&String>) -> Option<Duration> {
    tok.and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
}

impl PushedOptions {
    /// Applies one PUSH_REPLY chunk body (the text after `PUSH_REPLY,`). Returns whether more
    /// chunks follow (`push-continuation 2`).
    pub fn apply_chunk(&mut self, body: &str, policy: &PullPolicy) -> Result<bool, PushError> {
        self.received.0 += 1;
        self.received.1 += body.len();
        if self.received.0 > MAX_PUSH_CHUNKS || self.received.1 > MAX_PUSH_BYTES {
            return Err(PushError::TooLarge);
        }
        let mut more = false;
        for opt in body.split(',') {
            let opt = opt.trim();
            if opt.is_empty() {
                continue;
            }
            match filter(opt, &policy.filters) {
                Some(PullFilterAction::Ignore) => {
                    self.ignored.push(format!("{opt} (pull-filter ignore)"));
                    continue;
                }
                Some(PullFilterAction::Reject) => return Err(PushError::Rejected(opt.to_owned())),
                _ => {}
            }
            let toks =
                crate::config::tokenize(opt).map_err(|_| PushError::Malformed(opt.to_owned()))?;
            let Some(name) = toks.first() else { continue };
            if name == "push-continuation" {
                more = toks.get(1).map(String::as_str) == Some("2");
                continue;
            }
            self.apply_option(name, &toks[1..], opt, policy)?;
        }
        Ok(more)
    }

    fn apply_option(
        &mut self,
        name: &str,
        args: &[String],
        raw: &str,
        policy: &PullPolicy,
    ) -> Result<(), PushError> {
        let malformed = || PushError::Malformed(raw.to_owned());
        let routing = matches!(
            name,
            "route"
                | "route-ipv6"
                | "redirect-gateway"
                | "redirect-private"
                | "route-gateway"
                | "dhcp-option"
                | "dns"
                | "block-ipv6"
                | "route-metric"
        );
        if routing && policy.route_nopull {
            self.ignored.push(format!("{raw} (route-nopull)"));
            return Ok(());
        }
        match name {
            "ifconfig" => {
                let a = args
                    .first()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(malformed)?;
                let b = args
                    .get(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(malformed)?;
                self.ifconfig = Some((a, b));
            }
            "ifconfig-ipv6" => {
                let spec = args.first().ok_or_else(malformed)?;
                let (addr, bits) = spec.split_once('/').unwrap_or((spec.as_str(), "64"));
                let addr = addr.parse().map_err(|_| malformed())?;
                let bits = bits.parse().map_err(|_| malformed())?;
                let gw = args.get(1).and_then(|s| s.parse().ok());
                self.ifconfig_ipv6 = Some((addr, bits, gw));
            }
            "topology" => {
                self.topology = match args.first().map(String::as_str) {
                    Some("subnet") => Topology::Subnet,
                    Some("p2p") => Topology::P2p,
                    Some("net30") => Topology::Net30,
                    _ => return Err(malformed()),
                }
            }
            "route" => {
                let network = args.first().ok_or_else(malformed)?.clone();
                self.routes.push(RouteSpec {
                    network,
                    netmask: args.get(1).cloned(),
                    gateway: args.get(2).cloned(),
                    metric: args.get(3).and_then(|m| m.parse().ok()),
                });
            }
            "route-ipv6" => {
                let network = args.first().ok_or_else(malformed)?.clone();
                self.routes_ipv6.push(Route6Spec {
                    network,
                    gateway: args.get(1).cloned(),
                    metric: args.get(2).and_then(|m| m.parse().ok()),
                });
            }
            "route-gateway" => {
                if let Some(gw) = args.first().and_then(|s| s.parse().ok()) {
                    self.route_gateway = Some(gw);
                }
            }
            "redirect-gateway" | "redirect-private" => {
                let mut rg = RedirectGateway::default();
                for a in args {
                    rg.set_flag(a);
                }
                if name == "redirect-gateway" {
                    self.redirect_gateway = Some(rg);
                } else {
                    self.ignored
                        .push(format!("{raw} (redirect-private is not supported)"));
                }
            }
            "dhcp-option" => {
                let kind = args.first().ok_or_else(malformed)?.to_ascii_uppercase();
                let val = args.get(1).cloned().unwrap_or_default();
                let opt = match kind.as_str() {
                    "DNS" | "DNS6" => DhcpOption::Dns(val.parse().map_err(|_| malformed())?),
                    "DOMAIN" | "ADAPTER_DOMAIN_SUFFIX" => DhcpOption::Domain(val),
                    "DOMAIN-SEARCH" => DhcpOption::DomainSearch(val),
                    _ => DhcpOption::Other(kind, val),
                };
                self.dhcp_options.push(opt);
            }
            "dns" => self.apply_dns(args).ok_or_else(malformed)?,
            "peer-id" => {
                self.peer_id = Some(
                    args.first()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(malformed)?,
                )
            }
            "cipher" => {
                let c = args.first().ok_or_else(malformed)?;
                self.cipher = Some(c.parse().map_err(|_| PushError::Cipher(c.clone()))?);
            }
            "tun-mtu" => {
                self.tun_mtu = Some(
                    args.first()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(malformed)?,
                )
            }
            "protocol-flags" => {
                for a in args {
                    match a.as_str() {
                        "cc-exit" => self.cc_exit = true,
                        "tls-ekm" => self.tls_ekm = true,
                        other => self
                            .ignored
                            .push(format!("protocol-flags {other} (not announced)")),
                    }
                }
            }
            "key-derivation" => {
                if args.first().map(String::as_str) == Some("tls-ekm") {
                    self.tls_ekm = true;
                }
            }
            "ping" => self.ping = secs(args.first()),
            "ping-restart" => self.ping_restart = secs(args.first()),
            "ping-exit" => self.ping_exit = secs(args.first()),
            "auth-token" => self.auth_token = args.first().cloned(),
            "auth-token-user" => {
                use base64::Engine;
                let raw_user = args.first().ok_or_else(malformed)?;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(raw_user)
                    .map_err(|_| malformed())?;
                self.auth_token_user = Some(String::from_utf8(decoded).map_err(|_| malformed())?);
            }
            "comp-lzo" => {
                let c = match args.first().map(String::as_str) {
                    Some("no") => Compression::LzoFraming,
                    None | Some("yes" | "adaptive") => Compression::Lzo,
                    _ => return Err(malformed()),
                };
                if c.compresses() && !policy.allow_compression {
                    return Err(PushError::Compression(raw.to_owned()));
                }
                self.compression = Some(c);
            }
            "compress" => {
                let c = match args.first().map(String::as_str).unwrap_or("stub") {
                    "stub" => Compression::Stub,
                    "stub-v2" => Compression::StubV2,
                    "lz4" => Compression::Lz4,
                    "lz4-v2" => Compression::Lz4V2,
                    "lzo" => Compression::Lzo,
                    _ => return Err(malformed()),
                };
                if c.compresses() && !policy.allow_compression {
                    return Err(PushError::Compression(raw.to_owned()));
                }
                self.compression = Some(c);
            }
            "comp-noadapt" => {}
            "block-ipv6" => self.block_ipv6 = true,
            "route-metric" => self.route_metric = args.first().and_then(|s| s.parse().ok()),
            "explicit-exit-notify" => {
                self.explicit_exit_notify =
                    Some(args.first().and_then(|s| s.parse().ok()).unwrap_or(1))
            }
            "dev-type" if args.first().map(String::as_str) == Some("tap") => {
                return Err(PushError::Unsupported(raw.to_owned()));
            }
            "echo" | "setenv" | "setenv-safe" | "inactive" | "session-timeout" | "sndbuf"
            | "rcvbuf" | "socket-flags" | "register-dns" | "block-outside-dns" | "shaper"
            | "dev-type" | "client-nat" | "ifconfig-ipv6-pool" | "auth-retry" => {
                self.ignored.push(raw.to_owned());
            }
            // No-ops since OpenVPN 2.4, still pushed by many servers.
            "tun-ipv6" | "route-delay" | "persist-tun" | "persist-key" => {}
            _ => self.ignored.push(format!("{raw} (unknown)")),
        }
        Ok(())
    }

    fn apply_dns(&mut self, args: &[String]) -> Option<()> {
        match args.first()?.as_str() {
            "search-domains" => self.dns_search_domains.extend(args[1..].iter().cloned()),
            "server" => {
                let priority: i32 = args.get(1)?.parse().ok()?;
                let idx = match self.dns_servers.iter().position(|s| s.priority == priority) {
                    Some(i) => i,
                    None => {
                        self.dns_servers.push(DnsServer {
                            priority,
                            ..Default::default()
                        });
                        self.dns_servers.len() - 1
                    }
                };
                let server = &mut self.dns_servers[idx];
                match args.get(2)?.as_str() {
                    "address" => {
                        for a in &args[3..] {
                            if let Some(ip) = parse_dns_address(a) {
                                server.addresses.push(ip);
                            }
                        }
                    }
                    "resolve-domains" => server.resolve_domains.extend(args[3..].iter().cloned()),
                    _ => {}
                }
                self.dns_servers.sort_by_key(|s| s.priority);
            }
            _ => {}
        }
        Some(())
    }

    /// DNS servers from `dns` (preferred, as 2.6 does) or `dhcp-option DNS`.
    pub fn dns_addresses(&self) -> Vec<IpAddr> {
        let from_dns: Vec<IpAddr> = self
            .dns_servers
            .iter()
            .flat_map(|s| s.addresses.iter().copied())
            .collect();
        if !from_dns.is_empty() {
            return from_dns;
        }
        self.dhcp_options
            .iter()
            .filter_map(|o| match o {
                DhcpOption::Dns(ip) => Some(*ip),
                _ => None,
            })
            .collect()
    }

    /// Search domains from `dns search-domains` or `dhcp-option DOMAIN/DOMAIN-SEARCH`.
    pub fn search_domains(&self) -> Vec<String> {
        if !self.dns_search_domains.is_empty() {
            return self.dns_search_domains.clone();
        }
        self.dhcp_options
            .iter()
            .filter_map(|o| match o {
                DhcpOption::Domain(d) | DhcpOption::DomainSearch(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    /// Split-DNS domains (`dns server N resolve-domains`).
    pub fn split_domains(&self) -> Vec<String> {
        self.dns_servers
            .iter()
            .flat_map(|s| s.resolve_domains.iter().cloned())
            .collect()
    }
}

fn parse_dns_address(a: &str) -> Option<IpAddr> {
    if let Ok(ip) = a.parse() {
        return Some(ip);
    }
    // `[v6]:port` or `v4:port`.
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    a.rsplit_once(':')?.0.parse().ok()
}

fn filter(opt: &str, filters: &[PullFilter]) -> Option<PullFilterAction> {
    filters
        .iter()
        .find(|f| opt.starts_with(&f.prefix))
        .map(|f| f.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_reply() {
        let mut p = PushedOptions::default();
        let more = p
            .apply_chunk(
                "route-gateway 198.19.1.1,topology subnet,ping 2,ping-restart 20,ifconfig 198.19.1.2 255.255.255.0,peer-id 0,cipher AES-256-GCM,protocol-flags cc-exit tls-ekm dyn-tls-crypt,tun-mtu 1500,dhcp-option DNS 198.19.1.53,dhcp-option DOMAIN test.internal,route-ipv6 2001:db8:2::/64,ifconfig-ipv6 2001:db8:1::1000/64 2001:db8:1::1,redirect-gateway def1 ipv6",
                &PullPolicy::default(),
            )
            .unwrap();
        assert!(!more);
        assert_eq!(p.topology, Topology::Subnet);
        assert_eq!(
            p.ifconfig,
            Some((
                "198.19.1.2".parse().unwrap(),
                "255.255.255.0".parse().unwrap()
            ))
        );
        assert_eq!(p.peer_id, Some(0));
        assert_eq!(p.cipher, Some(Cipher::Aes256Gcm));
        assert!(p.cc_exit && p.tls_ekm);
        assert_eq!(p.ping_restart, Some(Duration::from_secs(20)));
        assert_eq!(
            p.dns_addresses(),
            vec!["198.19.1.53".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(p.search_domains(), vec!["test.internal".to_owned()]);
        assert_eq!(p.ifconfig_ipv6.unwrap().1, 64);
        assert!(p.redirect_gateway.unwrap().def1);
    }

    #[test]
    fn endless_continuation_and_oversized_push_are_refused() {
        let policy = PullPolicy::default();
        let mut p = PushedOptions::default();
        let mut chunks = 0;
        let err = loop {
            match p.apply_chunk("route 10.0.0.0 255.0.0.0,push-continuation 2", &policy) {
                Ok(more) => assert!(more),
                Err(e) => break e,
            }
            chunks += 1;
            assert!(chunks <= MAX_PUSH_CHUNKS, "never stops");
        };
        assert_eq!(err, PushError::TooLarge);
        assert_eq!(chunks, MAX_PUSH_CHUNKS);
        assert!(err.to_string().contains("push-continuation"), "{err}");
        // One huge chunk: refused before its options are parsed.
        let mut p = PushedOptions::default();
        let huge = "route 10.0.0.0 255.0.0.0,".repeat(MAX_PUSH_BYTES / 20);
        assert_eq!(p.apply_chunk(&huge, &policy), Err(PushError::TooLarge));
        assert!(p.routes.is_empty());
        // A large but sane push still goes through.
        let mut p = PushedOptions::default();
        let many: String = (0..2000)
            .map(|i| format!("route 10.{}.{}.0 255.255.255.0,", i / 256, i % 256))
            .collect();
        assert_eq!(p.apply_chunk(&many, &policy), Ok(false));
        assert_eq!(p.routes.len(), 2000);
    }

    #[test]
    fn continuation_filters_and_refusals() {
        let mut p = PushedOptions::default();
        let policy = PullPolicy {
            filters: vec![PullFilter {
                action: PullFilterAction::Ignore,
                prefix: "route ".into(),
            }],
            route_nopull: false,
            allow_compression: false,
        };
        assert!(
            p.apply_chunk("route 10.0.0.0 255.0.0.0,push-continuation 2", &policy)
                .unwrap()
        );
        assert!(p.routes.is_empty());
        assert!(
            !p.apply_chunk("compress stub-v2,push-continuation 1", &policy)
                .unwrap()
        );
        assert_eq!(p.compression, Some(Compression::StubV2));
        assert!(matches!(
            p.apply_chunk("compress lz4-v2", &policy),
            Err(PushError::Compression(_))
        ));
        assert!(matches!(
            p.apply_chunk("cipher BF-CBC", &policy),
            Err(PushError::Cipher(_))
        ));
        let nopull = PullPolicy {
            route_nopull: true,
            ..Default::default()
        };
        let mut q = PushedOptions::default();
        q.apply_chunk(
            "route 10.0.0.0 255.0.0.0,dhcp-option DNS 1.2.3.4,ifconfig 10.8.0.2 255.255.255.0",
            &nopull,
        )
        .unwrap();
        assert!(q.routes.is_empty() && q.dhcp_options.is_empty() && q.ifconfig.is_some());
        for (opt, want) in [
            ("comp-lzo no", Compression::LzoFraming),
            ("comp-lzo", Compression::Lzo),
            ("comp-lzo yes", Compression::Lzo),
            ("compress lz4", Compression::Lz4),
            ("compress lz4-v2", Compression::Lz4V2),
            ("compress lzo", Compression::Lzo),
            ("compress", Compression::Stub),
        ] {
            let mut p = PushedOptions::default();
            let refused = p.apply_chunk(opt, &policy);
            assert_eq!(refused.is_err(), want.compresses(), "{opt}");
            let allowed = PullPolicy {
                allow_compression: true,
                ..PullPolicy::default()
            };
            p.apply_chunk(&format!("{opt},comp-noadapt"), &allowed)
                .unwrap();
            assert_eq!(p.compression, Some(want), "{opt}");
        }
        let e = PushedOptions::default()
            .apply_chunk("comp-lzo yes", &policy)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("allow-compression asym") && e.contains("VORACLE"),
            "{e}"
        );
        assert!(matches!(
            PushedOptions::default().apply_chunk("compress zstd", &policy),
            Err(PushError::Malformed(_))
        ));
    }

    #[test]
    fn dns_option_and_tokens() {
        let mut p = PushedOptions::default();
        p.apply_chunk(
            "dns server 1 address 198.19.1.53 [2001:db8::53]:53,dns server 1 resolve-domains corp.example,dns search-domains a.example b.example,auth-token-user dXNlcg==,auth-token SESS_ID",
            &PullPolicy::default(),
        )
        .unwrap();
        assert_eq!(p.dns_addresses().len(), 2);
        assert_eq!(p.split_domains(), vec!["corp.example".to_owned()]);
        assert_eq!(p.search_domains().len(), 2);
        assert_eq!(p.auth_token_user.as_deref(), Some("user"));
        assert_eq!(
            crate::config::tokenize(r#"a "b c" 'd e' f\ g"#).unwrap(),
            vec!["a", "b c", "d e", "f g"]
        );
    }
}
