//! Fuzz target for `Header::parse` (PROXY protocol v1/v2).
//!
//! Run (needs a nightly toolchain and `cargo install cargo-fuzz`), from the
//! repository root:
//!
//! ```text
//! cargo +nightly fuzz run parse fuzz/seeds/parse -- -max_len=4096
//! ```
//!
//! New findings land in `fuzz/corpus/parse/` and crashes in
//! `fuzz/artifacts/parse/` (both git-ignored); replay one with
//! `cargo +nightly fuzz run parse fuzz/artifacts/parse/<file>`.
//!
//! The oracle lives in `parse_check.rs`, which `tests/proxy_protocol_vectors.rs`
//! also includes, so `cargo test` on stable compiles it and runs it over the
//! seeds and over random and mutated inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("parse_check.rs");

fuzz_target!(|data: &[u8]| {
    check_parse(data);
});
