//! Fuzz target `wrap`: the body is `common::body("wrap")` (see `tests/fuzz/common/`).
#![no_main]

#[path = "../common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::body("wrap")(data));
