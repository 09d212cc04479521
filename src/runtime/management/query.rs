//! The other end of the management protocol: a small blocking client that asks a running
//! ferrovpn or OpenVPN client for its `state`, `status` and `pid` (for `ferrovpn status`), and
//! the parsing of those replies.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::listen::ManagementListen;

/// What `state` and `status` said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientReport {
    /// The process id (`pid`).
    pub pid: Option<u32>,
    /// Unix time of the current state.
    pub since: Option<u64>,
    /// The state name (`CONNECTED`, ...).
    pub state: String,
    /// Its description (`SUCCESS`, a reason).
    pub description: String,
    /// Tunnel IPv4 address.
    pub tun_v4: Option<String>,
    /// Tunnel IPv6 address.
    pub tun_v6: Option<String>,
    /// The server's address and port.
    pub remote: Option<(String, u16)>,
    /// The local transport address and port, when bound.
    pub local: Option<(String, u16)>,
    /// TCP/UDP read bytes.
    pub bytes_in: Option<u64>,
    /// TCP/UDP write bytes.
    pub bytes_out: Option<u64>,
    /// TUN/TAP read bytes.
    pub tun_read: Option<u64>,
    /// TUN/TAP write bytes.
    pub tun_write: Option<u64>,
}

/// Why the query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Nothing to connect to.
    #[error("cannot connect to the management interface at {0}: {1}")]
    Connect(String, io::Error),
    /// The password was refused or missing.
    #[error("the management interface at {0} wants a password{1}")]
    Password(String, &'static str),
    /// Talking failed.
    #[error("management interface at {0}: {1}")]
    Io(String, io::Error),
    /// An `ERROR:` reply or something unexpected.
    #[error("management interface at {0}: {1}")]
    Protocol(String, String),
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Connects to `listen`, authenticates with `password` if asked, and collects the report.
pub fn query(
    listen: &ManagementListen,
    password: Option<&str>,
) -> Result<ClientReport, QueryError> {
    let name = match listen {
        ManagementListen::Tcp(a) => a.to_string(),
        ManagementListen::Unix(p) => p.display().to_string(),
    };
    let timeout = Some(Duration::from_secs(5));
    let stream: Box<dyn Stream> = match listen {
        ManagementListen::Tcp(a) => {
            let s = TcpStream::connect_timeout(a, Duration::from_secs(5))
                .map_err(|e| QueryError::Connect(name.clone(), e))?;
            s.set_read_timeout(timeout)
                .map_err(|e| QueryError::Io(name.clone(), e))?;
            Box::new(s)
        }
        ManagementListen::Unix(p) => {
            let s = UnixStream::connect(p).map_err(|e| QueryError::Connect(name.clone(), e))?;
            s.set_read_timeout(timeout)
                .map_err(|e| QueryError::Io(name.clone(), e))?;
            Box::new(s)
        }
    };
    let mut c = Conn {
        io: BufReader::new(stream),
        name,
    };
    c.login(password)?;
    let mut report = ClientReport::default();
    let pid = c.ask_line("pid")?;
    report.pid = pid
        .strip_prefix("SUCCESS: pid=")
        .and_then(|p| p.trim().parse().ok());
    let state = c.ask_block("state")?;
    if let Some(line) = state.first() {
        parse_state(line, &mut report);
    }
    let status = c.ask_block("status")?;
    parse_status(&status, &mut report);
    let _ = c.send("quit");
    Ok(report)
}

struct Conn {
    io: BufReader<Box<dyn Stream>>,
    name: String,
}

impl Conn {
    fn err(&self, e: io::Error) -> QueryError {
        QueryError::Io(self.name.clone(), e)
    }

    fn send(&mut self, cmd: &str) -> Result<(), QueryError> {
        let r = self.io.get_mut().write_all(format!("{cmd}\n").as_bytes());
        r.map_err(|e| self.err(e))
    }

    /// The next line that is not a real-time notification.
    fn line(&mut self) -> Result<String, QueryError> {
        loop {
            let l = self.raw_line()?;
            if !l.starts_with('>') {
                return Ok(l);
            }
        }
    }

    fn raw_line(&mut self) -> Result<String, QueryError> {
        let mut l = String::new();
        let n = self.io.read_line(&mut l).map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(self.err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection was closed",
            )));
        }
        Ok(l.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Waits for the greeting, answering `ENTER PASSWORD:` first when it comes.
    fn login(&mut self, password: Option<&str>) -> Result<(), QueryError> {
        let mut prompt = [0u8; 15];
        let buf = self
            .io
            .fill_buf()
            .map_err(|e| QueryError::Io(self.name.clone(), e))?;
        let starts_with_prompt = buf.starts_with(b"ENTER PASSWORD:");
        if starts_with_prompt {
            self.io.read_exact(&mut prompt).map_err(|e| self.err(e))?;
            let Some(pw) = password else {
                return Err(QueryError::Password(
                    self.name.clone(),
                    " (give the password file with --password-file)",
                ));
            };
            self.send(pw)?;
            let reply = self.raw_line()?;
            if reply != "SUCCESS: password is correct" {
                return Err(QueryError::Password(
                    self.name.clone(),
                    ", and it refused this one",
                ));
            }
        }
        let greeting = self.raw_line()?;
        if !greeting.starts_with(">INFO:") {
            return Err(QueryError::Protocol(
                self.name.clone(),
                format!("unexpected greeting {greeting:?}"),
            ));
        }
        Ok(())
    }

    fn ask_line(&mut self, cmd: &str) -> Result<String, QueryError> {
        self.send(cmd)?;
        self.line()
    }

    fn ask_block(&mut self, cmd: &str) -> Result<Vec<String>, QueryError> {
        self.send(cmd)?;
        let mut lines = Vec::new();
        loop {
            let l = self.line()?;
            if l.starts_with("ERROR:") {
                return Err(QueryError::Protocol(
                    self.name.clone(),
                    format!("{cmd}: {l}"),
                ));
            }
            if l == "END" {
                return Ok(lines);
            }
            lines.push(l);
        }
    }
}

/// Fills the state fields from a `state` line.
pub fn parse_state(line: &str, r: &mut ClientReport) {
    let f: Vec<&str> = line.split(',').collect();
    let get = |i: usize| f.get(i).copied().filter(|s| !s.is_empty());
    r.since = get(0).and_then(|t| t.parse().ok());
    r.state = get(1).unwrap_or_default().to_owned();
    r.description = get(2).unwrap_or_default().to_owned();
    r.tun_v4 = get(3).map(str::to_owned);
    let addr =
        |ip: Option<&str>, port: Option<&str>| Some((ip?.to_owned(), port?.parse::<u16>().ok()?));
    r.remote = addr(get(4), get(5));
    r.local = addr(get(6), get(7));
    r.tun_v6 = get(8).map(str::to_owned);
}

/// Fills the byte counts from the client's `status` lines.
pub fn parse_status(lines: &[String], r: &mut ClientReport) {
    for l in lines {
        let Some((k, v)) = l.split_once(',') else {
            continue;
        };
        let v = v.trim().parse::<u64>().ok();
        match k {
            "TCP/UDP read bytes" => r.bytes_in = v,
            "TCP/UDP write bytes" => r.bytes_out = v,
            "TUN/TAP read bytes" => r.tun_read = v,
            "TUN/TAP write bytes" => r.tun_write = v,
            _ => {}
        }
    }
}

/// `1234` → `1.2 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `host:port` joined the way addresses are written (IPv6 in brackets).
pub fn join_addr(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openvpn_replies() {
        let mut r = ClientReport::default();
        parse_state(
            "1795333745,CONNECTED,SUCCESS,198.18.99.2,127.0.0.1,11940,,",
            &mut r,
        );
        assert_eq!(r.state, "CONNECTED");
        assert_eq!(r.description, "SUCCESS");
        assert_eq!(r.since, Some(1795333745));
        assert_eq!(r.tun_v4.as_deref(), Some("198.18.99.2"));
        assert_eq!(r.remote, Some(("127.0.0.1".into(), 11940)));
        assert_eq!(r.local, None);
        assert_eq!(r.tun_v6, None);
        parse_state("1,RECONNECTING,SIGUSR1,,,,,", &mut r);
        assert_eq!((r.state.as_str(), r.remote.clone()), ("RECONNECTING", None));
        let status: Vec<String> = [
            "OpenVPN STATISTICS",
            "Updated,2026-11-22 07:49:11",
            "TUN/TAP read bytes,96",
            "TUN/TAP write bytes,0",
            "TCP/UDP read bytes,2102",
            "TCP/UDP write bytes,2152",
            "Auth read bytes,48",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        parse_status(&status, &mut r);
        assert_eq!(
            (r.bytes_in, r.bytes_out, r.tun_read),
            (Some(2102), Some(2152), Some(96))
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(join_addr("2001:db8::1", 1194), "[2001:db8::1]:1194");
    }
}
