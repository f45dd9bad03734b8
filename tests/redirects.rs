//! Route redirects (`routes[].redirect`, Go Nvelox's) through the real
//! binary, with Go's example file `tests/go_compat/11-redirects.yaml`: each
//! redirect is answered by nvelox with its `Location` built from the
//! request, on a kept-alive connection, and never reaches the server; other
//! requests are proxied as usual. (A request byte that could break the
//! header is refused by the parser or percent-encoded: unit tests in
//! `src/http/redirect.rs`.)

mod common;
#[path = "common/origin.rs"]
mod origin;

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
