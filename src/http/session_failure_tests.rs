//! Tests of the session state machine when things go wrong: retries,
//! early responses, half-closed clients, timeouts and unexpected bytes.
//! Helpers are shared with `session_tests`.

use std::time::Duration;

use super::head::Method;
use super::retry::{RetryPolicy, UpstreamFailure};
use super::session::*;
use super::session_tests::{answered, send_request, session, RETRY_ALL, TIMEOUTS};

#[test]
fn connect_failures_retry_until_attempts_are_spent() {
    let (mut s, now) = session();
    let policy = RetryPolicy {
        attempts: 3,
        ..RetryPolicy::default()
    };
    send_request(
        &mut s,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        policy,
        now,
    );
    let connect = UpstreamFailure::ConnectFailed;
    assert_eq!(
        s.upstream_failed(connect),
        UpstreamStep::Retry { failure: connect }
    );
    s.attempt_started(policy, now);
    assert_eq!(
        s.upstream_failed(connect),
        UpstreamStep::Retry { failure: connect }
    );
    s.attempt_started(policy, now);
    assert_eq!(
        s.upstream_failed(connect),
        UpstreamStep::Reply {
            failure: connect,
            status: 502
        }
    );
    // The request was read whole: the 502 keeps the connection.
    assert_eq!(s.local_reply(b"", now), Some(0));
    assert!(!s.is_closed());
}

#[test]
fn resets_and_statuses_retry_only_idempotent_held_requests() {
    let (mut s, now) = session();
    send_request(&mut s, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RETRY_ALL, now);
    assert_eq!(
        s.upstream_eof(now),
        UpstreamStep::Retry {
            failure: UpstreamFailure::Reset
        }
    );
    s.attempt_started(RETRY_ALL, now);
    let step = s.upstream_input(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", now);
    assert_eq!(
        step,
        UpstreamStep::Retry {
            failure: UpstreamFailure::Status(503)
        }
    );
    s.attempt_started(RETRY_ALL, now);
    // The last attempt's 503 goes to the client as it is.
    let step = s.upstream_input(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", now);
    assert!(matches!(step, UpstreamStep::Response { .. }), "{step:?}");

    let (mut s, now) = session();
    send_request(
        &mut s,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        RETRY_ALL,
        now,
    );
    assert_eq!(
        s.upstream_eof(now),
        UpstreamStep::Reply {
            failure: UpstreamFailure::Reset,
            status: 502
        }
    );

    let (_, _, step) = answered(
        b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        RETRY_ALL,
        b"HTTP/1.1 502 Bad\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        matches!(step, UpstreamStep::Response { .. }),
        "streamed body: not retried: {step:?}"
    );
}

#[test]
fn never_retry_after_response_bytes() {
    let (mut s, now) = session();
    send_request(&mut s, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RETRY_ALL, now);
    assert!(matches!(
        s.upstream_input(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", now),
        UpstreamStep::Response { .. }
    ));
    assert_eq!(
        s.upstream_failed(UpstreamFailure::Reset),
        UpstreamStep::Abort
    );
    let (mut s, now) = session();
    send_request(&mut s, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RETRY_ALL, now);
    assert!(matches!(
        s.upstream_input(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", now),
        UpstreamStep::Response { .. }
    ));
    assert_eq!(s.upstream_eof(now), UpstreamStep::Abort, "truncated body");
}

#[test]
fn early_response_closes_the_client_and_the_upstream() {
    let (_, _, step) = answered(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n",
        RetryPolicy::default(),
        b"HTTP/1.1 413 Too Big\r\nContent-Length: 0\r\n\r\n",
    );
    let UpstreamStep::Response {
        client_keep_alive: false,
        end: Some(end),
        ..
    } = step
    else {
        panic!("{step:?}")
    };
    assert_eq!(
        end,
        ExchangeEnd {
            upstream_reusable: false,
            close_client: true
        }
    );
}

#[test]
fn half_closed_client_still_gets_its_answer() {
    let (mut s, now) = session();
    send_request(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        RetryPolicy::default(),
        now,
    );
    assert_eq!(s.client_eof(), ClientStep::Hold);
    let step = s.upstream_input(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", now);
    assert!(
        matches!(
            step,
            UpstreamStep::Response {
                client_keep_alive: false,
                end: Some(ExchangeEnd {
                    close_client: true,
                    ..
                }),
                ..
            }
        ),
        "{step:?}"
    );
    let (mut s, _) = session();
    assert_eq!(s.client_eof(), ClientStep::Close);
}

#[test]
fn timeouts_408_idle_and_504() {
    let (mut s, t0) = session();
    assert_eq!(s.deadline(&TIMEOUTS), Some(t0 + TIMEOUTS.head));
    assert_eq!(
        s.client_input(b"GET / HT", t0 + Duration::from_secs(1)),
        ClientStep::NeedMore
    );
    assert_eq!(
        s.check_timeout(t0 + Duration::from_secs(29), &TIMEOUTS),
        None
    );
    assert_eq!(
        s.check_timeout(t0 + TIMEOUTS.head, &TIMEOUTS),
        Some(TimeoutStep::Reply(408))
    );
    assert!(s.is_closed());

    // After a response: idle until the first byte, then the head timer.
    let (mut s, t0) = session();
    send_request(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        RetryPolicy::default(),
        t0,
    );
    assert_eq!(s.deadline(&TIMEOUTS), Some(t0 + TIMEOUTS.response));
    let t1 = t0 + Duration::from_secs(1);
    assert!(matches!(
        s.upstream_input(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", t1),
        UpstreamStep::Response { .. }
    ));
    assert_eq!(s.deadline(&TIMEOUTS), Some(t1 + TIMEOUTS.idle));
    let t2 = t1 + Duration::from_secs(50);
    assert_eq!(s.client_input(b"G", t2), ClientStep::NeedMore);
    assert_eq!(s.deadline(&TIMEOUTS), Some(t2 + TIMEOUTS.head));
    let (mut s, t0) = session();
    send_request(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        RetryPolicy::default(),
        t0,
    );
    assert!(matches!(
        s.upstream_input(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", t0),
        UpstreamStep::Response { .. }
    ));
    assert_eq!(
        s.check_timeout(t0 + TIMEOUTS.idle, &TIMEOUTS),
        Some(TimeoutStep::CloseIdle)
    );

    let (mut s, t0) = session();
    send_request(&mut s, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RETRY_ALL, t0);
    assert_eq!(
        s.check_timeout(t0 + TIMEOUTS.response, &TIMEOUTS),
        Some(TimeoutStep::Reply(504))
    );
}

#[test]
fn server_bytes_without_a_request_are_unexpected() {
    let (mut s, now) = session();
    assert_eq!(
        s.upstream_input(b"HTTP/1.1 200 OK\r\n\r\n", now),
        UpstreamStep::Unexpected
    );
    assert_eq!(s.retry_facts(), None);
    let _ = Method::Get;
}

#[test]
fn a_resend_after_a_stale_pooled_connection_is_not_counted_as_an_attempt() {
    let (mut s, now) = session();
    let policy = RetryPolicy {
        attempts: 2,
        ..RetryPolicy::default()
    };
    send_request(&mut s, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", policy, now);
    // The pooled connection was closed by the server: sent again, fresh.
    s.attempt_on_stale_connection();
    s.attempt_started(policy, now);
    assert_eq!(s.retry_facts().map(|f| f.attempts_made), Some(1));
    // That connect fails: one more attempt (2 in all) is still allowed.
    let connect = UpstreamFailure::ConnectFailed;
    assert_eq!(
        s.upstream_failed(connect),
        UpstreamStep::Retry { failure: connect }
    );
    s.attempt_started(policy, now);
    assert_eq!(
        s.upstream_failed(connect),
        UpstreamStep::Reply {
            failure: connect,
            status: 502
        }
    );
}
