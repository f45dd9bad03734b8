//! Serde types that mirror the YAML schema of SPEC.md key for key.
//!
//! Every struct denies unknown keys, so a typo is an error with a line, not
//! a silently ignored setting. Scalars are kept as [`Text`] (the value as
//! written, whether the user quoted it or not) and are interpreted by
//! `validate`: that way one bad duration or port does not hide the next
//! one, and `protocol: "tcp"`, `weight: "3"` and `version: 2` all load as
//! Go Nvelox users write them. Only the *shape* (map vs list vs scalar) and
//! key names are checked here.
//!
//! Keys of Go Nvelox that nvelox does not implement are fields of type
//! [`GoOnly`]: they parse (whatever their value), so that serde does not stop
//! at the first one with "unknown field"; `compat` reports each of them as
//! "not supported by nvelox" with its line.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A scalar as written: string, number or boolean, kept as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a single value (text, number or true/false)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The value of a Go Nvelox key that nvelox does not implement: anything,
/// skipped. Its presence is what matters (see `compat::GO_ONLY_KEYS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoOnly;

impl<'de> Deserialize<'de> for GoOnly {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(d).map(|_| GoOnly)
    }
}

/// A whole configuration file (the main one or an included one).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: Option<Text>,
    pub server: Option<RawServerSettings>,
    pub logging: Option<RawLogging>,
    pub include: Option<IncludeList>,
    pub listeners: Option<Vec<RawListener>>,
    pub backends: Option<Vec<RawBackend>>,
    pub metrics: Option<RawMetrics>,
    pub admin: Option<RawAdmin>,
    // Go Nvelox only (reported by `compat`).
    pub tracing: Option<GoOnly>,
}

/// `metrics:` (Prometheus endpoint).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub enabled: Option<Text>,
    pub bind: Option<Text>,
    pub path: Option<Text>,
}

/// `admin:` (status page and JSON API).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub enabled: Option<Text>,
    pub bind: Option<Text>,
    pub api_key: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerSettings {
    pub user: Option<Text>,
    pub group: Option<Text>,
    pub pid_file: Option<Text>,
    pub workers: Option<Text>,
    pub max_connections: Option<Text>,
    pub shutdown_timeout: Option<Text>,
    pub max_tracked_sources: Option<Text>,
    pub scheduler_slice: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub level: Option<Text>,
    pub error_log: Option<Text>,
    pub access_log: Option<Text>,
}

/// `include: "conf.d/*.yaml"` or `include: [a.yaml, "b/*.yaml"]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IncludeList {
    pub patterns: Vec<Text>,
    /// Written as a YAML list (so the YAML path of a pattern is `include[i]`).
    pub is_list: bool,
}

impl<'de> Deserialize<'de> for IncludeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IncludeList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob or a list of globs")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IncludeList, E> {
                Ok(IncludeList {
                    patterns: vec![Text(v.to_string())],
                    is_list: false,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IncludeList, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element::<Text>()? {
                    out.push(t);
                }
                Ok(IncludeList {
                    patterns: out,
                    is_list: true,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: Option<Text>,
    pub bind: Option<Text>,
    pub protocol: Option<Text>,
    /// The current name (Go Nvelox renamed `default_backend` to `backend`).
    pub backend: Option<Text>,
    /// Deprecated alias of `backend`.
    pub default_backend: Option<Text>,
    pub zero_copy: Option<Text>,
    pub accept_proxy: Option<Text>,
    pub idle_timeout: Option<Text>,
    pub max_connections: Option<Text>,
    pub reuseport: Option<Text>,
    /// Go Nvelox's timeouts block; mapped onto nvelox's own settings.
    pub timeouts: Option<RawListenerTimeouts>,
    /// TLS termination (`protocol: tcp`: offload).
    pub tls: Option<RawTls>,
    /// Passthrough routing by the ClientHello's server name.
    pub sni_routes: Option<Vec<RawSniRoute>>,
    // HTTP mode (`protocol: http`); refused on tcp/udp listeners by `validate`.
    pub routes: Option<Vec<RawRoute>>,
    pub headers: Option<RawHeaders>,
    pub backend_server_header: Option<Text>,
    pub forwarded_for: Option<Text>,
    pub max_header_size: Option<Text>,
    pub max_body_size: Option<Text>,
    // Access control and abuse limits (every protocol).
    pub ip_allowlist: Option<Vec<Text>>,
    pub ip_denylist: Option<Vec<Text>>,
    pub rate_limit: Option<RawRate>,
    pub ip_rate_limit: Option<RawRate>,
    pub max_connections_per_ip: Option<Text>,
    /// Name-based virtual hosts (`http`/`https` listeners sharing a bind).
    pub server_names: Option<Vec<Text>>,
    pub default_server: Option<Text>,
    // Go Nvelox only (reported by `compat`).
    pub acl: Option<GoOnly>,
    pub trusted_proxies: Option<GoOnly>,
    pub accept_proxy_from: Option<GoOnly>,
    pub http3: Option<GoOnly>,
    pub compression: Option<GoOnly>,
    pub error_pages: Option<GoOnly>,
    pub root: Option<GoOnly>,
    pub buffering: Option<GoOnly>,
    pub cache: Option<GoOnly>,
    pub grpc: Option<GoOnly>,
    pub throttle: Option<GoOnly>,
}

/// `listeners[].tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<Text>,
    pub key: Option<Text>,
    pub certificates: Option<Vec<RawCertPair>>,
    pub client_auth: Option<Text>,
    pub client_ca: Option<Text>,
    pub min_version: Option<Text>,
    pub alpn: Option<Vec<Text>>,
    // Go Nvelox only (reported by `compat`).
    pub auto_cert: Option<GoOnly>,
    pub ocsp_stapling: Option<GoOnly>,
}

/// One entry of `tls.certificates`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertPair {
    pub cert: Option<Text>,
    pub key: Option<Text>,
}

/// `backends[].backend_tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendTls {
    pub enabled: Option<Text>,
    pub ca_cert: Option<Text>,
    pub insecure: Option<Text>,
    pub server_name: Option<Text>,
    pub client_cert: Option<Text>,
    pub client_key: Option<Text>,
}

/// One entry of `listeners[].sni_routes`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSniRoute {
    pub server_name: Option<Text>,
    pub backend: Option<Text>,
}

/// `listeners[].routes[]`: a match and the backend it sends to. Go Nvelox's
/// other route actions parse (so `compat` can name each) and are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(rename = "match")]
    pub matches: Option<RawRouteMatch>,
    pub backend: Option<Text>,
    // Go Nvelox only (reported by `compat`).
    pub headers: Option<GoOnly>,
    pub redirect: Option<RawRedirect>,
    // Go Nvelox only (reported by `compat`).
    pub rewrite: Option<GoOnly>,
    pub scripts: Option<GoOnly>,
    #[serde(rename = "static")]
    pub static_files: Option<GoOnly>,
    pub try_files: Option<GoOnly>,
    pub expires: Option<GoOnly>,
    pub fastcgi: Option<GoOnly>,
}

impl RawRoute {
    /// Whether the route has a Go-only action (static files, ...)
    /// instead of a backend: it is refused by `compat` already.
    pub fn has_go_only_action(&self) -> bool {
        self.rewrite.is_some()
            || self.scripts.is_some()
            || self.static_files.is_some()
            || self.try_files.is_some()
            || self.fastcgi.is_some()
    }
}

/// `routes[].redirect` (Go Nvelox's): answer with a redirect.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    pub url: Option<Text>,
    pub code: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteMatch {
    pub host: Option<Text>,
    pub path_prefix: Option<Text>,
    // Go Nvelox only (reported by `compat`).
    pub path_regex: Option<GoOnly>,
}

/// `listeners[].headers`: Go Nvelox's header rules, names in the order written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    pub request_add: Option<HeaderMap>,
    pub request_set: Option<HeaderMap>,
    pub request_remove: Option<Vec<Text>>,
    pub response_add: Option<HeaderMap>,
    pub response_set: Option<HeaderMap>,
    pub response_remove: Option<Vec<Text>>,
}

/// `{ Name: value, ... }` kept in the order written (edits apply in order).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeaderMap(pub Vec<(String, Text)>);

impl<'de> Deserialize<'de> for HeaderMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Text, Text>()? {
                    out.push((k.0, v));
                }
                Ok(HeaderMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `rate_limit` / `ip_rate_limit`: `{connections_per_second |
/// requests_per_second, burst}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    pub connections_per_second: Option<Text>,
    pub requests_per_second: Option<Text>,
    pub burst: Option<Text>,
}

/// `backends[].retry` (HTTP): `attempts` including the first, `on` a
/// comma-separated list of conditions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: Option<Text>,
    pub on: Option<Text>,
}

/// `listeners[].timeouts` as Go Nvelox writes it: `read_header`, `read`,
/// `write` (current files) or `connect`, `read`, `write`, `idle` (older).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTimeouts {
    pub read_header: Option<Text>,
    pub read: Option<Text>,
    pub write: Option<Text>,
    pub connect: Option<Text>,
    pub idle: Option<Text>,
}

/// `backends[].timeouts` as Go Nvelox writes it: `connect`, `read` (HTTP:
/// the wait for the response). Go shares the struct with listeners, so
/// `write` and `idle` parse there too; they are reported by `compat`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendTimeouts {
    pub connect: Option<Text>,
    pub read: Option<Text>,
    pub write: Option<GoOnly>,
    pub idle: Option<GoOnly>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub name: Option<Text>,
    pub balance: Option<Text>,
    pub hash_key: Option<Text>,
    pub send_proxy_v2: Option<Text>,
    pub send_proxy: Option<Text>,
    pub connect_timeout: Option<Text>,
    pub retries: Option<Text>,
    pub servers: Option<Vec<RawServerEntry>>,
    pub health_check: Option<RawHealthCheck>,
    /// Go Nvelox's timeouts block; `connect` maps onto `connect_timeout`.
    pub timeouts: Option<RawBackendTimeouts>,
    /// TLS to the servers.
    pub backend_tls: Option<RawBackendTls>,
    // HTTP mode: refused on a backend that a tcp/udp listener uses.
    pub retry: Option<RawRetry>,
    pub keepalive: Option<Text>,
    /// A cap for the whole backend (Go Nvelox's).
    pub max_connections: Option<Text>,
    // Go Nvelox only (reported by `compat`).
    pub sticky_session: Option<GoOnly>,
    pub circuit_breaker: Option<GoOnly>,
    pub resolve_interval: Option<GoOnly>,
}

/// A server: `"10.0.0.1:80"` or `{ address: ..., weight: 3, ... }`.
#[derive(Debug, PartialEq, Eq)]
pub enum RawServerEntry {
    Plain(Text),
    Full(RawServer),
}

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub address: Option<Text>,
    pub weight: Option<Text>,
    pub backup: Option<Text>,
    pub max_connections: Option<Text>,
}

impl<'de> Deserialize<'de> for RawServerEntry {
    // Hand-written instead of `#[serde(untagged)]`: untagged enums replace
    // the inner error (e.g. "unknown field `wieght`") with "data did not
    // match any variant", which would tell the operator nothing.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawServerEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a server address like \"10.0.0.1:80\" or a map with address, weight, backup, max_connections",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawServerEntry, E> {
                Ok(RawServerEntry::Plain(Text(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawServerEntry, A::Error> {
                RawServer::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawServerEntry::Full)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub active: Option<RawActiveCheck>,
    pub passive: Option<RawPassiveCheck>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActiveCheck {
    #[serde(rename = "type")]
    pub kind: Option<Text>,
    pub port: Option<Text>,
    pub path: Option<Text>,
    pub send: Option<Text>,
    pub expect: Option<Text>,
    pub interval: Option<Text>,
    pub timeout: Option<Text>,
    pub rise: Option<Text>,
    pub fall: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassiveCheck {
    pub max_fails: Option<Text>,
    pub fail_timeout: Option<Text>,
}

/// Parses one file's text. An empty file (or one with only comments) is an
/// empty configuration, which matters for included files.
pub fn parse(text: &str) -> Result<RawConfig, serde_yaml::Error> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
    {
        return Ok(RawConfig::default());
    }
    serde_yaml::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Option<Text> {
        Some(Text(s.to_string()))
    }

    #[test]
    fn go_nvelox_readme_example_loads() {
        let doc = r#"
server:
  user: "nvelox"
  group: "nvelox"
logging:
  level: "info"
  access_log: "/var/log/nvelox/access.log"
  error_log: "/var/log/nvelox/error.log"
include: "/etc/nvelox/config.d/*.yaml"
listeners:
  - name: "api-gateway"
    bind: ":8080"
    protocol: "tcp"
    zero_copy: true # Enable zero-copy splice (linux only)
    default_backend: "api-servers"
  - name: "dynamic-ports"
    bind: ":10000-11000" 
    protocol: "tcp"
    default_backend: "tunnel-nodes"
backends:
  - name: "api-servers"
    balance: "roundrobin"
    send_proxy_v2: true # Enable PROXY Protocol v2 to pass client IP
    servers:
      - "10.0.0.1:8080"
      - "10.0.0.2:8080"
  - name: "tunnel-nodes"
    balance: "leastconn"
    servers:
      - "10.0.1.5" # 1:1 Port Mapping (e.g. 10001 -> 10.0.1.5:10001)
      - "10.0.1.6"
"#;
        let raw = parse(doc).unwrap();
        let server = raw.server.unwrap();
        assert_eq!(server.user, t("nvelox"));
        assert_eq!(
            raw.include,
            Some(IncludeList {
                patterns: vec![Text("/etc/nvelox/config.d/*.yaml".into())],
                is_list: false
            })
        );
        let listeners = raw.listeners.unwrap();
        assert_eq!(listeners.len(), 2);
        assert_eq!(listeners[0].zero_copy, t("true"));
        assert_eq!(listeners[1].bind, t(":10000-11000"));
        let backends = raw.backends.unwrap();
        assert_eq!(backends[0].send_proxy_v2, t("true"));
        assert_eq!(
            backends[1].servers.as_ref().unwrap()[0],
            RawServerEntry::Plain(Text("10.0.1.5".into()))
        );
    }

    #[test]
    fn scalars_quoted_or_not_and_server_maps() {
        let doc = r#"
version: 2
server: { workers: auto, max_connections: 5, shutdown_timeout: 10 }
include: [a.yaml, "b/*.yaml"]
backends:
  - name: b
    servers:
      - { address: "10.0.0.3:9000", weight: 3, backup: true, max_connections: 500 }
      - address: "[::1]:80"
        weight: "2"
    health_check:
      active: { type: http, path: /health, interval: 5s, rise: 2 }
      passive: { max_fails: 3, fail_timeout: 10s }
listeners:
  - { name: l, bind: ":80", accept_proxy: off, reuseport: false }
"#;
        let raw = parse(doc).unwrap();
        assert_eq!(raw.version, t("2"));
        let server = raw.server.unwrap();
        assert_eq!(server.workers, t("auto"));
        assert_eq!(server.shutdown_timeout, t("10"));
        let include = raw.include.unwrap();
        assert_eq!(include.patterns.len(), 2);
        assert!(include.is_list);
        let b = &raw.backends.unwrap()[0];
        let servers = b.servers.as_ref().unwrap();
        assert_eq!(
            servers[0],
            RawServerEntry::Full(RawServer {
                address: t("10.0.0.3:9000"),
                weight: t("3"),
                backup: t("true"),
                max_connections: t("500"),
            })
        );
        assert!(matches!(&servers[1], RawServerEntry::Full(s) if s.weight == t("2")));
        let hc = b.health_check.as_ref().unwrap();
        assert_eq!(hc.active.as_ref().unwrap().kind, t("http"));
        assert_eq!(hc.passive.as_ref().unwrap().fail_timeout, t("10s"));
        // YAML 1.2: `off` is a string, not a boolean.
        assert_eq!(raw.listeners.unwrap()[0].accept_proxy, t("off"));
    }

    #[test]
    fn unknown_keys_are_refused_with_a_line() {
        let err = parse("listeners:\n  - name: a\n    bnid: \":80\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `bnid`"), "{msg}");
        assert_eq!(err.location().map(|l| l.line()), Some(3));

        // Inside a server map too, with the real reason (not "no variant matched").
        let err =
            parse("backends:\n  - name: b\n    servers:\n      - { address: a, wieght: 2 }\n")
                .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `wieght`"), "{msg}");
        assert_eq!(err.location().map(|l| l.line()), Some(4));

        let err = parse("colour: blue\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"));
    }

    #[test]
    fn shape_errors() {
        assert!(parse("listeners: 5\n").is_err());
        assert!(parse("listeners:\n  - bind: [1, 2]\n").is_err());
        assert!(parse("include: {a: b}\n").is_err());
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_configs() {
        assert!(parse("").unwrap().listeners.is_none());
        assert!(parse("# nothing here\n\n").unwrap().backends.is_none());
        assert!(parse("listeners:\n").unwrap().listeners.is_none());
    }
}
