//! Hostile clients and servers against `protocol: http` through the real
//! binary (the adversarial audit of docs/robustness.md, "HTTP mode through
//! the binary"): each case is one a client or server on the internet can
//! send, and the assertion is what must hold whatever it sends.

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::sync::Arc;

use common::*;
use origin::*;

/// A client can name any header in `Connection` to have it dropped as
/// hop-by-hop, but not `Host`: nvelox routed the request by it, so the
/// server must see the same one (an HTTP/1.0 server without `Host` would
/// serve its default site instead of the one routed to).
#[test]
fn connection_cannot_strip_the_host_the_request_was_routed_by() {
    let (web, api) = (Origin::named("web"), Origin::named("api"));
    let port = free_port();
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: web\n    routes:\n      - match: {{ host: \"api.example.com\" }}\n        backend: api\nbackends:\n  - name: web\n    servers: [\"{}\"]\n  - name: api\n    servers: [\"{}\"]\n",
        web.addr, api.addr
    );
    let _n = Nvelox::start(&yaml);
    for raw in [
        &b"GET /a HTTP/1.1\r\nHost: api.example.com\r\nConnection: Host\r\n\r\n"[..],
        &b"GET /b HTTP/1.0\r\nHost: api.example.com\r\nConnection: keep-alive, host, X-Other\r\nX-Other: 1\r\n\r\n"[..],
    ] {
        let r = exchange(port, raw);
        assert_eq!(r.body, b"api", "{}", String::from_utf8_lossy(raw));
    }
    let seen = api.requests();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.header("Host"), Some("api.example.com"), "{}", s.target);
    }
    // Other headers named in Connection are still hop-by-hop.
    assert_eq!(seen[1].header("X-Other"), None);
    assert!(web.requests().is_empty());
}

/// `Upgrade: h2c` (deprecated by RFC 9113 section 3.1) is not forwarded:
/// a server that agreed would open a tunnel past per-request routing,
/// header edits and rate limits. The request goes on as a normal one
/// (no `Upgrade`, no `HTTP2-Settings`); other upgrade tokens stay, and a
/// `101` to a request whose only token was `h2c` is a bad response (502).
#[test]
fn h2c_upgrade_is_not_forwarded() {
    let o = Origin::named("o");
    let (_n, port) = start_http(&[&o], "", "");
    let h2c = b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let mut c = Client::connect(port);
    c.send(h2c);
    assert_eq!(c.response().body, b"o");
    // A normal request: the connection stays for the next one.
    c.send(b"GET /b HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: H2C, websocket\r\nUpgrade: h2c\r\n\r\n");
    assert_eq!(c.response().body, b"o");
    let seen = o.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("Upgrade"), None);
    assert_eq!(seen[0].header("HTTP2-Settings"), None);
    assert!(!seen[0]
        .header("Connection")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .contains("upgrade"));
    assert_eq!(seen[1].header("Upgrade"), Some("websocket"));
    assert_eq!(seen[1].header("Connection"), Some("upgrade"));

    // A server that switches anyway gets no tunnel.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        use std::io::{BufReader, Write};
        let (s, _) = l.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let _ = read_request(&mut BufReader::new(s));
        let _ = w.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nPRI * HTTP/2.0\r\n");
        std::thread::sleep(std::time::Duration::from_millis(500));
    });
    let (_n2, port2) = start_http_at(&[addr], "", "");
    let r = exchange(port2, h2c);
    assert_eq!(r.status, 502);
    t.join().unwrap();
}

/// A raw server on loopback: for each of `answers`, accepts a connection,
/// reads one request head and writes the answer in one write, then keeps
/// the connection open briefly. Returns its address.
fn raw_server(answers: Vec<Vec<u8>>) -> std::net::SocketAddr {
    use std::io::{BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((s, _)) = l.accept() else { return };
            let mut w = s.try_clone().unwrap();
            let _ = read_request(&mut BufReader::new(s));
            // Room for the whole answer: the kernel sends it at once.
            let _ = socket2::SockRef::from(&w).set_send_buffer_size(1 << 20);
            let _ = w.write_all(&answer);
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    });
    addr
}

/// A server's chunked response whose first chunk line is malformed, in
/// the same write as its head, gets the client nvelox's own 502 (no byte
/// of the response had reached it), logged with its reason; the client
/// connection stays usable.
#[test]
fn a_malformed_first_chunk_with_the_head_is_answered_502() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut long_ext = head.clone();
    long_ext.extend_from_slice(b"5;");
    long_ext.extend(std::iter::repeat_n(b'a', 100 * 1024));
    long_ext.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let mut bad_size = head.clone();
    bad_size.extend_from_slice(b"zz\r\nhello\r\n0\r\n\r\n");
    let addr = raw_server(vec![long_ext, bad_size]);
    let dir = TempDir::new("http-bad-chunk");
    let port = free_port();
    let log = dir.path("access.log");
    let yaml = format!(
        "logging:\n  access_log: {}\n{}",
        log.display(),
        http_config_at(port, &[addr], "", "")
    );
    let _n = Nvelox::start(&yaml);
    let mut c = Client::connect(port);
    for _ in 0..2 {
        let r = c.get("/x");
        assert_eq!(r.status, 502, "{r:?}");
        assert_eq!(r.header("Connection"), None, "the stream is in sync");
    }
    assert!(
        eventually(WAIT, || std::fs::read_to_string(&log).is_ok_and(|s| s
            .matches("status=502")
            .count()
            == 2
            && s.contains("reason=\"bad response body\""))),
        "{:?}",
        std::fs::read_to_string(&log)
    );
}

/// A chunked response to an HTTP/1.0 client (which cannot read chunked,
/// RFC 9112 section 6.1) goes without its framing, streamed, and ends at
/// the close: no `Transfer-Encoding`, `Connection: close`, the payload
/// byte for byte, trailers dropped. The server connection, read to the
/// chunked end, is reused.
#[test]
fn a_chunked_response_reaches_an_http10_client_dechunked() {
    use std::io::{Read, Write};
    let body = payload(5 << 20, 7);
    let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n".to_vec();
    let (mut at, mut size) = (0, 1);
    while at < body.len() {
        let n = size.min(body.len() - at);
        wire.extend_from_slice(format!("{n:x};ext=1\r\n").as_bytes());
        wire.extend_from_slice(&body[at..at + n]);
        wire.extend_from_slice(b"\r\n");
        at += n;
        size = size * 7 % 70_001 + 1;
    }
    wire.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    let wire = Arc::new(wire);
    let o = Origin::start(Arc::new(move |_| Answer::Raw(wire.to_vec())));
    let (_n, port) = start_http(&[&o], "", "");
    for request in [
        &b"GET /big HTTP/1.0\r\n\r\n"[..],
        b"GET /big HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(request).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&got[..split]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 "), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(head.contains("\r\nx-kept: yes\r\n"), "{head}");
        assert_eq!(got.len() - split, body.len());
        assert!(got[split..] == body[..], "the body differs");
    }
    assert_eq!(o.requests().len(), 2);
    assert_eq!(o.conns.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// The same with a head so large (15,000 bytes) that the bad chunk line
/// comes in nvelox's next read: the head has not been written to the
/// client yet (writes go out at the end of the wake-up), so the client
/// still gets a 502 (with `Connection: close`) rather than a bare close.
#[test]
fn a_bad_chunk_after_an_unsent_head_is_answered_502() {
    let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Big: ".to_vec();
    answer.resize(15_000 - 4, b'b');
    answer.extend_from_slice(b"\r\n\r\n5;");
    answer.extend(std::iter::repeat_n(b'a', 100 * 1024));
    answer.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let addr = raw_server(vec![answer]);
    let (_n, port) = start_http_at(&[addr], "", "");
    let mut c = Client::connect(port);
    let r = c.get("/x");
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.header("Connection"), Some("close"));
    c.expect_closed();
}
