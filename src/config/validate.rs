//! YAML files -> a checked [`Plan`], or every problem found.
//!
//! This module owns the meaning of each key: defaults, allowed values,
//! cross-references (a listener's `default_backend`), overlapping binds,
//! and the list of keys that are accepted but not implemented yet. It reads
//! files (the main one and its includes) and may resolve server host names
//! once, through a [`Resolver`]; it opens no sockets.
//!
//! Errors are collected, not returned at the first one: an operator fixing a
//! file wants the whole list. Each carries the file, the YAML path and the
//! line (serde_yaml's position for syntax and unknown-key errors, the
//! [`LineIndex`] for semantic ones).

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::address::{parse_server_address, Resolver, SystemResolver};
use super::duration::parse_duration;
use super::error::{ConfigError, ConfigErrors};
use super::escape::decode_escapes;
use super::include;
use super::locate::LineIndex;
use super::plan::*;
use super::raw::{self, RawBackend, RawConfig, RawListener, RawServerEntry, Text};

/// Keys that load but do nothing yet: `(key pattern, feature)`. Using one
/// adds a warning to [`Plan::warnings`]. Remove an entry when its feature
/// lands; `[]` stands for "any index".
pub const NOT_YET_SUPPORTED: &[(&str, &str)] = &[];

pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;
pub const DEFAULT_MAX_FAILS: u32 = 3;
pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);
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

struct Validator<'r> {
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
    backend_name: Option<String>,
    zero_copy: bool,
    accept_proxy: AcceptProxy,
    idle_timeout: Duration,
    max_connections: Option<usize>,
    reuseport: bool,
}

/// A backend after its own checks.
struct BackendDraft {
    origin: Origin,
    name: Option<String>,
    plan: BackendPlan,
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

    fn not_yet(&mut self, file: FileId, pattern: &str, path: &str) {
        if let Some((_, feature)) = NOT_YET_SUPPORTED.iter().find(|(k, _)| *k == pattern) {
            let w = self.located(
                file,
                path,
                format!("{feature}: accepted but not yet supported; ignored"),
            );
            self.warnings.push((file, w));
        }
    }

    fn parse_file(&mut self, file: FileId, text: &str) -> Option<RawConfig> {
        match raw::parse(text) {
            Ok(r) => Some(r),
            Err(e) => {
                let (path, message) = split_serde_error(&e);
                let e = ConfigError {
                    file: self.sources[file].path.clone(),
                    line: e.location().map(|l| l.line()),
                    path,
                    message,
                };
                self.errors.push((file, e));
                None
            }
        }
    }

    // ---- scalar helpers: report and fall back to a default, so checking
    // goes on; the plan is only returned when no error was recorded.

    fn required<'t>(
        &mut self,
        file: FileId,
        item: &str,
        name: &str,
        t: Option<&'t Text>,
    ) -> Option<&'t str> {
        match text(t) {
            Some(s) if !s.is_empty() => Some(s),
            Some(_) => {
                self.error(file, &key(item, name), format!("`{name}` is empty"));
                None
            }
            None => {
                self.error(file, item, format!("missing required key `{name}`"));
                None
            }
        }
    }

    fn duration(
        &mut self,
        file: FileId,
        path: &str,
        t: Option<&Text>,
        default: Duration,
        allow_zero: bool,
    ) -> Duration {
        let Some(s) = text(t) else { return default };
        match parse_duration(s) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(file, path, "must be greater than 0");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(file, path, e);
                default
            }
        }
    }

    /// A whole number in `min..=max`; `None` when absent or wrong.
    fn number(
        &mut self,
        file: FileId,
        path: &str,
        t: Option<&Text>,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let s = text(t)?;
        let n = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse::<u64>().ok()
        } else {
            None
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) if n < min => {
                self.error(file, path, format!("must be at least {min}, got {n}"));
                None
            }
            _ => {
                self.error(
                    file,
                    path,
                    format!("expected a whole number from {min} to {max}, got {s:?}"),
                );
                None
            }
        }
    }

    fn port(&mut self, file: FileId, path: &str, t: Option<&Text>) -> Option<u16> {
        if text(t) == Some("0") {
            self.error(file, path, "port 0 is not allowed (ports are 1-65535)");
            return None;
        }
        self.number(file, path, t, 1, 65535).map(|n| n as u16)
    }

    fn flag(&mut self, file: FileId, path: &str, t: Option<&Text>) -> bool {
        let Some(s) = text(t) else { return false };
        match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => true,
            "false" | "no" | "off" => false,
            _ => {
                self.error(file, path, format!("expected true or false, got {s:?}"));
                false
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        file: FileId,
        path: &str,
        t: Option<&Text>,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(s) = text(t) else { return default };
        let lower = s.to_ascii_lowercase();
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == lower) {
            return *v;
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.error(
            file,
            path,
            format!(
                "unknown value {s:?} (expected one of: {})",
                names.join(", ")
            ),
        );
        default
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
        collect(main, &mut raw, &mut listeners, &mut backends);
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

        let backend_drafts: Vec<BackendDraft> = backends
            .into_iter()
            .map(|(origin, b)| self.backend(origin, b))
            .collect();
        let listener_drafts: Vec<ListenerDraft> = listeners
            .into_iter()
            .map(|(origin, l)| self.listener(origin, l))
            .collect();

        let by_name = self.backend_names(&backend_drafts);
        self.duplicate_listener_names(&listener_drafts);
        self.overlapping_binds(&listener_drafts);

        let mut plan_listeners = Vec::with_capacity(listener_drafts.len());
        for l in listener_drafts {
            let Some(name) = l.backend_name.as_deref() else {
                continue;
            };
            let path = key(&l.origin.path, "default_backend");
            let Some(&backend) = by_name.get(name) else {
                let mut known: Vec<&str> = by_name.keys().map(String::as_str).collect();
                known.sort_unstable();
                let known = if known.is_empty() {
                    "no backends are defined".to_string()
                } else {
                    format!("defined backends: {}", known.join(", "))
                };
                self.error(
                    l.origin.file,
                    &path,
                    format!("unknown backend {name:?} ({known})"),
                );
                continue;
            };
            let b = &backend_drafts[backend].plan;
            if l.protocol == Protocol::Udp && b.send_proxy == Some(ProxyVersion::V1) {
                self.error(
                    l.origin.file,
                    &path,
                    format!(
                        "backend {name:?} sends PROXY v1, which is TCP only; use send_proxy: v2 for UDP listeners"
                    ),
                );
            }
            if let (Some(bind), Some(name)) = (l.bind, l.name) {
                plan_listeners.push(ListenerPlan {
                    name,
                    bind,
                    protocol: l.protocol,
                    backend,
                    zero_copy: l.zero_copy,
                    accept_proxy: l.accept_proxy,
                    idle_timeout: l.idle_timeout,
                    max_connections: l.max_connections,
                    reuseport: l.reuseport,
                });
            }
        }

        Some(Plan {
            server,
            logging,
            listeners: plan_listeners,
            backends: backend_drafts.into_iter().map(|b| b.plan).collect(),
            // Filled in, sorted, by `load_str_with`.
            warnings: Vec::new(),
        })
    }

    fn includes(
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

    fn server(&mut self, f: FileId, s: raw::RawServerSettings) -> ServerSettings {
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
        );
        ServerSettings {
            user,
            group,
            pid_file,
            workers,
            max_connections,
            shutdown_timeout,
        }
    }

    /// An optional non-empty string; `server.user` and `server.group` also
    /// count as "used" for the not-yet-supported warnings.
    fn optional_name(&mut self, f: FileId, path: &str, t: Option<&Text>) -> Option<String> {
        let s = text(t)?;
        if s.is_empty() {
            self.error(f, path, "is empty");
            return None;
        }
        self.not_yet(f, path, path);
        Some(s.to_string())
    }

    fn logging(&mut self, f: FileId, l: raw::RawLogging) -> LoggingSettings {
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

    fn listener(&mut self, origin: Origin, l: RawListener) -> ListenerDraft {
        let f = origin.file;
        let p = origin.path.clone();
        let name = self
            .required(f, &p, "name", l.name.as_ref())
            .map(str::to_string);
        let bind =
            self.required(f, &p, "bind", l.bind.as_ref())
                .and_then(|b| match BindSpec::parse(b) {
                    Ok(spec) => Some(spec),
                    Err(e) => {
                        self.error(f, &key(&p, "bind"), e);
                        None
                    }
                });
        let protocol = self.choice(
            f,
            &key(&p, "protocol"),
            l.protocol.as_ref(),
            &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp)],
            Protocol::Tcp,
        );
        let backend_name = self
            .required(f, &p, "default_backend", l.default_backend.as_ref())
            .map(str::to_string);
        let zero_copy = self.flag(f, &key(&p, "zero_copy"), l.zero_copy.as_ref());
        if zero_copy {
            if protocol == Protocol::Udp {
                self.error(
                    f,
                    &key(&p, "zero_copy"),
                    "zero_copy (splice) is for tcp listeners only",
                );
            } else {
                self.not_yet(f, "listeners[].zero_copy", &key(&p, "zero_copy"));
            }
        }
        let accept_path = key(&p, "accept_proxy");
        let accept_proxy = self.choice(
            f,
            &accept_path,
            l.accept_proxy.as_ref(),
            &[
                ("off", AcceptProxy::Off),
                ("false", AcceptProxy::Off),
                ("v1", AcceptProxy::V1),
                ("v2", AcceptProxy::V2),
                ("any", AcceptProxy::Any),
            ],
            AcceptProxy::Off,
        );
        if accept_proxy == AcceptProxy::V1 && protocol == Protocol::Udp {
            self.error(
                f,
                &accept_path,
                "PROXY v1 is TCP only; use v2 (or any) on udp listeners",
            );
        }
        let idle_default = match protocol {
            Protocol::Tcp => DEFAULT_TCP_IDLE_TIMEOUT,
            Protocol::Udp => DEFAULT_UDP_IDLE_TIMEOUT,
        };
        let idle_timeout = self.duration(
            f,
            &key(&p, "idle_timeout"),
            l.idle_timeout.as_ref(),
            idle_default,
            false,
        );
        let max_connections = self
            .number(
                f,
                &key(&p, "max_connections"),
                l.max_connections.as_ref(),
                1,
                usize::MAX as u64,
            )
            .map(|n| n as usize);
        let reuseport = self.flag(f, &key(&p, "reuseport"), l.reuseport.as_ref());
        ListenerDraft {
            origin,
            name,
            bind,
            protocol,
            backend_name,
            zero_copy,
            accept_proxy,
            idle_timeout,
            max_connections,
            reuseport,
        }
    }

    fn backend(&mut self, origin: Origin, b: RawBackend) -> BackendDraft {
        let f = origin.file;
        let p = origin.path.clone();
        let name = self
            .required(f, &p, "name", b.name.as_ref())
            .map(str::to_string);
        let balance = self.choice(
            f,
            &key(&p, "balance"),
            b.balance.as_ref(),
            &[
                ("roundrobin", BalanceKind::RoundRobin),
                ("leastconn", BalanceKind::LeastConn),
                ("random", BalanceKind::Random),
                ("source_hash", BalanceKind::SourceHash),
            ],
            BalanceKind::RoundRobin,
        );
        let send_proxy = self.send_proxy(f, &p, &b);
        let connect_timeout = self.duration(
            f,
            &key(&p, "connect_timeout"),
            b.connect_timeout.as_ref(),
            DEFAULT_CONNECT_TIMEOUT,
            false,
        );
        let retries = self
            .number(f, &key(&p, "retries"), b.retries.as_ref(), 0, 100)
            .map_or(DEFAULT_RETRIES, |n| n as u32);
        let mut servers = Vec::new();
        match &b.servers {
            None => self.error(f, &p, "missing required key `servers`"),
            Some(list) if list.is_empty() => {
                self.error(f, &key(&p, "servers"), "needs at least one server")
            }
            Some(list) => {
                for (j, entry) in list.iter().enumerate() {
                    let sp = format!("{p}.servers[{j}]");
                    if let Some(s) = self.server_entry(f, &sp, entry) {
                        servers.push(s);
                    }
                }
            }
        }
        let health = match &b.health_check {
            None => HealthPlan::default(),
            Some(h) => {
                let hp = key(&p, "health_check");
                HealthPlan {
                    active: h
                        .active
                        .as_ref()
                        .map(|a| self.active_check(f, &key(&hp, "active"), a)),
                    passive: h
                        .passive
                        .as_ref()
                        .map(|ps| self.passive_check(f, &key(&hp, "passive"), ps)),
                }
            }
        };
        BackendDraft {
            origin,
            name: name.clone(),
            plan: BackendPlan {
                name: name.unwrap_or_default(),
                balance,
                send_proxy,
                connect_timeout,
                retries,
                servers,
                health,
            },
        }
    }

    fn send_proxy(&mut self, f: FileId, p: &str, b: &RawBackend) -> Option<ProxyVersion> {
        let v2_path = key(p, "send_proxy_v2");
        let sp_path = key(p, "send_proxy");
        let v2 = self.flag(f, &v2_path, b.send_proxy_v2.as_ref());
        let named = self.choice(
            f,
            &sp_path,
            b.send_proxy.as_ref(),
            &[
                ("off", None),
                ("false", None),
                ("v1", Some(ProxyVersion::V1)),
                ("v2", Some(ProxyVersion::V2)),
            ],
            None,
        );
        if v2 && named == Some(ProxyVersion::V1) {
            self.error(
                f,
                &sp_path,
                "conflicts with send_proxy_v2: true (choose one PROXY version)",
            );
        }
        if v2 {
            self.not_yet(f, "backends[].send_proxy_v2", &v2_path);
            Some(ProxyVersion::V2)
        } else {
            if named.is_some() {
                self.not_yet(f, "backends[].send_proxy", &sp_path);
            }
            named
        }
    }

    fn server_entry(&mut self, f: FileId, sp: &str, entry: &RawServerEntry) -> Option<ServerPlan> {
        let (addr_text, addr_path, weight, backup, max_connections) = match entry {
            RawServerEntry::Plain(t) => (Some(t.as_str().trim()), sp.to_string(), 1, false, None),
            RawServerEntry::Full(s) => {
                let addr = self.required(f, sp, "address", s.address.as_ref());
                let weight_path = key(sp, "weight");
                let weight = match text(s.weight.as_ref()) {
                    Some("0") => {
                        self.error(
                            f,
                            &weight_path,
                            "weight must be at least 1 (to stop sending traffic to a server, remove it or mark it backup)",
                        );
                        1
                    }
                    _ => self
                        .number(f, &weight_path, s.weight.as_ref(), 1, 1_000_000)
                        .map_or(1, |n| n as u32),
                };
                let backup = self.flag(f, &key(sp, "backup"), s.backup.as_ref());
                let max_conn = self
                    .number(
                        f,
                        &key(sp, "max_connections"),
                        s.max_connections.as_ref(),
                        1,
                        usize::MAX as u64,
                    )
                    .map(|n| n as usize);
                (addr, key(sp, "address"), weight, backup, max_conn)
            }
        };
        let addr = addr_text?;
        match parse_server_address(addr, self.resolver) {
            Ok((ip, port)) => Some(ServerPlan {
                label: addr.to_string(),
                ip,
                port,
                weight,
                backup,
                max_connections,
            }),
            Err(e) => {
                self.error(f, &addr_path, e);
                None
            }
        }
    }

    fn active_check(&mut self, f: FileId, p: &str, a: &raw::RawActiveCheck) -> ActiveCheck {
        let kind = self.choice(
            f,
            &key(p, "type"),
            a.kind.as_ref(),
            &[
                ("tcp", CheckKind::Tcp),
                ("http", CheckKind::Http),
                ("udp", CheckKind::Udp),
            ],
            CheckKind::Tcp,
        );
        let port = self.port(f, &key(p, "port"), a.port.as_ref());
        let path = match (kind, text(a.path.as_ref())) {
            (CheckKind::Http, None) => "/".to_string(),
            (CheckKind::Http, Some(s)) if s.starts_with('/') => s.to_string(),
            (CheckKind::Http, Some(s)) => {
                self.error(
                    f,
                    &key(p, "path"),
                    format!("http path {s:?} must start with /"),
                );
                "/".to_string()
            }
            (_, Some(_)) => {
                self.error(f, &key(p, "path"), "`path` is only used by type: http");
                String::new()
            }
            (_, None) => String::new(),
        };
        let bytes = |this: &mut Self, name: &str, t: Option<&Text>| -> Vec<u8> {
            let Some(t) = t else { return Vec::new() };
            match decode_escapes(t.as_str()) {
                Ok(b) => b,
                Err(e) => {
                    this.error(f, &key(p, name), e);
                    Vec::new()
                }
            }
        };
        let send = bytes(self, "send", a.send.as_ref());
        let expect = bytes(self, "expect", a.expect.as_ref());
        if kind == CheckKind::Http && a.send.is_some() {
            self.error(
                f,
                &key(p, "send"),
                "`send` is for tcp and udp checks; http checks send a GET for `path`",
            );
        }
        let interval = self.duration(
            f,
            &key(p, "interval"),
            a.interval.as_ref(),
            DEFAULT_CHECK_INTERVAL,
            false,
        );
        let timeout = self.duration(
            f,
            &key(p, "timeout"),
            a.timeout.as_ref(),
            DEFAULT_CHECK_TIMEOUT,
            false,
        );
        let rise = self
            .number(f, &key(p, "rise"), a.rise.as_ref(), 1, 1000)
            .map_or(DEFAULT_RISE, |n| n as u32);
        let fall = self
            .number(f, &key(p, "fall"), a.fall.as_ref(), 1, 1000)
            .map_or(DEFAULT_FALL, |n| n as u32);
        ActiveCheck {
            kind,
            port,
            path,
            send,
            expect,
            interval,
            timeout,
            rise,
            fall,
        }
    }

    fn passive_check(&mut self, f: FileId, p: &str, ps: &raw::RawPassiveCheck) -> PassiveCheck {
        let max_fails = self
            .number(f, &key(p, "max_fails"), ps.max_fails.as_ref(), 1, 1000)
            .map_or(DEFAULT_MAX_FAILS, |n| n as u32);
        let fail_timeout = self.duration(
            f,
            &key(p, "fail_timeout"),
            ps.fail_timeout.as_ref(),
            DEFAULT_FAIL_TIMEOUT,
            false,
        );
        PassiveCheck {
            max_fails,
            fail_timeout,
        }
    }

    /// Name -> index of the first backend with that name; later duplicates
    /// are errors.
    fn backend_names(&mut self, drafts: &[BackendDraft]) -> HashMap<String, usize> {
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, b) in drafts.iter().enumerate() {
            let Some(name) = &b.name else { continue };
            if let Some(&first) = by_name.get(name) {
                let msg = format!(
                    "duplicate backend name {name:?} (first defined at {})",
                    self.place(&drafts[first].origin)
                );
                self.error(b.origin.file, &key(&b.origin.path, "name"), msg);
            } else {
                by_name.insert(name.clone(), i);
            }
        }
        by_name
    }

    fn duplicate_listener_names(&mut self, drafts: &[ListenerDraft]) {
        let mut first: HashMap<&str, &Origin> = HashMap::new();
        for l in drafts {
            let Some(name) = l.name.as_deref() else {
                continue;
            };
            if let Some(origin) = first.get(name) {
                let msg = format!(
                    "duplicate listener name {name:?} (first defined at {})",
                    self.place(origin)
                );
                self.error(l.origin.file, &key(&l.origin.path, "name"), msg);
            } else {
                first.insert(name, &l.origin);
            }
        }
    }

    fn overlapping_binds(&mut self, drafts: &[ListenerDraft]) {
        for (i, l) in drafts.iter().enumerate() {
            let Some(bind) = &l.bind else { continue };
            for earlier in &drafts[..i] {
                let Some(other) = &earlier.bind else { continue };
                if earlier.protocol == l.protocol && bind.overlaps(other) {
                    let proto = match l.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                    };
                    let who = match &earlier.name {
                        Some(n) => format!("{proto} listener {n:?}"),
                        None => format!("the {proto} listener"),
                    };
                    let msg = format!(
                        "bind {bind} overlaps {who} (bind {other}, at {})",
                        self.place(&earlier.origin)
                    );
                    self.error(l.origin.file, &key(&l.origin.path, "bind"), msg);
                }
            }
        }
    }
}

fn text_of(t: &Option<Text>) -> Option<&str> {
    text(t.as_ref())
}

fn auto_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Moves one file's listeners and backends out, tagged with where they were.
fn collect(
    file: FileId,
    raw: &mut RawConfig,
    listeners: &mut Vec<(Origin, RawListener)>,
    backends: &mut Vec<(Origin, RawBackend)>,
) {
    for (i, l) in raw
        .listeners
        .take()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let origin = Origin {
            file,
            path: format!("listeners[{i}]"),
        };
        listeners.push((origin, l));
    }
    for (i, b) in raw
        .backends
        .take()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let origin = Origin {
            file,
            path: format!("backends[{i}]"),
        };
        backends.push((origin, b));
    }
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
#[path = "validate_tests.rs"]
mod tests;
