//! Admin API against the real binary on 127.0.0.1: auth and routing
//! answers, hostile requests, scrapes under proxied traffic.

#[path = "common/admin.rs"]
mod admin;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use admin::*;
use common::*;

#[test]
fn admin_answers_401_404_405_400_and_basic_auth_opens_the_page() {
    let b = Backend::start(Mode::Echo);
    let (port, aport, hport) = (free_port(), free_port(), free_port());
    let n = Nvelox::start(&format!(
        r#"
metrics: {{ enabled: true, bind: "127.0.0.1:{aport}" }}
admin: {{ enabled: true, bind: "127.0.0.1:{aport}", api_key: "s3cret" }}
listeners:
  - {{ name: l, bind: "127.0.0.1:{port}", backend: x }}
  - {{ name: web, bind: "127.0.0.1:{hport}", protocol: http, backend: x }}
backends:
  - {{ name: x, servers: ["127.0.0.1:{}"] }}
"#,
        b.port()
    ));
    let admin: SocketAddr = format!("127.0.0.1:{aport}").parse().unwrap();
    let (st, head, body) = http(admin, "GET", "/api/v1/stats", &[]);
    assert_eq!(st, 401, "{body}");
    assert!(head.contains("WWW-Authenticate: Basic"), "{head}");
    assert!(body.starts_with("{\"error\":"), "{body}");
    assert_eq!(get(admin, "/api/v1/stats", Some("wrong")).0, 401);
    assert_eq!(get(admin, "/api/v1/stats", Some("s3cre")).0, 401);
    let (st, stats) = get(admin, "/api/v1/stats", Some("s3cret"));
    assert_eq!(st, 200);
    // Each listener's own protocol (http ones were reported as "tcp").
    assert!(
        stats.contains("\"name\":\"l\",\"protocol\":\"tcp\""),
        "{stats}"
    );
    assert!(
        stats.contains("\"name\":\"web\",\"protocol\":\"http\""),
        "{stats}"
    );
    // "any:s3cret" in base64: what a browser sends after the prompt.
    let (st, _, page) = http(
        admin,
        "GET",
        "/",
        &[("Authorization", "Basic YW55OnMzY3JldA==")],
    );
    assert_eq!(st, 200);
    assert!(page.contains("<title>nvelox status</title>"));
    assert_eq!(get(admin, "/nope", Some("s3cret")).0, 404);
    assert_eq!(get(admin, "/api/v2/stats", Some("s3cret")).0, 404);
    assert_eq!(
        post(
            admin,
            "/api/v1/backends/nope/drain?server=1.2.3.4:5",
            "s3cret"
        )
        .0,
        404
    );
    assert_eq!(
        post(admin, "/api/v1/backends/x/drain?server=1.2.3.4:5", "s3cret").0,
        404
    );
    assert_eq!(
        post(
            admin,
            "/api/v1/backends/x/explode?server=1.2.3.4:5",
            "s3cret"
        )
        .0,
        404
    );
    assert_eq!(post(admin, "/api/v1/backends/x/drain", "s3cret").0, 400);
    let srv = format!("127.0.0.1:{}", b.port());
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/x/weight?server={srv}&value=0"),
            "s3cret"
        )
        .0,
        400
    );
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/x/weight?server={srv}&value=x"),
            "s3cret"
        )
        .0,
        400
    );
    let (st, head, _) = http(
        admin,
        "GET",
        &format!("/api/v1/backends/x/drain?server={srv}"),
        &[("X-API-Key", "s3cret")],
    );
    assert_eq!(st, 405);
    assert!(head.contains("Allow: POST"), "{head}");
    assert_eq!(post(admin, "/api/v1/stats", "s3cret").0, 405);
    // The metrics path on the shared socket needs no key.
    assert_eq!(get(admin, "/metrics", None).0, 200);
    assert_eq!(
        n.count_lines("admin: backend x server"),
        0,
        "refused requests change nothing"
    );
    // The key arrives percent-encoded-safe and the change is logged.
    let enc = srv.replace(':', "%3A");
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/x/drain?server={enc}"),
            "s3cret"
        )
        .0,
        200
    );
    n.wait_for_line(&format!("admin: backend x server {srv}: drain"), WAIT);
}

/// Sends `bytes`, then reads until EOF (bounded): what came back.
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn garbage_oversized_and_slow_requests_are_closed_without_harm() {
    let b = Backend::start(Mode::Echo);
    let (port, mport) = (free_port(), free_port());
    let _n = Nvelox::start(&format!(
        r#"
metrics: {{ enabled: true, bind: "127.0.0.1:{mport}" }}
listeners:
  - {{ name: l, bind: "127.0.0.1:{port}", backend: x }}
backends:
  - {{ name: x, servers: ["127.0.0.1:{}"] }}
"#,
        b.port()
    ));
    let m: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    assert!(send_raw(
        m,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"
    )
    .starts_with("HTTP/1.1 400 "));
    assert!(
        send_raw(m, b"GET /metrics HTTP/1.1\r\nHost: x\r\nHost\r\n\r\n")
            .starts_with("HTTP/1.1 400 ")
    );
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Fill: ".to_vec();
    big.extend(std::iter::repeat(b'a').take(64 * 1024));
    let answer = send_raw(m, &big);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
        "{answer:?}"
    );
    // Admin paths are not served on a metrics-only socket.
    assert_eq!(get(m, "/", None).0, 404);
    assert_eq!(get(m, "/api/v1/stats", None).0, 404);
    // A client that never finishes its request is closed after 5 s.
    let mut slow = TcpStream::connect(m).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let r = slow.read_to_end(&mut out);
    assert!(
        r.is_ok() || started.elapsed() < Duration::from_secs(14),
        "still open after 15 s"
    );
    assert!(out.is_empty());
    // Through all of it the server and the proxy work.
    assert_eq!(get(m, "/metrics", None).0, 200);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"ping").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"ping");
}

#[test]
fn a_thousand_parallel_scrapes_do_not_disturb_proxied_traffic() {
    let b = Backend::start(Mode::Echo);
    let (port, mport) = (free_port(), free_port());
    let _n = Nvelox::start(&format!(
        r#"
server: {{ workers: 2 }}
metrics: {{ enabled: true, bind: "127.0.0.1:{mport}" }}
listeners:
  - {{ name: l, bind: "127.0.0.1:{port}", backend: x }}
backends:
  - {{ name: x, servers: ["127.0.0.1:{}"] }}
"#,
        b.port()
    ));
    let m: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    // Open 1,000 scrape connections at once, then send every request.
    let mut conns: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(m).unwrap()).collect();
    let traffic = thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        for i in 0..300u64 {
            let d = payload(512, i + 1);
            s.write_all(&d).unwrap();
            let mut back = vec![0u8; d.len()];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, d, "round {i}");
        }
    });
    for c in &mut conns {
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
    }
    let mut ok = 0;
    for mut c in conns {
        c.set_read_timeout(Some(WAIT)).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        if out.starts_with(b"HTTP/1.1 200 ") && out.ends_with(b"\n") {
            ok += 1;
        }
    }
    assert_eq!(ok, 1000);
    traffic.join().unwrap();
    let text = get(m, "/metrics", None).1;
    assert_eq!(
        samples(&text).get("nvelox_listener_bytes_in_total{listener=\"l\"}"),
        Some(&(300 * 512))
    );
    let _ = b.accepted.load(Ordering::Relaxed);
}
