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
