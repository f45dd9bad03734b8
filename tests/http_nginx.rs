//! `protocol: http` in front of a real nginx origin (started from a
//! generated config in a temp dir, see tests/common/real.rs), with curl,
//! Python's `http.client` and raw pipelining clients. Each test prints
//! SKIP and returns when nginx (or curl, python3) is missing.

mod common;
#[path = "common/origin.rs"]
mod origin;
#[path = "common/real.rs"]
mod real;

use common::*;
use origin::*;
use real::*;

/// An nginx origin serving `files`, or None (after a SKIP line).
fn nginx(test: &str, files: &[(&str, &[u8])]) -> Option<Nginx> {
    for tool in ["curl", "python3"] {
        if !have(tool) {
            skip(test, &format!("{tool} not installed"));
            return None;
        }
    }
    let n = Nginx::start(files);
    if n.is_none() {
        skip(test, "nginx not installed");
    }
    n
}

#[test]
fn ten_megabytes_from_nginx_are_byte_exact_on_one_keep_alive_connection() {
    let big = payload(10 << 20, 21);
    let Some(ng) = nginx("ten_megabytes_from_nginx", &[("big.bin", &big)]) else {
        return;
    };
    let (_n, port) = start_http_at(&[ng.addr], "", "");
    let dir = TempDir::new("http-nginx-big");
    let (f1, f2) = (dir.path("1"), dir.path("2"));
    let u = format!("http://127.0.0.1:{port}/big.bin");
    let out = curl(&[
        "-w",
        "%{num_connects} %{http_code}\\n",
        "-o",
        &f1.display().to_string(),
        "-o",
        &f2.display().to_string(),
        &u,
        &u,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 200\n0 200\n");
    assert!(std::fs::read(&f1).unwrap() == big, "first copy differs");
    assert!(std::fs::read(&f2).unwrap() == big, "second copy differs");
}

#[test]
fn nginx_sees_the_forwarding_headers_and_the_client_the_server_header() {
    let Some(ng) = nginx("nginx_sees_the_forwarding_headers", &[]) else {
        return;
    };
    let (_n, port) = start_http_at(&[ng.addr], "", "");
    let mut c = PyClient::connect(port);
    for _ in 0..2 {
        let r = c.ask("get /headers");
        assert_eq!(r[0], "200");
        assert_eq!(r[1], ng.addr.to_string());
        assert_eq!(
            r[4],
            format!("xff=127.0.0.1|proto=http|port={port}"),
            "{r:?}"
        );
    }
}

#[test]
fn pipelined_requests_to_nginx_are_answered_in_order() {
    let files: [(&str, &[u8]); 3] = [("1.txt", b"one"), ("2.txt", b"two"), ("3.txt", b"three")];
    let Some(ng) = nginx("pipelined_requests_to_nginx", &files) else {
        return;
    };
    let (_n, port) = start_http_at(&[ng.addr], "", "");
    let mut c = Client::connect(port);
    c.send(b"GET /1.txt HTTP/1.1\r\nHost: t\r\n\r\nHEAD /2.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /3.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /2.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().body, b"one");
    let head = read_response(&mut c.r, true).unwrap();
    assert_eq!(
        (head.status, head.header("Content-Length")),
        (200, Some("3"))
    );
    assert_eq!(c.response().body, b"three");
    assert_eq!(c.response().body, b"two");
}

#[test]
fn nginx_upstream_connections_are_reused_across_clients() {
    let Some(ng) = nginx("nginx_upstream_connections_are_reused", &[]) else {
        return;
    };
    // One event loop: one pool.
    let port = free_port();
    let yaml = format!(
        "server:\n  workers: 1\n{}",
        http_config_at(port, &[ng.addr], "", "    keepalive: 4\n")
    );
    let _n = Nvelox::start(&yaml);
    // Requests one after the other, each from a new client connection:
    // nginx sees them on one connection, its request count rising.
    let seen: Vec<(String, u32)> = (0..4)
        .map(|_| {
            let body =
                String::from_utf8(exchange(port, b"GET /conn HTTP/1.1\r\nHost: t\r\n\r\n").body)
                    .unwrap();
            let (conn, n) = body.split_once(' ').unwrap();
            (conn.to_string(), n.parse().unwrap())
        })
        .collect();
    assert!(seen.iter().all(|s| s.0 == seen[0].0), "{seen:?}");
    let counts: Vec<u32> = seen.iter().map(|s| s.1).collect();
    assert_eq!(counts, [1, 2, 3, 4]);
}

#[test]
fn smuggling_attempts_never_reach_nginx() {
    let Some(ng) = nginx("smuggling_attempts_never_reach_nginx", &[("ok.txt", b"ok")]) else {
        return;
    };
    let (_n, port) = start_http_at(&[ng.addr], "", "");
    let cases: &[&[u8]] = &[
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nX-A\x01: a\r\n\r\n",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello",
        b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n",
    ];
    for case in cases {
        let mut c = Client::connect(port);
        c.send(case);
        let r = c.response();
        assert_eq!(
            (r.status, r.header("Connection")),
            (400, Some("close")),
            "{}",
            String::from_utf8_lossy(case)
        );
        c.expect_closed();
    }
    // A good request then goes through, and is all nginx ever saw.
    assert_eq!(
        exchange(port, b"GET /ok.txt HTTP/1.1\r\nHost: t\r\n\r\n").body,
        b"ok"
    );
    assert!(eventually(WAIT, || ng.requests().len() == 1));
    assert_eq!(ng.requests(), ["GET /ok.txt HTTP/1.1"]);
}
