//! Reaching the server through a proxy, without I/O: the messages a client sends to an HTTP
//! proxy (`CONNECT`, RFC 9110 §9.3.6, with Basic (RFC 7617) or Digest (RFC 7616) answers to a
//! `407` challenge) and to a SOCKS5 proxy (RFC 1928, username/password RFC 1929, UDP
//! ASSOCIATE datagram headers), and parsers for their answers.
//!
//! Builders append to a caller-owned `Vec<u8>`; parsers take the bytes received so far and
//! answer `Ok(None)` while a message is incomplete. The tokio glue is `runtime::upstream`.

pub mod digest;
pub mod http_connect;
pub mod socks5;

use std::fmt;
use std::net::SocketAddr;

/// Where the proxy should connect: an address, or a name the proxy resolves itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetAddr {
    /// An address literal.
    Ip(SocketAddr),
    /// A host name and port, resolved by the proxy.
    Domain(String, u16),
}

impl TargetAddr {
    /// The target for `host` (an address literal or a name) and `port`.
    pub fn new(host: &str, port: u16) -> Self {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<std::net::IpAddr>() {
            Ok(ip) => Self::Ip(SocketAddr::new(ip, port)),
            Err(_) => Self::Domain(host.to_owned(), port),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Ip(a) => a.port(),
            Self::Domain(_, p) => *p,
        }
    }
}

/// `host:port` with IPv6 literals in brackets: the authority form of an HTTP request target.
impl fmt::Display for TargetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(a) => write!(f, "{a}"),
            Self::Domain(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_from_host() {
        assert_eq!(
            TargetAddr::new("198.18.0.1", 1194),
            TargetAddr::Ip("198.18.0.1:1194".parse().unwrap())
        );
        assert_eq!(
            TargetAddr::new("2001:db8::1", 443).to_string(),
            "[2001:db8::1]:443"
        );
        assert_eq!(
            TargetAddr::new("[2001:db8::1]", 443),
            TargetAddr::Ip("[2001:db8::1]:443".parse().unwrap())
        );
        assert_eq!(
            TargetAddr::new("vpn.example.com", 1194).to_string(),
            "vpn.example.com:1194"
        );
    }
}
