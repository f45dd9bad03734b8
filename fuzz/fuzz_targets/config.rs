//! Fuzz target for the configuration loader: YAML text -> `Plan` through
//! `config::load_str_with`, the entry `nvelox --check` uses.
//!
//! Run from the repository root (see docs/robustness.md):
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz run config fuzz/corpus/config fuzz/seeds/config -- -max_len=4096
//! ```
//!
//! Includes resolve inside a private temp directory (with a few files to
//! find); documents with absolute or `..` include patterns are skipped, so
//! the fuzzer reads nothing else. Host names never reach DNS. The oracle is
//! `config_check.rs`, which `tests/fuzz_seeds.rs` runs over the seeds.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

include!("config_check.rs");

fn sandbox() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nvelox-fuzz-config-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        populate_include_sandbox(&dir);
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    check_config(data, sandbox());
});
