//! Fuzz target for the server side of `tls::session` (rustls's unbuffered
//! API over nvelox's own buffers): arbitrary first bytes of a connection,
//! and scripts after a real handshake (client writes, key updates,
//! close_notify, injected, corrupted and cut bytes, records of any content
//! type encrypted with the client's keys, a client that does not read).
//!
//! Run (needs `RUSTC_BOOTSTRAP=1` and `cargo install cargo-fuzz`), from the
//! repository root (runs and findings in docs/robustness.md):
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run -s none tls_session fuzz/corpus/tls_session fuzz/seeds/tls_session -- -max_len=4096
//! ```
//!
//! The oracle lives in `tls_session_check.rs` and `tls_session_craft.rs`,
//! which `tests/tls_session_fuzz.rs` also includes, so `cargo test` runs it
//! over the seeds on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("tls_session_check.rs");
include!("tls_session_craft.rs");

fuzz_target!(|data: &[u8]| {
    check_tls_session(data);
});
