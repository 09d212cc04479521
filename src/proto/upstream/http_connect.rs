//! The HTTP `CONNECT` exchange with a proxy: the request, the response head, and which answer
//! to give to a `407 Proxy Authentication Required`.
//!
//! ```text
//! CONNECT vpn.example.com:1194 HTTP/1.0
//! Host: vpn.example.com:1194
//! User-Agent: ...                      (http-proxy-option AGENT)
//! Proxy-Authorization: Basic ...       (or Digest ..., after a 407)
//! X-Custom: value                      (http-proxy-option CUSTOM-HEADER)
//!
//! HTTP/1.1 200 Connection established  (then the tunnel: raw bytes both ways)
//! ```

use super::TargetAddr;
use super::digest::{Challenge, parse_challenges};

/// The longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// `http-proxy-option VERSION`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// `1.0` (OpenVPN's default).
    #[default]
    Http10,
    /// `1.1`.
    Http11,
}

impl HttpVersion {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

/// What goes into one CONNECT request.
#[derive(Clone, Copy, Debug)]
pub struct ConnectRequest<'a> {
    /// The server to reach.
    pub target: &'a TargetAddr,
    /// The HTTP version of the request line.
    pub version: HttpVersion,
    /// `User-Agent`.
    pub agent: Option<&'a str>,
    /// Extra header lines.
    pub headers: &'a [(String, String)],
    /// The `Proxy-Authorization` value, if any.
    pub authorization: Option<&'a str>,
}

/// Appends the request to `out`.
pub fn connect_request(req: &ConnectRequest<'_>, out: &mut Vec<u8>) {
    let t = req.target.to_string();
    let mut s = format!("CONNECT {t} {}\r\nHost: {t}\r\n", req.version.as_str());
    if let Some(a) = req.agent {
        s.push_str(&format!("User-Agent: {a}\r\n"));
    }
    if let Some(a) = req.authorization {
        s.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    for (n, v) in req.headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    out.extend_from_slice(s.as_bytes());
}

/// A malformed response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResponseError {
    /// Not an HTTP response at all.
    #[error("the proxy did not answer with HTTP (first line: {0:?})")]
    NotHttp(String),
    /// The head is longer than [`MAX_HEAD`].
    #[error("the proxy's response head is longer than {MAX_HEAD} bytes")]
    TooLong,
    /// A header line without a colon.
    #[error("the proxy's response has a malformed header line: {0:?}")]
    BadHeader(String),
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The status line as received (for messages).
    pub status_line: String,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, the blank line included; what follows belongs to the tunnel.
    pub len: usize,
}

impl ResponseHead {
    /// All challenges of all `Proxy-Authenticate` headers.
    pub fn challenges(&self) -> Vec<Challenge> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("proxy-authenticate"))
            .flat_map(|(_, v)| parse_challenges(v))
            .collect()
    }
}

/// Parses the response head from the bytes received so far: `Ok(None)` until the blank line.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, ResponseError> {
    let Some(end) = find_head_end(buf) else {
        if buf.len() > MAX_HEAD {
            return Err(ResponseError::TooLong);
        }
        // A first line that cannot be HTTP fails early, without waiting for a blank line.
        if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
            return Err(ResponseError::NotHttp(first_line(buf)));
        }
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&buf[..end.0]);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("").to_owned();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(ResponseError::NotHttp(status_line));
    }
    let Ok(status) = code.parse::<u16>() else {
        return Err(ResponseError::NotHttp(status_line));
    };
    let mut headers = Vec::new();
    for l in lines.filter(|l| !l.is_empty()) {
        let Some((n, v)) = l.split_once(':') else {
            return Err(ResponseError::BadHeader(l.to_owned()));
        };
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(Some(ResponseHead {
        status,
        status_line,
        headers,
        len: end.1,
    }))
}

/// How the profile says to authenticate to the HTTP proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMethod {
    /// No authentication.
    #[default]
    None,
    /// Basic, sent with the first request.
    Basic,
    /// Answer the proxy's challenge with Digest only.
    Digest,
    /// Answer whatever the proxy asks (`auto`): Digest preferred, Basic accepted.
    Auto,
    /// Like `Auto` but never Basic (`auto-nct`: no clear text).
    AutoNoClearText,
}

/// The answer chosen for a 407.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send Basic credentials.
    Basic,
    /// Answer this Digest challenge.
    Digest(Challenge),
}

/// Why a 407 cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChallengeError {
    /// The profile says no authentication.
    #[error(
        "the proxy requires authentication ({0}); add credentials to 'http-proxy' (an auth file, \
         or 'auto' with http-proxy-user-pass)"
    )]
    NotConfigured(String),
    /// Basic credentials were sent already and refused.
    #[error("the proxy refused the credentials (wrong user name or password?)")]
    Refused,
    /// Only schemes ferrovpn does not speak.
    #[error(
        "the proxy offers only {0} authentication; ferrovpn supports Basic and Digest (ask for \
         one of them, or use a SOCKS proxy)"
    )]
    Unsupported(String),
    /// `auto-nct` and only Basic offered.
    #[error("the proxy offers only Basic authentication, which 'auto-nct' refuses (clear text)")]
    ClearTextRefused,
}

/// Chooses the answer to a 407 with `challenges`; `answered` says whether the request that got
/// it already carried credentials (then a new nonce is the only reason to try again).
pub fn choose_answer(
    method: AuthMethod,
    challenges: &[Challenge],
    answered: bool,
) -> Result<Answer, ChallengeError> {
    let schemes = || {
        let v: Vec<_> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        if v.is_empty() {
            "no Proxy-Authenticate header".to_owned()
        } else {
            v.join(", ")
        }
    };
    let digest = challenges.iter().find(|c| c.is("Digest"));
    let basic = challenges.iter().any(|c| c.is("Basic"));
    match method {
        AuthMethod::None => Err(ChallengeError::NotConfigured(schemes())),
        AuthMethod::Basic => Err(if answered || basic {
            ChallengeError::Refused
        } else {
            ChallengeError::Unsupported(schemes())
        }),
        AuthMethod::Digest | AuthMethod::Auto | AuthMethod::AutoNoClearText => {
            if let Some(d) = digest {
                // A second 407 to a Digest answer is a refusal unless the nonce went stale.
                if answered
                    && !d
                        .param("stale")
                        .is_some_and(|s| s.eq_ignore_ascii_case("true"))
                {
                    return Err(ChallengeError::Refused);
                }
                return Ok(Answer::Digest(d.clone()));
            }
            if answered {
                return Err(ChallengeError::Refused);
            }
            match method {
                AuthMethod::Auto if basic => Ok(Answer::Basic),
                AuthMethod::AutoNoClearText if basic => Err(ChallengeError::ClearTextRefused),
                _ => Err(ChallengeError::Unsupported(schemes())),
            }
        }
    }
}

/// The end of the head: (index of the blank line, bytes including it).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn first_line(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(buf.len())
        .min(200);
    String::from_utf8_lossy(&buf[..end]).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_with_everything() {
        let target = TargetAddr::new("vpn.example.com", 1194);
        let headers = vec![("X-Proxy-Flag".to_owned(), "some-flags".to_owned())];
        let mut out = Vec::new();
        connect_request(
            &ConnectRequest {
                target: &target,
                version: HttpVersion::Http11,
                agent: Some("OpenVPN/2.4"),
                headers: &headers,
                authorization: Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CONNECT vpn.example.com:1194 HTTP/1.1\r\nHost: vpn.example.com:1194\r\n\
             User-Agent: OpenVPN/2.4\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\
             X-Proxy-Flag: some-flags\r\n\r\n"
        );
    }

    #[test]
    fn request_ipv6_minimal() {
        let target = TargetAddr::new("2001:db8::1", 443);
        let mut out = Vec::new();
        connect_request(
            &ConnectRequest {
                target: &target,
                version: HttpVersion::Http10,
                agent: None,
                headers: &[],
                authorization: None,
            },
            &mut out,
        );
        assert_eq!(
            out,
            b"CONNECT [2001:db8::1]:443 HTTP/1.0\r\nHost: [2001:db8::1]:443\r\n\r\n"
        );
    }

    #[test]
    fn response_in_pieces_with_tunnel_bytes_after() {
        let full = b"HTTP/1.1 200 Connection established\r\nVia: tinyproxy\r\n\r\n\x00\x2a";
        for cut in 0..full.len() - 2 {
            assert_eq!(parse_response_head(&full[..cut]), Ok(None), "cut {cut}");
        }
        let h = parse_response_head(full).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.status_line, "HTTP/1.1 200 Connection established");
        assert_eq!(h.headers, [("Via".to_owned(), "tinyproxy".to_owned())]);
        assert_eq!(&full[h.len..], b"\x00\x2a");
    }

    #[test]
    fn response_407_challenges() {
        let r = b"HTTP/1.0 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"p\"\r\n\
                  Proxy-Authenticate: Digest realm=\"p\", nonce=\"n1\", qop=\"auth\"\r\n\
                  Content-Length: 0\r\n\r\n";
        let h = parse_response_head(r).unwrap().unwrap();
        assert_eq!(h.status, 407);
        let c = h.challenges();
        assert_eq!(c.len(), 2);
        assert_eq!(
            choose_answer(AuthMethod::Auto, &c, false),
            Ok(Answer::Digest(c[1].clone()))
        );
        assert_eq!(
            choose_answer(AuthMethod::Auto, &c[..1], false),
            Ok(Answer::Basic)
        );
        assert_eq!(
            choose_answer(AuthMethod::AutoNoClearText, &c[..1], false),
            Err(ChallengeError::ClearTextRefused)
        );
        assert_eq!(
            choose_answer(AuthMethod::Auto, &c, true),
            Err(ChallengeError::Refused)
        );
        assert_eq!(
            choose_answer(AuthMethod::Basic, &c, true),
            Err(ChallengeError::Refused)
        );
        assert!(matches!(
            choose_answer(AuthMethod::None, &c, false),
            Err(ChallengeError::NotConfigured(_))
        ));
    }

    #[test]
    fn stale_nonce_is_answered_again() {
        let c = parse_challenges("Digest realm=\"p\", nonce=\"n2\", stale=true");
        assert!(matches!(
            choose_answer(AuthMethod::Digest, &c, true),
            Ok(Answer::Digest(_))
        ));
    }

    #[test]
    fn ntlm_only_is_unsupported() {
        let c = parse_challenges("NTLM");
        let e = choose_answer(AuthMethod::Auto, &c, false).unwrap_err();
        assert_eq!(e, ChallengeError::Unsupported("NTLM".into()));
        assert!(e.to_string().contains("Basic and Digest"));
    }

    #[test]
    fn not_http_fails_early() {
        assert!(matches!(parse_response_head(b"\x05\x00\x00\x01"), Ok(None)));
        assert!(matches!(
            parse_response_head(b"SSH-2.0-OpenSSH"),
            Err(ResponseError::NotHttp(_))
        ));
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 abc\r\n\r\n"),
            Err(ResponseError::NotHttp(_))
        ));
        assert_eq!(parse_response_head(&[b'H'; 4]), Ok(None));
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.resize(MAX_HEAD + 1, b'a');
        assert_eq!(parse_response_head(&long), Err(ResponseError::TooLong));
    }
}
