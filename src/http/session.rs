//! One client connection's request/response sequencing, sans-IO: events in
//! (bytes read, closes, failures, the time), steps out (what to forward,
//! write or close), so the socket shell stays thin.
//!
//! Owns: the order of an exchange (head, request body, response head,
//! response body, then the next request or close), keep-alive per version and
//! `Connection`, pipelining (bytes of the next request stay in the shell's
//! buffer until the current response is complete: one request in flight
//! upstream at a time, so answers go out in order), the switch to a tunnel
//! after `101`, retry decisions (with [`super::retry`]), and the head, idle
//! and response-wait deadlines.
//!
//! Does not own: buffers, sockets, server choice, the upstream pool, or
//! writing heads (the shell calls [`super::editor`] with the head a step
//! hands it). Stalls inside bodies are the shell's relay idle timeout.
//!
//! Driving it (the shell):
//! 1. [`Session::client_input`] with all unconsumed client bytes; on
//!    [`ClientStep::Request`], drop `consumed` bytes, route, write the edited
//!    head upstream, call [`Session::attempt_started`]; on
//!    [`ClientStep::Body`], forward and drop `forward` bytes.
//! 2. [`Session::upstream_input`] with all unconsumed server bytes; on
//!    [`UpstreamStep::Response`], write the edited head to the client, then
//!    feed the rest again for [`UpstreamStep::Body`] (or
//!    [`UpstreamStep::Payload`]: a chunked response to an HTTP/1.0
//!    client goes without its framing); an [`ExchangeEnd`]
//!    says whether the server connection goes back to the pool and whether
//!    the client connection closes; otherwise feed the buffered client bytes
//!    again (the next pipelined request).
//! 3. Failures ([`Session::upstream_failed`], [`Session::upstream_eof`],
//!    [`Session::check_timeout`]) answer retry, reply with a status, or abort.

use std::time::{Duration, Instant};

use super::body::BodyDecoder;
use super::framing::BodyFraming;
use super::head::{
    parse_request, parse_response, Answering, HeadLimits, Method, Parsed, Reject, RequestHead,
    ResponseHead, Version,
};
use super::retry::{should_retry, RetryFacts, RetryPolicy, UpstreamFailure};
pub use super::steps::{ClientStep, ExchangeEnd, TimeoutStep, UpstreamStep};

/// The time limits the session enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Listener `timeouts.read`: a whole request head, from its first byte
    /// (from the accept for the first request): 408 after.
    pub head: Duration,
    /// Listener `timeouts.idle`: a kept-alive connection with no new
    /// request is closed silently after.
    pub idle: Duration,
    /// Backend `timeouts.read`: the response head after the request was
    /// sent: 504 after.
    pub response: Duration,
}

#[derive(Debug)]
enum Response {
    /// Request sent (or being sent); waiting for the head since then.
    Awaiting {
        since: Instant,
    },
    Body(BodyDecoder),
    /// A chunked body for an HTTP/1.0 client, which cannot read chunked
    /// (RFC 9112 section 6.1): its payload only, ended by the close.
    Dechunk(BodyDecoder),
}

#[derive(Debug)]
pub(super) struct Exchange {
    method: Method,
    client_version: Version,
    client_keep_alive: bool,
    upgrade: bool,
    request_body: BodyDecoder,
    body_held_whole: bool,
    response: Response,
    response_started: bool,
    /// The server will keep its connection after this response.
    upstream_keep_alive: bool,
    client_keep_alive_now: bool,
    attempts: u32,
    policy: RetryPolicy,
    client_eof: bool,
}

#[derive(Debug)]
enum State {
    ReadingHead {
        idle_since: Instant,
        head_since: Option<Instant>,
    },
    Exchange(Box<Exchange>),
    Tunnel,
    Closed,
}

/// Sequencing state of one client connection.
#[derive(Debug)]
pub struct Session {
    limits: HeadLimits,
    state: State,
    exchanges: u64,
}

impl Session {
    /// A new client connection accepted at `now`.
    pub fn new(limits: HeadLimits, now: Instant) -> Self {
        Session {
            limits,
            state: State::ReadingHead {
                idle_since: now,
                head_since: Some(now),
            },
            exchanges: 0,
        }
    }

    /// Moves to `next`; an exchange's box goes back to this thread's spares.
    fn set_state(&mut self, next: State) {
        if let State::Exchange(x) = std::mem::replace(&mut self.state, next) {
            super::spare::unboxed(x);
        }
    }

    /// Requests started on this connection.
    pub fn exchanges(&self) -> u64 {
        self.exchanges
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub fn is_tunnel(&self) -> bool {
        matches!(self.state, State::Tunnel)
    }

    /// Waiting for (the rest of) a request head or body: the shell should
    /// read. Otherwise it may read ahead (pipelining) within its buffer.
    pub fn wants_client_input(&self) -> bool {
        match &self.state {
            State::ReadingHead { .. } | State::Tunnel => true,
            State::Exchange(x) => !x.request_body.is_done(),
            State::Closed => false,
        }
    }

    /// Facts for a retry decision the shell makes itself.
    pub fn retry_facts(&self) -> Option<RetryFacts> {
        match &self.state {
            State::Exchange(x) => Some(facts(x)),
            _ => None,
        }
    }

    /// Feeds every unconsumed client byte.
    pub fn client_input(&mut self, input: &[u8], now: Instant) -> ClientStep {
        match &mut self.state {
            State::Closed => ClientStep::Close,
            State::Tunnel => ClientStep::Tunnel,
            State::ReadingHead { head_since, .. } => {
                if input.is_empty() {
                    return ClientStep::NeedMore;
                }
                head_since.get_or_insert(now);
                match parse_request(input, &self.limits) {
                    Ok(Parsed::Incomplete) => ClientStep::NeedMore,
                    Err(reject) => {
                        self.set_state(State::Closed);
                        ClientStep::Reject(reject)
                    }
                    Ok(Parsed::Complete { head, consumed }) => {
                        self.start(head, consumed, input, now)
                    }
                }
            }
            State::Exchange(x) if !x.request_body.is_done() => match x.request_body.feed(input) {
                Ok(p) => ClientStep::Body {
                    forward: p.consumed,
                    done: p.done,
                },
                Err(_) if !x.response_started => {
                    self.set_state(State::Closed);
                    ClientStep::Reject(Reject::bad_request("bad request body"))
                }
                Err(_) => {
                    self.set_state(State::Closed);
                    ClientStep::Close
                }
            },
            State::Exchange(_) => ClientStep::Hold,
        }
    }

    fn start(
        &mut self,
        head: RequestHead,
        consumed: usize,
        input: &[u8],
        now: Instant,
    ) -> ClientStep {
        let max_trailers = self.limits.max_head_bytes;
        let request_body = BodyDecoder::new(head.framing, max_trailers);
        // Is the whole body already here? (Run a copy of the decoder.)
        let rest = input.get(consumed..).unwrap_or_default();
        let whole_body = match head.framing {
            BodyFraming::None => Some(0),
            _ => match request_body.clone().feed(rest) {
                Ok(p) if p.done => Some(p.consumed),
                _ => None,
            },
        };
        self.exchanges += 1;
        self.set_state(State::Exchange(super::spare::boxed(Exchange {
            method: head.method,
            client_version: head.version,
            client_keep_alive: head.keep_alive,
            upgrade: head.upgrade,
            request_body,
            body_held_whole: whole_body.is_some(),
            response: Response::Awaiting { since: now },
            response_started: false,
            upstream_keep_alive: false,
            client_keep_alive_now: false,
            attempts: 0,
            policy: RetryPolicy::default(),
            client_eof: false,
        })));
        ClientStep::Request {
            consumed,
            head,
            whole_body,
        }
    }

    /// The shell starts an attempt (connecting or reusing a pooled
    /// connection) under the backend's retry `policy`; the response wait is
    /// timed from `now`.
    pub fn attempt_started(&mut self, policy: RetryPolicy, now: Instant) {
        if let State::Exchange(x) = &mut self.state {
            x.attempts += 1;
            x.policy = policy;
            x.response = Response::Awaiting { since: now };
        }
    }

    /// The attempt went to a pooled connection the server had already
    /// closed: the shell sends the request again on a fresh one, which
    /// does not count against `attempts`.
    pub fn attempt_on_stale_connection(&mut self) {
        if let State::Exchange(x) = &mut self.state {
            x.attempts = x.attempts.saturating_sub(1);
        }
    }

    /// The client closed its sending side (or the connection).
    pub fn client_eof(&mut self) -> ClientStep {
        match &mut self.state {
            State::Tunnel => ClientStep::Tunnel,
            State::Exchange(x) if x.request_body.is_done() => {
                // A request fully sent then a half-close: answer it, then close.
                x.client_eof = true;
                ClientStep::Hold
            }
            _ => {
                self.set_state(State::Closed);
                ClientStep::Close
            }
        }
    }

    /// Feeds every unconsumed server byte.
    pub fn upstream_input(&mut self, input: &[u8], now: Instant) -> UpstreamStep {
        let State::Exchange(x) = &mut self.state else {
            return UpstreamStep::Unexpected;
        };
        match &mut x.response {
            Response::Awaiting { .. } => {
                let answering = Answering {
                    method: x.method,
                    upgrade_requested: x.upgrade,
                };
                match parse_response(input, &self.limits, answering) {
                    Ok(Parsed::Incomplete) => UpstreamStep::NeedMore,
                    Err(_) => self.upstream_failed(UpstreamFailure::BadResponse),
                    Ok(Parsed::Complete { head, consumed }) => {
                        self.response_head(head, consumed, input, now)
                    }
                }
            }
            Response::Body(decoder) => match decoder.feed(input) {
                Ok(p) => {
                    let end = p.done.then(|| self.finish(now));
                    UpstreamStep::Body {
                        forward: p.consumed,
                        end,
                    }
                }
                Err(_) => {
                    self.set_state(State::Closed);
                    UpstreamStep::Abort
                }
            },
            Response::Dechunk(decoder) => match decoder.next_piece(input) {
                Ok(p) => {
                    let end = p.done.then(|| self.finish(now));
                    UpstreamStep::Payload {
                        consumed: p.consumed,
                        data: p.data,
                        end,
                    }
                }
                Err(_) => {
                    self.set_state(State::Closed);
                    UpstreamStep::Abort
                }
            },
        }
    }

    /// A response head, `consumed` bytes of `input`.
    fn response_head(
        &mut self,
        head: ResponseHead,
        consumed: usize,
        input: &[u8],
        now: Instant,
    ) -> UpstreamStep {
        let State::Exchange(x) = &mut self.state else {
            return UpstreamStep::Unexpected;
        };
        if head.is_informational() {
            let forward = x.client_version == Version::Http11;
            x.response_started |= forward;
            return UpstreamStep::Informational {
                consumed,
                head,
                forward,
            };
        }
        let failure = UpstreamFailure::Status(head.status);
        if x.policy.retries_status(head.status) && should_retry(&x.policy, failure, &facts(x)) {
            return UpstreamStep::Retry { failure };
        }
        let decoder = BodyDecoder::new(head.framing, self.limits.max_head_bytes);
        // Body bytes that came with the head are checked first: while the
        // whole response is still here, a bad one is a 502, not a close.
        if bad_body(&decoder, input.get(consumed..).unwrap_or_default()) {
            return self.upstream_failed(UpstreamFailure::BadBody);
        }
        x.response_started = true;
        if head.framing == BodyFraming::Tunnel {
            self.set_state(State::Tunnel);
            return UpstreamStep::Tunnel { consumed, head };
        }
        let dechunk = head.framing == BodyFraming::Chunked && x.client_version == Version::Http10;
        let client_keep_alive = x.client_keep_alive
            && !x.client_eof
            && x.request_body.is_done()
            && head.framing != BodyFraming::CloseDelimited
            && !dechunk;
        x.client_keep_alive_now = client_keep_alive;
        x.upstream_keep_alive = head.keep_alive;
        let done = decoder.is_done();
        x.response = match dechunk {
            true => Response::Dechunk(decoder),
            false => Response::Body(decoder),
        };
        let end = done.then(|| self.finish(now));
        UpstreamStep::Response {
            consumed,
            head,
            client_keep_alive,
            end,
        }
    }

    /// The response is complete: end the exchange.
    fn finish(&mut self, now: Instant) -> ExchangeEnd {
        let State::Exchange(x) = &self.state else {
            return ExchangeEnd {
                upstream_reusable: false,
                close_client: true,
            };
        };
        let end = ExchangeEnd {
            upstream_reusable: x.upstream_keep_alive && x.request_body.is_done(),
            close_client: !x.client_keep_alive_now,
        };
        self.set_state(if end.close_client {
            State::Closed
        } else {
            State::ReadingHead {
                idle_since: now,
                head_since: None,
            }
        });
        end
    }

    /// The server closed its side. Ends a close-delimited body; before a
    /// whole response head it is a reset (retried or answered).
    pub fn upstream_eof(&mut self, now: Instant) -> UpstreamStep {
        let State::Exchange(x) = &mut self.state else {
            return if self.is_tunnel() {
                UpstreamStep::Abort
            } else {
                UpstreamStep::Unexpected
            };
        };
        match &mut x.response {
            Response::Awaiting { .. } => self.upstream_failed(UpstreamFailure::Reset),
            Response::Body(decoder) | Response::Dechunk(decoder) => match decoder.at_eof() {
                Ok(()) => {
                    x.upstream_keep_alive = false;
                    UpstreamStep::Body {
                        forward: 0,
                        end: Some(self.finish(now)),
                    }
                }
                Err(_) => {
                    self.set_state(State::Closed);
                    UpstreamStep::Abort
                }
            },
        }
    }

    /// An attempt failed (connect failure, reset, timeout, bad response):
    /// retry, reply with a status, or abort.
    pub fn upstream_failed(&mut self, failure: UpstreamFailure) -> UpstreamStep {
        let State::Exchange(x) = &mut self.state else {
            return UpstreamStep::Unexpected;
        };
        if should_retry(&x.policy, failure, &facts(x)) {
            return UpstreamStep::Retry { failure };
        }
        if x.response_started {
            self.set_state(State::Closed);
            UpstreamStep::Abort
        } else {
            // The exchange stays open for the shell's `local_reply`.
            UpstreamStep::Reply {
                failure,
                status: failure.final_status(),
            }
        }
    }

    /// nvelox answers the request in flight itself (404, 429, 502, 503,
    /// 504, 413 ...). `input`: the unconsumed client bytes. The connection
    /// stays open only when the stream is still in sync: no response byte
    /// reached the client, the whole request was read (its body already
    /// forwarded, or complete in `input`), and the client is an HTTP/1.1
    /// one that wants keep-alive and did not half-close. `Some(n)`: drop
    /// the first `n` bytes of `input` (the rest of that body), then feed
    /// what follows as the next request; `None`: close after the reply.
    /// After a [`ClientStep::Reject`] or a 408 it is always `None`.
    pub fn local_reply(&mut self, input: &[u8], now: Instant) -> Option<usize> {
        let keep = match &self.state {
            State::Exchange(x) => {
                let in_sync = !x.response_started
                    && x.client_keep_alive
                    && !x.client_eof
                    && x.client_version == Version::Http11;
                if !in_sync {
                    None
                } else if x.request_body.is_done() {
                    Some(0)
                } else {
                    match x.request_body.clone().feed(input) {
                        Ok(p) if p.done => Some(p.consumed),
                        _ => None,
                    }
                }
            }
            _ => None,
        };
        self.set_state(match keep {
            Some(_) => State::ReadingHead {
                idle_since: now,
                head_since: None,
            },
            None => State::Closed,
        });
        keep
    }

    /// When [`check_timeout`](Self::check_timeout) should next be called.
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        match &self.state {
            State::ReadingHead {
                head_since: Some(t),
                ..
            } => Some(*t + timeouts.head),
            State::ReadingHead { idle_since, .. } => Some(*idle_since + timeouts.idle),
            State::Exchange(x) => match x.response {
                Response::Awaiting { since } => Some(since + timeouts.response),
                Response::Body(_) | Response::Dechunk(_) => None,
            },
            State::Tunnel | State::Closed => None,
        }
    }

    /// Acts on a passed deadline, if any.
    pub fn check_timeout(&mut self, now: Instant, timeouts: &Timeouts) -> Option<TimeoutStep> {
        let due = self.deadline(timeouts)?;
        if now < due {
            return None;
        }
        let step = match &self.state {
            State::ReadingHead {
                head_since: Some(_),
                ..
            } => TimeoutStep::Reply(408),
            State::ReadingHead { .. } => TimeoutStep::CloseIdle,
            // The exchange stays open for the shell's `local_reply`.
            State::Exchange(x) if !x.response_started => return Some(TimeoutStep::Reply(504)),
            _ => TimeoutStep::CloseIdle,
        };
        self.set_state(State::Closed);
        Some(step)
    }
}

/// Whether the body bytes in `input` (read with the head) are malformed.
fn bad_body(decoder: &BodyDecoder, mut input: &[u8]) -> bool {
    if !matches!(decoder, BodyDecoder::Chunked(_)) {
        return false;
    }
    let mut d = decoder.clone();
    while !input.is_empty() && !d.is_done() {
        match d.feed(input) {
            Ok(p) if p.consumed > 0 => input = &input[p.consumed..],
            Ok(_) => return false,
            Err(_) => return true,
        }
    }
    false
}

fn facts(x: &Exchange) -> RetryFacts {
    RetryFacts {
        attempts_made: x.attempts.max(1),
        idempotent: x.method.is_idempotent(),
        body_held_whole: x.body_held_whole,
        response_started: x.response_started,
    }
}
