//! Hostile clients and servers against `protocol: http` through the real
//! binary (the adversarial audit of docs/robustness.md, "HTTP mode through
//! the binary"): each case is one a client or server on the internet can
//! send, and the assertion is what must hold whatever it sends.

mod common;
#[path = "common/origin.rs"]
mod origin;

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
