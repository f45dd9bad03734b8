//! Fuzz target for the HTTP/1 request side: head parser, session state
//! machine, request-body decoders and the upstream head editor.
//!
//! Run (needs a nightly toolchain, or `RUSTC_BOOTSTRAP=1`, and
//! `cargo install cargo-fuzz`), from the repository root (runs and findings
//! in docs/robustness.md):
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run http_request fuzz/seeds/http_request -- -max_len=4096
//! ```
//!
//! The first input byte seeds how the rest is split into reads. The oracle
//! lives in `http_request_check.rs`, which `src/http/fuzz_seed_tests.rs`
//! also includes, so `cargo test` runs it over the seeds on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nvelox::http;

include!("http_request_check.rs");

fuzz_target!(|data: &[u8]| {
    check_http_request(data);
});
