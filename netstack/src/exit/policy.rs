//! Which destinations VPN clients may reach through the exit: [`AllowRule`] (parsed from
//! `CIDR[:PORTS]`) and the decision over a list of them. Pure: no sockets, no clock.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// One allowed destination range: addresses in `net`, ports in `ports` (inclusive; `None`:
/// every port).
///
/// Text form: `CIDR[:PORTS]` with `PORTS` either `80` or `8000-8100`. IPv6 takes brackets when
/// ports follow (`[2001:db8::/32]:443`); without ports they are optional (`2001:db8::/32`). A
/// bare address means that one host (`10.0.0.5` is `10.0.0.5/32`). Host bits in the CIDR are
/// cleared (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AllowRule {
    pub net: IpNet,
    pub ports: Option<(u16, u16)>,
}

/// Why an allow rule did not parse; the message names the input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid allow rule {input:?}: {reason} (expected CIDR[:PORTS], e.g. 10.0.0.0/8:443, 192.0.2.7:8000-8100 or [2001:db8::/32]:443)"
)]
pub struct ParseAllowRuleError {
    input: String,
    reason: String,
}

impl AllowRule {
    /// Every port of `net`.
    pub fn net(net: IpNet) -> Self {
        Self { net, ports: None }
    }

    /// Whether `dst` falls under this rule. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
    /// matched as the IPv4 address it stands for, and as itself.
    pub fn matches(&self, dst: SocketAddr) -> bool {
        let port_ok = self
            .ports
            .is_none_or(|(lo, hi)| (lo..=hi).contains(&dst.port()));
        port_ok && (self.net.contains(&dst.ip()) || self.net.contains(&dst.ip().to_canonical()))
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.net, self.ports) {
            (net, None) => write!(f, "{net}"),
            (IpNet::V6(net), Some(p)) => write!(f, "[{net}]:{}", Ports(p)),
            (IpNet::V4(net), Some(p)) => write!(f, "{net}:{}", Ports(p)),
        }
    }
}

struct Ports((u16, u16));

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = self.0;
        if lo == hi {
            write!(f, "{lo}")
        } else {
            write!(f, "{lo}-{hi}")
        }
    }
}

impl FromStr for AllowRule {
    type Err = ParseAllowRuleError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseAllowRuleError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty".into()));
        }
        let (net, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (net, after) = rest
                .split_once(']')
                .ok_or_else(|| err("missing ']'".into()))?;
            let ports = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err(format!("unexpected {p:?} after ']'")))?,
                ),
            };
            (net, ports)
        } else if s.matches(':').count() >= 2 {
            // IPv6 without brackets: no port part possible.
            (s, None)
        } else {
            match s.split_once(':') {
                Some((net, ports)) => (net, Some(ports)),
                None => (s, None),
            }
        };
        let net = parse_net(net).map_err(err)?;
        let ports = ports.map(parse_ports).transpose().map_err(err)?;
        Ok(Self { net, ports })
    }
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    if s.contains('/') {
        let net: IpNet = s
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network (address/prefix length)"))?;
        Ok(net.trunc())
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network"))?;
        Ok(IpNet::from(ip))
    }
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!("port range {lo}-{hi} is reversed"));
    }
    Ok((lo, hi))
}

/// The exit's destination policy.
///
/// With no rules everything is allowed but loopback; with rules only what a rule matches (so
/// loopback only when a rule names it). Unspecified, multicast and broadcast destinations and
/// port 0 are never allowed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policy {
    rules: Vec<AllowRule>,
}

impl Policy {
    pub(crate) fn new(rules: Vec<AllowRule>) -> Self {
        Self { rules }
    }

    pub(crate) fn allows(&self, dst: SocketAddr) -> bool {
        let ip = dst.ip().to_canonical();
        if dst.port() == 0
            || ip.is_unspecified()
            || ip.is_multicast()
            || ip == IpAddr::V4(Ipv4Addr::BROADCAST)
        {
            return false;
        }
        if self.rules.is_empty() {
            return !ip.is_loopback();
        }
        self.rules.iter().any(|r| r.matches(dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> AllowRule {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            rule("10.0.0.0/8"),
            AllowRule {
                net: "10.0.0.0/8".parse().unwrap(),
                ports: None
            }
        );
        assert_eq!(rule("10.0.0.0/8:443").ports, Some((443, 443)));
        assert_eq!(rule("192.0.2.7:8000-8100").ports, Some((8000, 8100)));
        assert_eq!(rule("192.0.2.7").net, "192.0.2.7/32".parse().unwrap());
        assert_eq!(rule("10.1.2.3/8").net, "10.0.0.0/8".parse().unwrap());
        let v6 = rule("[2001:db8::/32]:443");
        assert_eq!(v6.net, "2001:db8::/32".parse().unwrap());
        assert_eq!(v6.ports, Some((443, 443)));
        assert_eq!(rule("2001:db8::/32").ports, None);
        assert_eq!(rule("::1").net, "::1/128".parse().unwrap());
        assert_eq!(rule("[::1]").net, "::1/128".parse().unwrap());
        assert_eq!(rule(" 127.0.0.1/32 ").net, "127.0.0.1/32".parse().unwrap());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10.0.0.0/8",
            "10.0.0.0/8:443",
            "192.0.2.7/32:8000-8100",
            "[2001:db8::/32]:443",
            "2001:db8::/32",
        ] {
            assert_eq!(rule(s).to_string(), s);
            assert_eq!(rule(&rule(s).to_string()), rule(s));
        }
    }

    #[test]
    fn rejects_bad_input_with_a_clear_message() {
        for (s, needle) in [
            ("", "empty"),
            ("10.0.0.0/33", "not an IP network"),
            ("example.com:80", "not an IP address"),
            ("10.0.0.0/8:http", "not a port"),
            ("10.0.0.0/8:0", "not a port"),
            ("10.0.0.0/8:70000", "not a port"),
            ("10.0.0.0/8:90-80", "reversed"),
            ("[2001:db8::/32:443", "missing ']'"),
            ("[2001:db8::/32]443", "after ']'"),
            ("2001:db8::/32:443", "not an IP network"),
        ] {
            let e = s.parse::<AllowRule>().unwrap_err().to_string();
            assert!(e.contains(needle), "{s:?}: {e}");
            assert!(e.contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn rule_matching_checks_address_and_port() {
        let r = rule("10.0.0.0/8:8000-8100");
        assert!(r.matches(sa("10.9.9.9:8000")));
        assert!(r.matches(sa("10.9.9.9:8100")));
        assert!(!r.matches(sa("10.9.9.9:8101")));
        assert!(!r.matches(sa("11.0.0.1:8050")));
        assert!(r.matches(sa("[::ffff:10.1.1.1]:8050")), "mapped IPv4");
        assert!(rule("[2001:db8::/32]").matches(sa("[2001:db8::5]:1")));
    }

    #[test]
    fn default_policy_allows_all_but_loopback_and_non_unicast() {
        let p = Policy::default();
        assert!(p.allows(sa("93.184.216.34:443")));
        assert!(p.allows(sa("[2001:db8::1]:443")));
        assert!(!p.allows(sa("127.0.0.1:80")));
        assert!(!p.allows(sa("127.8.9.10:80")));
        assert!(!p.allows(sa("[::1]:80")));
        assert!(!p.allows(sa("[::ffff:127.0.0.1]:80")), "mapped loopback");
        assert!(!p.allows(sa("0.0.0.0:80")));
        assert!(!p.allows(sa("[::]:80")));
        assert!(!p.allows(sa("224.0.0.1:80")));
        assert!(!p.allows(sa("[ff02::1]:80")));
        assert!(!p.allows(sa("255.255.255.255:80")));
        assert!(!p.allows(sa("93.184.216.34:0")));
    }

    #[test]
    fn rules_allow_only_what_they_name() {
        let p = Policy::new(vec![rule("127.0.0.1/32"), rule("10.0.0.0/8:443")]);
        assert!(p.allows(sa("127.0.0.1:5555")));
        assert!(!p.allows(sa("127.0.0.2:5555")));
        assert!(p.allows(sa("10.1.2.3:443")));
        assert!(!p.allows(sa("10.1.2.3:80")));
        assert!(!p.allows(sa("93.184.216.34:443")));
        let any = Policy::new(vec![rule("0.0.0.0/0")]);
        assert!(any.allows(sa("127.0.0.1:80")), "a rule may name loopback");
        assert!(!any.allows(sa("0.0.0.0:80")));
    }
}
