//! What [`Session`] tells its shell to do: the steps it answers client
//! bytes, server bytes and deadlines with (see `session.rs` for the order
//! of calls).

use std::ops::Range;

use super::head::{Reject, RequestHead, ResponseHead};
use super::retry::UpstreamFailure;
#[cfg(doc)]
use super::session::Session;

/// What to do with client bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// No whole head yet: read more (the input stays buffered).
    NeedMore,
    /// A request: drop `consumed` bytes, route it, send its edited head.
    /// `whole_body` is `Some(n)` when the whole body is the next `n` bytes
    /// already in the input: keep those bytes until the response head
    /// comes and the request may be retried.
    Request {
        consumed: usize,
        head: RequestHead,
        whole_body: Option<usize>,
    },
    /// Forward and drop the first `forward` bytes (request body, chunked
    /// framing included); `done`: that was its end. `forward` may be 0 with
    /// `done` false: read more.
    Body { forward: usize, done: bool },
    /// Bytes of a pipelined request: keep them buffered, feed them again
    /// after the current exchange ends.
    Hold,
    /// Write `error_response(reject.status)` to the client, then close it
    /// (and drop any server connection of this exchange, never pooled).
    Reject(Reject),
    /// Relay bytes as they are (after a `101`).
    Tunnel,
    /// Close the client connection (and any upstream one) now.
    Close,
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangeEnd {
    /// The server connection may go back to the keep-alive pool.
    pub upstream_reusable: bool,
    /// Close the client connection once the response is written; else feed
    /// its buffered bytes to [`Session::client_input`] again.
    pub close_client: bool,
}

/// What to do with server bytes or a server failure.
#[derive(Debug, PartialEq, Eq)]
pub enum UpstreamStep {
    /// No whole response head yet: read more.
    NeedMore,
    /// A 1xx (not 101): drop `consumed` bytes; if `forward`, write its
    /// edited head to the client (never to an HTTP/1.0 client).
    Informational {
        consumed: usize,
        head: ResponseHead,
        forward: bool,
    },
    /// The response head: drop `consumed` bytes and write its edited head
    /// (with `client_keep_alive` in the context) to the client. `end` is set
    /// when there is no body.
    Response {
        consumed: usize,
        head: ResponseHead,
        client_keep_alive: bool,
        end: Option<ExchangeEnd>,
    },
    /// Forward and drop `forward` bytes of response body to the client.
    Body {
        forward: usize,
        end: Option<ExchangeEnd>,
    },
    /// A chunked response to an HTTP/1.0 client, which cannot read
    /// chunked (RFC 9112 section 6.1), goes without its framing (the
    /// edited head has no `Transfer-Encoding` and says `Connection:
    /// close`; trailers are dropped): drop `consumed` bytes, of which
    /// `data` (a range of the input) is payload for the client. `consumed`
    /// may be 0 without `end`: read more.
    Payload {
        consumed: usize,
        data: Range<usize>,
        end: Option<ExchangeEnd>,
    },
    /// `101`: write the edited head, then relay both ways untouched
    /// (the bytes after `consumed` are already tunnel data).
    Tunnel { consumed: usize, head: ResponseHead },
    /// Drop this server connection and try another server (resend the head
    /// and the held body, then [`Session::attempt_started`]).
    Retry { failure: UpstreamFailure },
    /// Give up: write `error_response(status)` to the client; then
    /// [`Session::local_reply`] says whether the connection stays open.
    Reply {
        failure: UpstreamFailure,
        status: u16,
    },
    /// Give up after response bytes reached the client: close both.
    Abort,
    /// Server bytes while no request is outstanding: close that connection.
    Unexpected,
}

/// A deadline that passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutStep {
    /// Kept-alive connection idle too long: close without a reply.
    CloseIdle,
    /// Write `error_response(status)`: 408 closes; after a 504
    /// [`Session::local_reply`] says whether the connection stays open.
    Reply(u16),
}
