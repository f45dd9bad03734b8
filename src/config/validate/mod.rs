//! YAML files -> a checked [`Plan`], or every problem found.
//!
//! This module owns the meaning of each key: defaults, allowed values,
//! cross-references (a listener's `default_backend`), overlapping binds.
//! It reads files (the main one and its includes) and may resolve server
//! host names once, through a [`Resolver`]; it opens no sockets.
//!
//! `mod.rs` holds the entry points, the [`Validator`] state (sources, error
//! list, line lookup) and the whole-document pass (`check`: sections, then
//! cross-references). Each section's keys are checked in its own file:
//! `scalars` (numbers, durations, flags, choices), `includes`, `server`
//! (`server:` and `logging:`), `listeners`, `backends`, `health`, `http`
//! (HTTP-mode keys), `go` (Go Nvelox's aliases and `timeouts` blocks).
//!
//! Errors are collected, not returned at the first one: an operator fixing a
//! file wants the whole list. Each carries the file, the YAML path and the
//! line (serde_yaml's position for syntax and unknown-key errors, the
//! [`LineIndex`] for semantic ones).

mod access;
mod backends;
mod go;
mod health;
mod http;
mod includes;
mod listeners;
mod observe;
mod scalars;
mod server;
mod tls;
mod vhosts;

pub use health::{check_http_path, HttpPathError, MAX_HTTP_PATH_LEN};

use std::collections::HashMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::address::{Resolver, SystemResolver};
use super::error::{ConfigError, ConfigErrors};
use super::locate::LineIndex;
use super::plan::*;
use super::raw::{self, RawBackend, RawConfig, RawListener, Text};
use crate::tls::ServerTls;

pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// `server.scheduler_slice` when absent (see docs/config.md).
/// Off: measured, a short slice did not shorten the tails under a nice-19
/// busy loop (the loop already waits 0.1-0.4 us per request for its core) and
/// cost CPU against nice-0 neighbours (docs/benchmarks.md).
pub const DEFAULT_SCHEDULER_SLICE: Option<Duration> = None;
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP: the keep-alive idle time between two requests.
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;
pub const DEFAULT_MAX_FAILS: u32 = 3;
pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `connect_timeout`, `shutdown_timeout`, health-check
/// `interval`, `timeout` and `fail_timeout`: a day. Longer is never meant,
/// and a bound keeps every `now + duration` far from overflowing.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The largest `idle_timeout`: a week (long-lived idle tunnels).
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest `server.max_tracked_sources` (16 M sources, about 1.5 GiB per listener).
const MAX_TRACKED_SOURCES: u64 = 1 << 24;
/// A typo guard: more event loops than this is never what was meant.
const MAX_WORKERS: u64 = 1024;

/// Loads `path` and everything it includes.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    load_with(path, &SystemResolver)
}

/// [`load`] with a chosen host-name resolver.
pub fn load_with(path: &Path, resolver: &dyn Resolver) -> Result<Plan, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str_with(&text, path, resolver),
        Err(e) => Err(ConfigErrors {
            warnings: Vec::new(),
            errors: vec![ConfigError {
                file: path.to_path_buf(),
                line: None,
                path: String::new(),
                message: format!("cannot read configuration file: {e}"),
            }],
        }),
    }
}

/// Checks `text` as if it were the file `path_for_messages`; includes are
/// resolved relative to that path's directory.
pub fn load_str(text: &str, path_for_messages: &Path) -> Result<Plan, ConfigErrors> {
    load_str_with(text, path_for_messages, &SystemResolver)
}

/// [`load_str`] with a chosen host-name resolver.
pub fn load_str_with(
    text: &str,
    path_for_messages: &Path,
    resolver: &dyn Resolver,
) -> Result<Plan, ConfigErrors> {
    let base_dir = match path_for_messages.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut v = Validator {
        resolver,
        base_dir,
        sources: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let plan = v.check(text, path_for_messages);
    match plan {
        Some(mut plan) if v.errors.is_empty() => {
            plan.warnings = sorted(v.warnings)
                .into_iter()
                .map(|w| w.to_string())
                .collect();
            Ok(plan)
        }
        _ => Err(ConfigErrors {
            errors: sorted(v.errors),
            warnings: sorted(v.warnings),
        }),
    }
}

/// Index into `Validator::sources`.
type FileId = usize;

struct Source {
    path: PathBuf,
    index: LineIndex,
}

/// Where a listener or backend was written: file and YAML path in it.
#[derive(Clone, Debug)]
struct Origin {
    file: FileId,
    path: String,
}

pub(crate) struct Validator<'r> {
    resolver: &'r dyn Resolver,
    /// The main file's directory: relative log, pid and include paths start here.
    base_dir: PathBuf,
    sources: Vec<Source>,
    /// Tagged with the file so the final list can be sorted file by file,
    /// line by line, whatever order the checks ran in.
    errors: Vec<(FileId, ConfigError)>,
    warnings: Vec<(FileId, ConfigError)>,
}

/// Stable sort by file (main first, then includes in load order) and line.
fn sorted(mut v: Vec<(FileId, ConfigError)>) -> Vec<ConfigError> {
    v.sort_by_key(|(file, e)| (*file, e.line.unwrap_or(usize::MAX)));
    v.into_iter().map(|(_, e)| e).collect()
}

/// A listener after its own checks, before cross-references.
struct ListenerDraft {
    origin: Origin,
    name: Option<String>,
    bind: Option<BindSpec>,
    protocol: Protocol,
    /// `protocol: https`: `protocol` is `Http`, `tls` is required.
    https: bool,
    /// `server_names`, in file order.
    server_names: Vec<SniName>,
    /// `default_server: true`.
    default_server: bool,
    /// Set by `vhost_groups`: the group's table (its first listener) or
    /// the listener whose socket this one shares.
    vhosts: Option<crate::config::VhostTable>,
    socket_of: Option<ListenerId>,
    /// `Some` for http (and https) listeners.
    http: Option<http::HttpDraft>,
    http_timeouts: HttpListenerTimeouts,
    backend_name: Option<String>,
    /// `backend`, or the deprecated `default_backend`: where errors about
    /// the name point.
    backend_key: &'static str,
    /// Go's `timeouts.connect`, applied to the backend once it is known.
    connect: Option<go::SetAt>,
    zero_copy: bool,
    accept_proxy: AcceptProxy,
    idle_timeout: Duration,
    max_connections: Option<usize>,
    reuseport: bool,
    sni_routes: Vec<tls::SniRouteDraft>,
    tls: Option<crate::tls::ServerTls>,
    access: AccessPlan,
}

/// A backend after its own checks.
struct BackendDraft {
    origin: Origin,
    name: Option<String>,
    plan: BackendPlan,
    /// Where the backend set its connect timeout (`connect_timeout` or
    /// `timeouts.connect`).
    connect_set: Option<(go::SetAt, Origin)>,
    /// The first listener `timeouts.connect` applied to this backend.
    listener_connect: Option<(go::SetAt, Origin)>,
    /// HTTP-only keys written (`timeouts.read`, `retry`, `keepalive`): name
    /// and path, refused when a tcp or udp listener uses the backend.
    http_only: Vec<(&'static str, String)>,
}

fn key(parent: &str, k: &str) -> String {
    format!("{parent}.{k}")
}

/// `a[1].b` -> `a[1]` -> `a` -> `""`.
fn parent_path(p: &str) -> Option<&str> {
    if p.is_empty() {
        return None;
    }
    Some(p.rfind(['.', '[']).map_or("", |i| &p[..i]))
}

fn text(t: Option<&Text>) -> Option<&str> {
    t.map(|t| t.as_str().trim())
}

impl Validator<'_> {
    fn add_source(&mut self, path: &Path, text: &str) -> FileId {
        self.sources.push(Source {
            path: path.to_path_buf(),
            index: LineIndex::new(text),
        });
        self.sources.len() - 1
    }

    /// The line of `path`, or of its nearest ancestor that the locator finds
    /// (a missing key is reported on its parent's line; flow style on the
    /// line of the enclosing block node).
    fn line_of(&self, file: FileId, path: &str) -> Option<usize> {
        let index = &self.sources[file].index;
        let mut p = Some(path);
        while let Some(cur) = p {
            if cur.is_empty() {
                return None;
            }
            if let Some(line) = index.locate(cur) {
                return Some(line);
            }
            p = parent_path(cur);
        }
        None
    }

    fn located(&self, file: FileId, path: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.sources[file].path.clone(),
            line: self.line_of(file, path),
            path: path.to_string(),
            message,
        }
    }

    fn error(&mut self, file: FileId, path: &str, message: impl Display) {
        let e = self.located(file, path, message.to_string());
        self.errors.push((file, e));
    }

    /// "FILE:LINE" of a node, for messages that point at a second place.
    fn place(&self, origin: &Origin) -> String {
        let file = self.sources[origin.file].path.display();
        match self.line_of(origin.file, &origin.path) {
            Some(line) => format!("{file}:{line}"),
            None => file.to_string(),
        }
    }

    fn parse_file(&mut self, file: FileId, text: &str) -> Option<RawConfig> {
        self.go_only_keys(file, text);
        match raw::parse(text) {
            Ok(r) => Some(r),
            Err(e) => {
                let (path, message) = split_serde_error(&e);
                let e = ConfigError {
                    file: self.sources[file].path.clone(),
                    line: e.location().map(|l| editor_line(text, l.index())),
                    path,
                    message,
                };
                self.errors.push((file, e));
                None
            }
        }
    }

    fn file_path(&self, s: &str) -> PathBuf {
        self.base_dir.join(s)
    }

    // ---- the document

    fn check(&mut self, text: &str, main_path: &Path) -> Option<Plan> {
        let main = self.add_source(main_path, text);
        let mut raw = self.parse_file(main, text)?;

        let mut listeners: Vec<(Origin, RawListener)> = Vec::new();
        let mut backends: Vec<(Origin, RawBackend)> = Vec::new();
        includes::collect(main, &mut raw, &mut listeners, &mut backends);
        if let Some(list) = raw.include.take() {
            self.includes(main, main_path, &list, &mut listeners, &mut backends);
        }

        if let Some(v) = text_of(&raw.version) {
            if v != "2" {
                self.error(
                    main,
                    "version",
                    format!("unsupported version {v:?} (only \"2\" is supported)"),
                );
            }
        }
        let server = self.server(main, raw.server.take().unwrap_or_default());
        let logging = self.logging(main, raw.logging.take().unwrap_or_default());
        let metrics = raw.metrics.take().and_then(|m| self.metrics(main, m));
        let admin = raw.admin.take().and_then(|a| self.admin(main, a));
        self.shared_bind(main, metrics.as_ref(), admin.as_ref());

        let mut backend_drafts: Vec<BackendDraft> = backends
            .into_iter()
            .map(|(origin, b)| self.backend(origin, b))
            .collect();
        let mut listener_drafts: Vec<ListenerDraft> = listeners
            .into_iter()
            .map(|(origin, l)| self.listener(origin, l))
            .collect();

        let by_name = self.backend_names(&backend_drafts);
        self.duplicate_listener_names(&listener_drafts);
        self.overlapping_binds(&listener_drafts);
        self.vhost_groups(&mut listener_drafts);

        let plan_listeners = self.link(listener_drafts, &mut backend_drafts, &by_name);

        Some(Plan {
            server,
            logging,
            listeners: plan_listeners,
            backends: backend_drafts.into_iter().map(|b| b.plan).collect(),
            metrics,
            admin,
            // Filled in, sorted, by `load_str_with`.
            warnings: Vec::new(),
        })
    }
}

fn text_of(t: &Option<Text>) -> Option<&str> {
    text(t.as_ref())
}

/// The line an editor shows for byte `index` of `text`: 1 + the `\n`s
/// before it. serde_yaml's own line number also counts a lone CR, NEL,
/// U+2028 and U+2029 as line breaks (YAML 1.1), which put errors on lines
/// past the end of the file as an editor shows it (fuzzer finding); its byte
/// index does not depend on that. A BOM is not counted by libyaml.
fn editor_line(text: &str, index: usize) -> usize {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let end = index.saturating_add(bom).min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// serde_yaml says `listeners[0]: unknown field ... at line 3 column 5`;
/// the line is kept separately, so split off the path and drop the position.
fn split_serde_error(e: &serde_yaml::Error) -> (String, String) {
    let mut msg = e.to_string();
    if let Some(loc) = e.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(stripped) = msg.strip_suffix(&suffix) {
            msg = stripped.to_string();
        }
    }
    if let Some((path, rest)) = msg.split_once(": ") {
        let looks_like_path = !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.[]?-".contains(c));
        if looks_like_path {
            return (path.to_string(), rest.to_string());
        }
    }
    (String::new(), msg)
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
