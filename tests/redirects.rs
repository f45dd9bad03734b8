//! Route redirects (`routes[].redirect`, Go Nvelox's) through the real
//! binary, with Go's example file `tests/go_compat/11-redirects.yaml`: each
//! redirect is answered by nvelox with its `Location` built from the
//! request, on a kept-alive connection, and never reaches the server; other
//! requests are proxied as usual. (A request byte that could break the
//! header is refused by the parser or percent-encoded: unit tests in
//! `src/http/redirect.rs`.) A listener of redirects only needs no backend
//! (Go's `31-multisite-per-port`): admin API, metrics, health checks of
//! the other backends and SIGHUP work with it.

#[path = "common/admin.rs"]
mod admin;
mod common;
#[path = "common/origin.rs"]
mod origin;

use std::net::SocketAddr;
use std::path::Path;

use common::*;
use origin::{Client, Origin};

fn start() -> (Nvelox, u16, Origin) {
    let origin = Origin::named("app");
    let port = free_port();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go_compat/11-redirects.yaml");
    let yaml = std::fs::read_to_string(file)
        .unwrap()
        .replace("127.0.0.1:19000", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:18081", &origin.addr.to_string());
    (Nvelox::start(&yaml), port, origin)
}

#[test]
fn go_redirect_routes_answer_with_their_location_and_keep_the_connection() {
    let (_n, port, origin) = start();
    let mut c = Client::connect(port);
    let cases: [(&str, &str, u16, &str); 3] = [
        ("/legacy/page", "t", 301, "/current"),
        (
            "/tls/a/b?x=1",
            "Site.test:8080",
            301,
            "https://Site.test/tls/a/b",
        ),
        (
            "/gone/x?q=1&r",
            "t",
            302,
            "https://elsewhere.test.localhost/gone/x?q=1&r",
        ),
    ];
    for (path, host, code, location) in cases {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        let got = c.response();
        assert_eq!(got.status, code, "{path}: {got:?}");
        assert_eq!(got.header("location"), Some(location), "{path}: {got:?}");
        assert_eq!(got.header("connection"), None, "{path}: kept alive");
        assert_eq!(got.body, b"Redirecting.\n");
    }
    // A HEAD gets the head only; the connection is still in sync after it.
    c.send(b"HEAD /legacy HTTP/1.1\r\nHost: t\r\n\r\n");
    let got = origin::read_response(&mut c.r, true).expect("a response");
    assert_eq!(
        (got.status, got.header("location")),
        (301, Some("/current"))
    );
    assert!(
        origin.requests().is_empty(),
        "no redirect reaches the server"
    );
    // Anything else is proxied on the same connection.
    let got = c.get("/other");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"app"[..]));
    assert_eq!(origin.requests().len(), 1);
}

#[test]
fn a_redirect_with_a_bad_code_is_refused_at_check_with_its_line() {
    let tmp = TempDir::new("redirect-check");
    let path = tmp.path("r.yaml");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go_compat/11-redirects.yaml");
    let yaml = std::fs::read_to_string(file)
        .unwrap()
        .replace("code: 302", "code: 304");
    std::fs::write(&path, yaml).unwrap();
    let shown = path.to_str().unwrap();
    let (code, _, err) = run_bin(&["-c", shown, "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{shown}:26: listeners[0].routes[2].redirect.code: redirect code 304 is not one of 301, 302, 303, 307, 308"
        )),
        "{err}"
    );
}

/// A listener of redirects only (no backend anywhere on it) next to a
/// proxied one whose backend is health checked; admin and metrics on.
fn redirect_only_yaml(ports: [u16; 4], origin: SocketAddr, url: &str) -> String {
    let [r, w, a, m] = ports;
    format!(
        r#"admin: {{ enabled: true, bind: "127.0.0.1:{a}" }}
metrics: {{ enabled: true, bind: "127.0.0.1:{m}", path: /metrics }}
listeners:
  - name: redirect-all
    bind: "127.0.0.1:{r}"
    protocol: http
    routes:
      - match: {{ path_prefix: / }}
        redirect: {{ url: "{url}", code: 301 }}
  - name: web
    bind: "127.0.0.1:{w}"
    protocol: http
    backend: app
backends:
  - name: app
    health_check: {{ active: {{ type: http, path: /health, interval: 100ms, timeout: 1s }} }}
    servers: ["{origin}"]
"#
    )
}

#[test]
fn a_listener_of_redirects_only_runs_without_a_backend_through_admin_metrics_and_reload() {
    let origin = Origin::named("app");
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let [r, w, a, m] = ports;
    let n = Nvelox::start(&redirect_only_yaml(
        ports,
        origin.addr,
        "https://${host}${path}",
    ));
    let mut c = Client::connect(r);
    c.send(b"GET /x?y HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let got = c.response();
    assert_eq!(
        (got.status, got.header("location")),
        (301, Some("https://a.test/x")),
        "{got:?}"
    );
    let got = Client::connect(r).get("/");
    assert_eq!(got.status, 301, "{got:?}");
    assert_eq!(Client::connect(w).get("/p").status, 200);
    let seen = |p: &str| origin.requests().iter().filter(|s| s.target == p).count();
    assert_eq!((seen("/x?y"), seen("/p")), (0, 1));
    // The other backend is still probed.
    assert!(eventually(WAIT, || seen("/health") > 0));
    let admin: SocketAddr = format!("127.0.0.1:{a}").parse().unwrap();
    let (status, stats) = admin::get(admin, "/api/v1/stats", None);
    assert_eq!(status, 200, "{stats}");
    assert!(
        stats.contains("\"name\":\"redirect-all\",\"protocol\":\"http\"")
            && stats.contains("\"backend\":null"),
        "{stats}"
    );
    assert!(stats.contains("\"backend\":\"app\""), "{stats}");
    let (status, page) = admin::get(admin, "/", None);
    assert_eq!(status, 200, "{page}");
    let metrics: SocketAddr = format!("127.0.0.1:{m}").parse().unwrap();
    let (status, text) = admin::get(metrics, "/metrics", None);
    assert_eq!(status, 200, "{text}");
    let samples = admin::samples(&text);
    let key = "nvelox_listener_http_responses_total{listener=\"redirect-all\",code=\"3xx\"}";
    assert_eq!(admin::metric(&samples, key), 2, "{text}");
    // SIGHUP: the new template answers.
    let again = redirect_only_yaml(ports, origin.addr, "https://${host}/moved${path}");
    std::fs::write(n.dir.path("nvelox.yaml"), again).unwrap();
    n.reload("configuration reloaded");
    let got = Client::connect(r).get("/z");
    assert_eq!(got.header("location"), Some("https://t/moved/z"), "{got:?}");
    assert_eq!(Client::connect(w).get("/q").status, 200);
}
