//! Unit tests of the Go Nvelox rules: `backend` / `default_backend`, the
//! `timeouts` mapping, `0` timeouts, and refused Go-only keys with lines.

use std::time::Duration;

use super::super::test_support::{errors_named, has, load_named};
use crate::config::address::tests::FakeResolver;
use crate::config::{BackendId, ConfigError, Plan};

fn load(doc: &str) -> Result<Plan, Vec<ConfigError>> {
    load_named("go.yaml", doc)
}

fn errors(doc: &str) -> Vec<String> {
    errors_named("go.yaml", doc)
}

const BACKENDS: &str = "backends:\n  - name: pool\n    servers: [\"127.0.0.1:9001\"]\n";

fn listener(extra: &str) -> String {
    format!("listeners:\n  - name: web\n    bind: \"127.0.0.1:8080\"\n{extra}{BACKENDS}")
}

#[test]
fn backend_is_the_name_default_backend_a_deprecated_alias() {
    let plan = load(&listener("    backend: pool\n")).unwrap();
    assert_eq!(plan.listeners[0].backend, Some(BackendId(0)));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);

    let plan = load(&listener("    default_backend: pool\n")).unwrap();
    assert_eq!(plan.listeners[0].backend, Some(BackendId(0)));
    assert_eq!(
        plan.warnings,
        vec![
            "go.yaml:4: listeners[0].default_backend: `default_backend` is deprecated (Go Nvelox renamed it); write `backend`"
        ]
    );

    let errs = errors(&listener("    backend: pool\n    default_backend: pool\n"));
    has(
        &errs,
        "go.yaml:5: listeners[0].default_backend: ",
        "`backend` and its deprecated alias `default_backend` are both set",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");

    // Errors about the name point at the key that was written.
    let errs = errors(&listener("    default_backend: poool\n"));
    has(
        &errs,
        "go.yaml:4: listeners[0].default_backend: ",
        "unknown backend \"poool\"",
    );
    let errs = errors(&listener("    backend: poool\n"));
    has(
        &errs,
        "go.yaml:4: listeners[0].backend: ",
        "unknown backend \"poool\"",
    );
    let errs = errors(&listener(""));
    has(
        &errs,
        "go.yaml:2: listeners[0]: ",
        "missing required key `backend`",
    );
    let errs = errors(&listener("    backend: \"\"\n"));
    has(
        &errs,
        "go.yaml:4: listeners[0].backend: ",
        "`backend` is empty",
    );
}

#[test]
fn listener_timeouts_map_onto_idle_and_the_backends_connect() {
    let plan = load(&listener(
        "    backend: pool\n    timeouts: { idle: 120s, connect: 3s }\n",
    ))
    .unwrap();
    assert_eq!(plan.listeners[0].idle_timeout, Duration::from_secs(120));
    assert_eq!(plan.backends[0].connect_timeout, Duration::from_secs(3));

    // UDP: idle is the session timeout.
    let plan = load(&listener(
        "    protocol: udp\n    backend: pool\n    timeouts:\n      idle: 9s\n",
    ))
    .unwrap();
    assert_eq!(plan.listeners[0].idle_timeout, Duration::from_secs(9));

    // Same setting twice.
    let errs = errors(&listener(
        "    backend: pool\n    idle_timeout: 10s\n    timeouts:\n      idle: 20s\n",
    ));
    has(
        &errs,
        "go.yaml:7: listeners[0].timeouts.idle: ",
        "same setting; keep one",
    );
}

#[test]
fn a_listeners_connect_timeout_goes_to_its_backend_unless_the_backend_sets_one() {
    // Two listeners on one backend agreeing: fine.
    let agree = format!(
        "listeners:\n  - {{ name: a, bind: \"127.0.0.1:1\", backend: pool, timeouts: {{ connect: 2s }} }}\n  - {{ name: b, bind: \"127.0.0.1:2\", backend: pool, timeouts: {{ connect: 2s }} }}\n{BACKENDS}"
    );
    let plan = load(&agree).unwrap();
    assert_eq!(plan.backends[0].connect_timeout, Duration::from_secs(2));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    // Disagreeing: nvelox has one per backend, so the second names the first.
    let errs = errors(&agree.replacen("connect: 2s", "connect: 4s", 2).replacen(
        "connect: 4s",
        "connect: 2s",
        1,
    ));
    has(
        &errs,
        "go.yaml:3: listeners[1].timeouts.connect: ",
        "contradicts the 2s another listener of backend \"pool\" set at go.yaml:2",
    );
    // Go's rule: the backend's own connect timeout wins; a warning says the
    // listener's is not used.
    let doc = "listeners:\n  - name: a\n    bind: \"127.0.0.1:1\"\n    backend: pool\n    timeouts:\n      connect: 3s\nbackends:\n  - name: pool\n    servers: [\"127.0.0.1:9001\"]\n    timeouts:\n      connect: 1s\n";
    let plan = load(doc).unwrap();
    assert_eq!(plan.backends[0].connect_timeout, Duration::from_secs(1));
    assert_eq!(
        plan.warnings,
        vec!["go.yaml:6: listeners[0].timeouts.connect: not used: backend \"pool\" sets its own connect timeout (1s, at go.yaml:11), which wins, as in Go Nvelox"]
    );
    // Equal values: nothing to say.
    assert!(load(&doc.replace("connect: 3s", "connect: 1s"))
        .unwrap()
        .warnings
        .is_empty());
}

#[test]
fn backend_timeouts_connect_is_connect_timeout() {
    let doc = "listeners:\n  - { name: a, bind: \"127.0.0.1:1\", backend: pool }\nbackends:\n  - name: pool\n    servers: [\"127.0.0.1:9001\"]\n    timeouts:\n      connect: 750ms\n".to_string();
    let plan = load(&doc).unwrap();
    assert_eq!(plan.backends[0].connect_timeout, Duration::from_millis(750));
    let errs = errors(&doc.replace("    timeouts:", "    connect_timeout: 1s\n    timeouts:"));
    has(
        &errs,
        "go.yaml:8: backends[0].timeouts.connect: ",
        "same setting; keep one",
    );
}

#[test]
fn http_only_timeouts_are_refused_on_tcp_and_udp() {
    let errs = errors(&listener(
        "    backend: pool\n    timeouts:\n      read_header: 5s\n      read: 30s\n      write: 30s\n",
    ));
    for (line, name) in [(6, "read_header"), (7, "read"), (8, "write")] {
        has(
            &errs,
            &format!("go.yaml:{line}: listeners[0].timeouts.{name}: "),
            &format!("not supported by nvelox: timeouts.{name} on a tcp or udp listener"),
        );
    }
    // The backend's read timeout: refused when a tcp/udp listener uses it.
    let doc = "listeners:\n  - { name: a, bind: \"127.0.0.1:1\", protocol: udp, backend: pool }\nbackends:\n  - name: pool\n    servers: [\"127.0.0.1:9001\"]\n    timeouts:\n      read: 10s\n";
    let errs = errors(doc);
    has(
        &errs,
        "go.yaml:7: backends[0].timeouts.read: ",
        "not supported by nvelox: timeouts.read on a backend that udp listener \"a\" uses",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    // Unused by any listener: nothing to contradict.
    assert!(
        load(&doc.replace("backend: pool }", "backend: other }").replace(
            "backends:\n",
            "backends:\n  - { name: other, servers: [\"127.0.0.1:9002\"] }\n"
        ))
        .is_ok()
    );
}

#[test]
fn on_http_listeners_the_http_timeouts_are_kept() {
    // Go's current timeouts file: the HTTP timeouts are kept for HTTP mode
    // (with `0` = no limit, as in Go).
    let doc = "listeners:\n  - name: web\n    bind: \"127.0.0.1:8080\"\n    protocol: http\n    backend: pool\n    timeouts:\n      read_header: 0\n      read: \"0\"\n      write: 30s\nbackends:\n  - name: pool\n    servers: [\"127.0.0.1:9001\"]\n    timeouts:\n      connect: 2s\n      read: 10s\n";
    let plan = load(doc).unwrap();
    let http = plan.listeners[0].http.as_ref().unwrap();
    assert_eq!(http.timeouts.head, None);
    assert_eq!(http.timeouts.write, Some(Duration::from_secs(30)));
    let b = &plan.backends[0];
    assert_eq!(b.connect_timeout, Duration::from_secs(2));
    assert_eq!(b.http.response_timeout, Some(Duration::from_secs(10)));

    // read_header and read both bound the head: the shorter wins, a `0`
    // (no limit) gives way to the other.
    for (rh, r, head) in [
        ("5s", "20s", Some(5)),
        ("20s", "5s", Some(5)),
        ("0", "7s", Some(7)),
        ("9s", "0", Some(9)),
    ] {
        let d = doc
            .replace("read_header: 0", &format!("read_header: {rh}"))
            .replace("read: \"0\"", &format!("read: {r}"));
        let plan = load(&d).unwrap();
        let got = plan.listeners[0].http.as_ref().unwrap().timeouts.head;
        assert_eq!(got, head.map(Duration::from_secs), "{rh} {r}");
    }
    // Go's `idle` is the keep-alive idle time of an HTTP listener.
    let d = doc.replace("      write: 30s\n", "      idle: 75s\n");
    let plan = load(&d).unwrap();
    assert_eq!(plan.listeners[0].idle_timeout, Duration::from_secs(75));
    let http = plan.listeners[0].http.as_ref().unwrap();
    assert_eq!(http.timeouts.write, Some(Duration::from_secs(30)));
}

#[test]
fn zero_timeouts_name_the_go_meaning() {
    for (extra, line, path) in [
        (
            "    timeouts: { idle: 0 }\n",
            5,
            "listeners[0].timeouts.idle",
        ),
        (
            "    timeouts:\n      connect: \"0\"\n",
            6,
            "listeners[0].timeouts.connect",
        ),
        (
            "    timeouts:\n      idle: 0s\n",
            6,
            "listeners[0].timeouts.idle",
        ),
    ] {
        let errs = errors(&listener(&format!("    backend: pool\n{extra}")));
        let prefix = format!("go.yaml:{line}: {path}: ");
        has(&errs, &prefix, "0 means \"no limit\" in Go Nvelox");
    }
    let doc = "listeners:\n  - { name: a, bind: \"127.0.0.1:1\", backend: pool }\nbackends:\n  - name: pool\n    servers: [\"127.0.0.1:9001\"]\n    timeouts:\n      connect: 0\n";
    has(
        &errors(doc),
        "go.yaml:7: backends[0].timeouts.connect: ",
        "0 means \"no limit\" in Go Nvelox",
    );
}

#[test]
fn go_only_keys_are_all_reported_with_lines_never_as_unknown_fields() {
    let doc = r#"version: "2"
metrics:
  enabled: true
listeners:
  - name: web
    bind: "127.0.0.1:8080"
    protocol: https
    http3: true
    tls:
      cert: a.pem
      key: a.key
    routes:
      - match:
          path_prefix: /
        rewrite:
          path: "/x"
    compression:
      enabled: true
backends:
  - name: pool
    servers: ["127.0.0.1:9001"]
    sticky_session:
      type: cookie
    circuit_breaker:
      enabled: true
"#;
    let errs = errors(doc);
    let expected = [
        "go.yaml:8: listeners[0].http3: not supported by nvelox: http3",
        "go.yaml:10: listeners[0].tls.cert: cannot read certificate file \"a.pem\"",
        "go.yaml:15: listeners[0].routes[0].rewrite: not supported by nvelox: rewrite",
        "go.yaml:17: listeners[0].compression: not supported by nvelox: compression",
        "go.yaml:22: backends[0].sticky_session: not supported by nvelox: sticky_session",
        "go.yaml:24: backends[0].circuit_breaker: not supported by nvelox: circuit_breaker",
    ];
    for (e, want) in errs.iter().zip(expected) {
        assert!(e.starts_with(want), "{e:?} does not start with {want:?}");
    }
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    assert!(!errs.iter().any(|e| e.contains("unknown field")));

    // A real typo next to them is still an unknown field, and the refused
    // keys are still all reported.
    let errs = errors(&doc.replace("    http3: true\n", "    http3: true\n    bnid: x\n"));
    assert!(
        errs.iter().any(|e| e.contains("unknown field `bnid`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("listeners[0].compression")),
        "{errs:#?}"
    );
}

#[test]
fn gos_warning_level_is_warn() {
    let plan = load(&format!(
        "logging:\n  level: warning\n{}",
        listener("    backend: pool\n")
    ))
    .unwrap();
    assert_eq!(plan.logging.level, log::LevelFilter::Warn);
}

#[test]
fn go_timeouts_are_bounded_like_nvelox_ones() {
    let errs = errors(&listener(
        "    backend: pool\n    timeouts:\n      idle: 8000h\n      connect: 25h\n",
    ));
    has(
        &errs,
        "go.yaml:6: listeners[0].timeouts.idle: ",
        "above the maximum",
    );
    has(
        &errs,
        "go.yaml:7: listeners[0].timeouts.connect: ",
        "above the maximum",
    );
}

#[test]
fn go_only_keys_in_an_included_file_name_that_file_and_its_line() {
    let tmp = crate::config::include::tests::TempDir::new("go-include");
    tmp.write(
        "conf.d/web.yaml",
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:8080\"\n    backend: pool\n    compression: { enabled: true }\n",
    );
    let main = tmp.write(
        "main.yaml",
        &format!("include: \"conf.d/*.yaml\"\n{BACKENDS}"),
    );
    let errs = crate::config::load_with(&main, &FakeResolver).unwrap_err();
    let errs: Vec<String> = errs.errors.iter().map(ToString::to_string).collect();
    let inc = tmp.0.join("conf.d/web.yaml");
    has(
        &errs,
        &format!("{}:5: listeners[0].compression: ", inc.display()),
        "not supported by nvelox: compression",
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
}
