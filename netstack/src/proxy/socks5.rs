//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): CONNECT and
//! UDP ASSOCIATE.
//!
//! The parsers take the bytes received so far and answer `Ok(None)` while a message is
//! incomplete, `Ok(Some((value, consumed)))` once it is whole, or an error; they never panic.
//!
//! ```text
//! greeting   VER=5 | NMETHODS | METHODS[NMETHODS]
//! choice     VER=5 | METHOD                      (0 none, 2 user/pass, 0xFF none acceptable)
//! user/pass  VER=1 | ULEN | UNAME | PLEN | PASSWD  -> VER=1 | STATUS (0 ok)
//! request    VER=5 | CMD | RSV=0 | ATYP | DST.ADDR | DST.PORT
//! reply      VER=5 | REP | RSV=0 | ATYP | BND.ADDR | BND.PORT
//! UDP        RSV=0 0 | FRAG | ATYP | DST.ADDR | DST.PORT | DATA
//! ATYP       1: 4-byte IPv4, 3: 1-byte length + domain name, 4: 16-byte IPv6
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::{DatagramSocket, Dialer, Target};

pub const VERSION: u8 = 5;
pub const AUTH_VERSION: u8 = 1;

/// Authentication methods.
pub mod method {
    pub const NO_AUTH: u8 = 0x00;
    pub const USER_PASS: u8 = 0x02;
    pub const NONE_ACCEPTABLE: u8 = 0xff;
}

/// Reply codes.
pub mod reply {
    pub const SUCCEEDED: u8 = 0x00;
    pub const GENERAL_FAILURE: u8 = 0x01;
    pub const NOT_ALLOWED: u8 = 0x02;
    pub const NETWORK_UNREACHABLE: u8 = 0x03;
    pub const HOST_UNREACHABLE: u8 = 0x04;
    pub const CONNECTION_REFUSED: u8 = 0x05;
    pub const TTL_EXPIRED: u8 = 0x06;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;
}

const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;

/// The client's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Connect,
    Bind,
    UdpAssociate,
}

/// Malformed or unsupported input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Socks5Error {
    #[error("SOCKS version {0}, expected 5")]
    Version(u8),
    #[error("user/pass sub-negotiation version {0}, expected 1")]
    AuthVersion(u8),
    #[error("greeting offers no method")]
    NoMethods,
    #[error("unknown command {0}")]
    Command(u8),
    #[error("reserved byte is {0}, expected 0")]
    Reserved(u8),
    #[error("unknown address type {0}")]
    AddressType(u8),
    #[error("empty or non-UTF-8 domain name")]
    Domain,
    #[error("fragmented UDP datagrams are not supported")]
    Fragment,
}

impl Socks5Error {
    /// The reply code to send for this error, when a reply is possible.
    pub fn reply_code(&self) -> u8 {
        match self {
            Self::Command(_) => reply::COMMAND_NOT_SUPPORTED,
            Self::AddressType(_) => reply::ADDRESS_TYPE_NOT_SUPPORTED,
            _ => reply::GENERAL_FAILURE,
        }
    }
}

type Parsed<T> = Result<Option<(T, usize)>, Socks5Error>;

/// The methods a client offers.
pub fn parse_greeting(buf: &[u8]) -> Parsed<Vec<u8>> {
    let [ver, n, rest @ ..] = buf else {
        return Ok(None);
    };
    if *ver != VERSION {
        return Err(Socks5Error::Version(*ver));
    }
    let n = usize::from(*n);
    if n == 0 {
        return Err(Socks5Error::NoMethods);
    }
    let Some(methods) = rest.get(..n) else {
        return Ok(None);
    };
    Ok(Some((methods.to_vec(), 2 + n)))
}

/// The method to pick: user/pass when credentials are required, otherwise none.
pub fn choose_method(offered: &[u8], auth_required: bool) -> u8 {
    let want = if auth_required {
        method::USER_PASS
    } else {
        method::NO_AUTH
    };
    if offered.contains(&want) {
        want
    } else {
        method::NONE_ACCEPTABLE
    }
}

/// RFC 1929 user/pass request: (username, password) as bytes.
pub fn parse_user_pass(buf: &[u8]) -> Parsed<(Vec<u8>, Vec<u8>)> {
    let [ver, ulen, rest @ ..] = buf else {
        return Ok(None);
    };
    if *ver != AUTH_VERSION {
        return Err(Socks5Error::AuthVersion(*ver));
    }
    let ulen = usize::from(*ulen);
    let Some(user) = rest.get(..ulen) else {
        return Ok(None);
    };
    let Some(plen) = rest.get(ulen) else {
        return Ok(None);
    };
    let plen = usize::from(*plen);
    let Some(pass) = rest.get(ulen + 1..ulen + 1 + plen) else {
        return Ok(None);
    };
    Ok(Some(((user.to_vec(), pass.to_vec()), 3 + ulen + plen)))
}

/// ATYP + address + port, as in requests and UDP headers.
fn parse_addr(buf: &[u8]) -> Parsed<Target> {
    let Some(atyp) = buf.first() else {
        return Ok(None);
    };
    let port_at = |off: usize| {
        buf.get(off..off + 2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
    };
    match *atyp {
        ATYP_V4 => {
            let (Some(a), Some(port)) = (buf.get(1..5), port_at(5)) else {
                return Ok(None);
            };
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Some((Target::Addr(SocketAddr::new(ip.into(), port)), 7)))
        }
        ATYP_V6 => {
            let (Some(a), Some(port)) = (buf.get(1..17), port_at(17)) else {
                return Ok(None);
            };
            let mut b = [0u8; 16];
            b.copy_from_slice(a);
            Ok(Some((
                Target::Addr(SocketAddr::new(Ipv6Addr::from(b).into(), port)),
                19,
            )))
        }
        ATYP_DOMAIN => {
            let Some(len) = buf.get(1) else {
                return Ok(None);
            };
            let len = usize::from(*len);
            let (Some(name), Some(port)) = (buf.get(2..2 + len), port_at(2 + len)) else {
                return Ok(None);
            };
            let name = std::str::from_utf8(name).map_err(|_| Socks5Error::Domain)?;
            if name.is_empty() {
                return Err(Socks5Error::Domain);
            }
            Ok(Some((Target::new(name, port), 4 + len)))
        }
        other => Err(Socks5Error::AddressType(other)),
    }
}

fn encode_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(a) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(ATYP_V6);
            out.extend_from_slice(&a.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// A request: command and destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub command: Command,
    pub target: Target,
}

pub fn parse_request(buf: &[u8]) -> Parsed<Request> {
    let [ver, cmd, rsv, rest @ ..] = buf else {
        // Check the version as early as possible.
        if let Some(v) = buf.first().filter(|v| **v != VERSION) {
            return Err(Socks5Error::Version(*v));
        }
        return Ok(None);
    };
    if *ver != VERSION {
        return Err(Socks5Error::Version(*ver));
    }
    let command = match cmd {
        1 => Command::Connect,
        2 => Command::Bind,
        3 => Command::UdpAssociate,
        other => return Err(Socks5Error::Command(*other)),
    };
    if *rsv != 0 {
        return Err(Socks5Error::Reserved(*rsv));
    }
    Ok(parse_addr(rest)?.map(|(target, n)| (Request { command, target }, 3 + n)))
}

/// A reply with the bound address.
pub fn encode_reply(code: u8, bound: SocketAddr) -> Vec<u8> {
    let mut out = vec![VERSION, code, 0];
    encode_addr(&mut out, bound);
    out
}

/// A UDP ASSOCIATE datagram: the destination and where its payload starts.
pub fn parse_udp_header(buf: &[u8]) -> Result<(Target, usize), Socks5Error> {
    let [r0, r1, frag, rest @ ..] = buf else {
        return Err(Socks5Error::Reserved(0));
    };
    if *r0 != 0 || *r1 != 0 {
        return Err(Socks5Error::Reserved(r0 | r1));
    }
    if *frag != 0 {
        return Err(Socks5Error::Fragment);
    }
    match parse_addr(rest)? {
        Some((t, n)) => Ok((t, 3 + n)),
        None => Err(Socks5Error::AddressType(rest.first().copied().unwrap_or(0))),
    }
}

/// The header for a datagram relayed back to the client from `from`.
pub fn encode_udp_header(out: &mut Vec<u8>, from: SocketAddr) {
    out.extend_from_slice(&[0, 0, 0]);
    encode_addr(out, from);
}

/// The reply code for a failed dial.
pub fn reply_for(e: &io::Error) -> u8 {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => reply::CONNECTION_REFUSED,
        io::ErrorKind::NetworkUnreachable => reply::NETWORK_UNREACHABLE,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NotFound | io::ErrorKind::TimedOut => {
            reply::HOST_UNREACHABLE
        }
        io::ErrorKind::NotConnected => reply::NETWORK_UNREACHABLE,
        _ => reply::GENERAL_FAILURE,
    }
}

/// How long a client gets to finish the negotiation.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_NEGOTIATION: usize = 1024;
const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Reads until `parse` yields a value; errors on EOF, bad input, or too much data.
async fn read_msg<R, T>(
    r: &mut R,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Parsed<T>,
) -> io::Result<T>
where
    R: AsyncRead + Unpin,
{
    loop {
        if let Some((v, n)) =
            parse(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        {
            buf.drain(..n);
            return Ok(v);
        }
        if buf.len() >= MAX_NEGOTIATION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "SOCKS5 message too long",
            ));
        }
        let mut chunk = [0u8; 512];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Serves SOCKS5 clients accepted on `listener` until accepting fails. `auth`: required
/// username and password (RFC 1929); `None` accepts clients without authentication.
pub async fn serve_socks5(
    listener: TcpListener,
    dialer: Arc<dyn Dialer>,
    auth: Option<(String, String)>,
) -> io::Result<()> {
    let auth = Arc::new(auth);
    loop {
        let (stream, peer) = listener.accept().await?;
        let (dialer, auth) = (dialer.clone(), auth.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(stream, dialer, &auth).await {
                tracing::debug!(%peer, error = %e, "SOCKS5 session ended");
            }
        });
    }
}

async fn handle(
    mut client: TcpStream,
    dialer: Arc<dyn Dialer>,
    auth: &Option<(String, String)>,
) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let mut buf = Vec::new();
    let negotiated =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, negotiate(&mut client, &mut buf, auth))
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "SOCKS5 negotiation timed out")
            })??;
    let Some(req) = negotiated else { return Ok(()) };
    match req.command {
        Command::Connect => {
            let mut upstream = match dialer.connect(req.target.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(target = %req.target, error = %e, "SOCKS5 connect failed");
                    client
                        .write_all(&encode_reply(reply_for(&e), UNSPECIFIED))
                        .await?;
                    return Ok(());
                }
            };
            client
                .write_all(&encode_reply(reply::SUCCEEDED, UNSPECIFIED))
                .await?;
            if !buf.is_empty() {
                upstream.write_all(&buf).await?;
            }
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
            Ok(())
        }
        Command::UdpAssociate => udp_associate(client, dialer, req.target).await,
        Command::Bind => {
            client
                .write_all(&encode_reply(reply::COMMAND_NOT_SUPPORTED, UNSPECIFIED))
                .await?;
            Ok(())
        }
    }
}

/// Greeting, authentication and request. `None` when the session ended with a reply already.
async fn negotiate(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    auth: &Option<(String, String)>,
) -> io::Result<Option<Request>> {
    let methods = read_msg(client, buf, parse_greeting).await?;
    let chosen = choose_method(&methods, auth.is_some());
    client.write_all(&[VERSION, chosen]).await?;
    if chosen == method::NONE_ACCEPTABLE {
        return Ok(None);
    }
    if let Some((user, pass)) = auth {
        let (u, p) = read_msg(client, buf, parse_user_pass).await?;
        let ok = u == user.as_bytes() && p == pass.as_bytes();
        client
            .write_all(&[AUTH_VERSION, if ok { 0 } else { 1 }])
            .await?;
        if !ok {
            return Ok(None);
        }
    }
    match read_msg(client, buf, parse_request).await {
        Ok(req) => Ok(Some(req)),
        Err(e) => {
            let code = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<Socks5Error>())
                .map_or(reply::GENERAL_FAILURE, Socks5Error::reply_code);
            let _ = client.write_all(&encode_reply(code, UNSPECIFIED)).await;
            Err(e)
        }
    }
}

/// Most UDP destinations one association resolves and remembers.
const UDP_NAME_CACHE: usize = 256;

/// UDP ASSOCIATE: a host UDP socket for the client on the control connection's local address,
/// relayed through a datagram socket from the dialer, for as long as the control connection
/// stays open.
async fn udp_associate(
    mut control: TcpStream,
    dialer: Arc<dyn Dialer>,
    hint: Target,
) -> io::Result<()> {
    let peer = control.peer_addr()?;
    let relay = match dialer.udp().await {
        Ok(r) => r,
        Err(e) => {
            control
                .write_all(&encode_reply(reply_for(&e), UNSPECIFIED))
                .await?;
            return Ok(());
        }
    };
    let local = UdpSocket::bind(SocketAddr::new(control.local_addr()?.ip(), 0)).await?;
    control
        .write_all(&encode_reply(reply::SUCCEEDED, local.local_addr()?))
        .await?;
    // The client may name the address it will send from; otherwise the first datagram from
    // the control connection's IP fixes it.
    let mut client: Option<SocketAddr> = match hint {
        Target::Addr(a) if !a.ip().is_unspecified() && a.port() != 0 => Some(a),
        _ => None,
    };
    let mut names: HashMap<Target, SocketAddr> = HashMap::new();
    let mut from_client = vec![0u8; 65536];
    let mut from_relay = vec![0u8; 65536];
    let mut out = Vec::with_capacity(65536 + 22);
    let mut ctl = [0u8; 64];
    loop {
        tokio::select! {
            r = control.read(&mut ctl) => match r {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            },
            r = local.recv_from(&mut from_client) => {
                let (n, src) = r?;
                if src.ip() != peer.ip() || client.is_some_and(|c| c != src) {
                    continue;
                }
                client = Some(src);
                let Ok((target, off)) = parse_udp_header(&from_client[..n]) else { continue };
                let dst = match target {
                    Target::Addr(a) => a,
                    t => match names.get(&t) {
                        Some(a) => *a,
                        None => match dialer.resolve(t.clone()).await {
                            Ok(a) => {
                                if names.len() >= UDP_NAME_CACHE {
                                    names.clear();
                                }
                                names.insert(t, a);
                                a
                            }
                            Err(e) => {
                                tracing::debug!(target = %t, error = %e, "SOCKS5 UDP: cannot resolve");
                                continue;
                            }
                        },
                    },
                };
                if let Err(e) = super::send_to(&*relay, &from_client[off..n], dst).await {
                    tracing::debug!(%dst, error = %e, "SOCKS5 UDP: datagram dropped");
                }
            }
            r = super::recv_from(&*relay as &dyn DatagramSocket, &mut from_relay) => {
                let (n, src) = r?;
                let Some(c) = client else { continue };
                out.clear();
                encode_udp_header(&mut out, src);
                out.extend_from_slice(&from_relay[..n]);
                let _ = local.send_to(&out, c).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn greeting_vectors() {
        // RFC 1928 §3: VER=5, NMETHODS=1, NO AUTHENTICATION REQUIRED.
        assert_eq!(parse_greeting(&[5, 1, 0]), Ok(Some((vec![0], 3))));
        assert_eq!(
            parse_greeting(&[5, 2, 0, 2, 0xaa]),
            Ok(Some((vec![0, 2], 4)))
        );
        assert_eq!(parse_greeting(&[5, 2, 0]), Ok(None));
        assert_eq!(parse_greeting(&[5]), Ok(None));
        assert_eq!(parse_greeting(&[]), Ok(None));
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(Socks5Error::Version(4)));
        assert_eq!(parse_greeting(&[5, 0]), Err(Socks5Error::NoMethods));
        assert_eq!(choose_method(&[0, 2], true), method::USER_PASS);
        assert_eq!(choose_method(&[0, 2], false), method::NO_AUTH);
        assert_eq!(choose_method(&[0], true), method::NONE_ACCEPTABLE);
        assert_eq!(choose_method(&[2], false), method::NONE_ACCEPTABLE);
    }

    #[test]
    fn user_pass_vectors() {
        // RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD.
        let msg = [1, 4, b'u', b's', b'e', b'r', 3, b'p', b'w', b'd'];
        assert_eq!(
            parse_user_pass(&msg),
            Ok(Some(((b"user".to_vec(), b"pwd".to_vec()), 10)))
        );
        for cut in 0..msg.len() {
            assert_eq!(parse_user_pass(&msg[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse_user_pass(&[1, 0, 0]), Ok(Some(((vec![], vec![]), 3))));
        assert_eq!(
            parse_user_pass(&[5, 1, 0]),
            Err(Socks5Error::AuthVersion(5))
        );
    }

    #[test]
    fn request_vectors() {
        // CONNECT 198.18.0.2:80
        let v4 = [5, 1, 0, 1, 198, 18, 0, 2, 0, 80];
        let r = parse_request(&v4).unwrap().unwrap();
        assert_eq!(
            r,
            (
                Request {
                    command: Command::Connect,
                    target: Target::Addr("198.18.0.2:80".parse().unwrap())
                },
                10
            )
        );
        for cut in 0..v4.len() {
            assert_eq!(parse_request(&v4[..cut]), Ok(None), "cut at {cut}");
        }
        // CONNECT example.com:443
        let mut d = vec![5, 1, 0, 3, 11];
        d.extend_from_slice(b"example.com");
        d.extend_from_slice(&443u16.to_be_bytes());
        d.push(0xee); // pipelined data stays
        let (r, n) = parse_request(&d).unwrap().unwrap();
        assert_eq!(r.target, Target::Name("example.com".into(), 443));
        assert_eq!(n, d.len() - 1);
        // UDP ASSOCIATE [2001:db8::1]:5353
        let mut v6 = vec![5, 3, 0, 4];
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&5353u16.to_be_bytes());
        let (r, n) = parse_request(&v6).unwrap().unwrap();
        assert_eq!(r.command, Command::UdpAssociate);
        assert_eq!(
            r.target,
            Target::Addr("[2001:db8::1]:5353".parse().unwrap())
        );
        assert_eq!(n, 22);
        // A domain that is an IP literal is an address.
        let mut lit = vec![5, 1, 0, 3, 9];
        lit.extend_from_slice(b"192.0.2.1");
        lit.extend_from_slice(&[0, 22]);
        assert_eq!(
            parse_request(&lit).unwrap().unwrap().0.target,
            Target::Addr("192.0.2.1:22".parse().unwrap())
        );
    }

    #[test]
    fn request_errors() {
        assert_eq!(parse_request(&[4]), Err(Socks5Error::Version(4)));
        assert_eq!(parse_request(&[5, 9, 0, 1]), Err(Socks5Error::Command(9)));
        assert_eq!(parse_request(&[5, 1, 1, 1]), Err(Socks5Error::Reserved(1)));
        assert_eq!(
            parse_request(&[5, 1, 0, 2, 0]),
            Err(Socks5Error::AddressType(2))
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 3, 0, 0, 80]),
            Err(Socks5Error::Domain)
        );
        assert_eq!(
            parse_request(&[5, 1, 0, 3, 2, 0xff, 0xfe, 0, 80]),
            Err(Socks5Error::Domain)
        );
        assert_eq!(
            Socks5Error::Command(9).reply_code(),
            reply::COMMAND_NOT_SUPPORTED
        );
        assert_eq!(
            Socks5Error::AddressType(2).reply_code(),
            reply::ADDRESS_TYPE_NOT_SUPPORTED
        );
    }

    #[test]
    fn replies() {
        assert_eq!(
            encode_reply(0, "198.18.0.1:1080".parse().unwrap()),
            vec![5, 0, 0, 1, 198, 18, 0, 1, 0x04, 0x38]
        );
        let r = encode_reply(
            reply::CONNECTION_REFUSED,
            "[2001:db8::1]:1".parse().unwrap(),
        );
        assert_eq!(r.len(), 22);
        assert_eq!(&r[..4], &[5, 5, 0, 4]);
        assert_eq!(
            reply_for(&io::ErrorKind::ConnectionRefused.into()),
            reply::CONNECTION_REFUSED
        );
        assert_eq!(
            reply_for(&io::ErrorKind::TimedOut.into()),
            reply::HOST_UNREACHABLE
        );
    }

    #[test]
    fn udp_header_round_trip() {
        let mut out = Vec::new();
        encode_udp_header(&mut out, "198.18.0.2:53".parse().unwrap());
        out.extend_from_slice(b"payload");
        let (t, off) = parse_udp_header(&out).unwrap();
        assert_eq!(t, Target::Addr("198.18.0.2:53".parse().unwrap()));
        assert_eq!(&out[off..], b"payload");
        assert_eq!(
            parse_udp_header(&[0, 0, 1, 1, 1, 2, 3, 4, 0, 53]),
            Err(Socks5Error::Fragment)
        );
        assert!(parse_udp_header(&[0, 0, 0, 1, 1, 2]).is_err());
        assert!(parse_udp_header(&[0, 0]).is_err());
        let mut d = vec![0, 0, 0, 3, 4];
        d.extend_from_slice(b"host");
        d.extend_from_slice(&[0, 7, 0xaa]);
        assert_eq!(
            parse_udp_header(&d),
            Ok((Target::Name("host".into(), 7), 11))
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_greeting(&data);
            let _ = parse_user_pass(&data);
            let _ = parse_udp_header(&data);
            if let Ok(Some((_, n))) = parse_request(&data) {
                prop_assert!(n <= data.len());
            }
        }

        #[test]
        fn requests_round_trip(ip in any::<[u8; 16]>(), port in any::<u16>(), v6 in any::<bool>()) {
            let addr = if v6 {
                SocketAddr::new(Ipv6Addr::from(ip).into(), port)
            } else {
                SocketAddr::new(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).into(), port)
            };
            let mut req = vec![5, 1, 0];
            encode_addr(&mut req, addr);
            let (r, n) = parse_request(&req).unwrap().unwrap();
            prop_assert_eq!(n, req.len());
            prop_assert_eq!(r.target, Target::Addr(addr));
        }
    }
}
