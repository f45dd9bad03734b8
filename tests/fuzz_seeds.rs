//! The fuzz targets' oracles, compiled on stable and run over the committed
//! seed corpora (`fuzz/seeds/config`, `fuzz/seeds/bind`; the PROXY parser's
//! seeds run in `proxy_protocol_vectors.rs`), plus one regression test per
//! fuzzer finding. No sockets; config includes resolve inside a temp
//! directory that is removed afterwards.

use std::path::{Path, PathBuf};

mod config_check {
    include!("../fuzz/fuzz_targets/config_check.rs");
}
mod bind_check {
    include!("../fuzz/fuzz_targets/bind_check.rs");
}
use bind_check::check_bind;
use config_check::{check_config, populate_include_sandbox};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("nvelox-seeds-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every file of `fuzz/seeds/<target>`, sorted; panics if there are fewer
/// than `at_least` (a missing corpus must not pass silently).
fn seeds(target: &str, at_least: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(
        paths.len() >= at_least,
        "only {} seeds in {}",
        paths.len(),
        dir.display()
    );
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

#[test]
fn config_seeds_hold_the_oracle() {
    let tmp = TempDir::new("config");
    populate_include_sandbox(&tmp.0);
    for (path, bytes) in seeds("config", 5) {
        eprintln!("{}", path.display());
        check_config(&bytes, &tmp.0);
    }
}

#[test]
fn bind_seeds_hold_the_oracle() {
    for (path, bytes) in seeds("bind", 5) {
        eprintln!("{}", path.display());
        check_bind(&bytes);
    }
}
