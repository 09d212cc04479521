//! HTTP/1.x proxy: `CONNECT host:port` tunnels and absolute-form requests (`GET
//! http://host/path`, any method) forwarded in origin form, with keep-alive on both sides,
//! optional Basic proxy authentication, 502 when the peer refuses or fails and 504 on a timeout.
//!
//! The parsing half is sans-IO: [`parse_request_head`], [`parse_response_head`], the body
//! framing rules ([`request_body`], [`response_body`]) and [`ChunkedDecoder`], which finds the
//! end of a chunked body without changing it (bodies are relayed byte for byte).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{BoxedStream, Dialer, Target};

/// Longest request or response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted.
pub const MAX_HEADERS: usize = 128;

/// Malformed or unsupported HTTP.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("header section larger than {MAX_HEAD} bytes or more than {MAX_HEADERS} fields")]
    TooLarge,
    #[error("malformed request or status line")]
    StartLine,
    #[error("unsupported HTTP version")]
    Version,
    #[error("malformed header field")]
    Header,
    #[error("malformed request target")]
    Target,
    #[error("malformed body framing (Content-Length / Transfer-Encoding)")]
    Framing,
    #[error("malformed chunked body")]
    Chunk,
}

/// Header fields in order, names as sent.
pub type Headers = Vec<(String, String)>;

/// The request target, by form (RFC 9112 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestTarget {
    /// `CONNECT host:port`.
    Authority { host: String, port: u16 },
    /// `http://host[:port]/path?query`; `path` is the origin form (at least `/`).
    Absolute {
        scheme: String,
        host: String,
        port: u16,
        path: String,
    },
    /// `/path`: what a server gets, not a proxy.
    Origin(String),
    /// `OPTIONS *`.
    Asterisk,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: RequestTarget,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Field names as sent; look them up with [`header`].
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, including the empty line.
    pub len: usize,
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub minor: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub len: usize,
}

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    None,
    Fixed(u64),
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether a comma-separated header (all its fields) lists `token`.
pub fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The end of the head (index after the empty line) if present.
fn head_end(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    let mut line_start = 0;
    let mut lines = 0;
    for (i, b) in buf.iter().enumerate() {
        if *b == b'\n' {
            let line = &buf[line_start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() && line_start > 0 {
                return Ok(Some(i + 1));
            }
            lines += 1;
            if lines > MAX_HEADERS + 1 {
                return Err(HttpError::TooLarge);
            }
            line_start = i + 1;
        }
        if i >= MAX_HEAD {
            return Err(HttpError::TooLarge);
        }
    }
    Ok(None)
}

/// Splits the head into its start line and header fields.
fn split_head(head: &[u8]) -> Result<(&str, Headers), HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::Header)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().ok_or(HttpError::StartLine)?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding (RFC 9112 §5.2): refused.
            return Err(HttpError::Header);
        }
        let (name, value) = line.split_once(':').ok_or(HttpError::Header)?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(HttpError::Header);
        }
        if value.bytes().any(|b| b == 0 || b == b'\r') {
            return Err(HttpError::Header);
        }
        headers.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
    }
    Ok((start, headers))
}

fn parse_version(v: &str) -> Result<u8, HttpError> {
    match v {
        "HTTP/1.1" => Ok(1),
        "HTTP/1.0" => Ok(0),
        _ => Err(HttpError::Version),
    }
}

/// `host:port` with `[v6]:port`; `default_port` when the port is absent (None: required).
fn parse_authority(a: &str, default_port: Option<u16>) -> Result<(String, u16), HttpError> {
    if a.is_empty()
        || a.contains('@')
        || a.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(HttpError::Target);
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or(HttpError::Target)?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| HttpError::Target)?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or(HttpError::Target)?)),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if host.is_empty() {
        return Err(HttpError::Target);
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or(HttpError::Target)?,
        None => default_port.ok_or(HttpError::Target)?,
    };
    Ok((host.to_owned(), port))
}

fn parse_target(method: &str, t: &str) -> Result<RequestTarget, HttpError> {
    if method == "CONNECT" {
        let (host, port) = parse_authority(t, None)?;
        return Ok(RequestTarget::Authority { host, port });
    }
    if t == "*" {
        return Ok(RequestTarget::Asterisk);
    }
    if t.starts_with('/') {
        return Ok(RequestTarget::Origin(t.to_owned()));
    }
    let (scheme, rest) = t.split_once("://").ok_or(HttpError::Target)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(HttpError::Target);
    }
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => 0,
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let (host, port) = parse_authority(authority, Some(default_port).filter(|p| *p != 0))?;
    let path = path.split('#').next().unwrap_or("");
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok(RequestTarget::Absolute {
        scheme,
        host,
        port,
        path,
    })
}

/// Parses a request head: `Ok(None)` until the empty line has arrived.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    // Tolerate empty lines before the request line (RFC 9112 §2.2).
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let Some(end) = head_end(&buf[skip..])? else {
        return Ok(None);
    };
    let (start, headers) = split_head(&buf[skip..skip + end])?;
    let mut parts = start.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::StartLine);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) || target.is_empty() {
        return Err(HttpError::StartLine);
    }
    let minor = parse_version(version)?;
    let target = parse_target(method, target)?;
    Ok(Some(RequestHead {
        method: method.to_owned(),
        target,
        minor,
        headers,
        len: skip + end,
    }))
}

/// Parses a response head: `Ok(None)` until the empty line has arrived.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let Some(end) = head_end(buf)? else {
        return Ok(None);
    };
    let (start, headers) = split_head(&buf[..end])?;
    let mut parts = start.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(HttpError::StartLine);
    };
    let minor = parse_version(version)?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::StartLine);
    }
    let status = code.parse().map_err(|_| HttpError::StartLine)?;
    let reason = parts.next().unwrap_or("").to_owned();
    Ok(Some(ResponseHead {
        minor,
        status,
        reason,
        headers,
        len: end,
    }))
}

fn content_length(headers: &[(String, String)]) -> Result<Option<u64>, HttpError> {
    let mut len = None;
    for (_, v) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        for part in v.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::Framing);
            }
            let n: u64 = part.parse().map_err(|_| HttpError::Framing)?;
            if len.is_some_and(|l| l != n) {
                return Err(HttpError::Framing);
            }
            len = Some(n);
        }
    }
    Ok(len)
}

/// Transfer-Encoding: `Some(true)` when chunked is the final coding; an error for anything we
/// cannot delimit.
fn chunked(headers: &[(String, String)]) -> Result<Option<bool>, HttpError> {
    let codings: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    if codings.is_empty() {
        return Ok(None);
    }
    Ok(Some(codings.last().is_some_and(|c| c == "chunked")))
}

/// The request body's framing. Both Content-Length and Transfer-Encoding, or a
/// Transfer-Encoding that does not end in chunked, are refused (request smuggling).
pub fn request_body(head: &RequestHead) -> Result<BodyLength, HttpError> {
    let cl = content_length(&head.headers)?;
    match chunked(&head.headers)? {
        Some(true) if cl.is_none() => Ok(BodyLength::Chunked),
        Some(_) => Err(HttpError::Framing),
        None => Ok(cl.map_or(BodyLength::None, |n| {
            if n == 0 {
                BodyLength::None
            } else {
                BodyLength::Fixed(n)
            }
        })),
    }
}

/// The response body's framing (RFC 9112 §6.3), given the request method.
pub fn response_body(method: &str, head: &ResponseHead) -> Result<BodyLength, HttpError> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        return Ok(BodyLength::None);
    }
    match chunked(&head.headers)? {
        Some(true) => Ok(BodyLength::Chunked),
        Some(false) => Ok(BodyLength::UntilClose),
        None => match content_length(&head.headers)? {
            Some(0) => Ok(BodyLength::None),
            Some(n) => Ok(BodyLength::Fixed(n)),
            None => Ok(BodyLength::UntilClose),
        },
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Size { size: u64, digits: u32 },
    Ext { size: u64 },
    SizeLf { size: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    Done,
}

/// Finds where a chunked body ends, without changing it.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self {
            state: ChunkState::Size { size: 0, digits: 0 },
        }
    }
}

impl ChunkedDecoder {
    /// Whether the last chunk and the trailer section have been seen.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes of the body; returns how many belong to it (less than `buf.len()` only
    /// once done).
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize, HttpError> {
        use ChunkState as S;
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            self.state = match self.state {
                S::Done => return Ok(i),
                S::Data(n) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len() - i);
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 { S::DataCr } else { S::Data(left) };
                    continue;
                }
                S::Size { size, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 15 {
                            return Err(HttpError::Chunk);
                        }
                        let d = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                        S::Size {
                            size: size * 16 + d,
                            digits: digits + 1,
                        }
                    }
                    b';' | b' ' | b'\t' if digits > 0 => S::Ext { size },
                    b'\r' if digits > 0 => S::SizeLf { size },
                    b'\n' if digits > 0 => Self::after_size(size),
                    _ => return Err(HttpError::Chunk),
                },
                S::Ext { size } => match b {
                    b'\n' => Self::after_size(size),
                    _ => S::Ext { size },
                },
                S::SizeLf { size } => match b {
                    b'\n' => Self::after_size(size),
                    _ => return Err(HttpError::Chunk),
                },
                S::DataCr => match b {
                    b'\r' => S::DataLf,
                    b'\n' => S::Size { size: 0, digits: 0 },
                    _ => return Err(HttpError::Chunk),
                },
                S::DataLf => match b {
                    b'\n' => S::Size { size: 0, digits: 0 },
                    _ => return Err(HttpError::Chunk),
                },
                S::TrailerStart => match b {
                    b'\r' => S::TrailerLf,
                    b'\n' => S::Done,
                    _ => S::TrailerLine,
                },
                S::TrailerLine => match b {
                    b'\n' => S::TrailerStart,
                    _ => S::TrailerLine,
                },
                S::TrailerLf => match b {
                    b'\n' => S::Done,
                    _ => return Err(HttpError::Chunk),
                },
            };
            i += 1;
        }
        Ok(i)
    }

    fn after_size(size: u64) -> ChunkState {
        if size == 0 {
            ChunkState::TrailerStart
        } else {
            ChunkState::Data(size)
        }
    }
}

/// Decodes `Proxy-Authorization: Basic ...` and compares it with the expected credentials.
pub fn basic_auth_matches(headers: &[(String, String)], user: &str, pass: &str) -> bool {
    let Some(v) = header(headers, "proxy-authorization") else {
        return false;
    };
    let Some((scheme, token)) = v.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Some(decoded) = base64_decode(token.trim()) else {
        return false;
    };
    let expected = format!("{user}:{pass}");
    decoded == expected.as_bytes()
}

/// Standard base64 with padding (RFC 4648 §4), for Basic credentials.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (k, quad) in bytes.chunks(4).enumerate() {
        let last = k == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for c in &quad[..4 - pad] {
            n = (n << 6) | val(*c)?;
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Some(out)
}

/// Standard base64 with padding, for tests and clients.
pub fn base64_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(char::from(A[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Hop-by-hop fields (RFC 9110 §7.6.1), never forwarded (Upgrade is re-added when used).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

fn forwardable<'a>(
    headers: &'a [(String, String)],
) -> impl Iterator<Item = &'a (String, String)> + 'a {
    let listed: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    headers.iter().filter(move |(n, _)| {
        let n = n.to_ascii_lowercase();
        !HOP_BY_HOP.contains(&n.as_str()) && !listed.contains(&n)
    })
}

/// Whether the client wants the connection kept open after this exchange.
fn client_keep_alive(head: &RequestHead) -> bool {
    let hs = &head.headers;
    if has_token(hs, "connection", "close") || has_token(hs, "proxy-connection", "close") {
        return false;
    }
    head.minor == 1
        || has_token(hs, "connection", "keep-alive")
        || has_token(hs, "proxy-connection", "keep-alive")
}

/// The request head sent upstream, in origin form.
pub fn encode_upstream_request(head: &RequestHead, path: &str, authority: &str) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, path).into_bytes();
    if header(&head.headers, "host").is_none() {
        out.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
    }
    for (n, v) in forwardable(&head.headers) {
        if n.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue") {
            continue; // answered by the proxy itself
        }
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if let Some(up) = header(&head.headers, "upgrade") {
        out.extend_from_slice(format!("Connection: Upgrade\r\nUpgrade: {up}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn encode_response_head(head: &ResponseHead, close: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", head.status, head.reason).into_bytes();
    for (n, v) in forwardable(&head.headers) {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if head.status == 101 {
        if let Some(up) = header(&head.headers, "upgrade") {
            out.extend_from_slice(format!("Connection: Upgrade\r\nUpgrade: {up}\r\n").as_bytes());
        }
    } else if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A short response generated by the proxy; always closes.
pub fn error_response(status: u16, reason: &str, extra: &str) -> Vec<u8> {
    let body = format!("{status} {reason}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Status for a failed dial: 504 on a timeout, 502 otherwise.
pub fn status_for(e: &io::Error) -> (u16, &'static str) {
    match e.kind() {
        io::ErrorKind::TimedOut => (504, "Gateway Timeout"),
        _ => (502, "Bad Gateway"),
    }
}

/// How long to wait for the client's next request on a kept-alive connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for the upstream's response head.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);

/// A stream plus the bytes read from it but not yet used.
struct Conn<S> {
    io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(io: S) -> Self {
        Self {
            io,
            buf: Vec::new(),
        }
    }

    /// Reads more; false at EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.io.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Reads a head with `parse`; `Ok(None)` at a clean EOF before any byte.
    async fn read_head<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> Result<Option<T>, HttpError>,
        len: impl Fn(&T) -> usize,
    ) -> io::Result<Option<T>> {
        loop {
            if let Some(h) =
                parse(&self.buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            {
                self.buf.drain(..len(&h));
                return Ok(Some(h));
            }
            if !self.fill().await? {
                if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                    return Ok(None);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Relays a body of the given framing to `to`, byte for byte.
    async fn relay_body<W: AsyncWrite + Unpin>(
        &mut self,
        body: BodyLength,
        to: &mut W,
    ) -> io::Result<()> {
        match body {
            BodyLength::None => Ok(()),
            BodyLength::Fixed(mut left) => loop {
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len());
                to.write_all(&self.buf[..take]).await?;
                self.buf.drain(..take);
                left -= take as u64;
                if left == 0 {
                    return Ok(());
                }
                if !self.fill().await? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            },
            BodyLength::Chunked => {
                let mut dec = ChunkedDecoder::default();
                loop {
                    let n = dec
                        .feed(&self.buf)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    to.write_all(&self.buf[..n]).await?;
                    self.buf.drain(..n);
                    if dec.is_done() {
                        return Ok(());
                    }
                    if !self.fill().await? {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
            BodyLength::UntilClose => {
                to.write_all(&self.buf).await?;
                self.buf.clear();
                tokio::io::copy(&mut self.io, to).await?;
                Ok(())
            }
        }
    }
}

/// Serves HTTP proxy clients accepted on `listener` until accepting fails. `auth`: required
/// Basic credentials (answered with 407 when missing or wrong).
pub async fn serve_http(
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
                tracing::debug!(%peer, error = %e, "HTTP proxy session ended");
            }
        });
    }
}

async fn handle(
    stream: TcpStream,
    dialer: Arc<dyn Dialer>,
    auth: &Option<(String, String)>,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut client = Conn::new(stream);
    // One upstream connection kept alive, for requests to the same authority.
    let mut upstream: Option<(Target, Conn<BoxedStream>)> = None;
    loop {
        let head = match tokio::time::timeout(
            IDLE_TIMEOUT,
            client.read_head(parse_request_head, |h| h.len),
        )
        .await
        {
            Err(_) | Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(h))) => h,
            Ok(Err(e)) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    let _ = client
                        .io
                        .write_all(&error_response(400, "Bad Request", ""))
                        .await;
                }
                return Err(e);
            }
        };
        if let Some((user, pass)) = auth {
            if !basic_auth_matches(&head.headers, user, pass) {
                let challenge = "Proxy-Authenticate: Basic realm=\"ferrovpn\"\r\n";
                client
                    .io
                    .write_all(&error_response(
                        407,
                        "Proxy Authentication Required",
                        challenge,
                    ))
                    .await?;
                return Ok(());
            }
        }
        match head.target.clone() {
            RequestTarget::Authority { host, port } => {
                let target = Target::new(&host, port);
                let mut up = match dialer.connect(target.clone()).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%target, error = %e, "HTTP CONNECT failed");
                        let (code, reason) = status_for(&e);
                        client
                            .io
                            .write_all(&error_response(code, reason, ""))
                            .await?;
                        return Ok(());
                    }
                };
                client
                    .io
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await?;
                if !client.buf.is_empty() {
                    up.write_all(&client.buf).await?;
                }
                tokio::io::copy_bidirectional(&mut client.io, &mut up).await?;
                return Ok(());
            }
            RequestTarget::Absolute {
                scheme,
                host,
                port,
                path,
            } => {
                if scheme != "http" {
                    client
                        .io
                        .write_all(&error_response(501, "Not Implemented", ""))
                        .await?;
                    return Ok(());
                }
                let target = Target::new(&host, port);
                let authority = if port == 80 {
                    host_for_header(&host)
                } else {
                    format!("{}:{port}", host_for_header(&host))
                };
                if !forward(
                    &mut client,
                    &mut upstream,
                    &dialer,
                    &head,
                    target,
                    &path,
                    &authority,
                )
                .await?
                {
                    return Ok(());
                }
            }
            RequestTarget::Origin(_) | RequestTarget::Asterisk => {
                client
                    .io
                    .write_all(&error_response(400, "Bad Request", ""))
                    .await?;
                return Ok(());
            }
        }
    }
}

fn host_for_header(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Forwards one absolute-form request and its response. `Ok(false)`: close the client.
async fn forward(
    client: &mut Conn<TcpStream>,
    upstream: &mut Option<(Target, Conn<BoxedStream>)>,
    dialer: &Arc<dyn Dialer>,
    head: &RequestHead,
    target: Target,
    path: &str,
    authority: &str,
) -> io::Result<bool> {
    let req_body = match request_body(head) {
        Ok(b) => b,
        Err(_) => {
            client
                .io
                .write_all(&error_response(400, "Bad Request", ""))
                .await?;
            return Ok(false);
        }
    };
    if upstream.as_ref().is_none_or(|(t, _)| *t != target) {
        *upstream = None;
        match dialer.connect(target.clone()).await {
            Ok(s) => *upstream = Some((target.clone(), Conn::new(s))),
            Err(e) => {
                tracing::debug!(%target, error = %e, "HTTP proxy connect failed");
                let (code, reason) = status_for(&e);
                client
                    .io
                    .write_all(&error_response(code, reason, ""))
                    .await?;
                return Ok(false);
            }
        }
    }
    let Some((_, up)) = upstream.as_mut() else {
        return Ok(false);
    };
    let exchange = async {
        up.io
            .write_all(&encode_upstream_request(head, path, authority))
            .await?;
        if has_token(&head.headers, "expect", "100-continue") && req_body != BodyLength::None {
            client
                .io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        client.relay_body(req_body, &mut up.io).await?;
        loop {
            let resp = tokio::time::timeout(
                RESPONSE_TIMEOUT,
                up.read_head(parse_response_head, |h| h.len),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response from upstream"))??
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed"))?;
            if (100..200).contains(&resp.status) && resp.status != 101 {
                client
                    .io
                    .write_all(&encode_response_head(&resp, false))
                    .await?;
                continue;
            }
            return Ok::<_, io::Error>(resp);
        }
    };
    let resp = match exchange.await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%target, error = %e, "HTTP proxy upstream failed");
            *upstream = None;
            let (code, reason) = status_for(&e);
            let _ = client.io.write_all(&error_response(code, reason, "")).await;
            return Ok(false);
        }
    };
    if resp.status == 101 {
        client
            .io
            .write_all(&encode_response_head(&resp, false))
            .await?;
        let Some((_, mut up)) = upstream.take() else {
            return Ok(false);
        };
        if !up.buf.is_empty() {
            client.io.write_all(&up.buf).await?;
        }
        if !client.buf.is_empty() {
            up.io.write_all(&client.buf).await?;
        }
        tokio::io::copy_bidirectional(&mut client.io, &mut up.io).await?;
        return Ok(false);
    }
    let resp_body = match response_body(&head.method, &resp) {
        Ok(b) => b,
        Err(_) => {
            *upstream = None;
            client
                .io
                .write_all(&error_response(502, "Bad Gateway", ""))
                .await?;
            return Ok(false);
        }
    };
    let keep = client_keep_alive(head) && resp_body != BodyLength::UntilClose;
    let up_keep = resp.minor == 1
        && !has_token(&resp.headers, "connection", "close")
        && resp_body != BodyLength::UntilClose;
    client
        .io
        .write_all(&encode_response_head(&resp, !keep))
        .await?;
    if let Some((_, up)) = upstream.as_mut() {
        up.relay_body(resp_body, &mut client.io).await?;
    }
    if !up_keep {
        *upstream = None;
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(s: &str) -> RequestHead {
        parse_request_head(s.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn connect_authority_form() {
        let h = req("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        assert_eq!(h.method, "CONNECT");
        assert_eq!(
            h.target,
            RequestTarget::Authority {
                host: "example.com".into(),
                port: 443
            }
        );
        assert_eq!(h.minor, 1);
        assert_eq!(header(&h.headers, "HOST"), Some("example.com:443"));
        let h = req("CONNECT [2001:db8::1]:22 HTTP/1.0\r\n\r\n");
        assert_eq!(
            h.target,
            RequestTarget::Authority {
                host: "2001:db8::1".into(),
                port: 22
            }
        );
        assert_eq!(h.minor, 0);
        assert_eq!(
            parse_request_head(b"CONNECT example.com HTTP/1.1\r\n\r\n"),
            Err(HttpError::Target)
        );
        assert_eq!(
            parse_request_head(b"CONNECT example.com:0 HTTP/1.1\r\n\r\n"),
            Err(HttpError::Target)
        );
        assert_eq!(
            parse_request_head(b"CONNECT [::1:22 HTTP/1.1\r\n\r\n"),
            Err(HttpError::Target)
        );
    }

    #[test]
    fn absolute_form() {
        let s = "GET http://Example.com/a/b?c=d#frag HTTP/1.1\r\nAccept: */*\r\n\r\nBODY";
        let h = req(s);
        assert_eq!(
            h.target,
            RequestTarget::Absolute {
                scheme: "http".into(),
                host: "Example.com".into(),
                port: 80,
                path: "/a/b?c=d".into()
            }
        );
        assert_eq!(h.len, s.len() - 4);
        let h = req("POST http://198.18.0.2:8080 HTTP/1.1\r\n\r\n");
        assert_eq!(
            h.target,
            RequestTarget::Absolute {
                scheme: "http".into(),
                host: "198.18.0.2".into(),
                port: 8080,
                path: "/".into()
            }
        );
        let h = req("DELETE http://[2001:db8::2]?x HTTP/1.1\r\n\r\n");
        assert_eq!(
            h.target,
            RequestTarget::Absolute {
                scheme: "http".into(),
                host: "2001:db8::2".into(),
                port: 80,
                path: "/?x".into()
            }
        );
        assert_eq!(
            req("GET /x HTTP/1.1\r\n\r\n").target,
            RequestTarget::Origin("/x".into())
        );
        assert_eq!(
            req("OPTIONS * HTTP/1.1\r\n\r\n").target,
            RequestTarget::Asterisk
        );
        assert_eq!(
            parse_request_head(b"GET http://user@host/ HTTP/1.1\r\n\r\n"),
            Err(HttpError::Target)
        );
        assert_eq!(
            parse_request_head(b"GET ftp://host/ HTTP/1.1\r\n\r\n"),
            Err(HttpError::Target)
        );
    }

    #[test]
    fn incomplete_and_malformed() {
        assert_eq!(parse_request_head(b""), Ok(None));
        assert_eq!(
            parse_request_head(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n"),
            Ok(None)
        );
        assert_eq!(
            parse_request_head(b"GET http://a/ HTTP/2.0\r\n\r\n"),
            Err(HttpError::Version)
        );
        assert_eq!(
            parse_request_head(b"GET  http://a/ HTTP/1.1\r\n\r\n"),
            Err(HttpError::StartLine)
        );
        assert_eq!(
            parse_request_head(b"GET http://a/\r\n\r\n"),
            Err(HttpError::StartLine)
        );
        assert_eq!(
            parse_request_head(b"G(T http://a/ HTTP/1.1\r\n\r\n"),
            Err(HttpError::StartLine)
        );
        assert_eq!(
            parse_request_head(b"GET http://a/ HTTP/1.1\r\nNo colon\r\n\r\n"),
            Err(HttpError::Header)
        );
        assert_eq!(
            parse_request_head(b"GET http://a/ HTTP/1.1\r\nA: b\r\n folded\r\n\r\n"),
            Err(HttpError::Header)
        );
        assert_eq!(
            parse_request_head(b"GET http://a/ HTTP/1.1\r\nBad Name: b\r\n\r\n"),
            Err(HttpError::Header)
        );
        let big = format!(
            "GET http://a/ HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert_eq!(parse_request_head(big.as_bytes()), Err(HttpError::TooLarge));
        let many = format!(
            "GET http://a/ HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(
            parse_request_head(many.as_bytes()),
            Err(HttpError::TooLarge)
        );
        // Leading empty lines and bare LF are tolerated.
        assert_eq!(req("\r\nGET http://a/ HTTP/1.1\nHost: a\n\n").method, "GET");
    }

    #[test]
    fn body_framing() {
        let b = |s: &str| request_body(&req(s));
        assert_eq!(
            b("POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Ok(BodyLength::Fixed(5))
        );
        assert_eq!(
            b("POST http://a/ HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
            Ok(BodyLength::Fixed(5))
        );
        assert_eq!(
            b("POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Err(HttpError::Framing)
        );
        assert_eq!(
            b("POST http://a/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(HttpError::Framing)
        );
        assert_eq!(
            b("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(BodyLength::Chunked)
        );
        assert_eq!(
            b("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            Err(HttpError::Framing)
        );
        assert_eq!(
            b("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(HttpError::Framing)
        );
        assert_eq!(b("GET http://a/ HTTP/1.1\r\n\r\n"), Ok(BodyLength::None));
        let r = |s: &str| parse_response_head(s.as_bytes()).unwrap().unwrap();
        assert_eq!(
            response_body("GET", &r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")),
            Ok(BodyLength::Fixed(3))
        );
        assert_eq!(
            response_body("HEAD", &r("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")),
            Ok(BodyLength::None)
        );
        assert_eq!(
            response_body("GET", &r("HTTP/1.1 204 No Content\r\n\r\n")),
            Ok(BodyLength::None)
        );
        assert_eq!(
            response_body("GET", &r("HTTP/1.0 200 OK\r\n\r\n")),
            Ok(BodyLength::UntilClose)
        );
        assert_eq!(
            response_body(
                "GET",
                &r("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            ),
            Ok(BodyLength::Chunked)
        );
        let h = r("HTTP/1.1 404 Not Found Here\r\nA: b\r\n\r\n");
        assert_eq!(
            (h.status, h.reason.as_str(), h.minor),
            (404, "Not Found Here", 1)
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 20 OK\r\n\r\n"),
            Err(HttpError::StartLine)
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200\r\n\r\n")
                .unwrap()
                .unwrap()
                .reason,
            ""
        );
    }

    #[test]
    fn chunked_decoder() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let mut d = ChunkedDecoder::default();
        assert_eq!(d.feed(body).unwrap(), body.len() - 4);
        assert!(d.is_done());
        // Byte by byte gives the same end.
        let mut d = ChunkedDecoder::default();
        let mut used = 0;
        for b in body.iter() {
            used += d.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(used, body.len() - 4);
        let mut d = ChunkedDecoder::default();
        assert_eq!(d.feed(b"0\r\n\r\n").unwrap(), 5);
        assert!(d.is_done());
        assert_eq!(
            ChunkedDecoder::default().feed(b"x\r\n"),
            Err(HttpError::Chunk)
        );
        assert_eq!(
            ChunkedDecoder::default().feed(b"3\r\nabcX"),
            Err(HttpError::Chunk)
        );
        assert_eq!(
            ChunkedDecoder::default().feed(b"ffffffffffffffff\r\n"),
            Err(HttpError::Chunk)
        );
    }

    #[test]
    fn basic_auth() {
        let hdr = |v: &str| vec![("Proxy-Authorization".to_owned(), v.to_owned())];
        // RFC 7617 §2 example: Aladdin / open sesame.
        assert_eq!(
            base64_encode(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert!(basic_auth_matches(
            &hdr("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            "Aladdin",
            "open sesame"
        ));
        assert!(basic_auth_matches(
            &hdr("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            "Aladdin",
            "open sesame"
        ));
        assert!(!basic_auth_matches(
            &hdr("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            "Aladdin",
            "closed"
        ));
        assert!(!basic_auth_matches(&hdr("Bearer x"), "a", "b"));
        assert!(!basic_auth_matches(&hdr("Basic !!!!"), "a", "b"));
        assert!(!basic_auth_matches(&[], "a", "b"));
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(
                base64_decode(&base64_encode(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
        assert_eq!(base64_decode("Zm9v=Zm9v"), None);
        assert_eq!(base64_decode("Zm9"), None);
    }

    #[test]
    fn upstream_request_drops_hop_by_hop() {
        let h = req(
            "GET http://a:81/x HTTP/1.1\r\nHost: a:81\r\nProxy-Authorization: Basic eA==\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nAccept: */*\r\n\r\n",
        );
        let out = String::from_utf8(encode_upstream_request(&h, "/x", "a:81")).unwrap();
        assert_eq!(out, "GET /x HTTP/1.1\r\nHost: a:81\r\nAccept: */*\r\n\r\n");
        let h = req("GET http://a/x HTTP/1.0\r\n\r\n");
        let out = String::from_utf8(encode_upstream_request(&h, "/x", "a")).unwrap();
        assert_eq!(out, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(!client_keep_alive(&h));
        assert!(client_keep_alive(&req("GET http://a/x HTTP/1.1\r\n\r\n")));
        assert!(client_keep_alive(&req(
            "GET http://a/x HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n"
        )));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(Some(h)) = parse_request_head(&data) {
                prop_assert!(h.len <= data.len());
                let _ = request_body(&h);
            }
            if let Ok(Some(h)) = parse_response_head(&data) {
                prop_assert!(h.len <= data.len());
                let _ = response_body("GET", &h);
            }
            let mut d = ChunkedDecoder::default();
            if let Ok(n) = d.feed(&data) {
                prop_assert!(n <= data.len());
            }
            let _ = base64_decode(&String::from_utf8_lossy(&data));
        }

        #[test]
        fn request_lines_from_parts(
            method in "[A-Z]{1,10}",
            host in "[a-z][a-z0-9-]{0,20}(\\.[a-z]{2,5}){0,2}",
            port in 1u16..,
            path in "(/[a-zA-Z0-9._~-]{0,8}){0,4}",
        ) {
            prop_assume!(method != "CONNECT");
            let s = format!("{method} http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
            let h = parse_request_head(s.as_bytes()).unwrap().unwrap();
            let want_path = if path.is_empty() { "/".to_owned() } else { path.clone() };
            prop_assert_eq!(h.target, RequestTarget::Absolute { scheme: "http".into(), host, port, path: want_path });
            prop_assert_eq!(h.len, s.len());
        }
    }
}
