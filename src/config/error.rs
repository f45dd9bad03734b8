//! Configuration errors as an operator reads them:
//! `FILE:LINE: PATH: message`, one per line, all of them at once.

use std::fmt;
use std::path::PathBuf;

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; `None` when the line could not be found (flow style, I/O errors).
    pub line: Option<usize>,
    /// YAML path such as `backends[1].servers[0]`; empty for whole-file problems.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found; never empty when returned as an `Err`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
    /// What would have been warnings had the file been valid (a deprecated
    /// key), so that `--check` shows them next to the errors. Not counted,
    /// not part of `Display`.
    pub warnings: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_file_line_path_message() {
        let e = ConfigError {
            file: "conf/a.yaml".into(),
            line: Some(12),
            path: "backends[1].servers[0]".into(),
            message: "weight must be at least 1".into(),
        };
        assert_eq!(
            e.to_string(),
            "conf/a.yaml:12: backends[1].servers[0]: weight must be at least 1"
        );
        let no_line = ConfigError {
            line: None,
            path: String::new(),
            ..e.clone()
        };
        assert_eq!(
            no_line.to_string(),
            "conf/a.yaml: weight must be at least 1"
        );
        let all = ConfigErrors {
            errors: vec![e, no_line],
            warnings: Vec::new(),
        };
        assert_eq!(all.to_string().lines().count(), 2);
    }
}
