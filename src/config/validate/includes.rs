//! `include:`: loads the files the patterns name (once each, never the main
//! file itself) and moves their listeners and backends into the main list.
//!
//! Which files a pattern names is `config::include`'s job; this module
//! decides what an included file may contain (only `listeners` and
//! `backends`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::super::include;
use super::super::raw::{self, RawBackend, RawConfig, RawListener};
use super::{FileId, Origin, Validator};

impl Validator<'_> {
    pub(super) fn includes(
        &mut self,
        main: FileId,
        main_path: &Path,
        list: &raw::IncludeList,
        listeners: &mut Vec<(Origin, RawListener)>,
        backends: &mut Vec<(Origin, RawBackend)>,
    ) {
        let main_canon = std::fs::canonicalize(main_path).ok();
        // A file matched by two patterns is loaded once.
        let mut seen: HashSet<PathBuf> = main_canon.iter().cloned().collect();
        for (i, pattern) in list.patterns.iter().enumerate() {
            let ypath = if list.is_list {
                format!("include[{i}]")
            } else {
                "include".to_string()
            };
            let files = match include::expand(pattern.as_str(), &self.base_dir) {
                Ok(files) => files,
                Err(e) => {
                    self.error(main, &ypath, e);
                    continue;
                }
            };
            for f in files {
                let canon = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
                if main_canon.as_ref() == Some(&canon) {
                    self.error(
                        main,
                        &ypath,
                        format!(
                            "include cycle: pattern {:?} matches this file itself",
                            pattern.as_str()
                        ),
                    );
                    continue;
                }
                if !seen.insert(canon) {
                    continue;
                }
                let text = match std::fs::read_to_string(&f) {
                    Ok(t) => t,
                    Err(e) => {
                        self.error(
                            main,
                            &ypath,
                            format!("cannot read included file {}: {e}", f.display()),
                        );
                        continue;
                    }
                };
                let id = self.add_source(&f, &text);
                let Some(mut raw) = self.parse_file(id, &text) else {
                    continue;
                };
                let extra = [
                    ("version", raw.version.is_some()),
                    ("server", raw.server.is_some()),
                    ("logging", raw.logging.is_some()),
                    ("metrics", raw.metrics.is_some()),
                    ("admin", raw.admin.is_some()),
                    ("include", raw.include.is_some()),
                ];
                for (k, present) in extra {
                    if present {
                        self.error(
                            id,
                            k,
                            format!(
                                "an included file may only add `listeners` and `backends`; `{k}` belongs in the main file"
                            ),
                        );
                    }
                }
                collect(id, &mut raw, listeners, backends);
            }
        }
    }
}

/// Moves one file's listeners and backends out, tagged with where they were.
pub(super) fn collect(
    file: FileId,
    raw: &mut RawConfig,
    listeners: &mut Vec<(Origin, RawListener)>,
    backends: &mut Vec<(Origin, RawBackend)>,
) {
    tag(file, "listeners", raw.listeners.take(), listeners);
    tag(file, "backends", raw.backends.take(), backends);
}

/// Appends `items` to `out`, each with where it was: `file`, `key[i]`.
fn tag<T>(file: FileId, key: &str, items: Option<Vec<T>>, out: &mut Vec<(Origin, T)>) {
    let tagged = items.unwrap_or_default().into_iter().enumerate();
    out.extend(tagged.map(|(i, item)| {
        let path = format!("{key}[{i}]");
        (Origin { file, path }, item)
    }));
}
