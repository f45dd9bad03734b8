//! Unit tests of `validate/`: no sockets; DNS through a fake resolver;
//! includes in a temp directory.

use super::*;
use crate::config::address::tests::FakeResolver;
use crate::config::include::tests::TempDir;

mod bounds;
mod errors;
mod files;

fn load(doc: &str) -> Result<Plan, ConfigErrors> {
    load_str_with(doc, Path::new("test.yaml"), &FakeResolver)
}

fn errors(doc: &str) -> Vec<ConfigError> {
    match load(doc) {
        Ok(_) => panic!("expected errors for:\n{doc}"),
        Err(e) => e.errors,
    }
}

/// Asserts one error has exactly this path and line, and mentions `needle`.
#[track_caller]
fn has(errs: &[ConfigError], path: &str, line: usize, needle: &str) {
    let found = errs.iter().any(|e| {
        e.path == path
            && e.line == Some(line)
            && e.message.contains(needle)
            && e.to_string()
                .starts_with(&format!("test.yaml:{line}: {path}: "))
    });
    assert!(
        found,
        "no error at {path} line {line} containing {needle:?}; got:\n{}",
        ConfigErrors {
            errors: errs.to_vec(),
            ..Default::default()
        }
    );
}

const MINIMAL: &str = r#"
listeners:
  - name: web
    bind: "127.0.0.1:8080"
    backend: pool
backends:
  - name: pool
    servers:
      - "127.0.0.1:9001"
"#;

#[test]
fn minimal_file_gets_every_default() {
    let plan = load(MINIMAL).unwrap();
    assert!(plan.server.workers >= 1);
    assert_eq!(plan.server.max_connections, 100_000);
    assert_eq!(plan.server.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(plan.server.user, None);
    assert_eq!(plan.logging.level, log::LevelFilter::Info);
    assert_eq!(plan.logging.error_log, LogTarget::Stderr);
    assert_eq!(plan.logging.access_log, None);
    let l = &plan.listeners[0];
    assert_eq!(l.name, "web");
    assert_eq!(l.bind, BindSpec::parse("127.0.0.1:8080").unwrap());
    assert_eq!(l.protocol, Protocol::Tcp);
    assert_eq!(l.backend, Some(BackendId(0)));
    assert_eq!(l.idle_timeout, Duration::from_secs(300));
    assert_eq!(l.accept_proxy, AcceptProxy::Off);
    assert!(!l.zero_copy && !l.reuseport);
    assert_eq!(l.max_connections, None);
    let b = &plan.backends[0];
    assert_eq!(b.balance, BalanceKind::RoundRobin);
    assert_eq!(b.connect_timeout, Duration::from_secs(5));
    assert_eq!(b.retries, 3);
    assert_eq!(b.send_proxy, None);
    assert_eq!(b.health, HealthPlan::default());
    let s = &b.servers[0];
    assert_eq!(
        (s.ip, s.port, s.weight, s.backup, s.max_connections),
        ("127.0.0.1".parse().unwrap(), Some(9001), 1, false, None)
    );
    assert_eq!(s.label, "127.0.0.1:9001");
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn full_file_resolves_every_key() {
    let doc = r#"
version: "2"
server:
  pid_file: run/nvelox.pid
  workers: 3
  max_connections: 5000
  shutdown_timeout: 1m
logging:
  level: debug
  error_log: /tmp/err.log
  access_log: logs/access.log
listeners:
  - name: game
    bind: "[::1]:10000-10010"
    protocol: udp
    default_backend: game_pool
    idle_timeout: 45s
    max_connections: 10000
    reuseport: true
  - name: web
    bind: ":80"
    default_backend: game_pool
backends:
  - name: game_pool
    balance: source_hash
    connect_timeout: 500ms
    retries: 0
    servers:
      - "::1"
      - "[::1]:9000"
      - { address: "10.0.0.3:9000", weight: 3, backup: true, max_connections: 500 }
      - db.test:5432
    health_check:
      active:
        type: udp
        port: 8081
        send: 'ping\x00'
        expect: "pong"
        interval: 3s
        timeout: 1s
        rise: 4
        fall: 5
      passive:
        max_fails: 7
        fail_timeout: 20s
"#;
    let plan = load_str_with(doc, Path::new("/etc/nvelox/main.yaml"), &FakeResolver).unwrap();
    assert_eq!(plan.server.workers, 3);
    assert_eq!(plan.server.max_connections, 5000);
    assert_eq!(plan.server.shutdown_timeout, Duration::from_secs(60));
    assert_eq!(
        plan.server.pid_file,
        Some(PathBuf::from("/etc/nvelox/run/nvelox.pid"))
    );
    assert_eq!(plan.logging.level, log::LevelFilter::Debug);
    assert_eq!(
        plan.logging.error_log,
        LogTarget::File("/tmp/err.log".into())
    );
    assert_eq!(
        plan.logging.access_log,
        Some(PathBuf::from("/etc/nvelox/logs/access.log"))
    );
    let game = &plan.listeners[0];
    assert_eq!(game.protocol, Protocol::Udp);
    assert_eq!(game.bind.port_count(), 11);
    assert_eq!(game.idle_timeout, Duration::from_secs(45));
    assert_eq!(game.max_connections, Some(10000));
    assert!(game.reuseport);
    assert_eq!(plan.listeners[1].backend, Some(BackendId(0)));
    let b = &plan.backends[0];
    assert_eq!(b.balance, BalanceKind::SourceHash);
    assert_eq!(b.connect_timeout, Duration::from_millis(500));
    assert_eq!(b.retries, 0);
    assert_eq!(b.servers.len(), 4);
    assert_eq!(b.servers[0].port, None);
    assert_eq!(b.servers[1].port, Some(9000));
    assert_eq!(
        (
            b.servers[2].weight,
            b.servers[2].backup,
            b.servers[2].max_connections
        ),
        (3, true, Some(500))
    );
    assert_eq!(
        b.servers[3].ip,
        "10.9.9.9".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(b.servers[3].label, "db.test:5432");
    let active = b.health.active.as_ref().unwrap();
    assert_eq!(active.kind, CheckKind::Udp);
    assert_eq!(active.port, Some(8081));
    assert_eq!(active.send, b"ping\0");
    assert_eq!(active.expect, b"pong");
    assert_eq!(
        (active.interval, active.timeout, active.rise, active.fall),
        (Duration::from_secs(3), Duration::from_secs(1), 4, 5)
    );
    let passive = b.health.passive.as_ref().unwrap();
    assert_eq!(
        (passive.max_fails, passive.fail_timeout),
        (7, Duration::from_secs(20))
    );
}

#[test]
fn udp_idle_default_http_path_default_and_check_defaults() {
    let doc = r#"
listeners:
  - { name: u, bind: "127.0.0.1:53", protocol: udp, default_backend: b }
backends:
  - name: b
    servers: ["127.0.0.1:5353"]
    health_check:
      active: { type: http }
      passive: {}
"#;
    let plan = load(doc).unwrap();
    assert_eq!(plan.listeners[0].idle_timeout, Duration::from_secs(30));
    let a = plan.backends[0].health.active.as_ref().unwrap();
    assert_eq!(a.path, "/");
    assert_eq!(
        (a.interval, a.timeout, a.rise, a.fall, a.port),
        (Duration::from_secs(10), Duration::from_secs(2), 2, 3, None)
    );
    let p = plan.backends[0].health.passive.as_ref().unwrap();
    assert_eq!((p.max_fails, p.fail_timeout), (3, Duration::from_secs(10)));
}

#[test]
fn send_proxy_forms() {
    let with = |extra: &str| {
        let doc = MINIMAL.replace(
            "  - name: pool\n",
            &format!("  - name: pool\n    {extra}\n"),
        );
        load(&doc)
    };
    assert_eq!(
        with("send_proxy_v2: true").unwrap().backends[0].send_proxy,
        Some(ProxyVersion::V2)
    );
    assert_eq!(
        with("send_proxy: v1").unwrap().backends[0].send_proxy,
        Some(ProxyVersion::V1)
    );
    assert_eq!(
        with("send_proxy: \"v2\"").unwrap().backends[0].send_proxy,
        Some(ProxyVersion::V2)
    );
    assert_eq!(
        with("send_proxy_v2: false").unwrap().backends[0].send_proxy,
        None
    );
    let errs = with("send_proxy: v3").unwrap_err().errors;
    has(&errs, "backends[0].send_proxy", 8, "unknown value \"v3\"");
}

#[test]
fn maglev_and_hash_key() {
    let with = |extra: &str| {
        let doc = MINIMAL.replace(
            "  - name: pool\n",
            &format!("  - name: pool\n    {extra}\n"),
        );
        load(&doc)
    };
    let plan = load(MINIMAL).unwrap();
    assert_eq!(plan.backends[0].hash_key, HashKey::Ip);
    let b = &with("balance: maglev").unwrap().backends[0];
    assert_eq!((b.balance, b.hash_key), (BalanceKind::Maglev, HashKey::Ip));
    let b = &with("balance: maglev\n    hash_key: ip_port")
        .unwrap()
        .backends[0];
    assert_eq!(
        (b.balance, b.hash_key),
        (BalanceKind::Maglev, HashKey::IpPort)
    );
    let errs = with("balance: maglev\n    hash_key: port")
        .unwrap_err()
        .errors;
    has(&errs, "backends[0].hash_key", 9, "unknown value \"port\"");
    let errs = with("balance: source_hash\n    hash_key: ip")
        .unwrap_err()
        .errors;
    has(&errs, "backends[0].hash_key", 9, "balance: maglev");
}

#[test]
fn every_feature_key_loads_without_warnings() {
    let doc = r#"server:
  user: nobody
  group: nogroup
listeners:
  - name: web
    bind: "127.0.0.1:8080"
    zero_copy: true
    accept_proxy: v2
    backend: pool
backends:
  - name: pool
    send_proxy_v2: true
    servers: ["127.0.0.1:9001"]
    health_check:
      active: { type: tcp }
      passive: { max_fails: 2 }
"#;
    let plan = load(doc).unwrap();
    assert!(plan.warnings.is_empty(), "{:#?}", plan.warnings);
    assert!(plan.listeners[0].zero_copy);
    assert_eq!(plan.listeners[0].accept_proxy, AcceptProxy::V2);
    assert_eq!(plan.backends[0].send_proxy, Some(ProxyVersion::V2));
    assert_eq!(plan.server.user.as_deref(), Some("nobody"));
}
