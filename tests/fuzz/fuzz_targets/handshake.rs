//! Fuzz target `handshake`: the body is `common::body("handshake")` (see `tests/fuzz/common/`).
#![no_main]

#[path = "../common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::body("handshake")(data));
