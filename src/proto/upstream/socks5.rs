//! SOCKS5 client messages (RFC 1928), username/password authentication (RFC 1929) and the UDP
//! ASSOCIATE datagram header.
//!
//! ```text
//! greeting   VER=5 | NMETHODS | METHODS[NMETHODS]     -> VER=5 | METHOD
//! user/pass  VER=1 | ULEN | UNAME | PLEN | PASSWD      -> VER=1 | STATUS (0 ok)
//! request    VER=5 | CMD | RSV=0 | ATYP | DST.ADDR | DST.PORT
//! reply      VER=5 | REP | RSV=0 | ATYP | BND.ADDR | BND.PORT
//! UDP        RSV=0 0 | FRAG=0 | ATYP | DST.ADDR | DST.PORT | DATA
//! ATYP       1: IPv4 (4 bytes), 3: length byte + name, 4: IPv6 (16 bytes)
//! ```
//!
//! The numbers are those of the server side in `ferrovpn-netstack` (`proxy::socks5`); they are
//! repeated here because the protocol core does not depend on that runtime crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::TargetAddr;

/// Protocol version.
pub const VERSION: u8 = 5;
/// Username/password sub-negotiation version.
pub const AUTH_VERSION: u8 = 1;
/// Method: no authentication.
pub const METHOD_NO_AUTH: u8 = 0x00;
/// Method: username/password.
pub const METHOD_USER_PASS: u8 = 0x02;
/// Method: none of the offered ones is acceptable.
pub const METHOD_NONE_ACCEPTABLE: u8 = 0xff;
/// Command CONNECT.
pub const CMD_CONNECT: u8 = 1;
/// Command UDP ASSOCIATE.
pub const CMD_UDP_ASSOCIATE: u8 = 3;

const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;

/// Protocol errors, and the proxy's refusals.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SocksError {
    /// A reply with another version byte: not a SOCKS5 proxy.
    #[error("the proxy does not speak SOCKS5 (reply version {0})")]
    Version(u8),
    /// The proxy accepts none of the offered methods.
    #[error(
        "the SOCKS proxy accepts none of the offered authentication methods ({0}); give an auth \
         file (user name and password) if it needs one"
    )]
    NoMethod(&'static str),
    /// The proxy picked a method that was not offered.
    #[error("the SOCKS proxy chose authentication method {0:#04x}, which was not offered")]
    UnexpectedMethod(u8),
    /// RFC 1929 status other than 0.
    #[error("the SOCKS proxy refused the user name and password (status {0})")]
    AuthRefused(u8),
    /// A reply code other than 0.
    #[error("the SOCKS proxy could not {what}: {}", reply_text(*.code))]
    Refused {
        /// The command ("connect to the server", "relay UDP").
        what: &'static str,
        /// REP.
        code: u8,
    },
    /// An unknown address type.
    #[error("the SOCKS proxy sent an unknown address type {0}")]
    AddressType(u8),
    /// A user name, password or host name longer than 255 bytes.
    #[error("{0} is longer than 255 bytes, which SOCKS5 cannot carry")]
    TooLong(&'static str),
}

/// The greeting: offers no-auth, and username/password when `with_password`.
pub fn greeting(with_password: bool, out: &mut Vec<u8>) {
    if with_password {
        out.extend_from_slice(&[VERSION, 2, METHOD_NO_AUTH, METHOD_USER_PASS]);
    } else {
        out.extend_from_slice(&[VERSION, 1, METHOD_NO_AUTH]);
    }
}

/// Parses the method choice (2 bytes).
pub fn parse_method_choice(buf: &[u8], with_password: bool) -> Result<Option<u8>, SocksError> {
    let [ver, method, ..] = *buf else {
        return Ok(None);
    };
    if ver != VERSION {
        return Err(SocksError::Version(ver));
    }
    match method {
        METHOD_NO_AUTH => Ok(Some(method)),
        METHOD_USER_PASS if with_password => Ok(Some(method)),
        METHOD_NONE_ACCEPTABLE => Err(SocksError::NoMethod(if with_password {
            "none, username/password"
        } else {
            "none"
        })),
        m => Err(SocksError::UnexpectedMethod(m)),
    }
}

/// The RFC 1929 request.
pub fn user_pass_request(user: &str, pass: &str, out: &mut Vec<u8>) -> Result<(), SocksError> {
    let u = u8::try_from(user.len()).map_err(|_| SocksError::TooLong("the user name"))?;
    let p = u8::try_from(pass.len()).map_err(|_| SocksError::TooLong("the password"))?;
    out.push(AUTH_VERSION);
    out.push(u);
    out.extend_from_slice(user.as_bytes());
    out.push(p);
    out.extend_from_slice(pass.as_bytes());
    Ok(())
}

/// Parses the RFC 1929 reply (2 bytes); `Ok(Some(()))` when accepted.
pub fn parse_user_pass_reply(buf: &[u8]) -> Result<Option<()>, SocksError> {
    let [ver, status, ..] = *buf else {
        return Ok(None);
    };
    if ver != AUTH_VERSION {
        return Err(SocksError::Version(ver));
    }
    if status != 0 {
        return Err(SocksError::AuthRefused(status));
    }
    Ok(Some(()))
}

/// A CONNECT (`cmd` = [`CMD_CONNECT`]) or UDP ASSOCIATE request for `target`.
pub fn request(cmd: u8, target: &TargetAddr, out: &mut Vec<u8>) -> Result<(), SocksError> {
    out.extend_from_slice(&[VERSION, cmd, 0]);
    put_addr(target, out)
}

/// Parses the reply to a request: `Ok(Some((bound address, bytes used)))`. A domain-name bound
/// address (allowed, rarely used) is answered as `0.0.0.0` with its port.
pub fn parse_reply(
    buf: &[u8],
    what: &'static str,
) -> Result<Option<(SocketAddr, usize)>, SocksError> {
    let [ver, rep, _rsv, ..] = *buf else {
        return Ok(None);
    };
    if ver != VERSION {
        return Err(SocksError::Version(ver));
    }
    if rep != 0 {
        return Err(SocksError::Refused { what, code: rep });
    }
    match parse_addr(&buf[3..])? {
        None => Ok(None),
        Some((addr, n)) => Ok(Some((addr, 3 + n))),
    }
}

/// Appends the UDP request header for `target` (followed by the datagram's data).
pub fn udp_header(target: &TargetAddr, out: &mut Vec<u8>) -> Result<(), SocksError> {
    out.extend_from_slice(&[0, 0, 0]);
    put_addr(target, out)
}

/// A datagram from the relay.
#[derive(Debug, PartialEq, Eq)]
pub enum UdpDatagram<'a> {
    /// Data from `from`.
    Data {
        /// The sender as the relay reports it.
        from: UdpSource,
        /// The payload.
        data: &'a [u8],
    },
    /// A fragment (FRAG ≠ 0): dropped, fragmentation is optional and unused.
    Fragment,
    /// Too short or malformed.
    Malformed,
}

/// The sender of a relayed datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpSource {
    /// An address.
    Ip(SocketAddr),
    /// A name (some relays echo the name that was sent).
    Domain(String, u16),
}

impl UdpSource {
    /// Whether this is the expected sender: the target itself, or (for a name) `resolved`.
    pub fn matches(&self, target: &TargetAddr, resolved: Option<SocketAddr>) -> bool {
        match (self, target) {
            (Self::Ip(a), TargetAddr::Ip(t)) => canonical(*a) == canonical(*t),
            (Self::Ip(a), TargetAddr::Domain(..)) => {
                resolved.is_some_and(|r| canonical(r) == canonical(*a))
            }
            (Self::Domain(h, p), TargetAddr::Domain(th, tp)) => {
                p == tp && h.eq_ignore_ascii_case(th)
            }
            (Self::Domain(..), TargetAddr::Ip(_)) => false,
        }
    }
}

/// Parses one datagram received from the relay.
pub fn parse_udp(buf: &[u8]) -> UdpDatagram<'_> {
    let [0, 0, frag, ..] = *buf else {
        return UdpDatagram::Malformed;
    };
    if frag != 0 {
        return UdpDatagram::Fragment;
    }
    let rest = &buf[3..];
    let from = match rest.first() {
        Some(&ATYP_DOMAIN) => {
            let Some(&len) = rest.get(1) else {
                return UdpDatagram::Malformed;
            };
            let end = 2 + len as usize;
            let (Some(name), Some(port)) = (rest.get(2..end), rest.get(end..end + 2)) else {
                return UdpDatagram::Malformed;
            };
            let n = end + 2;
            return UdpDatagram::Data {
                from: UdpSource::Domain(
                    String::from_utf8_lossy(name).into_owned(),
                    u16::from_be_bytes([port[0], port[1]]),
                ),
                data: &rest[n..],
            };
        }
        _ => parse_addr(rest),
    };
    match from {
        Ok(Some((a, n))) => UdpDatagram::Data {
            from: UdpSource::Ip(a),
            data: &rest[n..],
        },
        _ => UdpDatagram::Malformed,
    }
}

/// The text of a reply code (RFC 1928 §6).
pub fn reply_text(code: u8) -> String {
    match code {
        1 => "general SOCKS server failure".into(),
        2 => "connection not allowed by ruleset".into(),
        3 => "network unreachable".into(),
        4 => "host unreachable".into(),
        5 => "connection refused".into(),
        6 => "TTL expired".into(),
        7 => "command not supported".into(),
        8 => "address type not supported".into(),
        c => format!("reply code {c}"),
    }
}

fn put_addr(target: &TargetAddr, out: &mut Vec<u8>) -> Result<(), SocksError> {
    match target {
        TargetAddr::Ip(SocketAddr::V4(a)) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&a.ip().octets());
        }
        TargetAddr::Ip(SocketAddr::V6(a)) => {
            out.push(ATYP_V6);
            out.extend_from_slice(&a.ip().octets());
        }
        TargetAddr::Domain(h, _) => {
            let n = u8::try_from(h.len()).map_err(|_| SocksError::TooLong("the host name"))?;
            out.push(ATYP_DOMAIN);
            out.push(n);
            out.extend_from_slice(h.as_bytes());
        }
    }
    out.extend_from_slice(&target.port().to_be_bytes());
    Ok(())
}

/// ATYP | ADDR | PORT → (address, bytes used); a name becomes `0.0.0.0`.
fn parse_addr(buf: &[u8]) -> Result<Option<(SocketAddr, usize)>, SocksError> {
    let Some(&atyp) = buf.first() else {
        return Ok(None);
    };
    let (ip, alen): (IpAddr, usize) = match atyp {
        ATYP_V4 => {
            let Some(b) = buf.get(1..5) else {
                return Ok(None);
            };
            (Ipv4Addr::new(b[0], b[1], b[2], b[3]).into(), 4)
        }
        ATYP_V6 => {
            let Some(b) = buf.get(1..17) else {
                return Ok(None);
            };
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            (Ipv6Addr::from(o).into(), 16)
        }
        ATYP_DOMAIN => {
            let Some(&len) = buf.get(1) else {
                return Ok(None);
            };
            (Ipv4Addr::UNSPECIFIED.into(), 1 + len as usize)
        }
        t => return Err(SocksError::AddressType(t)),
    };
    let Some(p) = buf.get(1 + alen..3 + alen) else {
        return Ok(None);
    };
    Ok(Some((
        SocketAddr::new(ip, u16::from_be_bytes([p[0], p[1]])),
        3 + alen,
    )))
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_and_choice() {
        let mut out = Vec::new();
        greeting(true, &mut out);
        assert_eq!(out, [5, 2, 0, 2]);
        out.clear();
        greeting(false, &mut out);
        assert_eq!(out, [5, 1, 0]);
        assert_eq!(parse_method_choice(&[5], true), Ok(None));
        assert_eq!(parse_method_choice(&[5, 2], true), Ok(Some(2)));
        assert_eq!(parse_method_choice(&[5, 0], false), Ok(Some(0)));
        assert_eq!(
            parse_method_choice(&[5, 2], false),
            Err(SocksError::UnexpectedMethod(2))
        );
        assert!(matches!(
            parse_method_choice(&[5, 0xff], false),
            Err(SocksError::NoMethod(_))
        ));
        assert_eq!(
            parse_method_choice(&[4, 0], false),
            Err(SocksError::Version(4))
        );
    }

    /// RFC 1929 §2.
    #[test]
    fn user_pass_exchange() {
        let mut out = Vec::new();
        user_pass_request("alice", "s3cret", &mut out).unwrap();
        assert_eq!(out, b"\x01\x05alice\x06s3cret");
        assert_eq!(parse_user_pass_reply(&[1]), Ok(None));
        assert_eq!(parse_user_pass_reply(&[1, 0]), Ok(Some(())));
        assert_eq!(
            parse_user_pass_reply(&[1, 1]),
            Err(SocksError::AuthRefused(1))
        );
        let long = "x".repeat(256);
        assert_eq!(
            user_pass_request(&long, "p", &mut out),
            Err(SocksError::TooLong("the user name"))
        );
    }

    #[test]
    fn requests_for_each_address_type() {
        let mut out = Vec::new();
        request(CMD_CONNECT, &TargetAddr::new("198.18.0.1", 1194), &mut out).unwrap();
        assert_eq!(out, [5, 1, 0, 1, 198, 18, 0, 1, 0x04, 0xaa]);
        out.clear();
        request(CMD_CONNECT, &TargetAddr::new("vpn.test", 443), &mut out).unwrap();
        assert_eq!(out, b"\x05\x01\x00\x03\x08vpn.test\x01\xbb");
        out.clear();
        request(
            CMD_UDP_ASSOCIATE,
            &TargetAddr::new("2001:db8::1", 1),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 3 + 1 + 16 + 2);
        assert_eq!(&out[..4], [5, 3, 0, 4]);
        assert_eq!(out[4..6], [0x20, 0x01]);
    }

    #[test]
    fn replies_in_pieces() {
        let full = [5, 0, 0, 1, 198, 18, 0, 1, 0x1f, 0x90, 0xee];
        for cut in 0..10 {
            assert_eq!(parse_reply(&full[..cut], "x"), Ok(None), "cut {cut}");
        }
        assert_eq!(
            parse_reply(&full, "x"),
            Ok(Some(("198.18.0.1:8080".parse().unwrap(), 10)))
        );
        let v6 = [
            5, 0, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80,
        ];
        assert_eq!(
            parse_reply(&v6, "x"),
            Ok(Some(("[2001:db8::1]:80".parse().unwrap(), 22)))
        );
        let name = b"\x05\x00\x00\x03\x04host\x00\x50";
        assert_eq!(
            parse_reply(name, "x"),
            Ok(Some(("0.0.0.0:80".parse().unwrap(), 11)))
        );
        let e = parse_reply(&[5, 5, 0, 1], "connect to the server").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the SOCKS proxy could not connect to the server: connection refused"
        );
        assert_eq!(
            parse_reply(&[5, 0, 0, 9], "x"),
            Err(SocksError::AddressType(9))
        );
    }

    #[test]
    fn udp_header_round_trip() {
        let target = TargetAddr::new("198.18.0.1", 1194);
        let mut out = Vec::new();
        udp_header(&target, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 198, 18, 0, 1, 0x04, 0xaa]);
        out.extend_from_slice(b"payload");
        let UdpDatagram::Data { from, data } = parse_udp(&out) else {
            panic!("not data")
        };
        assert_eq!(data, b"payload");
        assert!(from.matches(&target, None));
        assert!(!from.matches(&TargetAddr::new("198.18.0.2", 1194), None));
        let named = TargetAddr::new("vpn.test", 1194);
        assert!(!from.matches(&named, None));
        assert!(from.matches(&named, Some("198.18.0.1:1194".parse().unwrap())));

        let mut d = Vec::new();
        udp_header(&named, &mut d).unwrap();
        d.push(7);
        let UdpDatagram::Data { from, data } = parse_udp(&d) else {
            panic!("not data")
        };
        assert_eq!(data, [7]);
        assert!(from.matches(&named, None));

        assert_eq!(parse_udp(&[0, 0, 1, 1]), UdpDatagram::Fragment);
        assert_eq!(parse_udp(&[0, 0]), UdpDatagram::Malformed);
        assert_eq!(parse_udp(&[0, 0, 0, 1, 1, 2]), UdpDatagram::Malformed);
        assert_eq!(parse_udp(&[0, 0, 0, 3, 9, b'a']), UdpDatagram::Malformed);
        assert_eq!(
            parse_udp(&[1, 0, 0, 1, 1, 2, 3, 4, 0, 1]),
            UdpDatagram::Malformed
        );
    }
}
