//! `ferrovpn check FILE`: parses a client profile or a server configuration and reports the
//! resolved settings, warnings and errors (with file and line), as text or JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use ferrovpn::config::{ProfileError, Warning, load_profile, load_server_profile};

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

fn json_str(s: &str) -> String {
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
                    let mut s = Vec::new();
                    for r in &p.remotes {
                        s.push((
                            "remote".into(),
                            format!("{} {} {:?}", r.host, r.port, r.proto),
                        ));
                        if let Some(proxy) = &r.proxy {
                            s.push(("proxy".into(), proxy.to_string()));
                        }
                    }
                    s.push((
                        "data-ciphers".into(),
                        p.data_ciphers
                            .iter()
                            .map(|c| c.name())
                            .collect::<Vec<_>>()
                            .join(":"),
                    ));
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
