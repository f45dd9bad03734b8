// Oracle shared by the `config` fuzz target and `tests/fuzz_seeds.rs`
// (`include!`d by both, hence no `//!` header and no `mod`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use nvelox::config::address::Resolver;
use nvelox::config::{self, CheckKind, Plan, RouteAction, MAX_IDLE_TIMEOUT, MAX_TIMEOUT};

/// Never touches DNS: a name of even length resolves to 127.0.0.1, an odd
/// one fails, so both branches are reachable and every run is repeatable.
pub struct NoDns;

impl Resolver for NoDns {
    fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        if host.len() % 2 == 0 {
            Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no DNS while fuzzing",
            ))
        }
    }
}

/// Files an `include:` inside `dir` can reach: one valid part, one broken
/// one, and a `conf.d` with two more.
pub fn populate_include_sandbox(dir: &Path) {
    let files = [
        (
            "part.yaml",
            "listeners:\n  - { name: inc, bind: \"127.0.0.1:7100\", default_backend: incb }\nbackends:\n  - { name: incb, servers: [\"127.0.0.1:7101\"] }\n",
        ),
        ("bad.yaml", "listeners: [ {\n"),
        ("conf.d/a.yaml", "backends:\n  - name: pool\n    servers: [\"127.0.0.1:1\"]\n"),
        ("conf.d/b.yaml", "server: { workers: 1 }\n"),
    ];
    for (name, body) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(path, body);
    }
}

/// An include pattern that could leave the sandbox directory.
fn escapes_sandbox(pattern: &str) -> bool {
    let p = pattern.trim();
    p.starts_with('/') || p.contains("..") || p.starts_with('~')
}

/// Loads `data` as the file `dir/nvelox.yaml` through the binary's own
/// entry (`config::load_str_with`) and panics if a promise breaks: a plan
/// only with every value in range and every reference resolved, otherwise
/// a non-empty error list whose lines exist in the file. Documents whose
/// includes could leave `dir` are skipped (after the YAML parse).
pub fn check_config(data: &[u8], dir: &Path) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An `include` key is spelled out, or escaped inside a double-quoted
    // key; only then is the second parse needed.
    if text.contains("nclude") || text.contains('\\') {
        if let Ok(raw) = config::raw::parse(text) {
            if let Some(list) = &raw.include {
                if list.patterns.iter().any(|p| escapes_sandbox(p.as_str())) {
                    return;
                }
            }
        }
    }
    let main = dir.join("nvelox.yaml");
    match config::load_str_with(text, &main, &NoDns) {
        Ok(plan) => check_plan(&plan),
        Err(errors) => {
            assert!(!errors.is_empty(), "Err without an error");
            let lines = text.lines().count().max(1);
            for e in errors.iter() {
                assert!(!e.message.is_empty(), "empty message: {e:?}");
                if e.file == main {
                    if let Some(line) = e.line {
                        assert!(
                            line >= 1 && line <= lines + 1,
                            "line {line} of a {lines}-line file: {e}"
                        );
                    }
                }
            }
            assert!(!errors.to_string().is_empty());
        }
    }
}

fn check_plan(plan: &Plan) {
    let s = &plan.server;
    assert!((1..=1024).contains(&s.workers), "workers {}", s.workers);
    assert!(s.max_connections >= 1);
    assert!(s.shutdown_timeout <= MAX_TIMEOUT);
    for l in &plan.listeners {
        match l.backend {
            Some(b) => assert!(b.0 < plan.backends.len(), "dangling backend index"),
            // Only an http/https listener of redirects has no backend.
            None => assert!(l.http.as_ref().is_some_and(|h| !h.routes.is_empty()
                && h.default_backend.is_none()
                && h.routes.iter().all(|r| matches!(r.action, RouteAction::Redirect(_))))),
        }
        assert!(!l.idle_timeout.is_zero() && l.idle_timeout <= MAX_IDLE_TIMEOUT);
        assert!(l.bind.first_port >= 1 && l.bind.first_port <= l.bind.last_port);
        assert!(l.max_connections != Some(0));
    }
    for b in &plan.backends {
        assert!(!b.name.is_empty());
        assert!(!b.servers.is_empty(), "backend {} without servers", b.name);
        assert!(!b.connect_timeout.is_zero() && b.connect_timeout <= MAX_TIMEOUT);
        assert!(b.retries <= 100);
        for srv in &b.servers {
            assert!((1..=1_000_000).contains(&srv.weight));
            assert!(srv.port != Some(0));
            assert!(srv.max_connections != Some(0));
        }
        if let Some(a) = &b.health.active {
            assert!(!a.interval.is_zero() && a.interval <= MAX_TIMEOUT);
            assert!(!a.timeout.is_zero() && a.timeout <= MAX_TIMEOUT);
            assert!((1..=1000).contains(&a.rise) && (1..=1000).contains(&a.fall));
            if a.kind == CheckKind::Http {
                assert_eq!(config::check_http_path(&a.path), Ok(()), "{:?}", a.path);
            }
        }
        if let Some(p) = &b.health.passive {
            assert!(!p.fail_timeout.is_zero() && p.fail_timeout <= MAX_TIMEOUT);
            assert!((1..=1000).contains(&p.max_fails));
        }
    }
}
