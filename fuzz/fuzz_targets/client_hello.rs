//! Fuzz target for the ClientHello peeker (`tls::client_hello::peek`).
//!
//! Run from the repository root (nightly, or stable with RUSTC_BOOTSTRAP=1;
//! runs and findings in docs/robustness.md):
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run client_hello fuzz/seeds/client_hello -- -max_len=17000
//! ```
//!
//! The oracle lives in `client_hello_check.rs`, which
//! `tests/client_hello_seeds.rs` also includes, so `cargo test` runs it
//! over the seeds and mutations of them on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("client_hello_check.rs");

fuzz_target!(|data: &[u8]| {
    check_peek(data);
});
