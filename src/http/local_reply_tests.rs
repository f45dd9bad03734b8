//! Tests of [`Session::local_reply`]: when a reply nvelox generates itself
//! (404, 502, 503, 504, ...) keeps the client connection, and when the
//! stream is out of sync so it must close.

use std::time::{Duration, Instant};

use super::head::HeadLimits;
use super::retry::{RetryPolicy, UpstreamFailure};
use super::session::*;

const TIMEOUTS: Timeouts = Timeouts {
    head: Duration::from_secs(30),
    idle: Duration::from_secs(60),
    response: Duration::from_secs(10),
};

/// A session with one request fed; returns it and the unconsumed input.
fn with_request(buf: &[u8]) -> (Session, Vec<u8>, Instant) {
    let now = Instant::now();
    let mut s = Session::new(HeadLimits::default(), now);
    let ClientStep::Request { consumed, .. } = s.client_input(buf, now) else {
        panic!("no request");
    };
    (s, buf[consumed..].to_vec(), now)
}

#[test]
fn a_whole_request_keeps_the_connection_and_the_next_one_follows() {
    let (mut s, rest, now) =
        with_request(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(s.local_reply(&rest, now), Some(0));
    assert!(matches!(
        s.client_input(&rest, now),
        ClientStep::Request { .. }
    ));
}

#[test]
fn a_body_complete_in_the_buffer_is_skipped() {
    let (mut s, rest, now) = with_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(s.local_reply(&rest, now), Some(3));
    assert!(matches!(
        s.client_input(&rest[3..], now),
        ClientStep::Request { .. }
    ));
    let (mut s, rest, now) = with_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    );
    assert_eq!(s.local_reply(&rest, now), Some(rest.len()));
}

#[test]
fn a_body_not_yet_read_closes() {
    let (mut s, rest, now) =
        with_request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(s.local_reply(&rest, now), None);
    assert!(s.is_closed());
    let (mut s, rest, now) = with_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n",
    );
    assert_eq!(s.local_reply(&rest, now), None);
}

#[test]
fn close_http10_and_a_half_closed_client_close() {
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..],
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        &b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"[..],
    ] {
        let (mut s, rest, now) = with_request(raw);
        assert_eq!(s.local_reply(&rest, now), None, "{raw:?}");
    }
    let (mut s, rest, now) = with_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(s.client_eof(), ClientStep::Hold);
    assert_eq!(s.local_reply(&rest, now), None);
}

#[test]
fn rejects_and_408_close_but_502_and_504_keep() {
    let now = Instant::now();
    let mut s = Session::new(HeadLimits::default(), now);
    let step = s.client_input(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", now);
    assert!(matches!(step, ClientStep::Reject(_)));
    assert_eq!(s.local_reply(b"", now), None);

    let mut s = Session::new(HeadLimits::default(), now);
    assert_eq!(s.client_input(b"GET / H", now), ClientStep::NeedMore);
    assert_eq!(
        s.check_timeout(now + TIMEOUTS.head, &TIMEOUTS),
        Some(TimeoutStep::Reply(408))
    );
    assert_eq!(s.local_reply(b"", now), None);

    let (mut s, rest, now) = with_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    s.attempt_started(RetryPolicy::default(), now);
    let due = now + TIMEOUTS.response;
    assert_eq!(
        s.check_timeout(due, &TIMEOUTS),
        Some(TimeoutStep::Reply(504))
    );
    assert_eq!(s.local_reply(&rest, due), Some(0));
    // Now idle between requests.
    assert_eq!(s.deadline(&TIMEOUTS), Some(due + TIMEOUTS.idle));

    let (mut s, rest, now) = with_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    s.attempt_started(RetryPolicy::default(), now);
    assert!(matches!(
        s.upstream_failed(UpstreamFailure::Reset),
        UpstreamStep::Reply { status: 502, .. }
    ));
    assert_eq!(s.local_reply(&rest, now), Some(0));
}

#[test]
fn after_response_bytes_it_closes() {
    let (mut s, rest, now) = with_request(
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
    );
    s.attempt_started(RetryPolicy::default(), now);
    assert!(matches!(
        s.upstream_input(b"HTTP/1.1 100 Continue\r\n\r\n", now),
        UpstreamStep::Informational { forward: true, .. }
    ));
    assert_eq!(s.local_reply(&rest, now), None);
}
