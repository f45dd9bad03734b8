//! Unit tests of `validate/`: no sockets; DNS through a fake resolver;
//! includes in a temp directory.

use super::*;
use crate::config::address::tests::FakeResolver;
use crate::config::include::tests::TempDir;

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
    assert_eq!(l.backend, BackendId(0));
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
    assert_eq!(plan.listeners[1].backend, BackendId(0));
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
fn many_errors_are_all_reported_with_path_and_line() {
    let doc = r#"version: "3"
server:
  workers: 0
listeners:
  - name: a
    bind: ":10-5"
    default_backend: nope
  - name: a
    bind: ":99999"
    protocol: udp
    zero_copy: true
    default_backend: pool
    idle_timeout: 10sec
  - bind: "127.0.0.1:8080"
    default_backend: pool
  - name: c
    bind: "0.0.0.0:8000-8100"
    default_backend: pool
  - name: d
    bind: "127.0.0.1:8050"
    default_backend: pool
backends:
  - name: pool
    balance: fastest
    servers:
      - { address: "10.0.0.1:80", weight: 0 }
      - "10.0.0.1:0"
      - "10.0.0.1:70000"
      - "nowhere.test"
  - name: pool
    servers: []
  - name: nosrv
    health_check:
      active:
        rise: 0
        path: nopath
      passive:
        max_fails: 0
        fail_timeout: soon
"#;
    let errs = errors(doc);
    has(&errs, "version", 1, "unsupported version \"3\"");
    has(&errs, "server.workers", 3, "at least 1");
    has(&errs, "listeners[0].bind", 6, "10-5");
    has(
        &errs,
        "listeners[0].default_backend",
        7,
        "unknown backend \"nope\"",
    );
    has(
        &errs,
        "listeners[1].name",
        8,
        "duplicate listener name \"a\"",
    );
    has(&errs, "listeners[1].name", 8, "test.yaml:5");
    has(&errs, "listeners[1].bind", 9, "99999");
    has(&errs, "listeners[1].zero_copy", 11, "tcp listeners only");
    has(
        &errs,
        "listeners[1].idle_timeout",
        13,
        "unknown unit \"sec\"",
    );
    has(&errs, "listeners[2]", 14, "missing required key `name`");
    has(
        &errs,
        "listeners[3].bind",
        17,
        "overlaps the tcp listener (bind 127.0.0.1:8080, at test.yaml:14)",
    );
    has(
        &errs,
        "listeners[4].bind",
        20,
        "overlaps tcp listener \"c\"",
    );
    has(
        &errs,
        "backends[0].balance",
        24,
        "unknown value \"fastest\"",
    );
    has(
        &errs,
        "backends[0].balance",
        24,
        "roundrobin, leastconn, random, source_hash",
    );
    has(
        &errs,
        "backends[0].servers[0].weight",
        26,
        "weight must be at least 1",
    );
    has(&errs, "backends[0].servers[1]", 27, "port 0");
    has(&errs, "backends[0].servers[2]", 28, "70000");
    has(&errs, "backends[0].servers[3]", 29, "does not resolve");
    has(
        &errs,
        "backends[1].name",
        30,
        "duplicate backend name \"pool\"",
    );
    has(&errs, "backends[1].servers", 31, "at least one server");
    has(&errs, "backends[2]", 32, "missing required key `servers`");
    has(
        &errs,
        "backends[2].health_check.active.rise",
        35,
        "at least 1",
    );
    has(
        &errs,
        "backends[2].health_check.active.path",
        36,
        "only used by type: http",
    );
    has(
        &errs,
        "backends[2].health_check.passive.max_fails",
        38,
        "at least 1",
    );
    has(
        &errs,
        "backends[2].health_check.passive.fail_timeout",
        39,
        "\"soon\"",
    );
    // Nothing else: each problem once, and no noise from the defaults used
    // in place of bad values.
    assert_eq!(
        errs.len(),
        23,
        "{}",
        ConfigErrors {
            errors: errs.clone(),
            ..Default::default()
        }
    );
    // Reported in file order, whatever order the checks ran in.
    let lines: Vec<usize> = errs.iter().filter_map(|e| e.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn unknown_key_is_an_error_with_its_line() {
    let doc = MINIMAL.replace("    bind:", "    colour: blue\n    bind:");
    let errs = errors(&doc);
    assert_eq!(errs.len(), 1);
    let e = &errs[0];
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    assert_eq!(e.line, Some(4));
    assert_eq!(e.path, "listeners[0]");
    assert!(!e.message.contains("at line"), "{e}");
}

#[test]
fn syntax_and_type_errors_carry_a_line() {
    let errs = errors("listeners:\n  - name: a\n   bind: x\n");
    assert_eq!(errs[0].line, Some(3), "{}", errs[0]);
    let errs = errors("listeners:\n  - name: a\n    bind: [1, 2]\n");
    assert_eq!(errs[0].line, Some(3), "{}", errs[0]);
    assert!(errs[0].message.contains("invalid type"), "{}", errs[0]);
}

#[test]
fn scalar_errors_name_path_and_line() {
    let cases: &[(&str, &str, &str, usize, &str)] = &[
        // (text to replace, replacement, path, line, message part)
        (
            "    bind: \"127.0.0.1:8080\"\n",
            "    bind: \"127.0.0.1:0\"\n",
            "listeners[0].bind",
            4,
            "port 0",
        ),
        (
            "    bind: \"127.0.0.1:8080\"\n",
            "",
            "listeners[0]",
            3,
            "missing required key `bind`",
        ),
        (
            "    backend: pool\n",
            "",
            "listeners[0]",
            3,
            "missing required key `backend`",
        ),
        (
            "    bind: \"127.0.0.1:8080\"\n",
            "    bind: \"127.0.0.1:8080\"\n    protocol: sctp\n",
            "listeners[0].protocol",
            5,
            "\"sctp\"",
        ),
        (
            "    bind: \"127.0.0.1:8080\"\n",
            "    bind: \"127.0.0.1:8080\"\n    accept_proxy: v3\n",
            "listeners[0].accept_proxy",
            5,
            "\"v3\"",
        ),
        (
            "    bind: \"127.0.0.1:8080\"\n",
            "    bind: \"127.0.0.1:8080\"\n    reuseport: maybe\n",
            "listeners[0].reuseport",
            5,
            "true or false",
        ),
        (
            "    bind: \"127.0.0.1:8080\"\n",
            "    bind: \"127.0.0.1:8080\"\n    max_connections: 0\n",
            "listeners[0].max_connections",
            5,
            "at least 1",
        ),
        (
            "    bind: \"127.0.0.1:8080\"\n",
            "    bind: \"127.0.0.1:8080\"\n    idle_timeout: 0s\n",
            "listeners[0].idle_timeout",
            5,
            "greater than 0",
        ),
        (
            "      - \"127.0.0.1:9001\"\n",
            "      - \"bad host!\"\n",
            "backends[0].servers[0]",
            9,
            "not an IP address or a host name",
        ),
        (
            "      - \"127.0.0.1:9001\"\n",
            "      - \"::1:80:x\"\n",
            "backends[0].servers[0]",
            9,
            "needs brackets",
        ),
        (
            "      - \"127.0.0.1:9001\"\n",
            "      - { weight: 2 }\n",
            "backends[0].servers[0]",
            9,
            "missing required key `address`",
        ),
        (
            "      - \"127.0.0.1:9001\"\n",
            "      - address: \"127.0.0.1:1\"\n        weight: lots\n",
            "backends[0].servers[0].weight",
            10,
            "\"lots\"",
        ),
        (
            "    servers:\n",
            "    retries: -1\n    servers:\n",
            "backends[0].retries",
            8,
            "\"-1\"",
        ),
        (
            "    servers:\n",
            "    connect_timeout: 0\n    servers:\n",
            "backends[0].connect_timeout",
            8,
            "greater than 0",
        ),
    ];
    for (from, to, path, line, needle) in cases {
        assert!(MINIMAL.contains(from), "{from}");
        let errs = errors(&MINIMAL.replacen(from, to, 1));
        has(&errs, path, *line, needle);
    }
}

#[test]
fn server_and_logging_errors() {
    let doc = format!(
        "version: 2\nserver:\n  user: \"\"\n  workers: many\n  shutdown_timeout: 1.5s\n  max_connections: x\nlogging:\n  level: loud\n  error_log: \"\"\n{MINIMAL}"
    );
    let errs = errors(&doc);
    has(&errs, "server.user", 3, "is empty");
    has(&errs, "server.workers", 4, "\"many\"");
    has(&errs, "server.shutdown_timeout", 5, "\"1.5s\"");
    has(&errs, "server.max_connections", 6, "\"x\"");
    has(&errs, "logging.level", 8, "error, warn, info, debug, trace");
    has(&errs, "logging.error_log", 9, "is empty");
    assert_eq!(errs.len(), 6);
    // `version: 2` as a number is fine.
    assert!(load(&format!("version: 2\n{MINIMAL}")).is_ok());
    let plan = load(&format!("server:\n  workers: auto\n{MINIMAL}")).unwrap();
    assert!(plan.server.workers >= 1);
    let plan = load(&format!("server:\n  workers: 1025\n{MINIMAL}"));
    assert!(plan.is_err());
}

#[test]
fn health_check_errors() {
    let doc = r#"
listeners:
  - { name: l, bind: ":80", default_backend: b }
backends:
  - name: b
    servers: ["127.0.0.1:1"]
    health_check:
      active:
        type: http
        path: health
        send: "x"
        port: 0
        interval: 0
        timeout: 2x
        fall: 0
"#;
    let errs = errors(doc);
    has(
        &errs,
        "backends[0].health_check.active.path",
        10,
        "must start with /",
    );
    has(
        &errs,
        "backends[0].health_check.active.send",
        11,
        "tcp and udp checks",
    );
    has(&errs, "backends[0].health_check.active.port", 12, "port 0");
    has(
        &errs,
        "backends[0].health_check.active.interval",
        13,
        "greater than 0",
    );
    has(
        &errs,
        "backends[0].health_check.active.timeout",
        14,
        "unknown unit",
    );
    has(
        &errs,
        "backends[0].health_check.active.fall",
        15,
        "at least 1",
    );
    let errs = errors(&doc.replace("type: http", "type: icmp"));
    has(
        &errs,
        "backends[0].health_check.active.type",
        9,
        "tcp, http, udp",
    );
    let bad_escape = doc
        .replace("type: http", "type: tcp")
        .replace("        path: health\n", "")
        .replace("send: \"x\"", "send: 'a\\q'");
    let errs = errors(&bad_escape);
    has(
        &errs,
        "backends[0].health_check.active.send",
        10,
        "unknown escape",
    );
}

#[test]
fn cross_protocol_rules() {
    let doc = r#"
listeners:
  - { name: u, bind: "127.0.0.1:53", protocol: udp, default_backend: b, accept_proxy: v1 }
  - name: t
    bind: "127.0.0.1:53"
    default_backend: b
backends:
  - name: b
    send_proxy: v1
    servers: ["127.0.0.1:1"]
"#;
    let errs = errors(doc);
    // Same port, different protocols: no overlap error.
    assert!(
        !errs.iter().any(|e| e.message.contains("overlaps")),
        "{errs:?}"
    );
    has(&errs, "listeners[0].accept_proxy", 3, "TCP only");
    has(
        &errs,
        "listeners[0].default_backend",
        3,
        "PROXY v1, which is TCP only",
    );
    assert_eq!(errs.len(), 2);
    let errs = errors(&doc.replace("send_proxy: v1", "send_proxy_v2: true\n    send_proxy: v1"));
    has(
        &errs,
        "backends[0].send_proxy",
        10,
        "conflicts with send_proxy_v2",
    );
}

#[test]
fn overlap_rules_follow_bindspec() {
    let doc = |a: &str, b: &str| {
        format!(
            "listeners:\n  - {{ name: a, bind: \"{a}\", default_backend: p }}\n  - {{ name: b, bind: \"{b}\", default_backend: p }}\nbackends:\n  - {{ name: p, servers: [\"::1\"] }}\n"
        )
    };
    assert!(load(&doc("127.0.0.1:80", "127.0.0.1:81")).is_ok());
    assert!(load(&doc("127.0.0.1:80-90", "[::1]:80-90")).is_ok());
    let errs = errors(&doc(":80", "127.0.0.1:80"));
    // Flow style: the locator falls back to the line of the list item.
    has(&errs, "listeners[1].bind", 3, "overlaps tcp listener \"a\"");
    has(&errs, "listeners[1].bind", 3, "test.yaml:2");
    let errs = errors(&doc("0.0.0.0:1000-2000", "127.0.0.1:2000-3000"));
    assert_eq!(errs.len(), 1);
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

#[test]
fn unreadable_main_file() {
    let err = super::load(Path::new("/nonexistent/nvelox.yaml")).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/nvelox.yaml: cannot read configuration file"),
        "{err}"
    );
}

#[test]
fn empty_file_is_a_valid_empty_plan() {
    let plan = load("# nothing yet\n").unwrap();
    assert!(plan.listeners.is_empty() && plan.backends.is_empty());
}

const INCLUDED: &str = "listeners:\n  - name: extra\n    bind: \"127.0.0.1:7000\"\n    default_backend: pool\nbackends:\n  - name: extra_pool\n    servers: [\"127.0.0.1:7001\"]\n";

#[test]
fn includes_add_listeners_and_backends_in_sorted_order() {
    let tmp = TempDir::new("val-inc");
    tmp.write("conf.d/20-b.yaml", INCLUDED);
    tmp.write(
        "conf.d/10-a.yaml",
        "backends:\n  - name: first\n    servers: [\"127.0.0.1:1\"]\n",
    );
    tmp.write("conf.d/notes.txt", "not yaml: [");
    tmp.write("extra/one.yaml", "# empty\n");
    let main = tmp.write(
        "main.yaml",
        &format!("include: [\"conf.d/*.yaml\", extra/one.yaml]\n{MINIMAL}"),
    );
    let plan = super::load_with(&main, &FakeResolver).unwrap();
    let names: Vec<&str> = plan.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["pool", "first", "extra_pool"]);
    assert_eq!(plan.listeners[1].name, "extra");
    assert_eq!(plan.listeners[1].backend, BackendId(0));

    // The string form, and an empty but existing directory.
    std::fs::create_dir_all(tmp.0.join("empty.d")).unwrap();
    let main2 = tmp.write("main2.yaml", &format!("include: empty.d/*.yaml\n{MINIMAL}"));
    assert_eq!(
        super::load_with(&main2, &FakeResolver)
            .unwrap()
            .listeners
            .len(),
        1
    );
}

#[test]
fn include_errors_name_the_right_file() {
    let tmp = TempDir::new("val-inc-err");
    let bad = tmp.write(
        "conf.d/bad.yaml",
        "server:\n  workers: 2\nlisteners:\n  - name: web\n    bind: \"127.0.0.1:8080\"\n    default_backend: nope\n",
    );
    let typo = tmp.write(
        "conf.d/typo.yaml",
        "backends:\n  - name: x\n    sever: []\n",
    );
    let main = tmp.write(
        "main.yaml",
        &format!("include:\n  - conf.d/*.yaml\n  - missing.yaml\n  - nodir/*.yaml\n{MINIMAL}"),
    );
    let errs = super::load_with(&main, &FakeResolver).unwrap_err();
    let text = errs.to_string();
    let main_s = main.display().to_string();
    let bad_s = bad.display().to_string();
    let typo_s = typo.display().to_string();
    let expect = [
        format!("{main_s}:3: include[1]: included file "),
        format!("{main_s}:4: include[2]: include \"nodir/*.yaml\": directory "),
        format!("{bad_s}:1: server: an included file may only add `listeners` and `backends`"),
        format!("{bad_s}:4: listeners[0].name: duplicate listener name \"web\" (first defined at {main_s}:7)"),
        format!("{bad_s}:5: listeners[0].bind: bind 127.0.0.1:8080 overlaps tcp listener \"web\""),
        format!("{bad_s}:6: listeners[0].default_backend: unknown backend \"nope\""),
        format!("{typo_s}:3: backends[0]: unknown field `sever`"),
    ];
    for e in &expect {
        assert!(
            text.lines().any(|l| l.starts_with(e.as_str())),
            "missing {e:?} in:\n{text}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{text}");
}

#[test]
fn include_cycle_and_nested_include_are_refused() {
    let tmp = TempDir::new("val-inc-cycle");
    let main = tmp.write("main.yaml", &format!("include: \"*.yaml\"\n{MINIMAL}"));
    tmp.write("other.yaml", "include: main.yaml\n");
    let errs = super::load_with(&main, &FakeResolver).unwrap_err();
    let text = errs.to_string();
    assert!(
        text.contains("main.yaml:1: include: include cycle"),
        "{text}"
    );
    assert!(
        text.contains("other.yaml:1: include: an included file may only add"),
        "{text}"
    );
}

#[test]
fn load_str_resolves_includes_next_to_the_named_path() {
    let tmp = TempDir::new("val-inc-str");
    tmp.write("conf.d/x.yaml", INCLUDED);
    let doc = format!("include: conf.d/*.yaml\n{MINIMAL}");
    let plan = load_str_with(&doc, &tmp.0.join("virtual.yaml"), &FakeResolver).unwrap();
    assert_eq!(plan.listeners.len(), 2);
}

#[test]
fn parent_paths() {
    assert_eq!(parent_path("a[1].b"), Some("a[1]"));
    assert_eq!(parent_path("a[1]"), Some("a"));
    assert_eq!(parent_path("a"), Some(""));
    assert_eq!(parent_path(""), None);
}

proptest::proptest! {
    /// Whatever the text, loading returns a plan or errors; it never panics.
    #[test]
    fn load_never_panics(text in "[a-z_0-9:\\- \n\".\\[\\]{}*]{0,200}") {
        let _ = load(&text);
    }

    /// Mutating one value of a valid file gives a plan or located errors.
    #[test]
    fn every_error_names_file_and_path(value in "[a-z0-9:.\\-\\[\\] ]{0,12}", which in 0usize..5) {
        let targets = ["\"127.0.0.1:8080\"", "pool\n", "\"127.0.0.1:9001\"", "name: web", "servers:"];
        let replacement = match which {
            3 => format!("name: web\n    idle_timeout: \"{value}\""),
            4 => format!("balance: \"{value}\"\n    servers:"),
            1 => format!("\"{value}\"\n"),
            _ => format!("\"{value}\""),
        };
        let doc = MINIMAL.replacen(targets[which], &replacement, 1);
        if let Err(errs) = load(&doc) {
            for e in errs.iter() {
                proptest::prop_assert_eq!(&e.file, Path::new("test.yaml"));
                proptest::prop_assert!(e.line.is_some(), "{}", e);
                proptest::prop_assert!(!e.path.is_empty(), "{}", e);
            }
        }
    }
}

/// Every duration key, at one past its maximum and at a value that used to
/// pass and then overflow `Instant + Duration` at run time.
#[test]
fn every_duration_is_bounded() {
    let doc = |v: &str| {
        format!(
            r#"server:
  shutdown_timeout: {v}
listeners:
  - name: l
    bind: ":80"
    default_backend: b
    idle_timeout: {v}
backends:
  - name: b
    connect_timeout: {v}
    servers: ["127.0.0.1:1"]
    health_check:
      active:
        interval: {v}
        timeout: {v}
      passive:
        fail_timeout: {v}
"#
        )
    };
    let keys = [
        ("server.shutdown_timeout", 2, "24h"),
        ("listeners[0].idle_timeout", 7, "168h (7 days)"),
        ("backends[0].connect_timeout", 10, "24h"),
        ("backends[0].health_check.active.interval", 14, "24h"),
        ("backends[0].health_check.active.timeout", 15, "24h"),
        ("backends[0].health_check.passive.fail_timeout", 17, "24h"),
    ];
    for v in ["18446744073709551615", "1000000000000000h", "169h"] {
        let errs = errors(&doc(v));
        assert_eq!(errs.len(), keys.len(), "{v}: {errs:#?}");
        for (path, line, max) in keys {
            has(&errs, path, line, "maximum");
            has(&errs, path, line, max);
        }
    }
    // One past the day bound: all but idle_timeout are refused.
    let errs = errors(&doc("24h1ms"));
    assert_eq!(errs.len(), keys.len() - 1, "{errs:#?}");
    // The maxima themselves load.
    let at_max = doc("24h").replace("idle_timeout: 24h", "idle_timeout: 168h");
    let plan = load(&at_max).unwrap();
    assert_eq!(plan.listeners[0].idle_timeout, MAX_IDLE_TIMEOUT);
    assert_eq!(plan.backends[0].connect_timeout, MAX_TIMEOUT);
    assert_eq!(plan.server.shutdown_timeout, MAX_TIMEOUT);
}

#[test]
fn http_probe_path_must_fit_a_request_line() {
    let doc = |path: &str| {
        format!(
            "listeners:\n  - {{ name: l, bind: \":80\", default_backend: b }}\nbackends:\n  - name: b\n    servers: [\"127.0.0.1:1\"]\n    health_check:\n      active:\n        type: http\n        path: {path}\n"
        )
    };
    let p = "backends[0].health_check.active.path";
    for (bad, needle) in [
        (r#""/a b""#, "' '"),
        (r#""/h\r\nX-Injected: 1""#, "'\\r'"),
        (r#""/h\nx""#, "'\\n'"),
        (r#""/a\tb""#, "'\\t'"),
        (r#""/frag#x""#, "'#'"),
        (r#""/é""#, "'é'"),
        (r#""/a%zz""#, "two hex digits"),
        (r#""/a%4""#, "two hex digits"),
        ("health", "must start with /"),
        (r#""*""#, "must start with /"),
    ] {
        let errs = errors(&doc(bad));
        assert_eq!(errs.len(), 1, "{bad}: {errs:#?}");
        has(&errs, p, 9, needle);
    }
    let long = format!("\"/{}\"", "a".repeat(MAX_HTTP_PATH_LEN));
    has(&errors(&doc(&long)), p, 9, "maximum is 1024");
    for good in [
        "/",
        "/health",
        "\"/status?full=1&x=%20y\"",
        "\"/a/b;v=1/~user/(x)*+,:@!$'\"",
    ] {
        let plan = load(&doc(good)).unwrap_or_else(|e| panic!("{good}: {e}"));
        let active = plan.backends[0].health.active.as_ref().unwrap();
        assert_eq!(active.path, good.trim_matches('"'));
    }
}

/// Fuzzer finding (config target): serde_yaml counts a lone CR as a line
/// break, so a file with CRs inside a line got an error "at line 94" of a
/// 45-line file. Lines are now counted as an editor shows them.
#[test]
fn syntax_error_lines_count_only_newlines() {
    let doc = "listeners:\n  - name: a\r\r\r\r\r\r\r\r\r\r\n    bind: [\n";
    let errs = errors(doc);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let line = errs[0].line.expect("a syntax error has a line");
    assert!(line <= doc.lines().count() + 1, "line {line}: {}", errs[0]);
    // CRLF files keep the numbers serde_yaml gives (the end of the file
    // here, line 5).
    let crlf = "listeners:\r\n  - name: a\r\n    bind: :80\r\n    oops\r\n";
    let errs = errors(crlf);
    assert_eq!(errs[0].line, Some(5), "{errs:#?}");
    assert!(errs[0].message.contains("at line 5 column 1"), "{errs:#?}");
    // Also with a byte-order mark in front.
    let bom = format!("\u{feff}{crlf}");
    assert_eq!(errors(&bom)[0].line, Some(5));
}
