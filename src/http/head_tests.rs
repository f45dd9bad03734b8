//! Tests of request/response head parsing and the framing decision.

use super::framing::{parse_length, TransferCoding};
use super::head::*;
use super::BodyFraming;

fn limits() -> HeadLimits {
    HeadLimits {
        max_head_bytes: 1024,
        max_headers: 16,
        max_body: Some(1_000_000),
    }
}

fn req(bytes: &[u8]) -> Result<RequestHead, Reject> {
    match parse_request(bytes, &limits())? {
        Parsed::Complete { head, consumed } => {
            assert!(consumed <= bytes.len());
            Ok(head)
        }
        Parsed::Incomplete => panic!("incomplete: {:?}", String::from_utf8_lossy(bytes)),
    }
}

fn status_of(bytes: &[u8]) -> u16 {
    match parse_request(bytes, &limits()) {
        Err(r) => r.status,
        Ok(Parsed::Complete { .. }) => 200,
        Ok(Parsed::Incomplete) => 0,
    }
}

fn resp(bytes: &[u8], method: Method, upgrade_requested: bool) -> Result<ResponseHead, Reject> {
    let answering = Answering {
        method,
        upgrade_requested,
    };
    match parse_response(bytes, &limits(), answering)? {
        Parsed::Complete { head, .. } => Ok(head),
        Parsed::Incomplete => panic!("incomplete"),
    }
}

#[test]
fn simple_get_is_owned_and_compact() {
    let raw = b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\nNEXT";
    let Ok(Parsed::Complete { head, consumed }) = parse_request(raw, &limits()) else {
        panic!()
    };
    assert_eq!(consumed, raw.len() - 4);
    assert_eq!(head.method, Method::Get);
    assert_eq!(head.method_bytes(), b"GET");
    assert_eq!(head.target(), b"/a/b?c=d");
    assert_eq!(head.path(), b"/a/b?c=d");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.host(), Some(&b"example.com:8080"[..]));
    assert_eq!(head.host_name(), Some(&b"example.com"[..]));
    assert_eq!(head.framing, BodyFraming::None);
    assert!(head.keep_alive && !head.upgrade && !head.expect_continue);
    let headers: Vec<_> = head.headers().iter().collect();
    assert_eq!(
        headers,
        vec![
            (&b"Host"[..], &b"example.com:8080"[..]),
            (&b"Accept"[..], &b"*/*"[..])
        ]
    );
}

#[test]
fn every_prefix_of_a_head_is_incomplete() {
    let raw = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    for k in 0..raw.len() {
        assert_eq!(
            parse_request(&raw[..k], &limits()),
            Ok(Parsed::Incomplete),
            "{k}"
        );
    }
    assert_eq!(req(raw).map(|h| h.framing), Ok(BodyFraming::Length(3)));
}

#[test]
fn absolute_form_and_ipv6_hosts() {
    let h = req(b"GET http://x.org:81/p?q HTTP/1.1\r\nHost: x.org:81\r\n\r\n").unwrap();
    assert_eq!(h.path(), b"/p?q");
    let h = req(b"GET http://X.org HTTP/1.1\r\nHost: x.org\r\n\r\n").unwrap();
    assert_eq!(h.path(), b"/");
    let h = req(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").unwrap();
    assert_eq!(h.host_name(), Some(&b"[::1]"[..]));
    let h = req(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert_eq!(h.target(), b"*");
}

#[test]
fn versions_and_keep_alive() {
    let cases: [(&[u8], bool); 6] = [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n",
            true,
        ),
    ];
    for (raw, keep) in cases {
        assert_eq!(
            req(raw).unwrap().keep_alive,
            keep,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(
        req(b"GET / HTTP/1.0\r\n\r\n").unwrap().version,
        Version::Http10
    );
}

#[test]
fn upgrade_needs_the_connection_token_and_http11() {
    let ws = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert!(req(ws).unwrap().upgrade);
    assert!(
        !req(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .upgrade
    );
    assert!(
        !req(b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
            .unwrap()
            .upgrade
    );
}

#[test]
fn h2c_alone_is_no_upgrade() {
    let up = |raw: &[u8]| req(raw).unwrap().upgrade;
    assert!(!up(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA\r\n\r\n"));
    assert!(!up(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: H2C, ,h2c/1\r\nUpgrade: h2c\r\n\r\n"));
    assert!(up(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\nUpgrade: websocket\r\n\r\n"));
    assert!(up(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2, h2c\r\n\r\n"
    ));
}

#[test]
fn expect_continue_is_detected() {
    let raw = b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n";
    assert!(req(raw).unwrap().expect_continue);
    let raw = b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: other\r\n\r\n";
    assert!(!req(raw).unwrap().expect_continue);
}

#[test]
fn framing_of_requests() {
    let f = |raw: &[u8]| req(raw).map(|h| h.framing);
    assert_eq!(
        f(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
        Ok(BodyFraming::Length(0))
    );
    assert_eq!(
        f(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Ok(BodyFraming::Chunked)
    );
    assert_eq!(
        f(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n"),
        Ok(BodyFraming::Chunked)
    );
    // HAProxy's rule: identical Content-Lengths merge into one.
    let h = req(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n")
        .unwrap();
    assert_eq!(h.framing, BodyFraming::Length(7));
    assert_eq!(h.facts.content_length, Some(7));
    assert_eq!(h.facts.transfer_coding, TransferCoding::Absent);
}

#[test]
fn smuggling_patterns_are_400() {
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        // obs-fold
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n",
        // bad bytes in names and values, space before the colon
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX\x01: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: b\x00c\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: b\x7fc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
        // request targets with spaces or control bytes, bad request lines
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        b"GET /\r\nHost: a\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET a HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        // Host: missing in 1.1, twice, or not a host
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
        // absolute-form whose authority is not the Host
        b"GET http://admin.internal/ HTTP/1.1\r\nHost: public.example\r\n\r\n",
        b"GET http://a:81/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.0\r\n\r\n",
        b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for raw in cases {
        assert_eq!(status_of(raw), 400, "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn unknown_codings_are_501_and_connect_too() {
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for raw in cases {
        assert_eq!(status_of(raw), 501, "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn body_above_the_limit_is_413() {
    assert_eq!(
        status_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000001\r\n\r\n"),
        413
    );
    assert_eq!(
        status_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"),
        200
    );
    let unlimited = HeadLimits {
        max_body: None,
        ..limits()
    };
    let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999\r\n\r\n";
    assert!(matches!(
        parse_request(raw, &unlimited),
        Ok(Parsed::Complete { .. })
    ));
}

#[test]
fn size_limits_give_414_then_431() {
    let small = HeadLimits {
        max_head_bytes: 64,
        max_headers: 3,
        max_body: None,
    };
    let long_target = [b"GET /".as_slice(), &[b'a'; 100]].concat();
    assert_eq!(parse_request(&long_target, &small).unwrap_err().status, 414);
    // Exactly at the limit without an end of line yet: 414 as well.
    assert_eq!(
        parse_request(&long_target[..64], &small)
            .unwrap_err()
            .status,
        414
    );
    assert_eq!(
        parse_request(&long_target[..63], &small),
        Ok(Parsed::Incomplete)
    );
    let long_headers = [b"GET / HTTP/1.1\r\nHost: a\r\nX: ".as_slice(), &[b'a'; 100]].concat();
    assert_eq!(
        parse_request(&long_headers, &small).unwrap_err().status,
        431
    );
    let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(parse_request(many, &small).unwrap_err().status, 431);
    let three = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    assert!(matches!(
        parse_request(three, &small),
        Ok(Parsed::Complete { .. })
    ));
    // A complete head one byte over the limit is refused, at the limit accepted.
    let exact = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let tight = HeadLimits {
        max_head_bytes: exact.len(),
        ..small
    };
    assert!(matches!(
        parse_request(exact, &tight),
        Ok(Parsed::Complete { .. })
    ));
    let tighter = HeadLimits {
        max_head_bytes: exact.len() - 1,
        ..small
    };
    assert_eq!(parse_request(exact, &tighter).unwrap_err().status, 431);
}

#[test]
fn content_length_values() {
    assert_eq!(parse_length(b"0"), Some(0));
    assert_eq!(parse_length(b"007"), Some(7));
    assert_eq!(
        parse_length(b"9999999999999999999"),
        Some(9_999_999_999_999_999_999)
    );
    assert_eq!(parse_length(b"18446744073709551616"), None);
    for bad in [&b""[..], b" 1", b"1 ", b"+1", b"1e3", b"\xff"] {
        assert_eq!(parse_length(bad), None);
    }
}

#[test]
fn response_framing() {
    let get = Method::Get;
    let f = |raw: &[u8], m: Method| resp(raw, m, false).map(|h| h.framing);
    assert_eq!(
        f(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", get),
        Ok(BodyFraming::Length(12))
    );
    assert_eq!(
        f(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            get
        ),
        Ok(BodyFraming::Chunked)
    );
    assert_eq!(
        f(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            get
        ),
        Ok(BodyFraming::Chunked)
    );
    assert_eq!(
        f(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", get),
        Ok(BodyFraming::CloseDelimited)
    );
    // Transfer-Encoding wins over Content-Length in a response.
    assert_eq!(
        f(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            get
        ),
        Ok(BodyFraming::Chunked)
    );
    assert_eq!(
        f(b"HTTP/1.1 200 OK\r\n\r\n", get),
        Ok(BodyFraming::CloseDelimited)
    );
    assert_eq!(
        f(
            b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
            Method::Head
        ),
        Ok(BodyFraming::None)
    );
    assert_eq!(
        f(b"HTTP/1.1 204 No Content\r\n\r\n", get),
        Ok(BodyFraming::None)
    );
    assert_eq!(
        f(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            get
        ),
        Ok(BodyFraming::None)
    );
    assert_eq!(
        f(b"HTTP/1.1 100 Continue\r\n\r\n", get),
        Ok(BodyFraming::None)
    );
    assert_eq!(
        f(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", get),
        Ok(BodyFraming::None)
    );
    assert_eq!(resp(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", get, true).map(|h| h.framing), Ok(BodyFraming::Tunnel));
    assert_eq!(
        f(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", get)
            .unwrap_err()
            .status,
        502
    );
}

#[test]
fn response_keep_alive_and_fields() {
    let h = resp(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
        false,
    )
    .unwrap();
    assert!(h.keep_alive);
    assert_eq!(
        (h.status, h.reason(), h.version),
        (200, &b"OK"[..], Version::Http11)
    );
    let h = resp(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
        false,
    )
    .unwrap();
    assert!(!h.keep_alive);
    let h = resp(
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
        false,
    )
    .unwrap();
    assert!(!h.keep_alive);
    let h = resp(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        Method::Get,
        false,
    )
    .unwrap();
    assert!(h.keep_alive);
    // Close-delimited bodies never leave a reusable connection.
    let h = resp(b"HTTP/1.1 200 OK\r\n\r\n", Method::Get, false).unwrap();
    assert!(!h.keep_alive);
    let h = resp(b"HTTP/1.1 204\r\n\r\n", Method::Get, false).unwrap();
    assert_eq!((h.status, h.reason()), (204, &b""[..]));
    assert!(!h.is_informational());
    assert!(resp(b"HTTP/1.1 100 Continue\r\n\r\n", Method::Get, false)
        .unwrap()
        .is_informational());
}

#[test]
fn bad_responses_are_502() {
    let cases: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ];
    for raw in cases {
        let answering = Answering {
            method: Method::Get,
            upgrade_requested: false,
        };
        let r = parse_response(raw, &limits(), answering);
        assert_eq!(
            r.map(|_| ()).unwrap_err().status,
            502,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let small = HeadLimits {
        max_head_bytes: 32,
        ..limits()
    };
    let answering = Answering {
        method: Method::Get,
        upgrade_requested: false,
    };
    let long = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; 64]].concat();
    assert_eq!(
        parse_response(&long, &small, answering).unwrap_err().status,
        502
    );
}

#[test]
fn a_dropped_head_lends_its_storage_to_the_next_one_within_bounds() {
    // On a new thread: its list starts empty.
    std::thread::spawn(storage_is_reused_on_one_thread)
        .join()
        .unwrap();
}

fn storage_is_reused_on_one_thread() {
    use super::spare;
    let first = req(b"GET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n").unwrap();
    let ptr = first.target().as_ptr();
    drop(first);
    assert_eq!(spare::kept(), (1, 1));
    let second = req(b"GET /a HTTP/1.1\r\nHost: b\r\nAccept: */*\r\n\r\n").unwrap();
    assert_eq!(second.target().as_ptr(), ptr, "the same bytes storage");
    assert_eq!(second.host(), Some(&b"b"[..]), "holding the new head only");
    assert_eq!(second.headers().len(), 2);
    assert_eq!(spare::kept(), (0, 0));
    drop(second);
    // Bounded in count...
    let heads: Vec<_> = (0..10)
        .map(|_| req(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap())
        .collect();
    drop(heads);
    assert_eq!(spare::kept(), (4, 4));
    // ... and in size: a big head's storage is freed.
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 8000));
    raw.extend_from_slice(b"\r\n\r\n");
    let taken: Vec<_> = (0..4)
        .map(|_| req(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap())
        .collect();
    assert_eq!(spare::kept(), (0, 0));
    let big = HeadLimits {
        max_head_bytes: 16 * 1024,
        ..limits()
    };
    match parse_request(&raw, &big) {
        Ok(Parsed::Complete { head, .. }) => drop(head),
        other => panic!("{other:?}"),
    }
    assert_eq!(spare::kept().0, 0, "an 8 KiB head copy is not kept");
    drop(taken);
}
