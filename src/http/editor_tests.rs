//! Tests of the head editor: what a server and a client receive.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::editor::*;
use super::head::{parse_request, parse_response, Answering, HeadLimits, Method, Parsed, Version};
use super::{BodyFraming, RequestHead, ResponseHead};

fn request(raw: &[u8]) -> RequestHead {
    match parse_request(raw, &HeadLimits::default()) {
        Ok(Parsed::Complete { head, .. }) => head,
        other => panic!("{other:?}"),
    }
}

fn response(raw: &[u8], method: Method, upgrade_requested: bool) -> ResponseHead {
    let answering = Answering {
        method,
        upgrade_requested,
    };
    match parse_response(raw, &HeadLimits::default(), answering) {
        Ok(Parsed::Complete { head, .. }) => head,
        other => panic!("{other:?}"),
    }
}

const CLIENT: RequestContext<'static> = RequestContext {
    client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    proto: "http",
    port: 8000,
    upstream_keep_alive: true,
};

fn upstream(raw: &[u8], opts: &EditOptions) -> String {
    upstream_with(raw, &CLIENT, opts)
}

fn upstream_with(raw: &[u8], ctx: &RequestContext<'_>, opts: &EditOptions) -> String {
    let mut out = Vec::new();
    write_request_head(&request(raw), ctx, opts, &mut out);
    // What we send must itself be a valid head.
    assert!(matches!(
        parse_request(&out, &HeadLimits::default()),
        Ok(Parsed::Complete { .. })
    ));
    String::from_utf8(out).unwrap()
}

fn downstream(head: &ResponseHead, ctx: &ResponseContext<'_>, opts: &EditOptions) -> String {
    let mut out = Vec::new();
    write_response_head(head, ctx, opts, &mut out);
    String::from_utf8(out).unwrap()
}

const KEEP: ResponseContext<'static> = ResponseContext {
    server: "127.0.0.1:8081",
    client_keep_alive: true,
    client_version: Version::Http11,
};

#[test]
fn request_gets_forwarding_headers_and_loses_hop_by_hop() {
    let raw = b"GET /p HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n\
        Proxy-Connection: x\r\nTE: trailers\r\nTrailer: X\r\nX-Secret: s\r\nUpgrade: h2c\r\n\
        X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\nX-Forwarded-Proto: ftp\r\nX-Forwarded-Port: 1\r\nAccept: */*\r\n\r\n";
    let out = upstream(raw, &EditOptions::default());
    assert_eq!(
        out,
        "GET /p HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 192.0.2.7\r\n\
         X-Forwarded-Proto: http\r\nX-Forwarded-Port: 8000\r\n\r\n"
    );
}

#[test]
fn forwarded_for_can_be_disabled_and_ipv6_is_plain() {
    let opts = EditOptions {
        forwarded_for: false,
        ..EditOptions::default()
    };
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
    assert_eq!(
        upstream(raw, &opts),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
    );
    let v6 = RequestContext {
        client_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
        proto: "https",
        port: 443,
        ..CLIENT
    };
    let out = upstream_with(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        &v6,
        &EditOptions::default(),
    );
    assert!(out
        .contains("X-Forwarded-For: ::1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n"));
}

#[test]
fn request_framing_is_written_from_the_decision() {
    let opts = EditOptions::default();
    let out = upstream(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n",
        &opts,
    );
    assert_eq!(out.matches("Content-Length").count(), 1);
    assert!(out.contains("Content-Length: 5\r\n"));
    let out = upstream(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked\r\n\r\n",
        &opts,
    );
    assert!(out.contains("\r\nTransfer-Encoding: chunked\r\n"));
    assert_eq!(out.matches("Transfer-Encoding").count(), 1);
}

#[test]
fn upstream_connection_per_version() {
    let opts = EditOptions::default();
    let close = RequestContext {
        upstream_keep_alive: false,
        ..CLIENT
    };
    let out = upstream_with(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        &close,
        &opts,
    );
    assert!(out.contains("Connection: close\r\n"));
    let out = upstream(b"GET / HTTP/1.0\r\n\r\n", &opts);
    assert!(out.starts_with("GET / HTTP/1.0\r\n"));
    assert!(out.contains("Connection: keep-alive\r\n"));
    let out = upstream(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &opts);
    assert!(!out.contains("Connection"));
}

#[test]
fn upgrade_is_kept_for_upgrades() {
    let raw = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
    let out = upstream(raw, &EditOptions::default());
    assert!(
        out.contains("Sec-WebSocket-Key: k\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"),
        "{out}"
    );
}

#[test]
fn h2c_is_never_offered_to_a_server() {
    // Only h2c: a normal request, without Upgrade or HTTP2-Settings.
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA\r\n\r\n";
    let out = upstream(raw, &EditOptions::default());
    assert!(
        out.starts_with("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For"),
        "{out}"
    );
    assert!(!out.to_ascii_lowercase().contains("upgrade"), "{out}");
    assert!(
        !out.to_ascii_lowercase().contains("http2-settings"),
        "{out}"
    );
    // With other tokens: those, in order, from every Upgrade header.
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: H2C, websocket\r\nUpgrade: h2c/1, foo/2\r\n\r\n";
    let out = upstream(raw, &EditOptions::default());
    assert!(
        out.contains("\r\nConnection: upgrade\r\nUpgrade: websocket, foo/2\r\n"),
        "{out}"
    );
    assert!(!out.to_ascii_lowercase().contains("h2c"), "{out}");
}

#[test]
fn request_edits_remove_then_set_then_add() {
    let opts = EditOptions {
        request: HeaderEdits {
            add: vec![("X-Tag".into(), "two".into())],
            set: vec![("X-Env".into(), "prod".into())],
            remove: vec!["cookie".into()],
        },
        forwarded_for: false,
        ..EditOptions::default()
    };
    opts.request.validate().unwrap();
    let raw =
        b"GET / HTTP/1.1\r\nHost: a\r\nCookie: c\r\nX-Env: dev\r\nx-env: qa\r\nX-Tag: one\r\n\r\n";
    assert_eq!(
        upstream(raw, &opts),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Tag: one\r\nX-Env: prod\r\nX-Tag: two\r\n\r\n"
    );
}

#[test]
fn edits_that_could_break_framing_are_refused() {
    let bad = [
        HeaderEdits {
            remove: vec!["Content-Length".into()],
            ..HeaderEdits::default()
        },
        HeaderEdits {
            set: vec![("Transfer-Encoding".into(), "chunked".into())],
            ..HeaderEdits::default()
        },
        HeaderEdits {
            add: vec![("Connection".into(), "close".into())],
            ..HeaderEdits::default()
        },
        HeaderEdits {
            add: vec![("X-A".into(), "a\r\nX-B: b".into())],
            ..HeaderEdits::default()
        },
        HeaderEdits {
            add: vec![("X A".into(), "a".into())],
            ..HeaderEdits::default()
        },
        HeaderEdits {
            add: vec![("".into(), "a".into())],
            ..HeaderEdits::default()
        },
    ];
    for edits in bad {
        assert!(edits.validate().is_err(), "{edits:?}");
    }
}

#[test]
fn response_gets_the_server_header_and_edits() {
    let opts = EditOptions {
        backend_server_header: Some("X-Backend-Server".into()),
        response: HeaderEdits {
            add: vec![("X-Forwarded-By".into(), "nvelox".into())],
            remove: vec!["Server".into()],
            ..HeaderEdits::default()
        },
        ..EditOptions::default()
    };
    let head = response(
        b"HTTP/1.0 200 Fine\r\nServer: x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Backend-Server: spoof\r\nContent-Length: 3\r\nDate: d\r\n\r\n",
        Method::Get,
        false,
    );
    assert_eq!(
        downstream(&head, &KEEP, &opts),
        "HTTP/1.1 200 Fine\r\nDate: d\r\nContent-Length: 3\r\nX-Backend-Server: 127.0.0.1:8081\r\nX-Forwarded-By: nvelox\r\n\r\n"
    );
}

#[test]
fn response_connection_header_follows_the_client_decision() {
    let opts = EditOptions::default();
    let head = response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
        false,
    );
    let close = ResponseContext {
        client_keep_alive: false,
        ..KEEP
    };
    assert!(downstream(&head, &close, &opts).contains("Connection: close\r\n"));
    let old = ResponseContext {
        client_version: Version::Http10,
        ..KEEP
    };
    assert!(downstream(&head, &old, &opts).contains("Connection: keep-alive\r\n"));
    assert!(!downstream(&head, &KEEP, &opts).contains("Connection"));
}

#[test]
fn response_framing_headers() {
    let opts = EditOptions::default();
    let chunked = response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::Get,
        false,
    );
    let out = downstream(&chunked, &KEEP, &opts);
    assert!(
        out.contains("Transfer-Encoding: chunked\r\n") && !out.contains("Content-Length"),
        "{out}"
    );
    let gzip = response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        Method::Get,
        false,
    );
    assert!(downstream(&gzip, &KEEP, &opts).contains("Transfer-Encoding: gzip, chunked\r\n"));
    // Never to an HTTP/1.0 client (its body goes without chunked framing,
    // ended by the close).
    let old = ResponseContext {
        client_version: Version::Http10,
        client_keep_alive: false,
        ..KEEP
    };
    for head in [&chunked, &gzip] {
        let out = downstream(head, &old, &opts);
        assert!(
            !out.contains("Transfer-Encoding")
                && !out.contains("Content-Length")
                && out.contains("Connection: close\r\n"),
            "{out}"
        );
    }
    // HEAD and 304 keep the length they describe; 204 gets none.
    let head = response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",
        Method::Head,
        false,
    );
    assert_eq!(head.framing, BodyFraming::None);
    assert!(downstream(&head, &KEEP, &opts).contains("Content-Length: 42\r\n"));
    let not_modified = response(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\n\r\n",
        Method::Get,
        false,
    );
    assert!(downstream(&not_modified, &KEEP, &opts).contains("Content-Length: 42\r\n"));
    let no_content = response(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
        false,
    );
    assert!(!downstream(&no_content, &KEEP, &opts).contains("Content-Length"));
    let close = response(b"HTTP/1.1 200 OK\r\n\r\n", Method::Get, false);
    let ctx = ResponseContext {
        client_keep_alive: false,
        ..KEEP
    };
    assert_eq!(
        downstream(&close, &ctx, &opts),
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn switching_protocols_keeps_upgrade() {
    let opts = EditOptions {
        backend_server_header: Some("X-Backend-Server".into()),
        ..EditOptions::default()
    };
    let head = response(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\n", Method::Get, true);
    assert_eq!(
        downstream(&head, &KEEP, &opts),
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nX-Backend-Server: 127.0.0.1:8081\r\n\r\n"
    );
    let cont = response(b"HTTP/1.1 100 Continue\r\n\r\n", Method::Get, false);
    assert_eq!(
        downstream(&cont, &KEEP, &opts),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
}

#[test]
fn numbers_and_addresses_are_written_without_fmt_exactly_as_before() {
    // Empty forwarded values add no separator; one named in `Connection`
    // or removed by an edit is not merged.
    let ctx = RequestContext {
        client_ip: IpAddr::V4(Ipv4Addr::new(0, 10, 255, 100)),
        proto: "http",
        port: 65535,
        upstream_keep_alive: true,
    };
    let raw = b"POST / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For:\r\nX-Forwarded-For: 1.2.3.4\r\n\
        Content-Length: 1099511627776\r\n\r\n";
    let out = upstream_with(raw, &ctx, &EditOptions::default());
    assert!(out.contains("Content-Length: 1099511627776\r\n"), "{out}");
    assert!(
        out.contains("X-Forwarded-For: 1.2.3.4, 0.10.255.100\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 65535\r\n"),
        "{out}"
    );
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-forwarded-for\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
    let ctx = RequestContext { port: 0, ..ctx };
    let out = upstream_with(raw, &ctx, &EditOptions::default());
    assert!(
        out.contains(
            "X-Forwarded-For: 0.10.255.100\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 0\r\n"
        ),
        "{out}"
    );
    let mut opts = EditOptions::default();
    opts.request.remove.push("x-forwarded-for".into());
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n";
    assert!(upstream_with(raw, &ctx, &opts).contains("X-Forwarded-For: 0.10.255.100\r\n"));

    let ctx = ResponseContext {
        server: "s1",
        client_keep_alive: true,
        client_version: Version::Http11,
    };
    for (raw, line) in [
        (
            &b"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n"[..],
            "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n",
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234567\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1234567\r\n",
        ),
    ] {
        let head = response(raw, Method::Get, false);
        let out = downstream(&head, &ctx, &EditOptions::default());
        assert!(out.starts_with(line), "{out}");
    }
    let head = response(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        Method::Get,
        false,
    );
    assert!(downstream(&head, &ctx, &EditOptions::default()).contains("Content-Length: 10\r\n"));
}

#[test]
fn every_header_named_in_connection_is_dropped_however_many() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: a, b\r\nConnection: c, , d, e\r\nA: 1\r\nB: 2\r\n\
        C: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n";
    let out = upstream(raw, &EditOptions::default());
    for gone in ["A:", "B:", "C:", "D:", "E:", "Connection"] {
        assert!(!out.contains(gone), "{gone} in {out}");
    }
    assert!(out.contains("F: 6\r\n"), "{out}");
    let head = response(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-a, x-b, x-c, x-d, x-e\r\nX-E: 1\r\nX-F: 2\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
        false,
    );
    let ctx = ResponseContext {
        server: "s1",
        client_keep_alive: true,
        client_version: Version::Http11,
    };
    let out = downstream(&head, &ctx, &EditOptions::default());
    assert!(!out.contains("X-E") && out.contains("X-F: 2\r\n"), "{out}");
}
