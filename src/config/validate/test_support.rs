//! Helpers shared by the validation unit tests that check rendered error
//! lines (`go_tests.rs`, `http_tests.rs`).

use std::path::Path;

use super::load_str_with;
use crate::config::address::tests::FakeResolver;
use crate::config::{ConfigError, Plan};

/// Loads `doc` as if read from a file called `name`.
pub(super) fn load_named(name: &str, doc: &str) -> Result<Plan, Vec<ConfigError>> {
    load_str_with(doc, Path::new(name), &FakeResolver).map_err(|e| e.errors)
}

/// The rendered errors of a document that must not load.
pub(super) fn errors_named(name: &str, doc: &str) -> Vec<String> {
    match load_named(name, doc) {
        Ok(_) => panic!("expected errors for:\n{doc}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts one rendered error starts with `prefix` and mentions `needle`.
#[track_caller]
pub(super) fn has(errs: &[String], prefix: &str, needle: &str) {
    assert!(
        errs.iter()
            .any(|e| e.starts_with(prefix) && e.contains(needle)),
        "no error starting {prefix:?} containing {needle:?}; got:\n{}",
        errs.join("\n")
    );
}
