//! Tests of the per-connection sequencing state machine, driven like the
//! shell drives it, with a fake clock.

use std::time::{Duration, Instant};

use super::head::HeadLimits;
use super::retry::{RetryPolicy, UpstreamFailure};
use super::session::*;

pub(super) const TIMEOUTS: Timeouts = Timeouts {
    head: Duration::from_secs(30),
    idle: Duration::from_secs(60),
    response: Duration::from_secs(10),
};

pub(super) const RETRY_ALL: RetryPolicy = RetryPolicy {
    attempts: 3,
    on_reset: true,
    on_502: true,
    on_503: true,
    on_504: true,
};

pub(super) fn session() -> (Session, Instant) {
    let now = Instant::now();
    (Session::new(HeadLimits::default(), now), now)
}

/// Feeds a request, expects a head, starts an attempt; returns the bytes
/// left in the client buffer.
pub(super) fn send_request(
    s: &mut Session,
    buf: &[u8],
    policy: RetryPolicy,
    now: Instant,
) -> Vec<u8> {
    let ClientStep::Request { consumed, .. } = s.client_input(buf, now) else {
        panic!("no request");
    };
    s.attempt_started(policy, now);
    buf[consumed..].to_vec()
}

/// A new session that sent `request` (with `policy`) and was fed
/// `response`: the session, its clock and the step it took.
pub(super) fn answered(
    request: &[u8],
    policy: RetryPolicy,
    response: &[u8],
) -> (Session, Instant, UpstreamStep) {
    let (mut s, now) = session();
    send_request(&mut s, request, policy, now);
    let step = s.upstream_input(response, now);
    (s, now, step)
}

#[test]
fn keep_alive_get_then_pipelined_second_request() {
    let (mut s, now) = session();
    let buf = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    let ClientStep::Request {
        consumed,
        head,
        whole_body,
    } = s.client_input(buf, now)
    else {
        panic!()
    };
    assert_eq!(head.target(), b"/1");
    assert_eq!(whole_body, Some(0));
    s.attempt_started(RetryPolicy::default(), now);
    let rest = &buf[consumed..];
    // The next request waits until the response is complete.
    assert_eq!(s.client_input(rest, now), ClientStep::Hold);
    assert!(!s.wants_client_input());
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let UpstreamStep::Response {
        consumed,
        client_keep_alive,
        end,
        ..
    } = s.upstream_input(resp, now)
    else {
        panic!()
    };
    assert!(client_keep_alive && end.is_none());
    assert_eq!(
        s.upstream_input(&resp[consumed..], now),
        UpstreamStep::Body {
            forward: 2,
            end: Some(ExchangeEnd {
                upstream_reusable: true,
                close_client: false
            })
        }
    );
    let ClientStep::Request { head, .. } = s.client_input(rest, now) else {
        panic!()
    };
    assert_eq!(head.target(), b"/2");
    assert_eq!(s.exchanges(), 2);
}

#[test]
fn content_length_body_streams_and_may_be_held_whole() {
    let (mut s, now) = session();
    let buf = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel";
    let ClientStep::Request {
        consumed,
        whole_body,
        ..
    } = s.client_input(buf, now)
    else {
        panic!()
    };
    assert_eq!(whole_body, None, "only 3 of 5 bytes are here");
    assert!(s.wants_client_input());
    assert_eq!(
        s.client_input(&buf[consumed..], now),
        ClientStep::Body {
            forward: 3,
            done: false
        }
    );
    assert_eq!(
        s.client_input(b"loGET", now),
        ClientStep::Body {
            forward: 2,
            done: true
        }
    );
    assert_eq!(s.client_input(b"GET", now), ClientStep::Hold);
    assert!(!s.retry_facts().unwrap().body_held_whole);

    let (mut s, now) = session();
    let buf =
        b"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    let ClientStep::Request {
        consumed,
        whole_body,
        ..
    } = s.client_input(buf, now)
    else {
        panic!()
    };
    assert_eq!(whole_body, Some(buf.len() - consumed));
    assert!(s.retry_facts().unwrap().body_held_whole);
    assert_eq!(
        s.client_input(&buf[consumed..], now),
        ClientStep::Body {
            forward: buf.len() - consumed,
            done: true
        }
    );
}

#[test]
fn close_delimited_and_connection_close_end_the_client_connection() {
    let (mut s, now) = session();
    send_request(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        RetryPolicy::default(),
        now,
    );
    let UpstreamStep::Response {
        consumed,
        client_keep_alive,
        ..
    } = s.upstream_input(b"HTTP/1.0 200 OK\r\n\r\nab", now)
    else {
        panic!()
    };
    assert_eq!(consumed, 19);
    assert!(!client_keep_alive);
    assert_eq!(
        s.upstream_input(b"ab", now),
        UpstreamStep::Body {
            forward: 2,
            end: None
        }
    );
    assert_eq!(
        s.upstream_eof(now),
        UpstreamStep::Body {
            forward: 0,
            end: Some(ExchangeEnd {
                upstream_reusable: false,
                close_client: true
            })
        }
    );
    assert!(s.is_closed());

    let (_, _, step) = answered(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        RetryPolicy::default(),
        b"HTTP/1.1 204 No Content\r\n\r\n",
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
            upstream_reusable: true,
            close_client: true
        }
    );

    let (_, _, step) = answered(
        b"GET / HTTP/1.0\r\n\r\n",
        RetryPolicy::default(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        matches!(
            step,
            UpstreamStep::Response {
                client_keep_alive: false,
                ..
            }
        ),
        "{step:?}"
    );
    let (_, _, step) = answered(
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        RetryPolicy::default(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
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
}

#[test]
fn head_response_has_no_body_and_chunked_response_streams() {
    let (mut s, now, step) = answered(
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        RetryPolicy::default(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
    );
    assert!(
        matches!(
            step,
            UpstreamStep::Response {
                end: Some(ExchangeEnd {
                    close_client: false,
                    ..
                }),
                ..
            }
        ),
        "{step:?}"
    );

    send_request(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        RetryPolicy::default(),
        now,
    );
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let UpstreamStep::Response {
        consumed,
        end: None,
        ..
    } = s.upstream_input(resp, now)
    else {
        panic!()
    };
    let mut rest = &resp[consumed..];
    let mut forwarded = 0;
    // One byte at a time, as a slow server would send it.
    loop {
        let (one, more) = rest.split_at(1);
        match s.upstream_input(one, now) {
            UpstreamStep::Body { forward, end } => {
                forwarded += forward;
                if let Some(end) = end {
                    assert!(end.upstream_reusable && !end.close_client);
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
        rest = more;
    }
    assert_eq!(forwarded, resp.len() - consumed);
}

#[test]
fn informational_responses_are_forwarded_to_http11_only() {
    let (_, _, step) = answered(
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        RetryPolicy::default(),
        b"HTTP/1.1 100 Continue\r\n\r\n",
    );
    assert!(
        matches!(
            step,
            UpstreamStep::Informational {
                consumed: 25,
                forward: true,
                ..
            }
        ),
        "{step:?}"
    );

    let (mut s, now, step) = answered(
        b"GET / HTTP/1.0\r\n\r\n",
        RetryPolicy::default(),
        b"HTTP/1.1 103 Early Hints\r\n\r\n",
    );
    assert!(
        matches!(step, UpstreamStep::Informational { forward: false, .. }),
        "{step:?}"
    );
    assert!(matches!(
        s.upstream_input(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", now),
        UpstreamStep::Response { .. }
    ));
}

#[test]
fn upgrade_turns_into_a_tunnel() {
    let (mut s, now, step) = answered(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", RetryPolicy::default(), b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nFRAME");
    assert!(
        matches!(step, UpstreamStep::Tunnel { consumed: 77, .. }),
        "{step:?}"
    );
    assert!(s.is_tunnel());
    assert_eq!(s.client_input(b"anything", now), ClientStep::Tunnel);
    assert_eq!(s.deadline(&TIMEOUTS), None);
    // 101 without an upgrade request is a bad response.
    let (_, _, step) = answered(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        RetryPolicy::default(),
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    );
    assert_eq!(
        step,
        UpstreamStep::Reply {
            failure: UpstreamFailure::BadResponse,
            status: 502
        }
    );
}

#[test]
fn bad_requests_are_rejected_and_close() {
    let (mut s, now) = session();
    let step = s.client_input(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        now,
    );
    assert!(matches!(step, ClientStep::Reject(r) if r.status == 400));
    assert!(s.is_closed());
    assert_eq!(s.client_input(b"GET", now), ClientStep::Close);
    // A bad chunked body before any response: 400.
    let (mut s, now) = session();
    let buf = send_request(
        &mut s,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        RetryPolicy::default(),
        now,
    );
    assert!(matches!(s.client_input(&buf, now), ClientStep::Reject(r) if r.status == 400));
}

#[test]
fn an_ended_exchange_lends_its_box_to_the_next_one_within_bounds() {
    // On a new thread: its spares start empty.
    std::thread::spawn(|| {
        use super::spare::kept_exchanges;
        let (mut s, now) = session();
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        for round in 0..3 {
            send_request(&mut s, get, RETRY_ALL, now);
            assert_eq!(
                kept_exchanges(),
                0,
                "round {round}: the spare box is in use"
            );
            let step = s.upstream_input(ok, now);
            assert!(
                matches!(step, UpstreamStep::Response { end: Some(_), .. }),
                "{step:?}"
            );
            assert_eq!(kept_exchanges(), 1, "round {round}: given back");
        }
        // As many as were in flight at once, up to a bound.
        let mut busy: Vec<Session> = (0..200).map(|_| session().0).collect();
        for s in &mut busy {
            send_request(s, get, RETRY_ALL, now);
        }
        for s in &mut busy {
            s.upstream_failed(UpstreamFailure::ConnectFailed);
            assert_eq!(s.local_reply(b"", now), Some(0));
        }
        assert_eq!(kept_exchanges(), 128);
    })
    .join()
    .unwrap();
}
