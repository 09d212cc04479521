//! Where a peer's packets come from and go to: a UDP address, or one TCP connection.

use std::fmt;
use std::net::SocketAddr;

/// A peer's transport endpoint. Over UDP the address alone; over TCP the address plus the
/// shell's connection number (two connections from one address are two links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Link {
    /// The peer's address.
    pub addr: SocketAddr,
    /// `Some(connection id)` for a TCP connection.
    pub tcp: Option<u64>,
}

impl Link {
    /// A UDP peer.
    pub fn udp(addr: SocketAddr) -> Self {
        Self { addr, tcp: None }
    }

    /// A TCP connection.
    pub fn tcp(addr: SocketAddr, conn: u64) -> Self {
        Self {
            addr,
            tcp: Some(conn),
        }
    }

    /// Whether this is a TCP connection.
    pub fn is_tcp(&self) -> bool {
        self.tcp.is_some()
    }

    /// Bytes identifying the link in a cookie: IP, port and connection id.
    pub(crate) fn cookie_bytes(&self, out: &mut Vec<u8>) {
        match self.addr.ip() {
            std::net::IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            std::net::IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
        out.extend_from_slice(&self.addr.port().to_be_bytes());
        out.extend_from_slice(&self.tcp.unwrap_or(u64::MAX).to_be_bytes());
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tcp {
            None => write!(f, "udp:{}", self.addr),
            Some(_) => write!(f, "tcp:{}", self.addr),
        }
    }
}
