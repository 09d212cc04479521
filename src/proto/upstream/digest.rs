//! HTTP authentication for proxies: `Proxy-Authenticate` challenges (RFC 9110 §11.6.1), the
//! Basic answer (RFC 7617) and the Digest answer (RFC 7616, compatible with RFC 2617): MD5,
//! SHA-256 and their `-sess` variants, `qop=auth` with `nc`/`cnonce`, or no qop (RFC 2069).

use std::fmt::Write as _;

use base64::Engine as _;
use md5::Digest as _;

/// One challenge: the scheme and its parameters (names lower-cased, quotes removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `Basic`, `Digest`, `NTLM`, ... as sent.
    pub scheme: String,
    /// `name=value` parameters; a token68 (as NTLM sends) is kept under the empty name.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Whether the scheme is `name` (case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(name)
    }

    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the value of one `Proxy-Authenticate` header, which may hold several challenges.
/// Malformed parts end the list (what was parsed before is kept).
pub fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut p = Cursor {
        s: value.as_bytes(),
        i: 0,
    };
    loop {
        p.skip_ws_commas();
        let Some(word) = p.token() else { break };
        p.skip_ws();
        if p.peek() == Some(b'=') && !out.is_empty() {
            // A parameter of the current challenge (`word=value`).
            p.i += 1;
            p.skip_ws();
            let Some(v) = p.value() else { break };
            if let Some(c) = out.last_mut() {
                c.params.push((word.to_ascii_lowercase(), v));
            }
            continue;
        }
        // A new challenge; it may carry a token68 (`NTLM TlRMTVNT...`).
        let mut c = Challenge {
            scheme: word,
            params: Vec::new(),
        };
        let save = p.i;
        if let Some(t) = p.token68() {
            p.skip_ws();
            if matches!(p.peek(), None | Some(b',')) {
                c.params.push((String::new(), t));
            } else {
                p.i = save;
            }
        }
        out.push(c);
    }
    out
}

/// `Basic` credentials (RFC 7617): the header value `Basic base64(user:pass)`.
pub fn basic_authorization(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
    )
}

/// Digest hash algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// `MD5` (also when the challenge names none).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl DigestAlgorithm {
    /// Parses the `algorithm` parameter (absent means MD5); `None` for ones not supported.
    pub fn from_param(p: Option<&str>) -> Option<Self> {
        Some(match p {
            None => Self::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => Self::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5-sess") => Self::Md5Sess,
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Self::Sha256,
            Some(a) if a.eq_ignore_ascii_case("SHA-256-sess") => Self::Sha256Sess,
            Some(_) => return None,
        })
    }

    /// The name as sent in the answer.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex::encode(md5::Md5::digest(data.as_bytes())),
            Self::Sha256 | Self::Sha256Sess => hex::encode(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data.as_bytes()).as_ref(),
            ),
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }
}

/// Why a Digest challenge cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// No `nonce` parameter.
    #[error("the proxy's Digest challenge has no nonce")]
    NoNonce,
    /// An algorithm other than MD5/SHA-256 (and their -sess forms).
    #[error(
        "the proxy asks for Digest algorithm '{0}', which is not supported (MD5 and SHA-256 are)"
    )]
    Algorithm(String),
    /// A qop list without `auth` (for example only `auth-int`).
    #[error("the proxy offers Digest qop '{0}' only; ferrovpn supports qop=auth")]
    Qop(String),
}

/// The inputs of one Digest answer that do not come from the challenge.
#[derive(Clone, Copy, Debug)]
pub struct DigestRequest<'a> {
    /// `CONNECT`.
    pub method: &'a str,
    /// The request target (`host:port` for CONNECT).
    pub uri: &'a str,
    /// User name.
    pub user: &'a str,
    /// Password.
    pub pass: &'a str,
    /// The client nonce (random, from the caller).
    pub cnonce: &'a str,
    /// The nonce count: how many times this nonce was used, this answer included.
    pub nc: u32,
}

/// Answers a Digest challenge: the `Proxy-Authorization` header value.
pub fn digest_authorization(
    ch: &Challenge,
    req: &DigestRequest<'_>,
) -> Result<String, DigestError> {
    let nonce = ch.param("nonce").ok_or(DigestError::NoNonce)?;
    let realm = ch.param("realm").unwrap_or("");
    let alg_param = ch.param("algorithm");
    let alg = DigestAlgorithm::from_param(alg_param)
        .ok_or_else(|| DigestError::Algorithm(alg_param.unwrap_or("").to_owned()))?;
    let qop = match ch.param("qop") {
        None => None,
        Some(list) => {
            if list
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth"))
            {
                Some("auth")
            } else {
                return Err(DigestError::Qop(list.to_owned()));
            }
        }
    };
    let nc = format!("{:08x}", req.nc);
    let response = digest_response(alg, req, realm, nonce, qop.map(|q| (q, nc.as_str())));
    let mut h = String::from("Digest ");
    let _ = write!(
        h,
        "username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm={}, response=\"{}\"",
        quote(req.user),
        quote(realm),
        quote(nonce),
        quote(req.uri),
        alg.name(),
        response
    );
    if let Some(q) = qop {
        let _ = write!(h, ", qop={q}, nc={nc}, cnonce=\"{}\"", quote(req.cnonce));
    }
    if let Some(o) = ch.param("opaque") {
        let _ = write!(h, ", opaque=\"{}\"", quote(o));
    }
    Ok(h)
}

/// The `response` value (RFC 7616 §3.4.1); `qop` is `(qop, nc)` when the challenge had one.
pub fn digest_response(
    alg: DigestAlgorithm,
    req: &DigestRequest<'_>,
    realm: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let mut ha1 = alg.hash(&format!("{}:{realm}:{}", req.user, req.pass));
    if alg.is_sess() {
        ha1 = alg.hash(&format!("{ha1}:{nonce}:{}", req.cnonce));
    }
    let ha2 = alg.hash(&format!("{}:{}", req.method, req.uri));
    match qop {
        Some((q, nc)) => alg.hash(&format!("{ha1}:{nonce}:{nc}:{}:{q}:{ha2}", req.cnonce)),
        None => alg.hash(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Escapes `"` and `\` for a quoted-string.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// An RFC 9110 token.
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A token68 (base64-like, with trailing `=`).
    fn token68(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || b"-._~+/".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        if self.i == start {
            return None;
        }
        while self.peek() == Some(b'=') {
            self.i += 1;
        }
        Some(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A parameter value: a token or a quoted-string.
    fn value(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return self.token();
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    self.i += 1;
                    out.push(self.peek()?);
                    self.i += 1;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1: the same request answered with SHA-256 and with MD5.
    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

    fn rfc7616_request() -> DigestRequest<'static> {
        DigestRequest {
            method: "GET",
            uri: "/dir/index.html",
            user: "Mufasa",
            pass: "Circle of Life",
            cnonce: RFC7616_CNONCE,
            nc: 1,
        }
    }

    fn rfc7616_challenge(alg: &str) -> Challenge {
        let v = format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, \
             nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
        );
        let mut c = parse_challenges(&v);
        assert_eq!(c.len(), 1);
        c.remove(0)
    }

    #[test]
    fn rfc7616_sha256_vector() {
        let h = digest_authorization(&rfc7616_challenge("SHA-256"), &rfc7616_request()).unwrap();
        assert!(
            h.contains(
                "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
            ),
            "{h}"
        );
        assert!(h.contains("algorithm=SHA-256"));
        assert!(h.contains("qop=auth, nc=00000001"));
        assert!(h.contains(&format!("opaque=\"{RFC7616_OPAQUE}\"")));
        assert!(h.contains("realm=\"http-auth@example.org\""));
    }

    #[test]
    fn rfc7616_md5_vector() {
        let h = digest_authorization(&rfc7616_challenge("MD5"), &rfc7616_request()).unwrap();
        assert!(
            h.contains("response=\"8ca523f5e9506fed4657c9700eebdbec\""),
            "{h}"
        );
    }

    /// RFC 2617 §3.5 (no algorithm parameter means MD5).
    #[test]
    fn rfc2617_vector() {
        let ch = parse_challenges(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        );
        let req = DigestRequest {
            method: "GET",
            uri: "/dir/index.html",
            user: "Mufasa",
            pass: "Circle Of Life",
            cnonce: "0a4f113b",
            nc: 1,
        };
        let h = digest_authorization(&ch[0], &req).unwrap();
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
        assert!(h.contains("cnonce=\"0a4f113b\""));
    }

    /// Without qop the answer is H(HA1:nonce:HA2) (RFC 2069), with no nc/cnonce.
    #[test]
    fn digest_without_qop() {
        let ch = &parse_challenges("Digest realm=\"r\", nonce=\"n\"")[0];
        let req = DigestRequest {
            method: "CONNECT",
            uri: "vpn:1194",
            user: "u",
            pass: "p",
            cnonce: "c",
            nc: 1,
        };
        let h = digest_authorization(ch, &req).unwrap();
        let a = DigestAlgorithm::Md5;
        let ha1 = a.hash("u:r:p");
        let ha2 = a.hash("CONNECT:vpn:1194");
        assert!(h.contains(&format!(
            "response=\"{}\"",
            a.hash(&format!("{ha1}:n:{ha2}"))
        )));
        assert!(!h.contains("cnonce"));
    }

    #[test]
    fn digest_sess_rehashes_ha1() {
        let req = rfc7616_request();
        let plain = digest_response(
            DigestAlgorithm::Md5,
            &req,
            "r",
            "n",
            Some(("auth", "00000001")),
        );
        let sess = digest_response(
            DigestAlgorithm::Md5Sess,
            &req,
            "r",
            "n",
            Some(("auth", "00000001")),
        );
        assert_ne!(plain, sess);
        let a = DigestAlgorithm::Md5;
        let ha1 = a.hash(&format!(
            "{}:n:{RFC7616_CNONCE}",
            a.hash("Mufasa:r:Circle of Life")
        ));
        let ha2 = a.hash("GET:/dir/index.html");
        assert_eq!(
            sess,
            a.hash(&format!("{ha1}:n:00000001:{RFC7616_CNONCE}:auth:{ha2}"))
        );
    }

    #[test]
    fn digest_refusals() {
        let req = rfc7616_request();
        let ch = &parse_challenges("Digest realm=\"r\"")[0];
        assert_eq!(digest_authorization(ch, &req), Err(DigestError::NoNonce));
        let ch = &parse_challenges("Digest nonce=\"n\", algorithm=SHA-512-256")[0];
        assert!(matches!(
            digest_authorization(ch, &req),
            Err(DigestError::Algorithm(_))
        ));
        let ch = &parse_challenges("Digest nonce=\"n\", qop=\"auth-int\"")[0];
        assert!(matches!(
            digest_authorization(ch, &req),
            Err(DigestError::Qop(_))
        ));
    }

    /// RFC 7617 §2.
    #[test]
    fn basic_rfc7617_vector() {
        assert_eq!(
            basic_authorization("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn several_challenges_in_one_header() {
        let c = parse_challenges(
            "Basic realm=\"simple\", Digest realm=\"x\\\"y\", nonce=abc, qop=\"auth\", NTLM, \
             Negotiate YII=",
        );
        let schemes: Vec<_> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "Digest", "NTLM", "Negotiate"]);
        assert_eq!(c[0].param("realm"), Some("simple"));
        assert_eq!(c[1].param("REALM"), Some("x\"y"));
        assert_eq!(c[1].param("nonce"), Some("abc"));
        assert!(c[1].is("digest"));
        assert_eq!(c[3].param(""), Some("YII="));
    }

    #[test]
    fn malformed_challenges_do_not_panic() {
        for s in [
            "",
            ",,,",
            "Digest realm=\"unterminated",
            "=x",
            "Digest nonce=",
            "\u{e9}",
        ] {
            let _ = parse_challenges(s);
        }
    }
}
