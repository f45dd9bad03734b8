//! The resolved plan: what the running balancer is built from.
//!
//! `config::load` turns YAML files into a `Plan` after every check has
//! passed; nothing downstream re-validates. Types here are plain data, with
//! indexes instead of names (a listener points at its backend by index).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

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
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoggingSettings {
    pub level: log::LevelFilter,
    pub error_log: LogTarget,
    /// `None` = off (the default).
    pub access_log: Option<PathBuf>,
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
    pub backend: BackendId,
    pub zero_copy: bool,
    pub accept_proxy: AcceptProxy,
    /// Default: 300s for TCP, 30s for UDP.
    pub idle_timeout: Duration,
    /// Per listener (UDP: max sessions). `None` = only the global cap.
    pub max_connections: Option<usize>,
    pub reuseport: bool,
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
    pub servers: Vec<ServerPlan>,
    pub health: HealthPlan,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerPlan {
    /// The address as written in the file, for logs (`"10.0.0.1"`, `"h:80"`).
    pub label: String,
    pub ip: IpAddr,
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
