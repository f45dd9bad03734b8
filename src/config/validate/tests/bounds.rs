//! Bounds on values that reach run-time arithmetic or a request line:
//! every duration, and the http probe path.

use super::*;

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

#[test]
fn scheduler_slice_takes_off_or_100us_to_100ms() {
    let doc = |v: &str| {
        format!(
            "server:\n  scheduler_slice: {v}\nlisteners:\n  - {{ name: l, bind: \":80\", backend: b }}\nbackends:\n  - name: b\n    servers: [\"127.0.0.1:1\"]\n"
        )
    };
    let slice = |v: &str| load(&doc(v)).unwrap().server.scheduler_slice;
    assert_eq!(load(MINIMAL).unwrap().server.scheduler_slice, None);
    assert_eq!(slice("off"), None);
    assert_eq!(slice("100us"), Some(Duration::from_micros(100)));
    assert_eq!(slice("750us"), Some(Duration::from_micros(750)));
    assert_eq!(slice("3ms"), Some(Duration::from_millis(3)));
    assert_eq!(slice("100ms"), Some(Duration::from_millis(100)));
    for (bad, needle) in [
        ("99us", "outside 100us..100ms"),
        ("101ms", "outside 100us..100ms"),
        ("0", "outside 100us..100ms"),
        ("1s", "outside 100us..100ms"),
        ("us", "not a duration"),
        ("1.5ms", "not a duration"),
        ("fast", "not a duration"),
        ("18446744073709551616us", "too large"),
    ] {
        let errs = errors(&doc(bad));
        assert_eq!(errs.len(), 1, "{bad}: {errs:#?}");
        has(&errs, "server.scheduler_slice", 2, needle);
    }
}
