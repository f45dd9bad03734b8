//! `include:` globs: which files one pattern names.
//!
//! A pattern is relative to the including file's directory (or absolute).
//! Wildcards (`*`, `?`) are supported in the file-name part only, which
//! covers `conf.d/*.yaml`; matches are sorted so the load order (and so the
//! order of listeners) is the same on every machine. A literal path must
//! exist; a wildcard pattern needs its directory to exist but may match
//! nothing (an empty `conf.d` is a normal state).
//!
//! What included files may contain, and the guard against a file including
//! itself, are `validate`'s job.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, Eq)]
pub enum IncludeError {
    Empty,
    /// `*` or `?` in a directory component.
    WildcardInDirectory(String),
    NoDirectory {
        pattern: String,
        dir: PathBuf,
    },
    MissingFile(PathBuf),
    ReadDir {
        dir: PathBuf,
        reason: String,
    },
}

impl fmt::Display for IncludeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IncludeError::Empty => write!(f, "include pattern is empty"),
            IncludeError::WildcardInDirectory(p) => write!(
                f,
                "include {p:?}: wildcards are only supported in the file name, not in directories"
            ),
            IncludeError::NoDirectory { pattern, dir } => write!(
                f,
                "include {pattern:?}: directory {} does not exist",
                dir.display()
            ),
            IncludeError::MissingFile(p) => {
                write!(f, "included file {} does not exist", p.display())
            }
            IncludeError::ReadDir { dir, reason } => {
                write!(f, "cannot read directory {}: {reason}", dir.display())
            }
        }
    }
}

impl std::error::Error for IncludeError {}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// The files `pattern` names, relative to `base_dir`, sorted.
pub fn expand(pattern: &str, base_dir: &Path) -> Result<Vec<PathBuf>, IncludeError> {
    let trimmed = pattern.trim();
    if trimmed.is_empty() {
        return Err(IncludeError::Empty);
    }
    let full = base_dir.join(trimmed);
    let file_part = full
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let dir = full.parent().map(Path::to_path_buf).unwrap_or_default();
    if has_wildcard(&dir.to_string_lossy()) {
        return Err(IncludeError::WildcardInDirectory(trimmed.to_string()));
    }
    if !has_wildcard(&file_part) {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(IncludeError::MissingFile(full))
        };
    }
    if !dir.is_dir() {
        return Err(IncludeError::NoDirectory {
            pattern: trimmed.to_string(),
            dir,
        });
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| IncludeError::ReadDir {
        dir: dir.clone(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| IncludeError::ReadDir {
            dir: dir.clone(),
            reason: e.to_string(),
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        // `path.is_file()` follows symlinks, as conf.d setups often use them.
        if glob_match(&file_part, name) && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Shell-style match of one file name: `*` is any run of characters, `?`
/// exactly one; like a shell, a leading `.` is only matched by a literal dot
/// (so editors' `.foo.yaml.swp` files are not loaded).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Position after the last `*` and the name position it was tried at:
    // on a mismatch, let that star swallow one more character.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "nvelox-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        pub(crate) fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.0.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("*.yaml", "a.yaml"));
        assert!(!glob_match("*.yaml", ".yaml"));
        assert!(!glob_match("*.yaml", "a.yml"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("*a*b", "xxaxxbxxc"));
        assert!(glob_match("**.y*", "q.yaml"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("*.yaml", ".hidden.yaml"));
        assert!(glob_match(".*.yaml", ".hidden.yaml"));
        assert!(glob_match("é?.yaml", "éx.yaml"));
    }

    #[test]
    fn expands_sorted_relative_to_base() {
        let tmp = TempDir::new("inc");
        tmp.write("conf.d/b.yaml", "");
        tmp.write("conf.d/a.yaml", "");
        tmp.write("conf.d/c.txt", "");
        tmp.write("conf.d/.a.yaml.swp", "");
        std::fs::create_dir_all(tmp.0.join("conf.d/dir.yaml")).unwrap();
        let got = expand("conf.d/*.yaml", &tmp.0).unwrap();
        assert_eq!(
            got,
            vec![tmp.0.join("conf.d/a.yaml"), tmp.0.join("conf.d/b.yaml")]
        );
        // Absolute patterns ignore the base directory.
        let abs = format!("{}/conf.d/?.yaml", tmp.0.display());
        assert_eq!(expand(&abs, Path::new("/nonexistent")).unwrap().len(), 2);
        // Literal file.
        assert_eq!(
            expand("conf.d/c.txt", &tmp.0).unwrap(),
            vec![tmp.0.join("conf.d/c.txt")]
        );
    }

    #[test]
    fn empty_directory_is_fine_missing_things_are_not() {
        let tmp = TempDir::new("inc-empty");
        std::fs::create_dir_all(tmp.0.join("conf.d")).unwrap();
        assert_eq!(
            expand("conf.d/*.yaml", &tmp.0).unwrap(),
            Vec::<PathBuf>::new()
        );
        assert!(matches!(
            expand("nope.d/*.yaml", &tmp.0),
            Err(IncludeError::NoDirectory { .. })
        ));
        assert_eq!(
            expand("conf.d/x.yaml", &tmp.0),
            Err(IncludeError::MissingFile(tmp.0.join("conf.d/x.yaml")))
        );
        assert!(matches!(
            expand("*/x.yaml", &tmp.0),
            Err(IncludeError::WildcardInDirectory(_))
        ));
        assert_eq!(expand("  ", &tmp.0), Err(IncludeError::Empty));
        let msg = expand("nope.d/*.yaml", &tmp.0).unwrap_err().to_string();
        assert!(
            msg.contains("nope.d") && msg.contains("does not exist"),
            "{msg}"
        );
    }
}
