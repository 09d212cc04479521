//! Fuzz target `reliable`: the body is `common::body("reliable")` (see `tests/fuzz/common/`).
#![no_main]

#[path = "../common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::body("reliable")(data));
