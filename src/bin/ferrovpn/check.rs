//! `ferrovpn check FILE`: parses a client profile or a server configuration and reports the
//! resolved settings, warnings and errors (with file and line), as text or JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use ferrovpn::config::{
    AuthUserPass, Profile, ProfileError, TlsWrap, Warning, load_profile, load_server_profile,
};
use ferrovpn::proto::keys::KeyDirection;

/// What kind of file it is: a server configuration has `server`, `mode server`, `tls-server`
/// or `server-ipv6`; everything else is read as a client profile.
fn looks_like_server(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    text.lines().any(|l| {
        let mut w = l.split_whitespace();
        let first = w.next().unwrap_or("").trim_start_matches("--");
        matches!(
            first,
            "server" | "tls-server" | "server-ipv6" | "server-bridge"
        ) || (first == "mode" && w.next() == Some("server"))
    })
}

pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn warning_json(w: &Warning) -> String {
    format!(
        "{{\"file\":{},\"line\":{},\"directive\":{},\"message\":{}}}",
        json_str(&w.file.display().to_string()),
        w.line,
        json_str(&w.directive),
        json_str(&w.message)
    )
}

fn error_json(e: &ProfileError) -> String {
    format!(
        "{{\"line\":{},\"directive\":{},\"message\":{}}}",
        e.line().map_or("null".into(), |l| l.to_string()),
        e.directive().map_or("null".into(), json_str),
        json_str(&e.to_string())
    )
}

/// The resolved settings of a client profile that decide whether and how it connects.
fn client_summary(p: &Profile) -> Vec<(String, String)> {
    let mut s: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: String| s.push((k.to_owned(), v));
    for r in &p.remotes {
        add(
            "remote",
            format!("{} {} {:?}", r.host, r.port, r.proto).to_lowercase(),
        );
        if let Some(proxy) = &r.proxy {
            add("proxy", proxy.to_string());
        }
    }
    if p.remote_random {
        add("remote-random", "yes".into());
    }
    add("dev", p.dev.clone().unwrap_or_else(|| "tun".into()));
    if let Some(k) = &p.static_key {
        add(
            "mode",
            format!(
                "static-key point-to-point, {} with {:?}, key-direction {}{}{}",
                k.cipher.name(),
                p.auth,
                match k.direction {
                    KeyDirection::Normal => "0",
                    KeyDirection::Inverse => "1",
                    KeyDirection::Bidirectional => "none",
                },
                k.ifconfig
                    .map(|(l, r)| format!(", ifconfig {l} {r}"))
                    .unwrap_or_default(),
                k.local_port
                    .map(|port| format!(", listening on UDP {port}"))
                    .unwrap_or_default()
            )
            .to_lowercase(),
        );
        return s;
    }
    let wrap = match &p.tls_wrap {
        None => "none".to_owned(),
        Some(TlsWrap::Auth { direction, .. }) => match direction {
            KeyDirection::Normal => "tls-auth, key-direction 0".into(),
            KeyDirection::Inverse => "tls-auth, key-direction 1".into(),
            KeyDirection::Bidirectional => "tls-auth, no key-direction".into(),
        },
        Some(TlsWrap::Crypt { .. }) => "tls-crypt".into(),
        Some(TlsWrap::CryptV2 { .. }) => "tls-crypt-v2".into(),
    };
    add("control-channel", wrap);
    let names = |v: &[ferrovpn::proto::keys::Cipher]| {
        v.iter().map(|c| c.name()).collect::<Vec<_>>().join(":")
    };
    add("data-ciphers", names(&p.data_ciphers));
    if let Some(c) = p.data_ciphers_fallback {
        add("data-ciphers-fallback", c.name().into());
    }
    add("auth", format!("{:?}", p.auth).to_lowercase());
    let mut checks = Vec::new();
    if let Some(r) = p.tls.remote_cert_tls {
        checks.push(format!("remote-cert-tls {r:?}").to_lowercase());
    }
    if let Some(v) = &p.tls.verify_x509_name {
        let kind = format!("{:?}", v.kind).to_lowercase();
        checks.push(format!("verify-x509-name {} {kind}", v.name));
    }
    if !p.tls.peer_fingerprints.is_empty() {
        checks.push(format!(
            "peer-fingerprint x{}",
            p.tls.peer_fingerprints.len()
        ));
    }
    if p.tls.crl.is_some() {
        checks.push("crl-verify".into());
    }
    if checks.is_empty() {
        checks.push("CA chain + serverAuth EKU".into());
    }
    add("server-check", checks.join(", "));
    let client_auth = match (&p.tls.cert, &p.auth_user_pass) {
        (Some(_), None) => "certificate".to_owned(),
        (None, None) if p.tls.pkcs12.is_some() => format!(
            "pkcs12 (certificate and key; password {})",
            match &p.tls.askpass {
                Some(Some(_)) => "from the askpass file",
                _ => "none, or asked",
            }
        ),
        (None, None) => "none".to_owned(),
        (cert, Some(up)) => {
            let up = match up {
                AuthUserPass::Prompt => "auth-user-pass (prompt)".to_owned(),
                AuthUserPass::File { password, .. } => format!(
                    "auth-user-pass ({})",
                    if password.is_some() {
                        "file"
                    } else {
                        "file, password prompted"
                    }
                ),
            };
            if cert.is_some() {
                format!("certificate + {up}")
            } else {
                up
            }
        }
    };
    add("client-auth", client_auth);
    if p.compression != ferrovpn::config::Compression::None {
        add(
            "compression",
            format!(
                "{:?}, allow-compression {:?}",
                p.compression, p.allow_compression
            )
            .to_lowercase(),
        );
    }
    if let Some(g) = p.redirect_gateway {
        let flags = [
            (g.def1, "def1"),
            (g.local, "local"),
            (g.ipv6, "ipv6"),
            (g.no_ipv4, "!ipv4"),
            (g.block_local, "block-local"),
            (g.bypass_dhcp, "bypass-dhcp"),
            (g.bypass_dns, "bypass-dns"),
        ];
        let on: Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
        add("redirect-gateway", on.join(" "));
    }
    if p.route_nopull {
        add("route-nopull", "yes".into());
    }
    for f in &p.pull_filters {
        let action = format!("{:?}", f.action).to_lowercase();
        add("pull-filter", format!("{action} \"{}\"", f.prefix));
    }
    add("tun-mtu", p.tun_mtu.to_string());
    add("reneg-sec", p.reneg_sec.as_secs().to_string());
    s
}

/// Runs the check; exit 0 without errors, 1 with errors.
pub fn run(path: &Path, server: bool, json: bool) -> ExitCode {
    let server = server || looks_like_server(path);
    let kind = if server { "server" } else { "client" };
    let (warnings, summary, error): (Vec<Warning>, Vec<(String, String)>, Option<ProfileError>) =
        if server {
            match load_server_profile(path) {
                Ok(p) => {
                    let mut s = Vec::new();
                    for l in &p.listeners {
                        s.push((
                            "listen".into(),
                            format!(
                                "{:?} {}:{}",
                                l.proto,
                                l.addr.map_or("*".into(), |a| a.to_string()),
                                l.port
                            )
                            .to_lowercase(),
                        ));
                    }
                    if let Some(t) = p.tunnel_v4 {
                        s.push((
                            "tunnel".into(),
                            format!(
                                "{}/{} topology {}",
                                t.local,
                                t.prefix_len,
                                t.topology.name()
                            ),
                        ));
                        if let Some((a, b)) = t.pool {
                            s.push(("pool".into(), format!("{a}-{b}")));
                        }
                    }
                    if let Some(t) = p.tunnel_v6 {
                        s.push((
                            "tunnel-ipv6".into(),
                            format!("{}/{}", t.local, t.prefix_len),
                        ));
                    }
                    s.push((
                        "data-ciphers".into(),
                        p.data_ciphers
                            .iter()
                            .map(|c| c.name())
                            .collect::<Vec<_>>()
                            .join(":"),
                    ));
                    for o in &p.push {
                        s.push(("push".into(), o.clone()));
                    }
                    (p.warnings, s, None)
                }
                Err(e) => (Vec::new(), Vec::new(), Some(e)),
            }
        } else {
            match load_profile(path) {
                Ok(p) => {
                    let s = client_summary(&p);
                    (p.warnings, s, None)
                }
                Err(e) => (Vec::new(), Vec::new(), Some(e)),
            }
        };
    if json {
        let mut out = format!(
            "{{\"file\":{},\"kind\":\"{kind}\",\"ok\":{},",
            json_str(&path.display().to_string()),
            error.is_none()
        );
        let _ = write!(
            out,
            "\"errors\":[{}],\"warnings\":[{}],\"settings\":[{}]}}",
            error.iter().map(error_json).collect::<Vec<_>>().join(","),
            warnings
                .iter()
                .map(warning_json)
                .collect::<Vec<_>>()
                .join(","),
            summary
                .iter()
                .map(|(k, v)| format!("[{},{}]", json_str(k), json_str(v)))
                .collect::<Vec<_>>()
                .join(",")
        );
        println!("{out}");
    } else {
        for w in &warnings {
            println!("warning: {w}");
        }
        match &error {
            Some(e) => println!("error: {e}"),
            None => {
                println!("{}: OK ({kind} configuration)", path.display());
                for (k, v) in &summary {
                    println!("  {k} {v}");
                }
            }
        }
    }
    if error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::json_str;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
