//! Fuzz target `tcp_deframer`: the body is `common::body("tcp_deframer")` (see `tests/fuzz/common/`).
#![no_main]

#[path = "../common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::body("tcp_deframer")(data));
