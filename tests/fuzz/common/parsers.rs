//! The client profile parser and the server configuration parser, on arbitrary text, with an
//! in-memory loader that holds the committed test keys and certificates.
//!
//! A client profile that parses is also resolved into a client configuration (certificates and
//! keys from the text or the loader go through rustls); a server configuration is also read as a
//! client-config-dir file. Invariant: no panic; inlining a profile keeps it parseable.

use std::path::Path;
use std::sync::Arc;

use ferrovpn::config::{inline_profile, parse_ccd, parse_profile, parse_server_profile};
use ferrovpn::proto::client::ClientConfig;
use ferrovpn::proto::tls::ClientTlsOptions;

use super::fixtures::MemFiles;

/// Client profile text.
pub fn profile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let source = Path::new("fuzz.ovpn");
    let Ok(p) = parse_profile(&text, source, &MemFiles) else {
        return;
    };
    let _ = ClientConfig::from_profile(
        &p,
        None,
        ClientTlsOptions::default(),
        false,
        false,
        1_700_000_000,
        Arc::new(|b: &mut [u8]| b.fill(7)),
    );
    if let Ok(inlined) = inline_profile(&text, &MemFiles, Path::new("/fuzz")) {
        assert!(
            parse_profile(&inlined, source, &MemFiles).is_ok(),
            "a parseable profile stopped parsing once inlined:\n{inlined}"
        );
    }
}

/// Server configuration text (and the same text as a client-config-dir file).
pub fn server_profile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_server_profile(&text, Path::new("server.conf"), &MemFiles);
    let _ = parse_ccd(&text, Path::new("ccd/client1"));
}
