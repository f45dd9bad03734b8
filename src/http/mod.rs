//! HTTP/1.0 and 1.1 proxying core, sans-IO: bytes and `Instant`s in,
//! decisions and bytes to write out.
//!
//! Owns the wire rules of `protocol: http` listeners:
//! - [`head`]: request and response heads parsed with `httparse` under the
//!   caller's size and count limits, into owned compact heads, with every
//!   strict refusal (request smuggling patterns, over-long targets, too many
//!   headers) mapped to the status the client gets;
//! - [`framing`]: the body-framing decision (length, chunked, none,
//!   close-delimited, tunnel), made once from a head, as data, and the
//!   `Connection` semantics (keep-alive, upgrade);
//! - [`body`]: the streaming chunked decoder and the length counter, which
//!   say where a message ends without ever buffering it;
//! - [`editor`]: the only place heads are rewritten for the other side
//!   (hop-by-hop removal, `X-Forwarded-*`, configured header edits, the
//!   backend-server header);
//! - [`reply`]: responses nvelox itself generates (400, 408, ..., 504);
//! - [`redirect`]: route redirects (the `Location` template, the reply);
//! - [`session`]: the per-client-connection sequencing state machine
//!   (head, body, response, keep-alive, pipelining, tunnel, timeouts),
//!   and `steps`, what it tells the shell to do;
//! - [`retry`]: when a failed attempt may be tried again;
//! - `spare`: the vectors of dropped heads, reused by the next heads
//!   parsed on the same thread.
//!
//! It does not own sockets, buffers, timers, routing, balancing or the
//! upstream pool: the shell (the event-loop side) feeds bytes it read, writes
//! what it is told to, and picks servers.
pub mod body;
pub mod editor;
pub mod framing;
pub mod head;
pub mod redirect;
pub mod reply;
pub mod retry;
pub mod session;
mod spare;
mod steps;

#[cfg(test)]
mod body_tests;
#[cfg(test)]
mod editor_tests;
#[cfg(test)]
mod fuzz_seed_tests;
#[cfg(test)]
mod head_tests;
#[cfg(test)]
mod local_reply_tests;
#[cfg(test)]
mod session_body_tests;
#[cfg(test)]
mod session_failure_tests;
#[cfg(test)]
mod session_tests;

pub use body::{BodyDecoder, BodyError, ChunkedDecoder, Piece, Progress};
pub use editor::{
    write_request_head, write_response_head, EditOptions, HeaderEdits, RequestContext,
    ResponseContext,
};
pub use framing::BodyFraming;
pub use head::{
    parse_request, parse_response, HeadLimits, Method, Parsed, Reject, RequestHead, ResponseHead,
    Version,
};
pub use reply::error_response;
pub use retry::{should_retry, RetryFacts, RetryPolicy, UpstreamFailure};
pub use session::{ClientStep, ExchangeEnd, Session, TimeoutStep, Timeouts, UpstreamStep};
