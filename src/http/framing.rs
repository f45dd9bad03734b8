//! Body framing and connection semantics, decided once from a head, as data
//! (the decisions of hyper's `role.rs`, written as our own functions).
//!
//! Owns: reading `Content-Length`, `Transfer-Encoding` and `Connection`
//! (strictly: every ambiguity that two parsers could read differently is a
//! refusal), and turning them into a [`BodyFraming`]. Does not own parsing the
//! head itself ([`super::head`]) nor counting body bytes ([`super::body`]).
//!
//! Rules, after RFC 9112 section 6 and HAProxy's strict parser:
//! - Several `Content-Length` values (in one list or in repeated headers) are
//!   accepted only when they are all identical, and are then forwarded as one
//!   header (HAProxy's rule, allowed by RFC 9110 section 8.6); differing,
//!   empty, signed or non-decimal values, or more than 19 digits, are a 400.
//! - `Transfer-Encoding` with `Content-Length` in a request: 400. In a request
//!   of HTTP/1.0: 400. `chunked` not last or given twice: 400. An empty list
//!   element: 400. Any other coding (including `gzip, chunked`): 501, since
//!   nvelox forwards only plain chunked framing it fully understands.
//! - In a response, `Transfer-Encoding` wins over `Content-Length` (which is
//!   then dropped when forwarding), and a final coding other than `chunked`
//!   means the body ends at close.

use super::head::{Method, Reject};

/// How a message body is delimited, decided once from its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all (a request without length or coding, HEAD and
    /// 1xx/204/304 responses).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding; ends with the last chunk and trailers.
    Chunked,
    /// A response read until the server closes (never reusable).
    CloseDelimited,
    /// A `101 Switching Protocols`: after the head, bytes flow both ways
    /// untouched until either side closes.
    Tunnel,
}

/// What the `Transfer-Encoding` headers of a message say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TransferCoding {
    /// No `Transfer-Encoding` header.
    #[default]
    Absent,
    /// Exactly `chunked` (case-insensitive, possibly with spaces).
    Chunked,
    /// `chunked` last, after other codings (`gzip, chunked`).
    ChunkedAfterOthers,
    /// A final coding other than `chunked`.
    NotChunked,
}

/// Tokens of the `Connection` headers that matter for sequencing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConnectionFlags {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
}

/// Facts gathered from the framing-related headers of one head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FramingHeaders {
    pub content_length: Option<u64>,
    pub transfer_coding: TransferCoding,
    pub connection: ConnectionFlags,
    /// An `Upgrade` header offers a protocol other than `h2c` (acted upon
    /// only with `Connection: upgrade`). `h2c` is never offered to a server
    /// (RFC 9113 section 3.1 deprecates it; its tunnel would bypass
    /// per-request routing, edits and rate limits).
    pub upgrade_header: bool,
}

/// Largest number of digits a `Content-Length` may have (fits in `u64`).
const MAX_LENGTH_DIGITS: usize = 19;

/// Splits a header value into its comma-separated elements, trimmed of
/// optional whitespace (empty elements included, the caller judges them).
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

/// `value` without leading and trailing spaces and tabs.
pub fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Reads the framing-related headers of a head. `bad` is the refusal used
/// for an invalid value (400 for requests, 502 for responses).
pub fn gather<'a>(
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    bad: fn(&'static str) -> Reject,
) -> Result<FramingHeaders, Reject> {
    let mut out = FramingHeaders::default();
    let mut chunked_seen = false;
    let mut te_seen = false;
    let mut te_last_chunked = false;
    let mut te_other = false;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case(b"content-length") {
            for element in list_elements(value) {
                let n = parse_length(element).ok_or_else(|| bad("invalid Content-Length"))?;
                match out.content_length {
                    Some(previous) if previous != n => {
                        return Err(bad("differing Content-Lengths"))
                    }
                    _ => out.content_length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            for element in list_elements(value) {
                if element.is_empty() {
                    return Err(bad("empty Transfer-Encoding element"));
                }
                if chunked_seen {
                    // Anything after `chunked`, including a second `chunked`.
                    return Err(bad("transfer coding after chunked"));
                }
                // A coding may carry parameters (`gzip;q=1`): its name is
                // what precedes them.
                let coding = trim_ows(element.split(|&b| b == b';').next().unwrap_or(element));
                if coding.eq_ignore_ascii_case(b"chunked") {
                    if coding.len() != element.len() {
                        return Err(bad("parameters on chunked"));
                    }
                    chunked_seen = true;
                    te_last_chunked = true;
                } else {
                    te_other = true;
                    te_last_chunked = false;
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list_elements(value) {
                if token.eq_ignore_ascii_case(b"close") {
                    out.connection.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    out.connection.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    out.connection.upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            out.upgrade_header |= list_elements(value).any(offered_upgrade);
        }
    }
    out.transfer_coding = match (te_seen, te_last_chunked, te_other) {
        (false, _, _) => TransferCoding::Absent,
        (true, true, false) => TransferCoding::Chunked,
        (true, true, true) => TransferCoding::ChunkedAfterOthers,
        (true, false, _) => TransferCoding::NotChunked,
    };
    Ok(out)
}

/// Whether an `Upgrade` list element is a protocol nvelox lets a client
/// ask a server for: any but `h2c` (with or without a `/version`).
pub fn offered_upgrade(element: &[u8]) -> bool {
    let name = element.split(|&b| b == b'/').next().unwrap_or(element);
    !element.is_empty() && !trim_ows(name).eq_ignore_ascii_case(b"h2c")
}

/// A decimal `Content-Length` value: digits only, at most 19 of them.
pub fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > MAX_LENGTH_DIGITS {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// The framing of a request body, or the refusal the client gets.
pub fn request_framing(
    facts: &FramingHeaders,
    http10: bool,
    max_body: Option<u64>,
) -> Result<BodyFraming, Reject> {
    match facts.transfer_coding {
        TransferCoding::Absent => match facts.content_length {
            None => Ok(BodyFraming::None),
            Some(n) if max_body.is_some_and(|max| n > max) => {
                Err(Reject::new(413, "Content-Length above max_body_size"))
            }
            Some(n) => Ok(BodyFraming::Length(n)),
        },
        _ if facts.content_length.is_some() => {
            Err(Reject::bad_request("Content-Length with Transfer-Encoding"))
        }
        _ if http10 => Err(Reject::bad_request("Transfer-Encoding in HTTP/1.0")),
        TransferCoding::Chunked => Ok(BodyFraming::Chunked),
        TransferCoding::ChunkedAfterOthers | TransferCoding::NotChunked => {
            Err(Reject::new(501, "Transfer-Encoding other than chunked"))
        }
    }
}

/// The framing of a response to a request with `method`, where
/// `upgrade_requested` says the request asked for a protocol switch.
pub fn response_framing(
    status: u16,
    facts: &FramingHeaders,
    method: Method,
    upgrade_requested: bool,
) -> Result<BodyFraming, Reject> {
    if status == 101 {
        return if upgrade_requested {
            Ok(BodyFraming::Tunnel)
        } else {
            Err(Reject::bad_gateway("101 without an upgrade request"))
        };
    }
    if (100..200).contains(&status) || status == 204 || status == 304 || method == Method::Head {
        return Ok(BodyFraming::None);
    }
    match facts.transfer_coding {
        TransferCoding::Chunked | TransferCoding::ChunkedAfterOthers => Ok(BodyFraming::Chunked),
        TransferCoding::NotChunked => Ok(BodyFraming::CloseDelimited),
        TransferCoding::Absent => Ok(match facts.content_length {
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::CloseDelimited,
        }),
    }
}

/// Whether a connection stays open after this message, per version and
/// `Connection` tokens (HTTP/1.1 persists unless `close`; HTTP/1.0 only with
/// `keep-alive`).
pub fn persistent(http10: bool, connection: ConnectionFlags) -> bool {
    if connection.close {
        false
    } else if http10 {
        connection.keep_alive
    } else {
        true
    }
}
