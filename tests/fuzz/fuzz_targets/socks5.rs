//! Fuzz target `socks5`: the body is `common::body("socks5")` (see `tests/fuzz/common/`).
#![no_main]

#[path = "../common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::body("socks5")(data));
