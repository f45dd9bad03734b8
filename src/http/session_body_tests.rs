//! Tests of the session on response bodies: a malformed chunked body read
//! with its head (502 while nothing was sent), and a chunked response to
//! an HTTP/1.0 client (sent without its framing, ended by the close).

use super::retry::{RetryPolicy, UpstreamFailure};
use super::session::*;
use super::session_tests::{answered, send_request, session, RETRY_ALL};

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

fn with_head(body: &[u8]) -> Vec<u8> {
    [CHUNKED, body].concat()
}

#[test]
fn a_bad_chunk_read_with_the_head_is_a_502_that_keeps_the_client() {
    let long_ext = [
        &b"5;"[..],
        &vec![b'a'; 100 * 1024],
        b"\r\nhello\r\n0\r\n\r\n",
    ]
    .concat();
    for body in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        &long_ext,
        // Good chunks first: still nothing was sent.
        b"2\r\nhi\r\n3\r\nabc\r\nx\r\n",
        b"2\r\nhiXX",
    ] {
        let (mut s, now) = session();
        send_request(&mut s, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RETRY_ALL, now);
        assert_eq!(
            s.upstream_input(&with_head(body), now),
            UpstreamStep::Reply {
                failure: UpstreamFailure::BadBody,
                status: 502
            },
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        // Never retried (the server answered), the client stream in sync.
        assert_eq!(s.local_reply(b"", now), Some(0));
    }
}

#[test]
fn good_or_incomplete_chunks_with_the_head_are_forwarded() {
    for body in [&b""[..], b"5;e", b"5\r\nhel", b"2\r\nhi\r\n0\r\n\r\n"] {
        let (_, _, step) = answered(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            RETRY_ALL,
            &with_head(body),
        );
        assert!(
            matches!(step, UpstreamStep::Response { consumed, .. } if consumed == CHUNKED.len()),
            "{step:?}"
        );
    }
}

#[test]
fn a_bad_chunk_after_bytes_were_sent_closes() {
    let (mut s, now) = session();
    send_request(&mut s, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RETRY_ALL, now);
    assert!(matches!(
        s.upstream_input(&with_head(b"2\r\nhi\r\n"), now),
        UpstreamStep::Response { .. }
    ));
    assert_eq!(
        s.upstream_input(b"2\r\nhi\r\n", now),
        UpstreamStep::Body {
            forward: 7,
            end: None
        }
    );
    assert_eq!(s.upstream_input(b"zz\r\n", now), UpstreamStep::Abort);
    assert!(s.is_closed());
    // A forwarded 100 Continue is a byte sent too.
    let (mut s, now) = session();
    send_request(&mut s, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RETRY_ALL, now);
    let cont = b"HTTP/1.1 100 Continue\r\n\r\n";
    assert!(matches!(
        s.upstream_input(cont, now),
        UpstreamStep::Informational { forward: true, .. }
    ));
    assert_eq!(
        s.upstream_input(&with_head(b"zz\r\n"), now),
        UpstreamStep::Abort
    );
}

/// Runs the de-chunking steps over `input` as the shell does; returns the
/// payload and the end.
fn dechunk(s: &mut Session, input: &[u8]) -> (Vec<u8>, Option<ExchangeEnd>) {
    let now = std::time::Instant::now();
    let (mut off, mut out) = (0, Vec::new());
    loop {
        match s.upstream_input(&input[off..], now) {
            UpstreamStep::Payload {
                consumed,
                data,
                end,
            } => {
                out.extend_from_slice(&input[off..][data]);
                off += consumed;
                if end.is_some() || consumed == 0 {
                    return (out, end);
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_chunked_response_to_an_http10_client_is_sent_without_framing() {
    let (mut s, _, step) = answered(
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        RetryPolicy::default(),
        CHUNKED,
    );
    assert!(
        matches!(
            step,
            UpstreamStep::Response {
                client_keep_alive: false,
                end: None,
                ..
            }
        ),
        "{step:?}"
    );
    // Split anywhere: the payload, nothing of the framing or trailers.
    let body = b"5;x=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-T: t\r\n\r\n";
    let (mut got, _) = dechunk(&mut s, &body[..9]);
    let (rest, end) = dechunk(&mut s, &body[9..]);
    got.extend_from_slice(&rest);
    assert_eq!(got, b"hello world!");
    // The client connection closes (that ends its body); the server's
    // stays reusable (its chunked body was read to its end).
    assert_eq!(
        end,
        Some(ExchangeEnd {
            upstream_reusable: true,
            close_client: true
        })
    );
    assert!(s.is_closed());
}

#[test]
fn an_http10_client_gets_other_framings_as_before() {
    let (_, _, step) = answered(
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        RetryPolicy::default(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    assert!(
        matches!(
            step,
            UpstreamStep::Response {
                client_keep_alive: true,
                ..
            }
        ),
        "{step:?}"
    );
    // A chunked body truncated by the server's close: the client is closed.
    let (mut s, now) = session();
    send_request(
        &mut s,
        b"GET / HTTP/1.0\r\n\r\n",
        RetryPolicy::default(),
        now,
    );
    assert!(matches!(
        s.upstream_input(CHUNKED, now),
        UpstreamStep::Response { .. }
    ));
    assert!(matches!(
        s.upstream_input(b"5\r\nhel", now),
        UpstreamStep::Payload { .. }
    ));
    assert_eq!(s.upstream_eof(now), UpstreamStep::Abort);
}
