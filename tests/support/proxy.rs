//! Helpers for the proxy-mode interop tests (tests/proxy_interop.rs): the deterministic data the
//! test web server (tests/support/websrv.py) serves, a thread that runs inside a lab namespace,
//! and minimal SOCKS5 (CONNECT, UDP ASSOCIATE) and HTTP/1.0 clients built on std.

use std::fs;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::time::Duration;

pub const WEBSRV_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/websrv.py");
pub const ECHOSRV_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/echosrv.py");

/// The bytes websrv.py serves for `GET /blob?size=SIZE&seed=SEED`: MT19937 seeded like Python's
/// `random.Random(seed)`, its 32-bit outputs little-endian, cut to `size`.
pub fn blob(size: usize, seed: u32) -> Vec<u8> {
    let mut mt = Mt19937::python_seeded(seed);
    let mut out = Vec::with_capacity(size + 4);
    while out.len() < size {
        out.extend_from_slice(&mt.next_u32().to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The Mersenne Twister as CPython's `random` module uses it.
struct Mt19937 {
    mt: [u32; 624],
    i: usize,
}

impl Mt19937 {
    const N: usize = 624;
    const M: usize = 397;

    fn init_genrand(s: u32) -> Mt19937 {
        let mut mt = [0u32; 624];
        mt[0] = s;
        for i in 1..Self::N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, i: Self::N }
    }

    /// `random.Random(seed)` for a seed below 2**32: `init_by_array([seed])`.
    fn python_seeded(seed: u32) -> Mt19937 {
        let key = [seed];
        let mut g = Self::init_genrand(19_650_218);
        let mt = &mut g.mt;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..Self::N.max(key.len()) {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= Self::N {
                mt[0] = mt[Self::N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..Self::N - 1 {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= Self::N {
                mt[0] = mt[Self::N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        g
    }

    fn next_u32(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        if self.i >= Self::N {
            let mt = &mut self.mt;
            for k in 0..Self::N {
                let y = (mt[k] & UPPER) | (mt[(k + 1) % Self::N] & LOWER);
                let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
                mt[k] = mt[(k + Self::M) % Self::N] ^ (y >> 1) ^ mag;
            }
            self.i = 0;
        }
        let mut y = self.mt[self.i];
        self.i += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }
}

/// Runs `f` on a new thread that has entered network namespace `ns` (setns(2) changes only the
/// calling thread; threads it spawns inherit the namespace). Sockets made there stay bound to
/// `ns`. Panics in `f` propagate.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let path = format!("/run/netns/{ns}");
            let file = fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns(2) on a namespace file descriptor we own; it affects this thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns({path}): {}", io::Error::last_os_error());
            f()
        });
        h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// A SOCKS5 destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    Name(String, u16),
    Addr(SocketAddr),
}

impl Dest {
    pub fn name(host: &str, port: u16) -> Dest {
        Dest::Name(host.to_owned(), port)
    }

    pub fn addr(ip: &str, port: u16) -> Dest {
        Dest::Addr(SocketAddr::new(ip.parse().expect("IP address"), port))
    }

    /// ATYP, DST.ADDR, DST.PORT as SOCKS5 requests and UDP headers carry them.
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Dest::Addr(SocketAddr::V4(a)) => {
                out.push(1);
                out.extend_from_slice(&a.ip().octets());
                out.extend_from_slice(&a.port().to_be_bytes());
            }
            Dest::Addr(SocketAddr::V6(a)) => {
                out.push(4);
                out.extend_from_slice(&a.ip().octets());
                out.extend_from_slice(&a.port().to_be_bytes());
            }
            Dest::Name(n, port) => {
                out.push(3);
                out.push(n.len() as u8);
                out.extend_from_slice(n.as_bytes());
                out.extend_from_slice(&port.to_be_bytes());
            }
        }
    }

    /// Parses ATYP, ADDR, PORT from the front of `b`; returns it and the bytes it took.
    fn decode(b: &[u8]) -> io::Result<(Dest, usize)> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad SOCKS5 address");
        let port_at = |at: usize| -> io::Result<u16> {
            let p = b.get(at..at + 2).ok_or_else(bad)?;
            Ok(u16::from_be_bytes([p[0], p[1]]))
        };
        match *b.first().ok_or_else(bad)? {
            1 => {
                let ip: [u8; 4] = b.get(1..5).ok_or_else(bad)?.try_into().unwrap();
                Ok((Dest::Addr(SocketAddr::new(ip.into(), port_at(5)?)), 7))
            }
            4 => {
                let ip: [u8; 16] = b.get(1..17).ok_or_else(bad)?.try_into().unwrap();
                Ok((Dest::Addr(SocketAddr::new(ip.into(), port_at(17)?)), 19))
            }
            3 => {
                let n = *b.get(1).ok_or_else(bad)? as usize;
                let name = b.get(2..2 + n).ok_or_else(bad)?;
                let name = String::from_utf8_lossy(name).into_owned();
                Ok((Dest::Name(name, port_at(2 + n)?), 4 + n))
            }
            _ => Err(bad()),
        }
    }
}

fn read_exact(s: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut b = vec![0; n];
    s.read_exact(&mut b)?;
    Ok(b)
}

/// Sends a SOCKS5 request (no authentication) and reads the reply; returns the bound address.
/// A reply code other than 0 is an error naming the code.
fn socks5_request(s: &mut TcpStream, cmd: u8, dest: &Dest) -> io::Result<Dest> {
    s.write_all(&[5, 1, 0])?;
    let m = read_exact(s, 2)?;
    if m != [5, 0] {
        return Err(io::Error::other(format!(
            "SOCKS5 method selection answered {m:?}"
        )));
    }
    let mut req = vec![5, cmd, 0];
    dest.encode(&mut req);
    s.write_all(&req)?;
    let head = read_exact(s, 4)?;
    if head[0] != 5 {
        return Err(io::Error::other(format!("SOCKS5 reply {head:?}")));
    }
    if head[1] != 0 {
        return Err(io::Error::other(format!(
            "SOCKS5 request refused: reply code {} ({})",
            head[1],
            socks5_reply_name(head[1])
        )));
    }
    let mut addr = vec![head[3]];
    match head[3] {
        1 => addr.extend(read_exact(s, 6)?),
        4 => addr.extend(read_exact(s, 18)?),
        3 => {
            let n = read_exact(s, 1)?;
            addr.extend(&n);
            addr.extend(read_exact(s, n[0] as usize + 2)?);
        }
        t => return Err(io::Error::other(format!("SOCKS5 reply ATYP {t}"))),
    }
    Ok(Dest::decode(&addr)?.0)
}

pub fn socks5_reply_name(code: u8) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "general failure",
        2 => "not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned",
    }
}

/// Opens a TCP connection to `dest` through the SOCKS5 proxy at `proxy` (CONNECT, no auth).
/// `timeout` bounds each read and write, the handshake included.
pub fn socks5_connect(proxy: SocketAddr, dest: &Dest, timeout: Duration) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&proxy, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    socks5_request(&mut s, 1, dest)?;
    Ok(s)
}

/// Sends `GET path` (HTTP/1.0) on `s` and reads the response to EOF: status and body.
pub fn http_get(mut s: TcpStream, host: &str, path: &str) -> io::Result<(u16, Vec<u8>)> {
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ferrovpn-proxy-interop\r\n\r\n"
    )?;
    let mut r = BufReader::with_capacity(1 << 16, s);
    let mut status_line = String::new();
    r.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut len: Option<usize> = None;
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            return Err(io::Error::other("EOF in the response headers"));
        }
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok();
        }
    }
    let mut body = Vec::with_capacity(len.unwrap_or(0));
    r.read_to_end(&mut body)?;
    if let Some(n) = len
        && n != body.len()
    {
        return Err(io::Error::other(format!(
            "body of {} bytes, Content-Length {n}",
            body.len()
        )));
    }
    Ok((status, body))
}

/// A SOCKS5 UDP association: the TCP control connection (the association lives as long as it
/// does) and a local UDP socket talking to the proxy's relay.
pub struct UdpAssociation {
    _ctrl: TcpStream,
    pub sock: UdpSocket,
    pub relay: SocketAddr,
}

impl UdpAssociation {
    pub fn open(proxy: SocketAddr, timeout: Duration) -> io::Result<UdpAssociation> {
        let mut ctrl = TcpStream::connect_timeout(&proxy, timeout)?;
        ctrl.set_read_timeout(Some(timeout))?;
        let sock = UdpSocket::bind(SocketAddr::new(proxy.ip(), 0))?;
        // Our UDP address, so that a strict relay accepts datagrams only from it.
        let me = Dest::Addr(sock.local_addr()?);
        let bound = socks5_request(&mut ctrl, 3, &me)?;
        let relay = match bound {
            // An unspecified address means "the address you reached me on".
            Dest::Addr(a) if a.ip().is_unspecified() => SocketAddr::new(proxy.ip(), a.port()),
            Dest::Addr(a) => a,
            Dest::Name(..) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        };
        sock.connect(relay)?;
        sock.set_read_timeout(Some(timeout))?;
        Ok(UdpAssociation {
            _ctrl: ctrl,
            sock,
            relay,
        })
    }

    /// Sends one datagram for `dest` through the relay.
    pub fn send(&self, dest: &Dest, payload: &[u8]) -> io::Result<()> {
        let mut d = vec![0, 0, 0];
        dest.encode(&mut d);
        d.extend_from_slice(payload);
        self.sock.send(&d).map(|_| ())
    }

    /// Receives one datagram from the relay: where it came from and its payload.
    pub fn recv(&self) -> io::Result<(Dest, Vec<u8>)> {
        let mut b = vec![0; 65_536];
        let n = self.sock.recv(&mut b)?;
        b.truncate(n);
        if b.len() < 4 || b[0..3] != [0, 0, 0] {
            return Err(io::Error::other(format!(
                "bad SOCKS5 UDP header {:?}",
                &b[..b.len().min(4)]
            )));
        }
        let (from, used) = Dest::decode(&b[3..])?;
        Ok((from, b[3 + used..].to_vec()))
    }
}

/// The real user id of process `pid` (from /proc/PID/status).
pub fn uid_of(pid: i32) -> Option<u32> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("Uid:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}
