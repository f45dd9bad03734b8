//! The `metrics:` and `admin:` sections of the main file.
//!
//! Owns their defaults and checks: `bind` is `IP:PORT` (or `:PORT` for
//! every address), `path` starts with `/`, and an admin API reachable from
//! other hosts needs an `api_key`. Does not open the sockets (`run.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::super::plan::{AdminPlan, MetricsPlan};
use super::super::raw::{RawAdmin, RawMetrics};
use super::*;

pub const DEFAULT_METRICS_BIND: &str = "127.0.0.1:9090";
pub const DEFAULT_METRICS_PATH: &str = "/metrics";
pub const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:9091";
/// Longest `metrics.path`: it must fit in a bounded request line.
const MAX_PATH: usize = 256;

/// `IP:PORT`, `[IPv6]:PORT` or `:PORT` (all IPv4 addresses).
fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("expected IP:PORT or :PORT, got {s:?}"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    s.parse::<SocketAddr>()
        .map_err(|_| format!("expected IP:PORT or :PORT (an address, not a host name), got {s:?}"))
}

impl Validator<'_> {
    fn endpoint_bind(
        &mut self,
        f: FileId,
        path: &str,
        t: Option<&Text>,
        default: &str,
    ) -> Option<SocketAddr> {
        let s = text(t).unwrap_or(default);
        match parse_bind(s) {
            Ok(a) if a.port() == 0 => {
                self.error(f, path, "port 0 is not allowed (ports are 1-65535)");
                None
            }
            Ok(a) => Some(a),
            Err(e) => {
                self.error(f, path, e);
                None
            }
        }
    }

    pub(super) fn metrics(&mut self, f: FileId, m: RawMetrics) -> Option<MetricsPlan> {
        let enabled = self.flag(f, "metrics.enabled", m.enabled.as_ref());
        let bind = self.endpoint_bind(f, "metrics.bind", m.bind.as_ref(), DEFAULT_METRICS_BIND);
        let path = text(m.path.as_ref())
            .unwrap_or(DEFAULT_METRICS_PATH)
            .to_string();
        let path_ok = path.starts_with('/')
            && path.len() <= MAX_PATH
            && path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        if !path_ok {
            self.error(
                f,
                "metrics.path",
                format!("expected a path starting with / (printable ASCII, no ? or #, at most {MAX_PATH} bytes), got {path:?}"),
            );
        } else if path == "/" || path.starts_with("/api/") {
            self.error(
                f,
                "metrics.path",
                format!("{path:?} is taken by the admin status page and API"),
            );
        }
        if !enabled {
            return None;
        }
        Some(MetricsPlan { bind: bind?, path })
    }

    pub(super) fn admin(&mut self, f: FileId, a: RawAdmin) -> Option<AdminPlan> {
        let enabled = self.flag(f, "admin.enabled", a.enabled.as_ref());
        let bind = self.endpoint_bind(f, "admin.bind", a.bind.as_ref(), DEFAULT_ADMIN_BIND);
        let api_key = match text(a.api_key.as_ref()) {
            Some("") => {
                self.error(f, "admin.api_key", "is empty");
                None
            }
            Some(k) if !k.bytes().all(|b| b.is_ascii_graphic()) => {
                self.error(
                    f,
                    "admin.api_key",
                    "must be printable ASCII without spaces (it travels in an HTTP header)",
                );
                None
            }
            other => other.map(str::to_string),
        };
        if !enabled {
            return None;
        }
        let bind = bind?;
        if !bind.ip().is_loopback() && api_key.is_none() {
            self.error(
                f,
                "admin.bind",
                format!("{bind} is reachable from other hosts: set admin.api_key, or bind to 127.0.0.1 / [::1]"),
            );
            return None;
        }
        Some(AdminPlan { bind, api_key })
    }

    /// One socket serves both when the binds are equal; otherwise two
    /// distinct sockets (an overlap such as `:9090` and `127.0.0.1:9090`
    /// could never both bind).
    pub(super) fn shared_bind(
        &mut self,
        f: FileId,
        m: Option<&MetricsPlan>,
        a: Option<&AdminPlan>,
    ) {
        let (Some(m), Some(a)) = (m, a) else { return };
        if m.bind == a.bind || m.bind.port() != a.bind.port() {
            return;
        }
        if m.bind.ip().is_unspecified() || a.bind.ip().is_unspecified() {
            self.error(
                f,
                "admin.bind",
                format!("{} overlaps metrics.bind {}: use the same address to share one socket, or another port", a.bind, m.bind),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use std::path::Path;

    const BASE: &str = "listeners:\n  - { name: l, bind: \"127.0.0.1:1\", default_backend: b }\nbackends:\n  - name: b\n    servers: [\"127.0.0.1:9\"]\n";

    fn load(extra: &str) -> Result<crate::config::Plan, String> {
        load_str(&format!("{extra}{BASE}"), Path::new("t.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_disabled_blocks() {
        let p = load("metrics: { enabled: true }\nadmin: { enabled: true }\n").unwrap();
        let m = p.metrics.unwrap();
        assert_eq!(m.bind.to_string(), "127.0.0.1:9090");
        assert_eq!(m.path, "/metrics");
        assert_eq!(p.admin.unwrap().bind.to_string(), "127.0.0.1:9091");
        let p = load("metrics: { bind: \"127.0.0.1:1\" }\n").unwrap();
        assert!(
            p.metrics.is_none(),
            "enabled defaults to false, as in Go Nvelox"
        );
        assert!(load("").unwrap().admin.is_none());
    }

    #[test]
    fn a_public_admin_bind_needs_an_api_key() {
        let e = load("admin: { enabled: true, bind: \":9091\" }\n").unwrap_err();
        assert!(e.contains("admin.bind") && e.contains("api_key"), "{e}");
        let p = load("admin: { enabled: true, bind: \":9091\", api_key: s3cret }\n").unwrap();
        assert_eq!(p.admin.unwrap().api_key.as_deref(), Some("s3cret"));
        assert!(load("admin: { enabled: true, bind: \"[::1]:9091\" }\n").is_ok());
    }

    #[test]
    fn bad_values_are_refused_with_their_path() {
        for (doc, want) in [
            ("metrics: { enabled: true, bind: \"localhost:9\" }\n", "metrics.bind"),
            ("metrics: { enabled: true, bind: \"127.0.0.1:0\" }\n", "metrics.bind"),
            ("metrics: { enabled: true, path: metrics }\n", "metrics.path"),
            ("metrics: { enabled: true, path: \"/api/x\" }\n", "metrics.path"),
            ("metrics: { enabled: maybe }\n", "metrics.enabled"),
            ("admin: { enabled: true, api_key: \"a b\" }\n", "admin.api_key"),
            ("admin: { enabled: true, colour: red }\n", "admin"),
            ("metrics: { enabled: true, bind: \":9\" }\nadmin: { enabled: true, bind: \"127.0.0.1:9\" }\n", "admin.bind"),
        ] {
            let e = load(doc).unwrap_err();
            assert!(e.contains(want), "{doc}: {e}");
        }
        assert!(load("metrics: { enabled: true, bind: \"127.0.0.1:9\" }\nadmin: { enabled: true, bind: \"127.0.0.1:9\" }\n").is_ok());
    }

    #[test]
    fn a_server_listed_twice_is_refused_it_would_be_two_series_with_one_name() {
        let doc = "listeners:\n  - { name: l, bind: \"127.0.0.1:1\", backend: b }\nbackends:\n  - name: b\n    servers: [\"127.0.0.1:9\", { address: \"127.0.0.1:9\", weight: 2 }]\n";
        let e = load_str(doc, Path::new("t.yaml")).unwrap_err().to_string();
        assert!(
            e.contains("t.yaml:5: backends[0].servers[1]: server \"127.0.0.1:9\" is listed twice"),
            "{e}"
        );
    }
}
