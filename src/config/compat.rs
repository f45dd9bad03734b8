//! Go Nvelox keys that nvelox does not implement: the list, and a scan of a
//! file's YAML that finds every one of them with its YAML path.
//!
//! nvelox promises that Go Nvelox files load unchanged, or fail clearly.
//! A key of a feature nvelox will never have is refused as "not supported
//! by nvelox: KEY"; a key of a feature that is planned (the second stage of
//! SPEC.md: HTTP mode, TLS, metrics, access control, ...) as "not supported
//! by nvelox yet: KEY". Never as a generic "unknown field", and all of them
//! at once: the scan walks the whole document, independently of the typed
//! parse in `raw` (whose matching fields are [`super::raw::GoOnly`]).
//!
//! This module owns the list and the walk. It does not own keys that Go
//! and nvelox share, nor the keys that are mapped onto nvelox settings
//! (`backend`, `timeouts`): `validate` handles those. Lines are found by the
//! caller (`locate`).

use serde_yaml::Value;

/// Whether nvelox will ever implement a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Not part of nvelox's plans; the text names the feature (and, where
    /// one exists, what nvelox offers instead).
    Never(&'static str),
    /// Planned (SPEC.md "Second stage"), not built yet; the text names the feature.
    Later(&'static str),
}

/// `(YAML path pattern, support)`. `[]` stands for any index. Keys that
/// nvelox implements (`routes`) and keys whose feature is planned (`tls`)
/// are searched for refused keys below them (`routes[].rewrite`,
/// `tls.auto_cert`); below a key that is never supported nothing more is
/// reported.
pub const GO_ONLY_KEYS: &[(&str, Support)] = &[
    // top level
    ("tracing", Support::Never("OpenTelemetry tracing")),
    // listeners
    (
        "listeners[].tls.auto_cert",
        Support::Never("automatic certificates"),
    ),
    (
        "listeners[].tls.ocsp_stapling",
        Support::Never("OCSP stapling"),
    ),
    (
        "listeners[].acl",
        Support::Never("ACL rules; nvelox has ip_allowlist / ip_denylist"),
    ),
    (
        "listeners[].trusted_proxies",
        Support::Never("client address from X-Forwarded-For"),
    ),
    (
        "listeners[].accept_proxy_from",
        Support::Never(
            "PROXY headers trusted from listed peers only; nvelox's accept_proxy expects one from every client",
        ),
    ),
    ("listeners[].http3", Support::Never("HTTP/3 over QUIC")),
    (
        "listeners[].routes[].match.path_regex",
        Support::Never("regular-expression routes; nvelox has path_prefix"),
    ),
    (
        "listeners[].routes[].rewrite",
        Support::Never("URL rewriting"),
    ),
    (
        "listeners[].routes[].static",
        Support::Never("static file serving"),
    ),
    (
        "listeners[].routes[].try_files",
        Support::Never("static file serving"),
    ),
    (
        "listeners[].routes[].expires",
        Support::Never("static file serving"),
    ),
    ("listeners[].routes[].fastcgi", Support::Never("FastCGI")),
    (
        "listeners[].routes[].scripts",
        Support::Never("Lua scripts"),
    ),
    (
        "listeners[].routes[].headers",
        Support::Never("per-route header rules; nvelox has the listener's headers"),
    ),
    (
        "listeners[].compression",
        Support::Never("response compression"),
    ),
    (
        "listeners[].error_pages",
        Support::Never("custom error pages"),
    ),
    ("listeners[].root", Support::Never("static file serving")),
    (
        "listeners[].buffering",
        Support::Never("HTTP buffer settings"),
    ),
    ("listeners[].cache", Support::Never("response caching")),
    ("listeners[].grpc", Support::Never("gRPC-aware proxying")),
    (
        "listeners[].throttle",
        Support::Never("bandwidth throttling"),
    ),
    // backends
    (
        "backends[].sticky_session",
        Support::Never("sticky sessions; balance: source_hash keeps a client on one server"),
    ),
    (
        "backends[].circuit_breaker",
        Support::Never("circuit breaker; passive health checks take failing servers out"),
    ),
    (
        "backends[].resolve_interval",
        Support::Never("periodic DNS re-resolution; host names resolve at load and reload"),
    ),
    (
        "backends[].timeouts.write",
        Support::Never("a write timeout for servers"),
    ),
    (
        "backends[].timeouts.idle",
        Support::Never("an idle timeout on the backend; use the listener's idle_timeout"),
    ),
];

/// One refused key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// YAML path of the key, e.g. `listeners[0].routes[1].rewrite`.
    pub path: String,
    /// What is refused: the key name, or `protocol: http` for a value.
    pub what: String,
    pub support: Support,
}

impl Finding {
    pub fn message(&self) -> String {
        match self.support {
            Support::Never(feature) => {
                format!("not supported by nvelox: {} ({feature})", self.what)
            }
            Support::Later(feature) => {
                format!(
                    "not supported by nvelox yet: {} ({feature}, planned)",
                    self.what
                )
            }
        }
    }
}

/// Every Go-only key in `text`, in document order. Text that is not YAML
/// yields nothing (the typed parse reports it).
pub fn scan(text: &str) -> Vec<Finding> {
    let Ok(doc) = serde_yaml::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&doc, "", "", &mut out);
    out
}

/// `pattern` is `path` with every index written `[]`.
fn walk(v: &Value, path: &str, pattern: &str, out: &mut Vec<Finding>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let Some(k) = k.as_str() else { continue };
                let (p, pat) = if path.is_empty() {
                    (k.to_string(), k.to_string())
                } else {
                    (format!("{path}.{k}"), format!("{pattern}.{k}"))
                };
                match GO_ONLY_KEYS.iter().find(|(kp, _)| *kp == pat) {
                    Some((_, support)) => {
                        out.push(Finding {
                            path: p.clone(),
                            what: k.to_string(),
                            support: *support,
                        });
                        if let Support::Later(_) = support {
                            walk(child, &p, &pat, out);
                        }
                    }
                    None => walk(child, &p, &pat, out),
                }
            }
        }
        Value::Sequence(items) => {
            // Keys live in maps: a list of scalars (a 100,000-entry
            // `ip_denylist`) has nothing to find, so no paths are built.
            let pat = format!("{pattern}[]");
            for (i, child) in items.iter().enumerate() {
                if matches!(
                    child,
                    Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_)
                ) {
                    walk(child, &format!("{path}[{i}]"), &pat, out);
                }
            }
        }
        Value::Tagged(t) => walk(&t.value, path, pattern, out),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw;

    fn paths(text: &str) -> Vec<String> {
        scan(text).into_iter().map(|f| f.path).collect()
    }

    #[test]
    fn finds_every_key_at_once_with_its_path() {
        let doc = r#"
tracing: { enabled: true }
listeners:
  - name: a
    bind: ":80"
    protocol: https
    http3: true
    routes:
      - match: { host: a.test, path_regex: "^/x" }
        rewrite: { path: /y }
        backend: b
backends:
  - name: b
    servers: ["127.0.0.1:1"]
    sticky_session: { type: cookie }
    timeouts: { connect: 1s, idle: 5s }
"#;
        assert_eq!(
            paths(doc),
            vec![
                "tracing",
                "listeners[0].http3",
                "listeners[0].routes[0].match.path_regex",
                "listeners[0].routes[0].rewrite",
                "backends[0].sticky_session",
                "backends[0].timeouts.idle",
            ]
        );
        let f = scan(doc);
        assert_eq!(
            f[0].message(),
            "not supported by nvelox: tracing (OpenTelemetry tracing)"
        );
        assert_eq!(f[3].what, "rewrite");
        assert!(matches!(f[3].support, Support::Never(_)));
        // `protocol: http`/`https`, `routes`, `headers` ... are nvelox keys now.
        let http = "listeners:\n  - { name: a, bind: \":80\", protocol: http, backend: b, routes: [], headers: {}, max_body_size: 1MB }\n";
        assert!(scan(http).is_empty(), "{:?}", scan(http));
    }

    #[test]
    fn nothing_below_a_never_key_and_nothing_in_plain_files() {
        // acl's own path_regex is not reported twice: acl is refused whole.
        let doc = "listeners:\n  - acl:\n      - match: { path_regex: x }\n";
        assert_eq!(paths(doc), vec!["listeners[0].acl"]);
        let plain = "listeners:\n  - { name: a, bind: \":1\", protocol: TCP, backend: b }\nbackends:\n  - { name: b, servers: [\"127.0.0.1:2\"], timeouts: { connect: 1s } }\n";
        assert!(scan(plain).is_empty());
        assert!(scan("listeners: [").is_empty());
    }

    /// Every direct key of a typed struct in the list parses in `raw`
    /// (a `GoOnly` field exists), so serde never stops at one of them.
    #[test]
    fn every_listed_key_parses_in_raw() {
        for (pattern, _) in GO_ONLY_KEYS {
            let doc = match pattern.split_once("[].") {
                None => format!("{pattern}: {{ anything: [1, 2] }}\n"),
                Some((list, rest)) if !rest.contains("[]") => {
                    let mut yaml = format!("{list}:\n  -");
                    let parts: Vec<&str> = rest.split('.').collect();
                    for (depth, part) in parts.iter().enumerate() {
                        yaml.push_str(&format!("\n{}{part}:", " ".repeat(4 + 2 * depth)));
                    }
                    yaml.push_str(" { anything: [1, 2] }\n");
                    yaml
                }
                // Keys inside lists of GoOnly values (routes[]...).
                Some(_) => continue,
            };
            if let Err(e) = raw::parse(&doc) {
                // Below a `GoOnly` value (tls.auto_cert) anything parses;
                // only a key the typed structs lack would fail.
                panic!("{pattern} does not parse: {e}\n{doc}");
            }
            assert!(
                scan(&doc)
                    .iter()
                    .any(|f| f.path.contains(pattern.rsplit('.').next().unwrap())),
                "{pattern} not found by the scan"
            );
        }
    }
}
