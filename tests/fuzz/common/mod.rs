//! The fuzz targets' bodies, shared by the cargo-fuzz crate (`tests/fuzz/fuzz_targets/`) and the
//! stable replay test (`tests/fuzz_corpus.rs`), so every committed corpus file runs on every
//! `cargo test`. Each body takes arbitrary bytes, drives public API only, and panics on a broken
//! invariant.

#![allow(dead_code, clippy::disallowed_methods)] // the session bodies start from one real Instant

pub mod fixtures;
pub mod handshake;
pub mod parsers;
pub mod proxy;
pub mod reliable;
pub mod session;
pub mod wire;
pub mod wrap;

/// Every target: name (the corpus directory and the fuzz target) and body.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("wire", wire::datagram),
    ("tcp_deframer", wire::tcp_stream),
    ("wrap", wrap::unwrap),
    ("reliable", reliable::run),
    ("handshake", handshake::run),
    ("profile", parsers::profile),
    ("server_profile", parsers::server_profile),
    ("socks5", proxy::socks5),
    ("http", proxy::http),
    ("dns", proxy::dns),
    ("client", session::client),
    ("server", session::server),
];

/// The body of target `name`.
pub fn body(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

/// Reads fuzz input front to back; reads past the end give `None` / empty slices.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    pub fn u16(&mut self) -> Option<u16> {
        let b = self.bytes(2);
        (b.len() == 2).then(|| u16::from_be_bytes([b[0], b[1]]))
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}
