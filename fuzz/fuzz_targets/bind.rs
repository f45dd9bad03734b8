//! Fuzz target for the bind-string parser (`reactor::bind::BindSpec::parse`),
//! which every listener's `bind:` goes through.
//!
//! Run from the repository root (see docs/robustness.md):
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run bind fuzz/corpus/bind fuzz/seeds/bind -- -max_len=128
//! ```
//!
//! The oracle is `bind_check.rs`, which `tests/fuzz_seeds.rs` runs over the
//! seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("bind_check.rs");

fuzz_target!(|data: &[u8]| {
    check_bind(data);
});
