//! Fuzz target `server_profile`: the body is `common::body("server_profile")` (see `tests/fuzz/common/`).
#![no_main]

#[path = "../common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::body("server_profile")(data));
