//! Black-box tests of `nvelox --check`, `nvelox validate` and `--version`:
//! they run the real binary. No sockets are opened; temp files live in a
//! fresh directory under the system temp dir and are removed afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_nvelox");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn nvelox(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("run nvelox")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "nvelox-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, body: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, body).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every YAML file under `dir`, except those in `conf.d` / `config.d`
/// directories, which exist only to be included.
fn shipped_configs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read conf dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "conf.d" && name != "config.d" {
                shipped_configs(&p, out);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(p);
        }
    }
}

#[test]
fn every_shipped_config_passes_check_and_validate() {
    let mut files = Vec::new();
    shipped_configs(&Path::new(ROOT).join("conf"), &mut files);
    assert!(
        files.len() >= 10,
        "expected nvelox.yaml and the examples, found {files:?}"
    );
    for f in &files {
        let f = f.to_str().expect("utf-8 path");
        for args in [vec!["-c", f, "--check"], vec!["validate", f]] {
            let out = nvelox(&args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?}\nstdout: {}\nstderr: {}",
                text(&out.stdout),
                text(&out.stderr)
            );
            assert_eq!(text(&out.stdout), "configuration OK\n", "{args:?}");
        }
    }
}

#[test]
fn the_default_file_is_used_without_c() {
    let out = nvelox(&["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "configuration OK\n");
}

#[test]
fn a_file_using_every_feature_checks_without_warnings() {
    let dir = std::env::temp_dir().join(format!("nvelox-warn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("w.yaml");
    std::fs::write(
        &file,
        "listeners:\n  - name: a\n    bind: \"127.0.0.1:1\"\n    backend: b\nbackends:\n  - name: b\n    servers: [\"127.0.0.1:2\"]\n    health_check:\n      active: { type: tcp }\n",
    )
    .unwrap();
    let out = nvelox(&["-c", file.to_str().unwrap(), "--check"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        !err.contains("warning"),
        "no key is accepted-but-ignored any more: {err}"
    );
    // The Go README's file uses the old `default_backend`: its only
    // warnings are the deprecation, one per listener, with FILE:LINE.
    let out = nvelox(&["-c", "conf/examples/nvelox_go_compat.yaml", "--check"]);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    for (line, i) in [(29, 0), (35, 1)] {
        assert!(
            err.contains(&format!("warning: conf/examples/nvelox_go_compat.yaml:{line}: listeners[{i}].default_backend: `default_backend` is deprecated")),
            "{err}"
        );
    }
}

#[test]
fn version() {
    for flag in ["--version", "-V"] {
        let out = nvelox(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            text(&out.stdout),
            format!("nvelox {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn help_and_usage_errors() {
    let out = nvelox(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("--check") && help.contains("Error codes:"),
        "{help}"
    );
    let out = nvelox(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--help"));
}

#[test]
fn missing_file_is_a_configuration_error() {
    let out = nvelox(&["-c", "/nonexistent/nvelox.yaml", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/nvelox.yaml: cannot read configuration file"));
}

const GOOD_TAIL: &str = r#"
backends:
  - name: pool
    servers:
      - "127.0.0.1:9001"
"#;

/// Writes `body`, runs `--check` and `validate` on it, expects exit 1 and
/// every `(line, "PATH: message part")` among the errors.
fn expect_errors(body: &str, expected: &[(usize, &str)]) -> String {
    let tmp = TempDir::new("bad");
    let file = tmp.write("nvelox.yaml", body);
    let f = file.to_str().expect("utf-8 temp path");
    let out = nvelox(&["-c", f, "--check"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty());
    for (line, tail) in expected {
        let prefix = format!("{f}:{line}: ");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&prefix) && l[prefix.len()..].contains(tail)),
            "no `{prefix}...{tail}` in:\n{err}"
        );
    }
    let again = nvelox(&["validate", f]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(text(&again.stderr), err, "validate and --check differ");
    err
}

#[test]
fn several_errors_are_all_printed_with_file_and_line() {
    let body = r#"listeners:
  - name: a
    bind: ":10-5"
    default_backend: pool
  - name: a
    bind: "127.0.0.1:7000"
    default_backend: missing
    idle_timeout: 5 minutes
backends:
  - name: pool
    balance: fastest
    servers:
      - { address: "127.0.0.1:1", weight: 0 }
"#;
    let err = expect_errors(
        body,
        &[
            (3, "listeners[0].bind: port range 10-5 ends below its start"),
            (5, "listeners[1].name: duplicate listener name \"a\""),
            (
                7,
                "listeners[1].default_backend: unknown backend \"missing\"",
            ),
            (
                8,
                "listeners[1].idle_timeout: \"5 minutes\" is not a duration",
            ),
            (11, "backends[0].balance: unknown value \"fastest\""),
            (
                13,
                "backends[0].servers[0].weight: weight must be at least 1",
            ),
        ],
    );
    assert!(err.contains("is invalid (6 errors)"), "{err}");
}

#[test]
fn unknown_key() {
    let body = format!(
        "listeners:\n  - name: a\n    bind: \":7001\"\n    default_backend: pool\n    zero_copyy: true\n{GOOD_TAIL}"
    );
    expect_errors(&body, &[(5, "listeners[0]: unknown field `zero_copyy`")]);
}

#[test]
fn unknown_balance() {
    let body = format!(
        "listeners:\n  - {{ name: a, bind: \":7002\", default_backend: pool }}\n{}",
        GOOD_TAIL.replace(
            "  - name: pool\n",
            "  - name: pool\n    balance: weighted\n"
        )
    );
    expect_errors(
        &body,
        &[(
            6,
            "backends[0].balance: unknown value \"weighted\" (expected one of: roundrobin, leastconn, random, source_hash, maglev)",
        )],
    );
}

#[test]
fn duplicate_names() {
    let body = format!(
        "listeners:\n  - {{ name: a, bind: \":7003\", default_backend: pool }}\n  - {{ name: a, bind: \":7004\", default_backend: pool }}\n{GOOD_TAIL}  - name: pool\n    servers: [\"127.0.0.1:2\"]\n"
    );
    expect_errors(
        &body,
        &[
            (3, "listeners[1].name: duplicate listener name \"a\""),
            (9, "backends[1].name: duplicate backend name \"pool\""),
        ],
    );
}

#[test]
fn unknown_default_backend() {
    let body = format!(
        "listeners:\n  - name: a\n    bind: \":7005\"\n    default_backend: poool\n{GOOD_TAIL}"
    );
    expect_errors(
        &body,
        &[(
            4,
            "listeners[0].default_backend: unknown backend \"poool\" (defined backends: pool)",
        )],
    );
}

#[test]
fn bad_range() {
    let body = format!(
        "listeners:\n  - name: a\n    bind: \"127.0.0.1:10-5\"\n    default_backend: pool\n{GOOD_TAIL}"
    );
    expect_errors(
        &body,
        &[(3, "listeners[0].bind: port range 10-5 ends below its start")],
    );
}

#[test]
fn weight_zero() {
    let body = "listeners:\n  - { name: a, bind: \":7006\", default_backend: pool }\nbackends:\n  - name: pool\n    servers:\n      - address: \"127.0.0.1:1\"\n        weight: 0\n";
    expect_errors(
        body,
        &[(
            7,
            "backends[0].servers[0].weight: weight must be at least 1",
        )],
    );
}

#[test]
fn overlapping_binds() {
    let body = format!(
        "listeners:\n  - name: wide\n    bind: \":7000-7100\"\n    default_backend: pool\n  - name: narrow\n    bind: \"127.0.0.1:7050\"\n    default_backend: pool\n{GOOD_TAIL}"
    );
    expect_errors(
        &body,
        &[(
            6,
            "listeners[1].bind: bind 127.0.0.1:7050 overlaps tcp listener \"wide\" (bind :7000-7100",
        )],
    );
}

#[test]
fn bad_duration() {
    let body = format!(
        "server:\n  shutdown_timeout: 30 seconds\nlisteners:\n  - {{ name: a, bind: \":7007\", default_backend: pool }}\n{GOOD_TAIL}"
    );
    expect_errors(
        &body,
        &[(
            2,
            "server.shutdown_timeout: \"30 seconds\" is not a duration (expected e.g. 500ms, 10s",
        )],
    );
}

#[test]
fn missing_include() {
    let body = format!(
        "include:\n  - conf.d/*.yaml\n  - extra.yaml\nlisteners:\n  - {{ name: a, bind: \":7008\", default_backend: pool }}\n{GOOD_TAIL}"
    );
    expect_errors(
        &body,
        &[
            (2, "include[0]: include \"conf.d/*.yaml\": directory "),
            (3, "include[1]: included file "),
        ],
    );
}

/// Bug 1 of issue 11: a huge duration passed `--check` and the first
/// connection then panicked adding it to an `Instant`. Each duration key is
/// now refused with its line, its path and the maximum.
#[test]
fn huge_durations_are_refused_with_the_maximum() {
    for v in ["18446744073709551615", "1000000000000000h"] {
        let body = format!(
            r#"server:
  shutdown_timeout: {v}
listeners:
  - name: a
    bind: ":7009"
    default_backend: pool
    idle_timeout: {v}
backends:
  - name: pool
    connect_timeout: {v}
    servers: ["127.0.0.1:9001"]
    health_check:
      active:
        interval: {v}
        timeout: {v}
      passive:
        fail_timeout: {v}
"#
        );
        let err = expect_errors(
            &body,
            &[
                (2, "server.shutdown_timeout: duration "),
                (7, "listeners[0].idle_timeout: duration "),
                (10, "backends[0].connect_timeout: duration "),
                (14, "backends[0].health_check.active.interval: duration "),
                (15, "backends[0].health_check.active.timeout: duration "),
                (
                    17,
                    "backends[0].health_check.passive.fail_timeout: duration ",
                ),
            ],
        );
        assert!(err.contains("is invalid (6 errors)"), "{err}");
        let with_max: Vec<&str> = err.lines().filter(|l| l.contains("maximum")).collect();
        assert_eq!(with_max.len(), 6, "{err}");
        assert_eq!(
            with_max
                .iter()
                .filter(|l| l.contains("168h (7 days)"))
                .count(),
            1,
            "{err}"
        );
        assert_eq!(
            with_max
                .iter()
                .filter(|l| l.contains("of 24h") || l.contains("is 24h"))
                .count(),
            5,
            "{err}"
        );
    }
}

/// Issue 11 item 6: an http probe path with a space or CR/LF produced a
/// malformed request line; it is refused at `--check`.
#[test]
fn http_probe_path_with_space_or_crlf_is_refused() {
    for path in [r#""/a b""#, r#""/health\r\nX-Injected: 1""#] {
        let body = format!(
            "listeners:\n  - {{ name: a, bind: \":7010\", default_backend: pool }}\nbackends:\n  - name: pool\n    servers: [\"127.0.0.1:9001\"]\n    health_check:\n      active:\n        type: http\n        path: {path}\n"
        );
        expect_errors(
            &body,
            &[(9, "backends[0].health_check.active.path: http path ")],
        );
    }
}

#[test]
fn http_listener_keys_check_with_file_and_line() {
    let good = r#"listeners:
  - name: web
    bind: "127.0.0.1:8000"
    protocol: http
    backend: app
    routes:
      - match: { host: api.example.com, path_prefix: /v1/ }
        backend: api
    headers:
      response_add: { X-Forwarded-By: nvelox }
    backend_server_header: X-Backend-Server
    forwarded_for: true
    timeouts: { read: 30s, write: 30s, idle: 60s }
    max_header_size: 16384
    max_body_size: 10MB
backends:
  - name: app
    retry: { attempts: 3, on: "connect_failure,502,503" }
    timeouts: { connect: 5s, read: 30s }
    keepalive: 32
    servers: ["127.0.0.1:8081", "127.0.0.1:8082"]
  - name: api
    servers: ["127.0.0.1:8083"]
"#;
    let tmp = TempDir::new("http");
    let file = tmp.write("nvelox.yaml", good);
    let out = nvelox(&["-c", file.to_str().expect("utf-8"), "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "configuration OK");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    let bad = good
        .replace("path_prefix: /v1/", "path_prefix: v1")
        .replace("X-Forwarded-By:", "\"X Forwarded\":")
        .replace("max_body_size: 10MB", "max_body_size: 10TB")
        .replace(
            "on: \"connect_failure,502,503\"",
            "on: \"connect_failure,500\"",
        )
        .replace("keepalive: 32", "keepalive: 100000")
        .replace("backend: api", "backend: api2")
        .replace("protocol: http", "protocol: tcp\n    zero_copy: true")
        .replace("  - name: web\n", "  - name: web\n    protocol: http\n");
    let err = expect_errors(
        &bad.replacen("    protocol: tcp\n", "", 1),
        &[
            (
                8,
                "listeners[0].routes[0].match.path_prefix: path_prefix \"v1\" must start with /",
            ),
            (
                9,
                "listeners[0].routes[0].backend: unknown backend \"api2\"",
            ),
            (
                11,
                "listeners[0].headers.response_add.X Forwarded: invalid header name",
            ),
            (
                16,
                "listeners[0].max_body_size: size \"10TB\" has unknown unit \"TB\"",
            ),
            (19, "backends[0].retry.on: unknown retry condition \"500\""),
            (
                21,
                "backends[0].keepalive: expected a whole number from 0 to 1024",
            ),
        ],
    );
    assert!(err.contains("is invalid (6 errors)"), "{err}");

    // The same keys on a tcp listener: each named, with the protocol.
    let err = expect_errors(
        &good.replace("protocol: http", "protocol: tcp"),
        &[
            (6, "listeners[0].routes: `routes` is for protocol: http listeners; this listener is tcp"),
            (9, "listeners[0].headers: `headers` is for protocol: http listeners"),
            (15, "listeners[0].max_body_size: `max_body_size` is for protocol: http listeners"),
            (13, "listeners[0].timeouts.read: not supported by nvelox: timeouts.read on a tcp or udp listener"),
            (18, "backends[0].retry: not supported by nvelox: retry on a backend that tcp listener \"web\" uses"),
        ],
    );
    assert!(err.contains("is invalid (11 errors)"), "{err}");
}
