//! Replays every committed fuzz corpus file (`tests/fuzz/corpus/TARGET/`) through the same body
//! the cargo-fuzz target runs (`tests/fuzz/common/`), so the corpora and the invariants are
//! exercised on stable by every `cargo test`, without nightly or libFuzzer.
#![allow(clippy::disallowed_methods)]
// The shared fuzz bodies are written for libFuzzer's crate, which does not run these lints.
#![allow(
    clippy::type_complexity,
    clippy::collapsible_if,
    clippy::wrong_self_convention,
    clippy::large_enum_variant
)]

#[path = "fuzz/common/mod.rs"]
mod common;

use std::path::Path;

fn replay(target: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let body = common::body(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let r = std::panic::catch_unwind(|| body(&data));
        assert!(r.is_ok(), "{target}: corpus file {} fails", f.display());
    }
}

#[test]
fn every_target_has_a_corpus() {
    for (name, _) in common::TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz/corpus")
            .join(name);
        assert!(dir.is_dir(), "no corpus for {name}");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        assert!(src.is_file(), "no fuzz target {}", src.display());
    }
}

macro_rules! replay_tests {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            replay(stringify!($name));
        }
    )*};
}

replay_tests!(
    wire,
    tcp_deframer,
    wrap,
    reliable,
    handshake,
    profile,
    server_profile,
    socks5,
    http,
    dns,
    client,
    server
);

#[test]
fn session_harness_connects_in_every_wrap_mode() {
    for mode in 0..4 {
        assert!(
            common::session::honest_handshake_connects(mode),
            "wrap mode {mode}: no connection, the client/server targets would stay shallow"
        );
    }
}
