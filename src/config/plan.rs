//! The resolved plan: what the running balancer is built from.
//!
//! `config::load` turns YAML files into a `Plan` after every check has
//! passed; nothing downstream re-validates. Types here are plain data, with
//! indexes instead of names (a listener points at its backend by index).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::acl::{AccessPlan, IpSet, Rate};
pub use crate::http::editor::{EditOptions, HeaderEdits};
pub use crate::http::retry::RetryPolicy;
pub use reactor::bind::{BindHost, BindSpec};

/// A listener of a plan: its index in `Plan::listeners`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub usize);

/// A backend of a plan: its index in `Plan::backends`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub usize);

/// A server of a backend: its index in `BackendPlan::servers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(pub usize);

impl std::fmt::Display for ServerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server #{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub server: ServerSettings,
    pub logging: LoggingSettings,
    pub listeners: Vec<ListenerPlan>,
    pub backends: Vec<BackendPlan>,
    /// `metrics:` with `enabled: true`.
    pub metrics: Option<MetricsPlan>,
    /// `admin:` with `enabled: true`.
    pub admin: Option<AdminPlan>,
    /// Things that load but deserve a word (a deprecated key such as Go's
    /// `default_backend`), one line each, already naming file, line and YAML
    /// path. Printed by `--check` and logged as warnings at start.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Panics on an id from another plan: ids are only made from this
    /// plan's own indexes.
    pub fn listener(&self, id: ListenerId) -> &ListenerPlan {
        &self.listeners[id.0]
    }

    pub fn backend(&self, id: BackendId) -> &BackendPlan {
        &self.backends[id.0]
    }

    /// Every listener with its id.
    pub fn listener_ids(&self) -> impl Iterator<Item = (ListenerId, &ListenerPlan)> {
        self.listeners
            .iter()
            .enumerate()
            .map(|(i, l)| (ListenerId(i), l))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerSettings {
    pub user: Option<String>,
    pub group: Option<String>,
    pub pid_file: Option<PathBuf>,
    /// Event loops; `auto` already resolved to the number of CPUs (>= 1).
    pub workers: usize,
    /// Across all listeners.
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    /// Capacity of each listener's per-client table (`ip_rate_limit`,
    /// `max_connections_per_ip`), least recently seen evicted. Default 65,536.
    pub max_tracked_sources: usize,
    /// The EEVDF slice each event-loop thread asks the kernel for
    /// (`server.scheduler_slice`); `None` = the kernel's default.
    pub scheduler_slice: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoggingSettings {
    pub level: log::LevelFilter,
    pub error_log: LogTarget,
    /// `None` = off (the default).
    pub access_log: Option<PathBuf>,
}

/// The Prometheus endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsPlan {
    pub bind: std::net::SocketAddr,
    /// Starts with `/`. Default `/metrics`.
    pub path: String,
}

/// The status page and JSON API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminPlan {
    pub bind: std::net::SocketAddr,
    /// Required when `bind` is not a loopback address.
    pub api_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    /// HTTP/1.x over TCP; its settings are in [`ListenerPlan::http`].
    Http,
}

impl Protocol {
    /// The name as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Http => "http",
        }
    }

    /// Whether listeners of this protocol bind stream (TCP) sockets.
    pub fn is_stream(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Http)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptProxy {
    Off,
    V1,
    V2,
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalanceKind {
    RoundRobin,
    LeastConn,
    Random,
    SourceHash,
    Maglev,
}

/// What `balance: maglev` hashes to choose a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address (the PROXY header's client when present).
    Ip,
    /// IP address and source port: spreads one client's connections.
    IpPort,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ListenerPlan {
    pub name: String,
    pub bind: BindSpec,
    pub protocol: Protocol,
    /// tcp/udp: where every connection goes (always `Some`). http: the
    /// default backend (unmatched requests), or, for a listener with routes
    /// and no default, the first route's backend, kept only so that
    /// per-listener defaults (health-check probe port) have a backend;
    /// request routing reads [`HttpListenerPlan::default_backend`] and
    /// `routes` instead. `None` only for an http/https listener whose every
    /// route is a redirect and that names no backend at all.
    pub backend: Option<BackendId>,
    /// tcp; http: for the byte tunnel after an `Upgrade`.
    pub zero_copy: bool,
    pub accept_proxy: AcceptProxy,
    /// Default: 300s for TCP, 30s for UDP, 60s for HTTP, where it is the
    /// keep-alive idle time between two requests of a client connection.
    pub idle_timeout: Duration,
    /// Per listener (UDP: max sessions). `None` = only the global cap.
    pub max_connections: Option<usize>,
    pub reuseport: bool,
    /// `sni_routes`, in file order (lookup: [`route_by_sni`]); empty = none.
    pub sni_routes: Vec<SniRoute>,
    /// `tls:`: TLS offload, with the certificates loaded.
    pub tls: Option<crate::tls::ServerTls>,
    /// `Some` exactly when `protocol` is [`Protocol::Http`].
    pub http: Option<HttpListenerPlan>,
    /// `ip_allowlist`, `ip_denylist`, `rate_limit`, `ip_rate_limit`,
    /// `max_connections_per_ip`.
    pub access: AccessPlan,
    /// The first of several http/https listeners written with the same
    /// bind (name-based virtual hosts): the group, by name. It owns the
    /// socket; clients are served by the listener the table chooses.
    pub vhosts: Option<super::VhostTable>,
    /// Another listener of such a group: it has no socket of its own; it
    /// shares the one of this listener (the group's first).
    pub socket_of: Option<ListenerId>,
}

impl ListenerPlan {
    /// The backend of a tcp or udp listener: `--check` gives each one
    /// (only an http/https listener of redirects may have none, and its
    /// requests never reach this), so the fallback is never taken.
    pub fn stream_backend(&self) -> BackendId {
        self.backend.unwrap_or(BackendId(0))
    }
}

/// One `sni_routes` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SniRoute {
    pub name: SniName,
    pub backend: BackendId,
}

/// A route's `server_name`, lowercase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SniName {
    /// `app.example.com`.
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: any name ending with it
    /// (one label or more in front).
    Suffix(String),
}

/// The backend for a ClientHello's server name: an exact route first,
/// then the longest matching `*.suffix` (the first written among equals);
/// `None` when no route matches or there was no name.
pub fn route_by_sni(routes: &[SniRoute], name: Option<&str>) -> Option<BackendId> {
    let name = name?;
    if let Some(r) = routes
        .iter()
        .find(|r| matches!(&r.name, SniName::Exact(n) if n == name))
    {
        return Some(r.backend);
    }
    let mut best: Option<(usize, BackendId)> = None;
    for r in routes {
        if let SniName::Suffix(s) = &r.name {
            if name.len() > s.len()
                && name.ends_with(s.as_str())
                && best.map_or(true, |(l, _)| s.len() > l)
            {
                best = Some((s.len(), r.backend));
            }
        }
    }
    best.map(|(_, b)| b)
}

/// Default `max_header_size`: 16 KiB for the whole request head.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 16 * 1024;
/// Smallest `max_header_size` accepted: 1 KiB.
pub const MIN_MAX_HEADER_SIZE: usize = 1024;
/// Largest `max_header_size` accepted: 1 MiB (the HTTP core's own cap).
pub const MAX_MAX_HEADER_SIZE: usize = crate::http::head::MAX_HEAD_BYTES_CAP;
/// Default listener `timeouts.read`: the whole request head within 30s.
pub const DEFAULT_HTTP_HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Default listener `timeouts.write`.
pub const DEFAULT_HTTP_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default backend `timeouts.read`.
pub const DEFAULT_HTTP_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default backend `keepalive`.
pub const DEFAULT_HTTP_KEEPALIVE: usize = 32;
/// Largest backend `keepalive`.
pub const MAX_HTTP_KEEPALIVE: usize = 1024;
/// Largest `retry.attempts` (the first try included).
pub const MAX_HTTP_ATTEMPTS: u32 = 10;

/// The HTTP settings of a `protocol: http` listener.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpListenerPlan {
    /// Requests no route matches go here; `None` (a listener with routes
    /// and no `backend`): they get 404.
    pub default_backend: Option<BackendId>,
    /// In file order; the first that matches wins.
    pub routes: Vec<RoutePlan>,
    /// `headers`, `forwarded_for` and `backend_server_header`, in the HTTP
    /// core's own form (names and values already checked with
    /// [`HeaderEdits::validate`]).
    pub edits: EditOptions,
    pub timeouts: HttpListenerTimeouts,
    /// Bytes of the whole request head (request line, headers, empty line);
    /// beyond it: 431 (414 for the request line). Default 16384.
    pub max_header_size: usize,
    /// Largest request body; beyond it: 413. `None`: no limit (the default).
    pub max_body_size: Option<u64>,
}

/// Client-side timeouts of an HTTP listener. The keep-alive idle time is
/// [`ListenerPlan::idle_timeout`]. `None`: no limit (Go's `0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpListenerTimeouts {
    /// The whole request head must arrive within this, counted from its
    /// first byte (or from the connection's start for the first request);
    /// else 408. `timeouts.read` or Go's `timeouts.read_header`, the shorter
    /// when both are written. Default 30s.
    pub head: Option<Duration>,
    /// A write to the client that makes no progress for this long closes
    /// the connection. Default 30s.
    pub write: Option<Duration>,
}

/// One `routes[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePlan {
    /// Lower case, without a port; compared case-insensitively with the
    /// request's host stripped of its port. `None`: any host.
    pub host: Option<String>,
    /// Byte prefix of the request path (starts with `/`). `None`: any path.
    pub path_prefix: Option<String>,
    pub action: RouteAction,
}

/// What a matched route does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAction {
    /// Proxy to this backend.
    Backend(BackendId),
    /// `redirect`: answer with a redirect, no server contacted (Go Nvelox:
    /// a route's redirect wins over its `backend`).
    Redirect(crate::http::redirect::Redirect),
}

/// Where a request goes ([`HttpListenerPlan::route`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routed<'a> {
    Backend(BackendId),
    Redirect(&'a crate::http::redirect::Redirect),
    /// No route matches and there is no default backend: 404.
    NoRoute,
}

impl RoutePlan {
    /// Whether a request matches: `host_name` is its host without the port
    /// (`RequestHead::host_name`), in any case; `path` its path.
    pub fn matches(&self, host_name: Option<&[u8]>, path: &[u8]) -> bool {
        let host_ok = match (&self.host, host_name) {
            (None, _) => true,
            (Some(want), Some(got)) => got.eq_ignore_ascii_case(want.as_bytes()),
            (Some(_), None) => false,
        };
        host_ok
            && match &self.path_prefix {
                Some(p) => path.starts_with(p.as_bytes()),
                None => true,
            }
    }
}

impl HttpListenerPlan {
    /// The backend a request goes to: the first route that matches, else
    /// the default backend; `None`: 404 or a redirect.
    pub fn backend_for(&self, host_name: Option<&[u8]>, path: &[u8]) -> Option<BackendId> {
        match self.route(host_name, path) {
            Routed::Backend(b) => Some(b),
            Routed::Redirect(_) | Routed::NoRoute => None,
        }
    }

    /// What a request gets: the first route that matches (its backend or
    /// its redirect), else the default backend, else 404.
    pub fn route(&self, host_name: Option<&[u8]>, path: &[u8]) -> Routed<'_> {
        match self.routes.iter().find(|r| r.matches(host_name, path)) {
            Some(r) => match &r.action {
                RouteAction::Backend(b) => Routed::Backend(*b),
                RouteAction::Redirect(x) => Routed::Redirect(x),
            },
            None => self
                .default_backend
                .map_or(Routed::NoRoute, Routed::Backend),
        }
    }
}

/// The HTTP settings of a backend, used when an HTTP listener sends to it.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpBackendPlan {
    /// `retry`. Without it: connect failures are tried again on other
    /// servers `retries` times (as for TCP, at most 9), nothing else.
    pub retry: RetryPolicy,
    /// `timeouts.read`: the wait for the response head once the request is
    /// sent, and the longest pause between two reads of the response; past
    /// it: 504 (or the connection is closed once the response has started).
    /// `None`: no limit (Go's `0`). Default 60s.
    pub response_timeout: Option<Duration>,
    /// `keepalive`: idle upstream connections kept per server per event
    /// loop; 0 = a new connection per request. Default 32.
    pub keepalive: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BackendPlan {
    pub name: String,
    pub balance: BalanceKind,
    /// `balance: maglev` only (else `Ip`, unused). Default `Ip`.
    pub hash_key: HashKey,
    /// From `send_proxy_v2: true` or `send_proxy: v1 | v2`.
    pub send_proxy: Option<ProxyVersion>,
    /// Default 5s.
    pub connect_timeout: Duration,
    /// TCP connect retries on other servers. Default 3.
    pub retries: u32,
    /// `max_connections` (Go Nvelox's): at most this many at once across
    /// all servers: TCP connections, HTTP requests in flight, UDP sessions.
    /// Beyond it: no server (TCP closes, HTTP 503, UDP drops). `None`: no cap.
    pub max_connections: Option<usize>,
    pub servers: Vec<ServerPlan>,
    pub health: HealthPlan,
    /// Used by HTTP listeners only.
    pub http: HttpBackendPlan,
    /// `backend_tls` (enabled): TLS to the servers, files loaded.
    pub tls: Option<crate::tls::ClientTls>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerPlan {
    /// The address as written in the file, for logs (`"10.0.0.1"`, `"h:80"`).
    pub label: String,
    pub ip: IpAddr,
    /// The host name the address was written with (`None` for an IP
    /// address): with `backend_tls` and no `server_name`, the name sent
    /// as SNI and verified.
    pub host: Option<std::sync::Arc<str>>,
    /// `None`: use the port the client connected to.
    pub port: Option<u16>,
    /// >= 1. Default 1.
    pub weight: u32,
    pub backup: bool,
    pub max_connections: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthPlan {
    pub active: Option<ActiveCheck>,
    pub passive: Option<PassiveCheck>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    Tcp,
    Http,
    Udp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ActiveCheck {
    pub kind: CheckKind,
    /// Probe port for servers without one; `None` = the first port of the
    /// first listener that uses this backend.
    pub port: Option<u16>,
    /// HTTP path, default `/`.
    pub path: String,
    /// Bytes to send (escapes already decoded). Empty = send nothing.
    pub send: Vec<u8>,
    /// Substring the reply must contain. Empty = any reply (udp) / connect is enough (tcp).
    pub expect: Vec<u8>,
    /// Default 10s.
    pub interval: Duration,
    /// Default 2s.
    pub timeout: Duration,
    /// Default 2.
    pub rise: u32,
    /// Default 3.
    pub fall: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PassiveCheck {
    /// Default 3.
    pub max_fails: u32,
    /// Default 10s.
    pub fail_timeout: Duration,
}

#[cfg(test)]
mod sni_tests {
    use super::*;

    fn r(name: &str, b: usize) -> SniRoute {
        let name = match name.strip_prefix('*') {
            Some(suffix) => SniName::Suffix(suffix.to_string()),
            None => SniName::Exact(name.to_string()),
        };
        SniRoute {
            name,
            backend: BackendId(b),
        }
    }

    #[test]
    fn exact_first_then_the_longest_suffix_else_none() {
        let routes = [
            r("*.example.com", 1),
            r("*.api.example.com", 2),
            r("api.example.com", 3),
            r("*.other.test", 4),
            r("*.other.test", 5),
        ];
        let at = |n: &str| route_by_sni(&routes, Some(n)).map(|b| b.0);
        assert_eq!(at("api.example.com"), Some(3));
        assert_eq!(at("v1.api.example.com"), Some(2));
        assert_eq!(at("www.example.com"), Some(1));
        assert_eq!(at("a.b.example.com"), Some(1));
        assert_eq!(at("example.com"), None, "*.x does not match x itself");
        assert_eq!(at("a.other.test"), Some(4), "the first among equals");
        assert_eq!(at("unknown.test"), None);
        assert_eq!(route_by_sni(&routes, None), None);
    }
}
