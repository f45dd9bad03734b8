//! Unit tests of the HTTP-mode keys: routes, headers, sizes, retries,
//! keep-alive, and HTTP-only keys refused on tcp/udp listeners.

use std::time::Duration;

use super::super::test_support::{errors_named, has, load_named};
use crate::config::*;

fn load(doc: &str) -> Result<Plan, Vec<ConfigError>> {
    load_named("h.yaml", doc)
}

fn errors(doc: &str) -> Vec<String> {
    errors_named("h.yaml", doc)
}

const BACKENDS: &str = "backends:\n  - name: app\n    servers: [\"127.0.0.1:9001\"]\n  - name: api\n    servers: [\"127.0.0.1:9002\"]\n";

/// An http listener (lines 1-5) with `extra` from line 6 on.
fn http(extra: &str) -> String {
    format!("listeners:\n  - name: web\n    bind: \"127.0.0.1:8080\"\n    protocol: http\n    backend: app\n{extra}{BACKENDS}")
}

#[test]
fn a_minimal_http_listener_gets_every_default() {
    let plan = load(&http("")).unwrap();
    let l = &plan.listeners[0];
    assert_eq!(l.protocol, Protocol::Http);
    assert_eq!(l.idle_timeout, Duration::from_secs(60));
    let h = l.http.as_ref().unwrap();
    assert_eq!(h.default_backend, Some(BackendId(0)));
    assert!(h.routes.is_empty());
    assert_eq!(h.edits, EditOptions::default());
    assert!(h.edits.forwarded_for);
    assert_eq!(h.max_header_size, 16384);
    assert_eq!(h.max_body_size, None);
    assert_eq!(h.timeouts.head, Some(Duration::from_secs(30)));
    assert_eq!(h.timeouts.write, Some(Duration::from_secs(30)));
    let b = &plan.backends[0].http;
    // No `retry`: connect failures retried `retries` (3) times.
    assert_eq!(
        b.retry,
        RetryPolicy {
            attempts: 4,
            ..RetryPolicy::default()
        }
    );
    assert_eq!(b.response_timeout, Some(Duration::from_secs(60)));
    assert_eq!(b.keepalive, 32);
    // Case as Go writes it.
    let plan = load(&http("").replace("protocol: http", "protocol: \"HTTP\"")).unwrap();
    assert!(plan.listeners[0].http.is_some());
    // tcp and udp listeners have no HTTP part.
    let plan = load(&http("").replace("protocol: http", "protocol: tcp")).unwrap();
    assert!(plan.listeners[0].http.is_none());
}

#[test]
fn every_http_key_reaches_the_plan() {
    let doc = http(
        r#"    routes:
      - match: { host: "API.Example.com", path_prefix: "/v1/" }
        backend: api
      - match:
          path_prefix: /static
        backend: app
    headers:
      request_add: { X-Via: nvelox, X-Two: "2" }
      request_set: { X-Env: prod }
      request_remove: [X-Internal]
      response_add:
        X-Forwarded-By: nvelox
      response_set: { Server: nvelox }
      response_remove: [X-Powered-By, Server-Timing]
    backend_server_header: X-Backend-Server
    forwarded_for: false
    max_header_size: 32KB
    max_body_size: 10MB
    timeouts: { read: 10s, write: 0, idle: 90s }
"#,
    )
    .replace(
        "    servers: [\"127.0.0.1:9002\"]\n",
        "    servers: [\"127.0.0.1:9002\"]\n    retry: { attempts: 3, on: \"connect_failure, 502,503 ,reset\" }\n    timeouts: { read: 45s }\n    keepalive: 0\n",
    );
    let plan = load(&doc).unwrap();
    let l = &plan.listeners[0];
    assert_eq!(l.idle_timeout, Duration::from_secs(90));
    let h = l.http.as_ref().unwrap();
    assert_eq!(
        h.routes,
        vec![
            RoutePlan {
                host: Some("api.example.com".into()),
                path_prefix: Some("/v1/".into()),
                action: RouteAction::Backend(BackendId(1))
            },
            RoutePlan {
                host: None,
                path_prefix: Some("/static".into()),
                action: RouteAction::Backend(BackendId(0))
            },
        ]
    );
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        h.edits.request.add,
        pairs(&[("X-Via", "nvelox"), ("X-Two", "2")])
    );
    assert_eq!(h.edits.request.set, pairs(&[("X-Env", "prod")]));
    assert_eq!(h.edits.request.remove, vec!["X-Internal"]);
    assert_eq!(h.edits.response.add, pairs(&[("X-Forwarded-By", "nvelox")]));
    assert_eq!(h.edits.response.set, pairs(&[("Server", "nvelox")]));
    assert_eq!(
        h.edits.response.remove,
        vec!["X-Powered-By", "Server-Timing"]
    );
    assert_eq!(
        h.edits.backend_server_header.as_deref(),
        Some("X-Backend-Server")
    );
    assert!(!h.edits.forwarded_for);
    assert_eq!(h.max_header_size, 32 * 1024);
    assert_eq!(h.max_body_size, Some(10 * 1024 * 1024));
    assert_eq!(h.timeouts.head, Some(Duration::from_secs(10)));
    assert_eq!(h.timeouts.write, None);
    let api = &plan.backends[1].http;
    assert_eq!(
        api.retry,
        RetryPolicy {
            attempts: 3,
            on_reset: true,
            on_502: true,
            on_503: true,
            on_504: false
        }
    );
    assert_eq!(api.response_timeout, Some(Duration::from_secs(45)));
    assert_eq!(api.keepalive, 0);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn routes_first_match_wins_host_case_and_port_ignored() {
    let doc = http(
        "    routes:\n      - match: { host: api.test, path_prefix: /v1 }\n        backend: api\n      - match: { host: api.test }\n        backend: app\n      - match: { path_prefix: /v1 }\n        backend: api\n",
    )
    .replace("    backend: app\n    routes", "    routes");
    let plan = load(&doc).unwrap();
    let l = &plan.listeners[0];
    let h = l.http.as_ref().unwrap();
    // Routes and no `backend` (Go allows it): unmatched requests get 404.
    assert_eq!(h.default_backend, None);
    assert_eq!(l.backend, Some(BackendId(1)), "the first route's backend");
    let api = Some(BackendId(1));
    let app = Some(BackendId(0));
    assert_eq!(h.backend_for(Some(b"API.Test"), b"/v1/x"), api);
    assert_eq!(h.backend_for(Some(b"api.test"), b"/v2"), app);
    assert_eq!(h.backend_for(Some(b"other"), b"/v1?q"), api);
    assert_eq!(h.backend_for(None, b"/v1"), api);
    assert_eq!(h.backend_for(Some(b"other"), b"/"), None);
    assert_eq!(h.backend_for(None, b"/"), None);

    // With a default backend, unmatched requests go there.
    let plan = load(&http(
        "    routes:\n      - match: { host: api.test }\n        backend: api\n",
    ))
    .unwrap();
    let h = plan.listeners[0].http.as_ref().unwrap();
    assert_eq!(h.backend_for(Some(b"x"), b"/"), Some(BackendId(0)));
    assert_eq!(plan.listeners[0].backend, Some(BackendId(0)));
}

#[test]
fn route_errors_have_lines() {
    let errs = errors(&http(
        "    routes:\n      - match: { host: \"api.test:8080\" }\n        backend: api\n      - match:\n          path_prefix: v1\n        backend: api\n      - match: { host: api.test }\n        backend: nope\n      - match: { host: \"a b\" }\n        backend: api\n      - match: { path_prefix: \"/a b\" }\n        backend: api\n      - match: { host: x }\n",
    ));
    has(
        &errs,
        "h.yaml:7: listeners[0].routes[0].match.host: ",
        "without the port",
    );
    has(
        &errs,
        "h.yaml:10: listeners[0].routes[1].match.path_prefix: ",
        "must start with /",
    );
    has(
        &errs,
        "h.yaml:13: listeners[0].routes[2].backend: ",
        "unknown backend \"nope\" (defined backends: api, app)",
    );
    has(
        &errs,
        "h.yaml:14: listeners[0].routes[3].match.host: ",
        "is not a host name",
    );
    has(
        &errs,
        "h.yaml:16: listeners[0].routes[4].match.path_prefix: ",
        "space or control",
    );
    has(
        &errs,
        "h.yaml:18: listeners[0].routes[5]: ",
        "missing required key `backend`",
    );
    assert_eq!(errs.len(), 6, "{errs:#?}");
    // A listener without routes still needs its backend.
    let errs = errors(&http("").replace("    backend: app\n", ""));
    has(
        &errs,
        "h.yaml:2: listeners[0]: ",
        "missing required key `backend`",
    );
}

#[test]
fn header_names_and_values_are_checked_each_on_its_line() {
    let errs = errors(&http(
        "    headers:\n      request_add:\n        \"Bad Name\": x\n        X-Ok: \"a\\r\\nX-Injected: 1\"\n        X-Nul: \"a\\0b\"\n      request_set: { Connection: close }\n      response_remove:\n        - X-Fine\n        - \"X(bad)\"\n        - Transfer-Encoding\n    backend_server_header: \"X Server\"\n",
    ));
    has(
        &errs,
        "h.yaml:8: listeners[0].headers.request_add.Bad Name: ",
        "invalid header name \"Bad Name\"",
    );
    has(
        &errs,
        "h.yaml:9: listeners[0].headers.request_add.X-Ok: ",
        "invalid value for header \"X-Ok\"",
    );
    has(
        &errs,
        "h.yaml:10: listeners[0].headers.request_add.X-Nul: ",
        "CR, LF or NUL",
    );
    has(
        &errs,
        "h.yaml:11: listeners[0].headers.request_set.Connection: ",
        "cannot be edited",
    );
    has(
        &errs,
        "h.yaml:14: listeners[0].headers.response_remove[1]: ",
        "invalid header name \"X(bad)\"",
    );
    has(
        &errs,
        "h.yaml:15: listeners[0].headers.response_remove[2]: ",
        "cannot be edited",
    );
    has(
        &errs,
        "h.yaml:16: listeners[0].backend_server_header: ",
        "invalid header name \"X Server\"",
    );
    assert_eq!(errs.len(), 7, "{errs:#?}");
    // Tab and UTF-8 are fine in values; a list where a map belongs is not.
    assert!(load(&http(
        "    headers: { response_add: { X-A: \"a\\tb é\" } }\n"
    ))
    .is_ok());
    let errs = errors(&http("    headers: { response_add: [X-A] }\n"));
    assert!(
        errs[0].contains("a map of header names to values"),
        "{errs:?}"
    );
}

#[test]
fn sizes_are_bounded_and_zero_body_means_no_limit() {
    for (extra, line, path, needle) in [
        (
            "    max_header_size: 512\n",
            6,
            "max_header_size",
            "outside 1024..=1048576",
        ),
        (
            "    max_header_size: 2MB\n",
            6,
            "max_header_size",
            "(2097152 bytes) is outside",
        ),
        (
            "    max_header_size: 16 KiB\n",
            6,
            "max_header_size",
            "unknown unit \"KiB\"",
        ),
        (
            "    max_body_size: 1.5MB\n",
            6,
            "max_body_size",
            "is not a size",
        ),
        (
            "    max_body_size: 99999999999GB\n",
            6,
            "max_body_size",
            "too large",
        ),
    ] {
        let errs = errors(&http(extra));
        has(
            &errs,
            &format!("h.yaml:{line}: listeners[0].{path}: "),
            needle,
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
    }
    let plan = load(&http("    max_header_size: 1K\n    max_body_size: 0\n")).unwrap();
    let h = plan.listeners[0].http.as_ref().unwrap();
    assert_eq!((h.max_header_size, h.max_body_size), (1024, None));
    let plan = load(&http(
        "    max_header_size: 1MB\n    max_body_size: \"4KB\"\n",
    ))
    .unwrap();
    let h = plan.listeners[0].http.as_ref().unwrap();
    assert_eq!((h.max_header_size, h.max_body_size), (1 << 20, Some(4096)));
}

#[test]
fn retry_and_keepalive_are_bounded() {
    let backend = |extra: &str| {
        format!("listeners:\n  - {{ name: web, bind: \":8080\", protocol: http, backend: app }}\nbackends:\n  - name: app\n    servers: [\"127.0.0.1:9001\"]\n{extra}")
    };
    for (extra, prefix, needle) in [
        (
            "    retry: { attempts: 0 }\n",
            "h.yaml:6: backends[0].retry.attempts: ",
            "counts the first try",
        ),
        (
            "    retry: { attempts: 11 }\n",
            "h.yaml:6: backends[0].retry.attempts: ",
            "from 1 to 10",
        ),
        (
            "    retry: { attempts: many }\n",
            "h.yaml:6: backends[0].retry.attempts: ",
            "whole number",
        ),
        (
            "    retry: { on: \"502\" }\n",
            "h.yaml:6: backends[0].retry: ",
            "missing required key `attempts`",
        ),
        (
            "    retry:\n      attempts: 2\n      on: \"connect_failure,500\"\n",
            "h.yaml:8: backends[0].retry.on: ",
            "unknown retry condition \"500\" (expected: connect_failure, reset, 502, 503, 504)",
        ),
        (
            "    retry: { attempts: 2, tries: 3 }\n",
            "h.yaml:6: backends[0].retry: ",
            "unknown field `tries`",
        ),
        (
            "    keepalive: 1025\n",
            "h.yaml:6: backends[0].keepalive: ",
            "from 0 to 1024",
        ),
        (
            "    keepalive: -1\n",
            "h.yaml:6: backends[0].keepalive: ",
            "whole number",
        ),
    ] {
        let errs = errors(&backend(extra));
        has(&errs, prefix, needle);
        assert_eq!(errs.len(), 1, "{extra}: {errs:?}");
    }
    // `retries` (TCP) sets the HTTP connect retries when `retry` is absent, capped.
    let plan = load(&backend("    retries: 50\n")).unwrap();
    assert_eq!(plan.backends[0].http.retry.attempts, 10);
    let plan = load(&backend(
        "    retries: 0\n    retry: { attempts: 1, on: \"\" }\n",
    ))
    .unwrap();
    assert_eq!(plan.backends[0].http.retry, RetryPolicy::default());
    let plan = load(&backend(
        "    retry: { attempts: 2, on: \"504\" }\n    timeouts: { read: 0 }\n",
    ))
    .unwrap();
    let b = &plan.backends[0].http;
    assert!(b.retry.on_504 && !b.retry.on_502);
    assert_eq!(b.response_timeout, None);
}

#[test]
fn http_only_keys_are_refused_on_tcp_and_udp_listeners_by_name() {
    for proto in ["tcp", "udp"] {
        let doc = http(
            "    routes: [ { match: { host: a }, backend: api } ]\n    headers: { request_add: { X-A: b } }\n    backend_server_header: X-Server\n    forwarded_for: true\n    max_header_size: 8KB\n    max_body_size: 1MB\n",
        )
        .replace("protocol: http", &format!("protocol: {proto}"));
        let errs = errors(&doc);
        for (line, k) in [
            (6, "routes"),
            (7, "headers"),
            (8, "backend_server_header"),
            (9, "forwarded_for"),
            (10, "max_header_size"),
            (11, "max_body_size"),
        ] {
            has(
                &errs,
                &format!("h.yaml:{line}: listeners[0].{k}: "),
                &format!("`{k}` is for protocol: http listeners; this listener is {proto}"),
            );
        }
        assert_eq!(errs.len(), 6, "{errs:#?}");
    }
    // A backend's HTTP keys on a backend that a tcp listener uses.
    let doc = format!(
        "listeners:\n  - {{ name: t, bind: \":1\", backend: app }}\n{}",
        BACKENDS.replace(
            "    servers: [\"127.0.0.1:9001\"]\n",
            "    servers: [\"127.0.0.1:9001\"]\n    retry: {attempts: 2}\n    keepalive: 8\n",
        )
    );
    let errs = errors(&doc);
    has(
        &errs,
        "h.yaml:6: backends[0].retry: ",
        "not supported by nvelox: retry on a backend that tcp listener \"t\" uses",
    );
    has(
        &errs,
        "h.yaml:6: backends[0].retry: ",
        "retried by `retries`",
    );
    has(
        &errs,
        "h.yaml:7: backends[0].keepalive: ",
        "keepalive on a backend that tcp listener \"t\" uses",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    // The same backend used by an http listener only is fine.
    assert!(load(&doc.replace("backend: app }", "backend: app, protocol: http }")).is_ok());
}

#[test]
fn http_and_tcp_listeners_share_the_stream_port_space() {
    let doc = format!(
        "listeners:\n  - {{ name: h, bind: \"127.0.0.1:80\", protocol: http, backend: app }}\n  - {{ name: t, bind: \"127.0.0.1:80\", protocol: tcp, backend: app }}\n  - {{ name: u, bind: \"127.0.0.1:80\", protocol: udp, backend: app }}\n{BACKENDS}"
    );
    let errs = errors(&doc);
    has(
        &errs,
        "h.yaml:3: listeners[1].bind: ",
        "overlaps http listener \"h\"",
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
}
