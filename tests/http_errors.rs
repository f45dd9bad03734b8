//! Replies nvelox makes itself, through the binary: those that keep the
//! client connection (the request was read whole, so the stream is in
//! sync), those that close it (a framing error, a body not read), and
//! exactly 502 versus 503.

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use origin::*;

/// An origin that fails its health checks (`/health` is a 500) and
/// answers anything else with 200.
fn sick_origin() -> Origin {
    Origin::start(Arc::new(|req: &Seen| {
        if req.target == "/health" {
            Answer::RawClose(b"HTTP/1.1 500 Sick\r\nContent-Length: 0\r\n\r\n".to_vec())
        } else {
            Answer::Raw(ok(b"sick but answering"))
        }
    }))
}

#[test]
fn no_route_503_504_and_502_keep_the_connection_of_a_whole_request() {
    let app = Origin::start(Arc::new(|req: &Seen| match req.target.as_str() {
        "/app/slow" => Answer::Slow(Duration::from_secs(3), ok(b"late")),
        "/app/reset" => Answer::Reset,
        t => Answer::Raw(ok(t.as_bytes())),
    }));
    let sick = sick_origin();
    let port = free_port();
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    routes:\n      - match: {{ path_prefix: /app/ }}\n        backend: app\n      - match: {{ path_prefix: /down/ }}\n        backend: down\nbackends:\n  - name: app\n    timeouts: {{ read: 1s }}\n    servers: [\"{}\"]\n  - name: down\n    health_check:\n      active:\n        type: http\n        path: /health\n        interval: 100ms\n        timeout: 1s\n        fall: 1\n    servers: [\"{}\"]\n",
        app.addr, sick.addr
    );
    let n = Nvelox::start(&yaml);
    n.wait_for_line(&format!("server {}: up -> down", sick.addr), WAIT);

    let mut c = Client::connect(port);
    let kept = |r: &Got, status: u16| {
        assert_eq!(r.status, status);
        assert_eq!(r.header("Connection"), None, "{status} must not close");
    };
    kept(&c.get("/nothing"), 404);
    // The answer to a HEAD has no body: the next response is read right.
    c.send(b"HEAD /nothing HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = read_response(&mut c.r, true).unwrap();
    kept(&head, 404);
    assert_eq!(c.get("/app/h").body, b"/app/h");
    // A body already whole is skipped; the pipelined request after it is
    // answered on the same connection.
    c.send(b"POST /nothing HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /app/a HTTP/1.1\r\nHost: t\r\n\r\n");
    kept(&c.response(), 404);
    assert_eq!(c.response().body, b"/app/a");
    c.send(b"POST /nothing HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
    kept(&c.response(), 404);
    kept(&c.get("/down/x"), 503);
    kept(&c.get("/app/slow"), 504);
    kept(&c.get("/app/reset"), 502);
    assert_eq!(c.get("/app/b").body, b"/app/b");
    // The server the checks hold down saw nothing but its probes.
    assert!(sick.requests().iter().all(|r| r.target == "/health"));
}

#[test]
fn framing_errors_and_unread_bodies_close_after_the_reply() {
    let o = Origin::named("o");
    let port = free_port();
    // `/app/` goes to the origin; anything else is 404 (no `backend`).
    let _n = Nvelox::start(&format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    routes:\n      - match: {{ path_prefix: /app/ }}\n        backend: app\n    timeouts: {{ read: 1s }}\n    max_header_size: 2048\n    max_body_size: 1K\nbackends:\n  - name: app\n    servers: [\"{}\"]\n",
        o.addr
    ));
    let closes = |raw: &[u8], status: u16| {
        let mut c = Client::connect(port);
        c.send(raw);
        let r = c.response();
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(raw));
        assert_eq!(r.header("Connection"), Some("close"));
        c.expect_closed();
    };
    closes(
        b"POST /app/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    closes(
        b"POST /app/ HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
        413,
    );
    closes(
        format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "a".repeat(4000)
        )
        .as_bytes(),
        431,
    );
    // 404 while the body has not all arrived: the stream is out of sync.
    closes(
        b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
        404,
    );
    // The client asked to close.
    closes(
        b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        404,
    );
    // 408: the head never completes.
    closes(b"GET / HTTP/1.1\r\nHost: t\r\n", 408);
    assert!(o.requests().is_empty());
}

#[test]
fn a_refused_connect_is_502_and_a_server_known_down_is_503() {
    // Nothing listens there.
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let port = free_port();
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\nbackends:\n  - name: app\n    retry: {{ attempts: 3, on: connect_failure }}\n    health_check:\n      passive:\n        max_fails: 1\n        fail_timeout: 20s\n    servers: [\"{dead}\"]\n"
    );
    let n = Nvelox::start(&yaml);
    // Not known down yet: a connect is tried, refused, and no server is left.
    let mut c = Client::connect(port);
    assert_eq!(c.get("/").status, 502);
    n.wait_for_line(&format!("server {dead}: up -> down"), WAIT);
    // Known down (passive health): 503 at once, on the same connection.
    assert_eq!(c.get("/").status, 503);
    assert_eq!(
        exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
        503
    );
}

#[test]
fn statuses_listed_in_retry_on_count_against_the_server() {
    let busy = Origin::start(Arc::new(|_| {
        Answer::Raw(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy".to_vec())
    }));
    let good = Origin::named("good");
    let passive =
        "    health_check:\n      passive:\n        max_fails: 2\n        fail_timeout: 20s\n";
    let get = |port: u16| exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    // Retried on good: the client never sees busy's 503s, which still take
    // busy out.
    let (n, port) = start_http(
        &[&busy, &good],
        "",
        &format!("    retry: {{ attempts: 2, on: \"503\" }}\n{passive}"),
    );
    for _ in 0..4 {
        assert_eq!(get(port).body, b"good");
    }
    n.wait_for_line(&format!("server {}: up -> down", busy.addr), WAIT);
    let seen = busy.requests().len();
    for _ in 0..4 {
        assert_eq!(get(port).body, b"good");
    }
    assert_eq!(busy.requests().len(), seen, "a server down gets nothing");
    drop(n);
    // Not retried (one attempt): forwarded as it is, and still counted.
    let (n, port) = start_http(
        &[&busy],
        "",
        &format!("    retry: {{ attempts: 1, on: \"503\" }}\n{passive}"),
    );
    assert_eq!(get(port).body, b"busy");
    assert_eq!(get(port).body, b"busy");
    n.wait_for_line(&format!("server {}: up -> down", busy.addr), WAIT);
    let r = get(port);
    assert_eq!(r.status, 503);
    assert_ne!(r.body, b"busy", "nvelox's own 503: no server is up");
}

#[test]
fn a_trial_after_a_quarantine_is_judged_by_the_response_not_the_connect() {
    let busy = Origin::start(Arc::new(|_| {
        Answer::Raw(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n".to_vec())
    }));
    let good = Origin::named("good");
    let (n, port) = start_http(
        &[&busy, &good],
        "",
        "    retry: { attempts: 2, on: \"503\" }\n    health_check:\n      passive:\n        max_fails: 1\n        fail_timeout: 300ms\n",
    );
    let label = format!("server {}: ", busy.addr);
    let lines = || -> Vec<String> {
        n.stderr_text()
            .lines()
            .filter(|l| l.contains(&label))
            .map(str::to_string)
            .collect()
    };
    // Traffic until busy was taken out, given its trial, and taken out again.
    assert!(eventually(WAIT, || {
        assert_eq!(
            exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").body,
            b"good"
        );
        lines().iter().filter(|l| l.contains("-> down")).count() >= 2
    }));
    // Its trial connections connected, but were answered 503: never up.
    let seen = lines();
    assert!(
        seen.iter().any(|l| l.contains("trial connection failed")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|l| l.contains("-> up")), "{seen:?}");
}
