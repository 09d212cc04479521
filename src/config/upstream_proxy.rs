//! `http-proxy`, `http-proxy-user-pass`, `http-proxy-option`, `http-proxy-timeout` and
//! `socks-proxy`: the profile types and the parsing helpers the client parser calls.

use std::fmt;
use std::time::Duration;

use super::directive::{Ctx, Dir, FileArg, Res};
use super::material;
use super::profile::AuthUserPass;
pub use crate::proto::upstream::http_connect::{AuthMethod, HttpVersion};

/// The proxy a remote is reached through.
#[derive(Clone, PartialEq, Eq)]
pub enum UpstreamProxy {
    /// An HTTP proxy (CONNECT); TCP only.
    Http(HttpProxy),
    /// A SOCKS5 proxy: CONNECT for TCP, UDP ASSOCIATE for UDP.
    Socks(SocksProxy),
}

/// `http-proxy HOST PORT [authfile|auto|auto-nct] [auth-method]` and its options.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpProxy {
    /// Proxy host.
    pub host: String,
    /// Proxy port.
    pub port: u16,
    /// How to authenticate.
    pub method: AuthMethod,
    /// Credentials: none, from a file/block, or asked on the terminal when needed.
    pub credentials: Option<AuthUserPass>,
    /// `http-proxy-option VERSION`.
    pub version: HttpVersion,
    /// `http-proxy-option AGENT`.
    pub agent: Option<String>,
    /// `http-proxy-option CUSTOM-HEADER` (and unknown `NAME VALUE` options, as OpenVPN does).
    pub headers: Vec<(String, String)>,
    /// `http-proxy-timeout` (None: the connect timeout).
    pub timeout: Option<Duration>,
}

/// `socks-proxy HOST [PORT] [authfile]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SocksProxy {
    /// Proxy host.
    pub host: String,
    /// Proxy port (default 1080).
    pub port: u16,
    /// Credentials (RFC 1929), if any.
    pub credentials: Option<AuthUserPass>,
}

impl UpstreamProxy {
    /// `host:port` of the proxy.
    pub fn host_port(&self) -> (&str, u16) {
        match self {
            Self::Http(h) => (&h.host, h.port),
            Self::Socks(s) => (&s.host, s.port),
        }
    }
}

/// Without secrets: what `check` shows and logs print.
impl fmt::Display for UpstreamProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let creds = |c: &Option<AuthUserPass>| match c {
            None => String::new(),
            Some(AuthUserPass::Prompt) => ", credentials asked on the terminal".to_owned(),
            Some(AuthUserPass::File { username, .. }) => format!(", user '{username}'"),
        };
        match self {
            Self::Http(h) => write!(
                f,
                "http-proxy {}:{} (auth {:?}, {}{})",
                h.host,
                h.port,
                h.method,
                h.version.as_str(),
                creds(&h.credentials)
            ),
            Self::Socks(s) => write!(
                f,
                "socks-proxy {}:{}{}",
                s.host,
                s.port,
                creds(&s.credentials)
            ),
        }
    }
}

/// Never prints passwords.
impl fmt::Debug for UpstreamProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A proxy line as read, before files are loaded.
#[derive(Clone, Debug)]
pub(super) enum ProxyLine {
    Http {
        line: usize,
        host: String,
        port: u16,
        method: AuthMethod,
        /// `None`: no file; `Some(None)`: prompt; `Some(Some(f))`: file or block.
        auth: Option<Option<FileArg>>,
    },
    Socks {
        host: String,
        port: u16,
        auth: Option<Option<FileArg>>,
    },
}

/// `http-proxy-option`s and `http-proxy-timeout` of one connection entry.
#[derive(Clone, Debug, Default)]
pub(super) struct HttpOptions {
    version: HttpVersion,
    agent: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
}

/// The proxy settings of one connection entry.
#[derive(Clone, Debug, Default)]
pub(super) struct ProxyDefaults {
    pub(super) proxy: Option<ProxyLine>,
    pub(super) options: HttpOptions,
}

/// Handles one proxy directive; `false` if `d` is none of them.
pub(super) fn handle(cx: &Ctx<'_>, d: Dir<'_>, pd: &mut ProxyDefaults) -> Res<bool> {
    let a = d.args;
    match d.name {
        "http-proxy" => {
            cx.nargs(d, 2, 4)?;
            cx.no_inline(d)?;
            let port = cx.port(d, &a[1])?;
            let third = a.get(2).map(String::as_str).unwrap_or("");
            let (auth, auto) = match third {
                "" => (None, None),
                "auto" => (None, Some(AuthMethod::Auto)),
                "auto-nct" => (None, Some(AuthMethod::AutoNoClearText)),
                "stdin" => (Some(None), None),
                f => (Some(Some(file(cx, d, f)?)), None),
            };
            let method = match (a.get(3).map(String::as_str), auto) {
                (_, Some(m)) => m,
                (None, None) if auth.is_some() => AuthMethod::Basic,
                (None | Some("none"), None) => AuthMethod::None,
                (Some("basic"), None) => AuthMethod::Basic,
                (Some("digest"), None) => AuthMethod::Digest,
                (Some(m @ ("ntlm" | "ntlm2")), None) => {
                    return Err(cx.err(
                        d,
                        format!(
                            "NTLM proxy authentication ('{m}') is not supported; use 'auto' (Basic \
                             or Digest, whichever the proxy offers), 'basic', or a SOCKS proxy"
                        ),
                    ));
                }
                (Some(m), None) => {
                    return Err(cx.err(
                        d,
                        format!("unknown auth method '{m}' (none, basic, digest; or 'auto')"),
                    ));
                }
            };
            if a[0].is_empty() {
                return Err(cx.err(d, "empty proxy host name"));
            }
            pd.proxy = Some(ProxyLine::Http {
                line: d.line,
                host: a[0].clone(),
                port,
                method,
                auth,
            });
        }
        "socks-proxy" => {
            cx.nargs(d, 1, 3)?;
            cx.no_inline(d)?;
            if a[0].is_empty() {
                return Err(cx.err(d, "empty proxy host name"));
            }
            let port = match a.get(1) {
                Some(p) => cx.port(d, p)?,
                None => 1080,
            };
            let auth = match a.get(2).map(String::as_str) {
                None => None,
                Some("stdin") => Some(None),
                Some(f) => Some(Some(file(cx, d, f)?)),
            };
            pd.proxy = Some(ProxyLine::Socks {
                host: a[0].clone(),
                port,
                auth,
            });
        }
        "http-proxy-option" => {
            cx.nargs(d, 1, 2)?;
            cx.no_inline(d)?;
            let o = &mut pd.options;
            match (a[0].as_str(), a.get(1)) {
                ("VERSION", Some(v)) => {
                    o.version = match v.as_str() {
                        "1.0" => HttpVersion::Http10,
                        "1.1" => HttpVersion::Http11,
                        _ => return Err(cx.err(d, format!("VERSION '{v}' (1.0 or 1.1)"))),
                    }
                }
                ("AGENT", Some(v)) => o.agent = Some(v.clone()),
                ("CUSTOM-HEADER", Some(v)) => {
                    // OpenVPN: `CUSTOM-HEADER name content`, given as two words after the type.
                    return Err(cx.err(
                        d,
                        format!("CUSTOM-HEADER needs a name and a value (got only '{v}')"),
                    ));
                }
                (name, Some(v)) if valid_header_name(name) => {
                    o.headers.push((name.to_owned(), v.clone()))
                }
                (t, _) => {
                    return Err(cx.err(
                        d,
                        format!(
                            "'{t}' needs a value (VERSION 1.0|1.1, AGENT string, CUSTOM-HEADER \
                             name value)"
                        ),
                    ));
                }
            }
        }
        "http-proxy-timeout" => {
            cx.nargs(d, 1, 1)?;
            let t = cx.seconds(d, &a[0])?;
            if t.is_zero() {
                return Err(cx.err(d, "must be at least 1 second"));
            }
            pd.options.timeout = Some(t);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `http-proxy-option CUSTOM-HEADER NAME VALUE` has three words: handled before `handle`.
pub(super) fn custom_header(cx: &Ctx<'_>, d: Dir<'_>, pd: &mut ProxyDefaults) -> Res<bool> {
    if d.name != "http-proxy-option" || d.args.len() != 3 || d.args[0] != "CUSTOM-HEADER" {
        return Ok(false);
    }
    if !valid_header_name(&d.args[1]) {
        return Err(cx.err(d, format!("'{}' is not a valid header name", d.args[1])));
    }
    pd.options
        .headers
        .push((d.args[1].clone(), d.args[2].clone()));
    Ok(true)
}

/// Builds the proxy of one remote: loads credentials, checks the transport.
pub(super) fn finish(
    cx: &Ctx<'_>,
    pd: &ProxyDefaults,
    user_pass: Option<&FileArg>,
    tcp: bool,
) -> Res<Option<UpstreamProxy>> {
    let Some(p) = &pd.proxy else {
        return Ok(None);
    };
    let load = |f: &Option<Option<FileArg>>| -> Res<Option<AuthUserPass>> {
        Ok(match f {
            None => None,
            Some(None) => Some(AuthUserPass::Prompt),
            Some(Some(f)) => Some(cx.load_with(f, material::user_pass)?),
        })
    };
    Ok(Some(match p {
        ProxyLine::Http {
            line,
            host,
            port,
            method,
            auth,
        } => {
            if !tcp {
                let d = Dir {
                    line: *line,
                    name: "http-proxy",
                    args: &[],
                    inline: None,
                };
                return Err(cx.err(
                    d,
                    "an HTTP proxy carries TCP only: use 'proto tcp-client' with it (or \
                     'socks-proxy' for UDP)",
                ));
            }
            let credentials = match user_pass {
                Some(f) => Some(cx.load_with(f, material::user_pass)?),
                None => load(auth)?,
            };
            // `auto`/`auto-nct` without credentials: asked on the terminal when the proxy
            // wants them.
            let credentials = match (credentials, method) {
                (None, AuthMethod::Auto | AuthMethod::AutoNoClearText | AuthMethod::Digest) => {
                    Some(AuthUserPass::Prompt)
                }
                (c, _) => c,
            };
            UpstreamProxy::Http(HttpProxy {
                host: host.clone(),
                port: *port,
                method: *method,
                credentials,
                version: pd.options.version,
                agent: pd.options.agent.clone(),
                headers: pd.options.headers.clone(),
                timeout: pd.options.timeout,
            })
        }
        ProxyLine::Socks { host, port, auth } => UpstreamProxy::Socks(SocksProxy {
            host: host.clone(),
            port: *port,
            credentials: load(auth)?,
        }),
    }))
}

fn file(cx: &Ctx<'_>, d: Dir<'_>, f: &str) -> Res<FileArg> {
    let one = [f.to_owned()];
    let sub = Dir {
        line: d.line,
        name: "http-proxy-user-pass",
        args: &one,
        inline: None,
    };
    let mut fa = cx.file_arg(sub)?;
    fa.directive = d.name.to_owned();
    Ok(fa)
}

fn valid_header_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::mem_loader::MemLoader;
    use super::super::{Profile, Proto, parse_profile};
    use super::*;

    const CA: &str =
        include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/ca.crt");
    const CERT: &str =
        include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.crt");
    const KEY: &str =
        include_str!("../../tests/data/vectors/a-tls-crypt-udp-aes256gcm-reneg/client.key");
    const BASE: &str = "client\ndev tun\nca ca.crt\ncert client.crt\nkey client.key\n";

    fn loader() -> MemLoader {
        MemLoader::rooted("/etc/vpn")
            .with("ca.crt", CA)
            .with("client.crt", CERT)
            .with("client.key", KEY)
            .with("proxy.auth", "alice\ns3cret\n")
    }

    fn parse(extra: &str) -> Result<Profile, String> {
        parse_profile(
            &format!("{BASE}{extra}"),
            Path::new("client.ovpn"),
            &loader(),
        )
        .map_err(|e| e.to_string())
    }

    fn http(p: &Profile, i: usize) -> &HttpProxy {
        match &p.remotes[i].proxy {
            Some(UpstreamProxy::Http(h)) => h,
            o => panic!("not an http proxy: {o:?}"),
        }
    }

    #[test]
    fn http_proxy_with_file_and_options() {
        let p = parse(
            "remote vpn.example.com 443 tcp\nhttp-proxy proxy.example.net 3128 proxy.auth\n\
             http-proxy-option VERSION 1.1\nhttp-proxy-option AGENT OpenVPN/2.6\n\
             http-proxy-option CUSTOM-HEADER X-Flag a-b\nhttp-proxy-option X-Other v\n\
             http-proxy-timeout 7\n",
        )
        .unwrap();
        let h = http(&p, 0);
        assert_eq!((h.host.as_str(), h.port), ("proxy.example.net", 3128));
        assert_eq!(h.method, AuthMethod::Basic);
        assert_eq!(
            h.credentials,
            Some(AuthUserPass::File {
                username: "alice".into(),
                password: Some("s3cret".into())
            })
        );
        assert_eq!(h.version, HttpVersion::Http11);
        assert_eq!(h.agent.as_deref(), Some("OpenVPN/2.6"));
        assert_eq!(
            h.headers,
            [
                ("X-Flag".to_owned(), "a-b".to_owned()),
                ("X-Other".to_owned(), "v".to_owned())
            ]
        );
        assert_eq!(h.timeout, Some(Duration::from_secs(7)));
        // Shown without the password.
        let shown = format!(
            "{:?} {}",
            p.remotes[0],
            p.remotes[0].proxy.as_ref().unwrap()
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("alice"));
    }

    #[test]
    fn http_proxy_auth_forms() {
        let p = parse(
            "proto tcp\nremote a\nhttp-proxy p 8080 auto\n<http-proxy-user-pass>\nbob\npw\n\
             </http-proxy-user-pass>\n",
        )
        .unwrap();
        let h = http(&p, 0);
        assert_eq!(h.method, AuthMethod::Auto);
        assert!(
            matches!(&h.credentials, Some(AuthUserPass::File { username, .. }) if username == "bob")
        );
        let p = parse("proto tcp\nremote a\nhttp-proxy p 8080 auto-nct\n").unwrap();
        assert_eq!(http(&p, 0).method, AuthMethod::AutoNoClearText);
        assert_eq!(http(&p, 0).credentials, Some(AuthUserPass::Prompt));
        let p = parse("proto tcp\nremote a\nhttp-proxy p 8080\n").unwrap();
        assert_eq!(http(&p, 0).method, AuthMethod::None);
        assert_eq!(http(&p, 0).credentials, None);
        let p = parse("proto tcp\nremote a\nhttp-proxy p 8080 stdin basic\n").unwrap();
        assert_eq!(http(&p, 0).credentials, Some(AuthUserPass::Prompt));
        let p = parse(
            "proto tcp\nremote a\nhttp-proxy p 8080 \"\" basic\nhttp-proxy-user-pass proxy.auth\n",
        )
        .unwrap();
        assert_eq!(http(&p, 0).method, AuthMethod::Basic);
        assert!(http(&p, 0).credentials.is_some());
    }

    #[test]
    fn socks_proxy_forms() {
        let p = parse("remote a 1194 udp\nsocks-proxy s\n").unwrap();
        assert_eq!(
            p.remotes[0].proxy,
            Some(UpstreamProxy::Socks(SocksProxy {
                host: "s".into(),
                port: 1080,
                credentials: None
            }))
        );
        let p = parse("remote a 1194 tcp\nsocks-proxy s 9050 proxy.auth\n").unwrap();
        let Some(UpstreamProxy::Socks(s)) = &p.remotes[0].proxy else {
            panic!()
        };
        assert_eq!(s.port, 9050);
        assert!(s.credentials.is_some());
    }

    #[test]
    fn proxies_per_connection_block() {
        let p = parse(
            "http-proxy-option AGENT global\n\
             <connection>\nremote a 1194 udp\n</connection>\n\
             <connection>\nremote b 443 tcp\nhttp-proxy hp 3128\n</connection>\n\
             <connection>\nremote c 1194 udp\nsocks-proxy sp 1081\n</connection>\n",
        )
        .unwrap();
        assert_eq!(p.remotes.len(), 3);
        assert_eq!(p.remotes[0].proxy, None);
        assert_eq!(http(&p, 1).host, "hp");
        assert_eq!(http(&p, 1).agent.as_deref(), Some("global"));
        assert_eq!(p.remotes[2].proto, Proto::Udp);
        assert!(matches!(&p.remotes[2].proxy, Some(UpstreamProxy::Socks(s)) if s.port == 1081));
        // A global proxy applies to every block.
        let p = parse(
            "proto tcp\nsocks-proxy g\n<connection>\nremote a\n</connection>\n\
             <connection>\nremote b\n</connection>\n",
        )
        .unwrap();
        assert!(p.remotes.iter().all(|r| r.proxy.is_some()));
    }

    #[test]
    fn errors_name_line_and_directive() {
        let e = parse("remote a 1194 udp\nhttp-proxy p 3128\n").unwrap_err();
        assert!(
            e.contains("client.ovpn:7:") && e.contains("http-proxy") && e.contains("tcp-client"),
            "{e}"
        );
        let e = parse("proto tcp\nremote a\nhttp-proxy p 3128 proxy.auth ntlm2\n").unwrap_err();
        assert!(
            e.contains("client.ovpn:8:") && e.contains("NTLM") && e.contains("auto"),
            "{e}"
        );
        let e = parse("proto tcp\nremote a\nhttp-proxy p\n").unwrap_err();
        assert!(e.contains("client.ovpn:8:"), "{e}");
        let e = parse("proto tcp\nremote a\nhttp-proxy p 99999\n").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = parse("proto tcp\nremote a\nhttp-proxy p 1 f x y\n").unwrap_err();
        assert!(e.contains("at most 4"), "{e}");
        let e = parse("proto tcp\nremote a\nhttp-proxy p 1 proxy.auth kerberos\n").unwrap_err();
        assert!(e.contains("unknown auth method"), "{e}");
        let e = parse("proto tcp\nremote a\nhttp-proxy p 1 missing.auth\n").unwrap_err();
        assert!(e.contains("missing.auth"), "{e}");
        let e = parse("remote a\nhttp-proxy-option VERSION 2.0\n").unwrap_err();
        assert!(e.contains("client.ovpn:7:") && e.contains("1.1"), "{e}");
        let e = parse("remote a\nhttp-proxy-option AGENT\n").unwrap_err();
        assert!(e.contains("needs a value"), "{e}");
        let e = parse("remote a\nhttp-proxy-timeout 0\n").unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
        let e = parse("remote a\nsocks-proxy s 0\n").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = parse("proto tcp\n<connection>\nremote a\nhttp-proxy p x\n</connection>\n")
            .unwrap_err();
        assert!(e.contains("client.ovpn:9:") && e.contains("port"), "{e}");
    }
}
