//! The `server:` and `logging:` sections of the main file.
//!
//! Relative paths (pid file, logs) are resolved against the main file's
//! directory here; nothing is opened or created.

use super::super::plan::{LogTarget, LoggingSettings, ServerSettings};
use super::super::raw::{self, Text};
use super::*;

impl Validator<'_> {
    pub(super) fn server(&mut self, f: FileId, s: raw::RawServerSettings) -> ServerSettings {
        let user = self.optional_name(f, "server.user", s.user.as_ref());
        let group = self.optional_name(f, "server.group", s.group.as_ref());
        let pid_file = self
            .optional_name(f, "server.pid_file", s.pid_file.as_ref())
            .map(|p| self.file_path(&p));
        let workers = match text(s.workers.as_ref()) {
            None => auto_workers(),
            Some(w) if w.eq_ignore_ascii_case("auto") => auto_workers(),
            Some(_) => self
                .number(f, "server.workers", s.workers.as_ref(), 1, MAX_WORKERS)
                .map_or(1, |n| n as usize),
        };
        let max_connections = self
            .number(
                f,
                "server.max_connections",
                s.max_connections.as_ref(),
                1,
                usize::MAX as u64,
            )
            .map_or(DEFAULT_MAX_CONNECTIONS, |n| n as usize);
        let shutdown_timeout = self.duration(
            f,
            "server.shutdown_timeout",
            s.shutdown_timeout.as_ref(),
            DEFAULT_SHUTDOWN_TIMEOUT,
            true,
            MAX_TIMEOUT,
        );
        let max_tracked_sources = self
            .number(
                f,
                "server.max_tracked_sources",
                s.max_tracked_sources.as_ref(),
                1,
                MAX_TRACKED_SOURCES,
            )
            .map_or(crate::acl::DEFAULT_TRACKED_SOURCES, |n| n as usize);
        ServerSettings {
            max_tracked_sources,
            user,
            group,
            pid_file,
            workers,
            max_connections,
            shutdown_timeout,
        }
    }

    /// An optional non-empty string.
    pub(super) fn optional_name(
        &mut self,
        f: FileId,
        path: &str,
        t: Option<&Text>,
    ) -> Option<String> {
        let s = text(t)?;
        if s.is_empty() {
            self.error(f, path, "is empty");
            return None;
        }
        Some(s.to_string())
    }

    pub(super) fn logging(&mut self, f: FileId, l: raw::RawLogging) -> LoggingSettings {
        use log::LevelFilter;
        let level = self.choice(
            f,
            "logging.level",
            l.level.as_ref(),
            &[
                ("error", LevelFilter::Error),
                ("warn", LevelFilter::Warn),
                ("info", LevelFilter::Info),
                ("debug", LevelFilter::Debug),
                ("trace", LevelFilter::Trace),
                // Go Nvelox's spelling, listed last.
                ("warning", LevelFilter::Warn),
            ],
            LevelFilter::Info,
        );
        let error_log = match text(l.error_log.as_ref()) {
            None | Some("stderr") => LogTarget::Stderr,
            Some("") => {
                self.error(
                    f,
                    "logging.error_log",
                    "is empty (use stderr or a file path)",
                );
                LogTarget::Stderr
            }
            Some(p) => LogTarget::File(self.file_path(p)),
        };
        let access_log = match text(l.access_log.as_ref()) {
            None | Some("off") => None,
            Some("") => {
                self.error(f, "logging.access_log", "is empty (use off or a file path)");
                None
            }
            Some(p) => Some(self.file_path(p)),
        };
        LoggingSettings {
            level,
            error_log,
            access_log,
        }
    }
}

/// The CPU count, asked once per process: `available_parallelism` reads
/// cgroup files on every call, and a reload or `--check` needs no fresher
/// answer (changing `workers` needs a restart anyway).
fn auto_workers() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
