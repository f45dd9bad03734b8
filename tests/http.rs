//! `protocol: http` through the real binary: loopback origins (a small
//! Rust HTTP/1.1 server we control) and raw-socket clients.

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use origin::*;

#[test]
fn each_request_on_one_keep_alive_connection_is_balanced() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let (_n, port) = start_http(&[&a, &b], "", "");
    let mut c = Client::connect(port);
    let mut servers = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let r = c.get("/x");
        assert_eq!(r.status, 200);
        servers.push(r.header("X-Backend-Server").unwrap().to_string());
        bodies.push(String::from_utf8(r.body).unwrap());
    }
    assert_eq!(bodies, ["a", "b", "a", "b"]);
    assert_eq!(servers[0], a.addr.to_string());
    assert_eq!(servers[1], b.addr.to_string());
}

#[test]
fn forwarded_headers_and_header_edits_reach_both_sides() {
    let a = Origin::named("a");
    let listener = "    headers:\n      request_add: { X-Req: \"1\" }\n      response_add: { X-Forwarded-By: nvelox }\n      response_remove: [X-Secret]\n";
    let a2 = Origin::start(Arc::new(|_| {
        Answer::Raw(b"HTTP/1.1 200 OK\r\nX-Secret: s\r\nContent-Length: 2\r\n\r\nok".to_vec())
    }));
    drop(a);
    let (_n, port) = start_http(&[&a2], listener, "");
    let mut c = Client::connect(port);
    c.send(b"GET /p HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Forwarded-By"), Some("nvelox"));
    assert_eq!(r.header("X-Secret"), None);
    let seen = &a2.requests()[0];
    assert_eq!(seen.header("X-Forwarded-For"), Some("10.0.0.9, 127.0.0.1"));
    assert_eq!(seen.header("X-Forwarded-Proto"), Some("http"));
    assert_eq!(
        seen.header("X-Forwarded-Port"),
        Some(port.to_string().as_str())
    );
    assert_eq!(seen.header("X-Req"), Some("1"));
}

#[test]
fn routes_pick_the_backend_by_host_and_path() {
    let (a, api) = (Origin::named("default"), Origin::named("api"));
    let port = free_port();
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\n    routes:\n      - match: {{ host: \"api.example.com\", path_prefix: \"/v1/\" }}\n        backend: api\nbackends:\n  - name: app\n    servers: [\"{}\"]\n  - name: api\n    servers: [\"{}\"]\n",
        a.addr, api.addr
    );
    let _n = Nvelox::start(&yaml);
    let r = exchange(
        port,
        b"GET /v1/x HTTP/1.1\r\nHost: API.example.com:8000\r\n\r\n",
    );
    assert_eq!(r.body, b"api");
    let r = exchange(port, b"GET /v2/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    assert_eq!(r.body, b"default");
}

#[test]
fn chunked_bodies_stream_byte_exact_both_ways() {
    // The origin echoes the request body back, chunked.
    let echo = Origin::start(Arc::new(|req: &Seen| {
        let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in req.body.chunks(70_001) {
            v.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            v.extend_from_slice(piece);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"0\r\n\r\n");
        Answer::Raw(v)
    }));
    let (_n, port) = start_http(&[&echo], "", "");
    let body = payload(10 << 20, 7);
    let mut c = Client::connect(port);
    let writer = {
        let mut w = c.w.try_clone().unwrap();
        let body = body.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            w.write_all(b"POST /e HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            for piece in body.chunks(65_537) {
                w.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .unwrap();
                w.write_all(piece).unwrap();
                w.write_all(b"\r\n").unwrap();
            }
            w.write_all(b"0\r\n\r\n").unwrap();
        })
    };
    let r = c.response();
    writer.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "echoed body differs");
    // And a Content-Length body on the same connection.
    let small = payload(100_000, 3);
    c.send(
        format!(
            "POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            small.len()
        )
        .as_bytes(),
    );
    c.send(&small);
    let r = c.response();
    assert!(r.body == small);
}

#[test]
fn head_204_304_have_no_body_and_keep_the_connection() {
    let o = Origin::start(Arc::new(|req: &Seen| match req.target.as_str() {
        "/204" => Answer::Raw(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        "/304" => Answer::Raw(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n".to_vec()),
        _ => Answer::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec()),
    }));
    let (_n, port) = start_http(&[&o], "", "");
    let mut c = Client::connect(port);
    c.send(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = read_response(&mut c.r, true).unwrap();
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("5")));
    assert_eq!(c.get("/204").status, 204);
    assert_eq!(c.get("/304").status, 304);
    assert_eq!(c.get("/204").status, 204);
}

#[test]
fn get_is_retried_after_a_reset_but_a_sent_post_is_not() {
    let reset = Origin::start(Arc::new(|_| Answer::Reset));
    let good = Origin::named("good");
    let (_n, port) = start_http(
        &[&reset, &good],
        "",
        "    retry: { attempts: 3, on: \"connect_failure,reset,502\" }\n",
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"good");
        statuses.push(r.status);
    }
    let mut posts = Vec::new();
    for _ in 0..2 {
        posts.push(
            exchange(
                port,
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
            )
            .status,
        );
    }
    assert!(posts.contains(&502), "{posts:?}");
    assert!(
        good.requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
            <= 1
    );
}

#[test]
fn slow_server_is_504_and_slow_head_is_408() {
    let slow = Origin::start(Arc::new(|_| {
        Answer::Slow(Duration::from_secs(3), ok(b"late"))
    }));
    let (_n, port) = start_http(
        &[&slow],
        "    timeouts: { read: 1s }\n",
        "    timeouts: { read: 1s }\n",
    );
    let r = exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 504);
    let mut c = Client::connect(port);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n");
    assert_eq!(c.response().status, 408);
}

#[test]
fn oversize_head_is_431_and_oversize_body_413() {
    let o = Origin::named("o");
    let (_n, port) = start_http(
        &[&o],
        "    max_header_size: 2048\n    max_body_size: 1K\n",
        "",
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4000)
    );
    assert_eq!(exchange(port, big.as_bytes()).status, 431);
    let r = exchange(
        port,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    assert!(o.requests().is_empty());
}

#[test]
fn smuggling_attempts_get_400_and_never_reach_the_server() {
    let o = Origin::named("o");
    let (_n, port) = start_http(&[&o], "", "");
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n",
    ];
    for case in cases {
        let r = exchange(port, case);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(case));
    }
    assert!(o.requests().is_empty());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let o = Origin::start(Arc::new(|req: &Seen| {
        Answer::Raw(ok(req.target.as_bytes()))
    }));
    let (_n, port) = start_http(&[&o], "", "");
    let mut c = Client::connect(port);
    c.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\nGET /3 HTTP/1.1\r\nHost: t\r\n\r\n");
    for want in ["/1", "/2", "/3"] {
        assert_eq!(c.response().body, want.as_bytes());
    }
}

#[test]
fn http10_and_connection_close_close_after_the_response() {
    let o = Origin::named("o");
    let (_n, port) = start_http(&[&o], "", "");
    for raw in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"[..],
    ] {
        let mut c = Client::connect(port);
        c.send(raw);
        assert_eq!(c.response().body, b"o");
        c.expect_closed();
    }
}

#[test]
fn upstream_connections_are_reused_after_complete_responses() {
    let o = Origin::named("o");
    let (_n, port) = start_http(&[&o], "", "    keepalive: 4\n");
    for _ in 0..3 {
        let mut c = Client::connect(port);
        for _ in 0..3 {
            assert_eq!(c.get("/").body, b"o");
        }
    }
    assert_eq!(o.requests().len(), 9);
    // One loop may hold one pooled connection each: 2 event loops at most
    // (the config does not set `workers`; the machine may have more).
    let used = o.conns.load(std::sync::atomic::Ordering::SeqCst);
    assert!(used < 9, "{used} upstream connections for 9 requests");
}

#[test]
fn websocket_upgrade_becomes_a_byte_tunnel() {
    use std::io::BufRead;
    let addr = websocket_echo_origin();
    let port = free_port();
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\nbackends:\n  - name: app\n    servers: [\"{addr}\"]\n"
    );
    let _n = Nvelox::start(&yaml);
    let mut c = Client::connect(port);
    c.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    let mut status = String::new();
    c.r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    loop {
        let mut h = String::new();
        c.r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
    }
    for msg in ["hello\n", "through the tunnel\n"] {
        c.send(msg.as_bytes());
        let mut got = String::new();
        c.r.read_line(&mut got).unwrap();
        assert_eq!(got, msg);
    }
}

#[test]
fn sigterm_closes_idle_keep_alive_clients_and_finishes_requests_in_flight() {
    let slow = Origin::start(Arc::new(|req: &Seen| {
        if req.target == "/slow" {
            Answer::Slow(Duration::from_millis(800), ok(b"finished"))
        } else {
            Answer::Raw(ok(b"quick"))
        }
    }));
    let port = free_port();
    let yaml = format!(
        "server:\n  shutdown_timeout: 20s\nlisteners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\nbackends:\n  - name: app\n    servers: [\"{}\"]\n",
        slow.addr
    );
    let mut n = Nvelox::start(&yaml);
    let mut idle = Client::connect(port);
    assert_eq!(idle.get("/").body, b"quick");
    let mut busy = Client::connect(port);
    busy.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(eventually(WAIT, || slow
        .requests()
        .iter()
        .any(|r| r.target == "/slow")));
    n.signal(libc::SIGTERM);
    // The idle client is closed at once, the busy one gets its answer.
    idle.expect_closed();
    let r = busy.response();
    assert_eq!(r.body, b"finished");
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(n.wait_exit(WAIT), Some(0));
}

/// Whether a TCP connection to 127.0.0.1:`port` is still established
/// (from /proc/net/tcp: remote address `0100007F:PORT`, state `01`).
fn established_to(port: u16) -> bool {
    let remote = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .any(|f| f.len() > 3 && f[2] == remote && f[3] == "01")
}

#[test]
fn a_pooled_connection_the_server_closed_is_not_used() {
    // The origin closes a keep-alive connection idle for 100 ms.
    let o = Origin::start_idle(
        Arc::new(|req: &Seen| Answer::Raw(ok(req.target.as_bytes()))),
        Duration::from_millis(100),
    );
    let (_n, port) = start_http(&[&o], "", "");
    let mut c = Client::connect(port);
    let post = |c: &mut Client, path: &str| {
        c.send(
            format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi").as_bytes(),
        );
        c.response()
    };
    assert_eq!(post(&mut c, "/1").body, b"/1");
    // Until the origin has closed the pooled connection (its FIN reached
    // nvelox's socket), however long its idle timer takes to run.
    assert!(
        eventually(3 * WAIT, || !established_to(o.addr.port())),
        "the origin never closed the idle connection"
    );
    // A POST is never retried once sent: a stale connection would be a 502.
    let r = post(&mut c, "/2");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"/2"[..]));
}

#[test]
fn a_pooled_connection_closed_under_a_post_is_retried_on_a_fresh_one() {
    use std::io::{BufReader, Write};
    // The origin answers the first request of each connection and closes
    // the connection when a second one arrives, without answering: the
    // race of a server closing an idle connection as a request comes.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let conns2 = Arc::clone(&conns);
    std::thread::spawn(move || {
        for s in l.incoming().take(8) {
            let Ok(s) = s else { return };
            conns2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                if let Some(req) = read_request(&mut r) {
                    let _ = w.write_all(&ok(req.target.as_bytes()));
                }
                let _ = read_request(&mut r);
            });
        }
    });
    let (_n, port) = start_http_at(&[addr], "", "");
    let mut c = Client::connect(port);
    for path in ["/1", "/2", "/3"] {
        c.send(
            format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi").as_bytes(),
        );
        let r = c.response();
        assert_eq!((r.status, r.body.as_slice()), (200, path.as_bytes()));
    }
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[test]
fn a_chunked_body_past_max_body_size_is_413() {
    let o = Origin::named("o");
    let (_n, port) = start_http(&[&o], "    max_body_size: 1K\n", "");
    let mut raw = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'x'; 0x200]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(exchange(port, &raw).status, 413);
}

#[test]
fn expect_100_continue_is_passed_through() {
    use std::io::{BufRead, BufReader, Read as _, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        let mut body = [0u8; 5];
        r.read_exact(&mut body).unwrap();
        w.write_all(&ok(&body)).unwrap();
    });
    let port = free_port();
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\nbackends:\n  - name: app\n    servers: [\"{addr}\"]\n"
    );
    let _n = Nvelox::start(&yaml);
    let mut c = Client::connect(port);
    c.send(b"PUT /u HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let interim = c.response();
    assert_eq!(interim.status, 100);
    c.send(b"hello");
    let r = c.response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
}

#[test]
fn sighup_keeps_keep_alive_clients_and_new_connections_use_the_new_backend() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let port = free_port();
    let yaml = |o: &Origin| {
        format!(
            "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\nbackends:\n  - name: app\n    servers: [\"{}\"]\n",
            o.addr
        )
    };
    let n = Nvelox::start(&yaml(&a));
    let mut old = Client::connect(port);
    assert_eq!(old.get("/").body, b"a");
    std::fs::write(n.dir.path("nvelox.yaml"), yaml(&b)).unwrap();
    n.signal(libc::SIGHUP);
    assert!(eventually(WAIT, || n
        .stderr_text()
        .contains("configuration reloaded")));
    // The open connection goes on under the configuration it started with.
    assert_eq!(old.get("/").body, b"a");
    assert!(eventually(WAIT, || Client::connect(port).get("/").body == b"b"));
}

#[test]
fn responses_are_counted_by_status_class() {
    let o = Origin::named("o");
    let (port, mport) = (free_port(), free_port());
    let yaml = format!(
        "metrics:\n  enabled: true\n  bind: \"127.0.0.1:{mport}\"\nlisteners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\nbackends:\n  - name: app\n    servers: [\"{}\"]\n",
        o.addr
    );
    let _n = Nvelox::start(&yaml);
    let mut c = Client::connect(port);
    assert_eq!(c.get("/").status, 200);
    assert_eq!(c.get("/").status, 200);
    assert_eq!(
        exchange(port, b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n").status,
        400
    );
    let scrape = || exchange(mport, b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n").body;
    assert!(eventually(WAIT, || {
        let text = String::from_utf8_lossy(&scrape()).to_string();
        text.contains("nvelox_listener_http_responses_total{listener=\"web\",code=\"2xx\"} 2")
            && text
                .contains("nvelox_listener_http_responses_total{listener=\"web\",code=\"4xx\"} 1")
    }));
}

#[test]
fn maglev_hash_key_ip_port_keeps_a_connection_on_one_server_and_spreads_connections() {
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    // For each of 16 client connections, the servers of its 3 requests.
    let servers_per_connection = |hash_key: &str| -> Vec<Vec<u8>> {
        let port = free_port();
        let _n = Nvelox::start(&format!(
            "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\nbackends:\n  - name: app\n    balance: maglev\n    hash_key: {hash_key}\n    servers: [\"{}\", \"{}\"]\n",
            a.addr, b.addr
        ));
        (0..16)
            .map(|_| {
                let mut c = Client::connect(port);
                let first = c.get("/").body;
                for _ in 0..2 {
                    assert_eq!(c.get("/").body, first, "{hash_key}: one client, one server");
                }
                first
            })
            .collect()
    };
    let by_ip = servers_per_connection("ip");
    assert!(
        by_ip.iter().all(|s| *s == by_ip[0]),
        "ip: one client address"
    );
    let by_port = servers_per_connection("ip_port");
    assert!(
        by_port.contains(&b"a".to_vec()) && by_port.contains(&b"b".to_vec()),
        "ip_port: source ports spread"
    );
}
