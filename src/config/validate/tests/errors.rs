//! Every error is reported with its file, line and YAML path: scalar,
//! server, logging, health-check, cross-protocol and overlap rules.

use super::*;

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
