//! The `server:` and `logging:` sections of the main file.
//!
//! Relative paths (pid file, logs) are resolved against the main file's
//! directory here; nothing is opened or created.

use super::super::duration::parse_duration;
use super::super::plan::{LogTarget, LoggingSettings, ServerSettings};
use super::super::raw::{self, Text};
use super::*;
use reactor::sys::{MAX_SLICE, MIN_SLICE};
use std::time::Duration;

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
        let scheduler_slice = self.scheduler_slice(f, s.scheduler_slice.as_ref());
        ServerSettings {
            scheduler_slice,
            max_tracked_sources,
            user,
            group,
            pid_file,
            workers,
            max_connections,
            shutdown_timeout,
        }
    }

    /// `server.scheduler_slice`: `off` (the kernel's default slice) or a
    /// duration from 100us to 100ms (the range Linux accepts); `us` is
    /// allowed here besides the usual units.
    fn scheduler_slice(&mut self, f: FileId, t: Option<&Text>) -> Option<Duration> {
        const PATH: &str = "server.scheduler_slice";
        let Some(s) = text(t) else {
            return DEFAULT_SCHEDULER_SLICE;
        };
        if s.eq_ignore_ascii_case("off") {
            return None;
        }
        let parsed = match s.strip_suffix("us") {
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
                .parse::<u64>()
                .map(Duration::from_micros)
                .map_err(|_| format!("{s:?} is too large")),
            _ => parse_duration(s).map_err(|e| e.to_string()),
        };
        match parsed {
            Ok(d) if (MIN_SLICE..=MAX_SLICE).contains(&d) => Some(d),
            Ok(_) => {
                self.error(
                    f,
                    PATH,
                    format!("{s:?} is outside 100us..100ms (or off: the kernel's default)"),
                );
                DEFAULT_SCHEDULER_SLICE
            }
            Err(e) => {
                self.error(f, PATH, format!("{e}; or e.g. 100us, 1ms, off"));
                DEFAULT_SCHEDULER_SLICE
            }
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
