//! Test harness for the black-box and interop tests (see DESIGN.md, "Tests in layers").
//!
//! - [`netns`]: the network-namespace [`netns::Lab`] (all kernel networking happens in namespaces
//!   it creates and deletes) and the process spawner.
//! - [`pki`]: CA and certificates (rcgen), OpenVPN static and tls-crypt-v2 keys.
//! - [`openvpn`]: the real OpenVPN 2.6 server as a peer, and matching client profiles.
//! - [`client`]: the client under test (ferrovpn, or the reference openvpn client).
//! - [`traffic`]: ping and checksummed bulk transfers through the tunnel.
//! - [`impair`]: the impairment relay (loss, delay, reordering, tampering, float, TCP cut).
//! - [`proxy`]: for proxy mode: the test web server's data, SOCKS5/HTTP clients, namespace threads.
// Each test crate uses a different part of the harness; the clock and sleep bans (clippy.toml)
// are for the protocol core, while the harness waits on real processes in real time.
#![allow(dead_code, clippy::disallowed_methods)]

pub mod client;
pub mod impair;
pub mod lab_multi;
pub mod netns;
pub mod nobody;
pub mod openvpn;
pub mod pki;
pub mod proxy;
pub mod server;
pub mod traffic;

use std::path::Path;

use client::ClientImpl;

/// Prefer the system interpreter (a pyenv shim in PATH would start slowly in every namespace).
pub fn python3() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn in_path(prog: &str) -> bool {
    if prog.contains('/') {
        return Path::new(prog).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).exists()))
}

/// Why the interop tests cannot run here, if they cannot.
fn interop_missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (network namespaces and TUN devices need it)".into());
    }
    for prog in ["openvpn", "ip", "ping", python3()] {
        if !in_path(prog) {
            return Some(format!("`{prog}` is not installed"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    None
}

/// Gate for every interop test: `Some(client)` if it can run, `None` (after printing why) if
/// not. With `FERROVPN_REQUIRE_INTEROP=1` a missing prerequisite is a failure instead.
pub fn interop_ready() -> Option<ClientImpl> {
    interop_ready_with(&[])
}

/// Like [`interop_ready`], and the programs in `extra` must be installed too.
pub fn interop_ready_with(extra: &[&str]) -> Option<ClientImpl> {
    let imp = ClientImpl::from_env();
    let mut missing = interop_missing();
    if missing.is_none() {
        missing = extra
            .iter()
            .find(|p| !in_path(p))
            .map(|p| format!("`{p}` is not installed"));
    }
    if missing.is_none() && imp == ClientImpl::Ferrovpn && client::ferrovpn_bin().is_none() {
        missing = Some("the ferrovpn binary was not built (needs feature `runtime`)".into());
    }
    let require = std::env::var("FERROVPN_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    match missing {
        None => Some(imp),
        Some(why) if require => {
            panic!("interop test cannot run: {why} (FERROVPN_REQUIRE_INTEROP=1)")
        }
        Some(why) => {
            eprintln!(
                "skipping interop test: {why} (set FERROVPN_REQUIRE_INTEROP=1 to fail instead)"
            );
            None
        }
    }
}
