//! Request and response heads: bounded parsing with `httparse` into owned,
//! compact heads (one copy of the head bytes plus ranges into it).
//!
//! Owns: the head size and header count limits, the strict refusals of a
//! head (each a [`Reject`] carrying the status the peer gets: 400, 413, 414,
//! 431, 501 for requests; 502 for a bad response), the method and version
//! types, and `Host` validation. Does not own what the body framing means
//! ([`super::framing`] decides it, called from here once per head) nor how a
//! head is rewritten for the other side ([`super::editor`]).
//!
//! `httparse` already refuses obs-fold, a space before the colon, control
//! bytes in names and values, a target with spaces and any version other
//! than HTTP/1.0 and 1.1; this module adds the rules that need the whole
//! head (framing headers, `Host`, `Expect`, `Upgrade`).

use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::framing::{self, BodyFraming, FramingHeaders};

/// Most headers any caller may allow (the parse array lives on the stack).
pub const MAX_HEADERS_CAP: usize = 256;
/// Largest head any caller may allow (ranges are stored as `u32`).
pub const MAX_HEAD_BYTES_CAP: usize = 1 << 20;

/// A refusal: the status the peer gets and a short reason for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    pub reason: &'static str,
}

impl Reject {
    pub const fn new(status: u16, reason: &'static str) -> Self {
        Reject { status, reason }
    }
    pub const fn bad_request(reason: &'static str) -> Self {
        Reject::new(400, reason)
    }
    pub const fn bad_gateway(reason: &'static str) -> Self {
        Reject::new(502, reason)
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.status, self.reason)
    }
}

/// Limits a caller puts on one head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes of the whole head (start line, headers, final empty line).
    pub max_head_bytes: usize,
    /// Number of header lines.
    pub max_headers: usize,
    /// Largest request `Content-Length` accepted (413 above); `None`: no limit.
    pub max_body: Option<u64>,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body: None,
        }
    }
}

impl HeadLimits {
    fn head_bytes(&self) -> usize {
        self.max_head_bytes.clamp(1, MAX_HEAD_BYTES_CAP)
    }
    fn headers(&self) -> usize {
        self.max_headers.min(MAX_HEADERS_CAP)
    }
}

/// Result of feeding bytes to a head parser.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Not a whole head yet: read more and call again with all the bytes.
    Incomplete,
    /// A head of `consumed` bytes; the body (if any) starts right after.
    Complete { head: T, consumed: usize },
}

/// HTTP version of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
    fn from_minor(minor: u8) -> Self {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// Request method, with the ones that matter to retries named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Patch,
    Connect,
    /// Any other token (forwarded as written).
    Other,
}

impl Method {
    pub fn from_bytes(token: &[u8]) -> Self {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// Idempotent per RFC 9110 section 9.2.2: safe to send twice.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// Byte range into a head's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(base: &[u8], part: &[u8]) -> Span {
        // Both come from the same buffer (httparse returns sub-slices), so
        // the address difference is the offset; heads are at most
        // MAX_HEAD_BYTES_CAP long, so it fits in u32.
        // An empty part may be a static "" from outside the buffer: any
        // part not inside `base` becomes the empty span.
        let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        match start.checked_add(part.len()) {
            Some(end) if !part.is_empty() && end <= base.len() => Span {
                start: start as u32,
                end: end as u32,
            },
            _ => Span::default(),
        }
    }
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// A header line: the ranges of its name and value.
pub(super) type Lines = (Span, Span);

/// One copy of a head's bytes and the ranges of its header lines (their
/// vectors are reused: [`super::spare`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadBytes {
    raw: Vec<u8>,
    headers: Vec<Lines>,
}

impl Drop for HeadBytes {
    fn drop(&mut self) {
        super::spare::give(
            std::mem::take(&mut self.raw),
            std::mem::take(&mut self.headers),
        );
    }
}

impl HeadBytes {
    fn capture(raw: &[u8], headers: &[httparse::Header<'_>]) -> Self {
        let (mut bytes, mut spans) = super::spare::take();
        bytes.extend_from_slice(raw);
        spans.extend(
            headers
                .iter()
                .map(|h| (Span::of(raw, h.name.as_bytes()), Span::of(raw, h.value))),
        );
        HeadBytes {
            raw: bytes,
            headers: spans,
        }
    }
    fn slice(&self, span: Span) -> &[u8] {
        self.raw.get(span.range()).unwrap_or_default()
    }
    /// Header lines in order, as (name, value) with the value trimmed.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|&(n, v)| (self.slice(n), self.slice(v)))
    }
    /// Values of every header named `name` (case-insensitive).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
    pub fn len(&self) -> usize {
        self.headers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }
}

/// A parsed request head, owned and compact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    bytes: HeadBytes,
    method_span: Span,
    target: Span,
    pub method: Method,
    pub version: Version,
    /// Body framing, decided once from the head.
    pub framing: BodyFraming,
    /// Framing headers as read (a single `Content-Length` to forward, ...).
    pub facts: FramingHeaders,
    /// The client wants the connection kept after this exchange.
    pub keep_alive: bool,
    /// `Upgrade` with `Connection: upgrade` on HTTP/1.1.
    pub upgrade: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    host: Option<Span>,
}

impl RequestHead {
    pub fn headers(&self) -> &HeadBytes {
        &self.bytes
    }
    pub fn method_bytes(&self) -> &[u8] {
        self.bytes.slice(self.method_span)
    }
    /// The request target as sent (origin-form, absolute-form or `*`).
    pub fn target(&self) -> &[u8] {
        self.bytes.slice(self.target)
    }
    /// The path and query: the target without `scheme://authority` when it
    /// is in absolute-form.
    pub fn path(&self) -> &[u8] {
        let target = self.target();
        match find(target, b"://") {
            Some(i) if !target.starts_with(b"/") => {
                let rest = &target[i + 3..];
                match rest.iter().position(|&b| b == b'/' || b == b'?') {
                    Some(p) => &rest[p..],
                    None => b"/",
                }
            }
            _ => target,
        }
    }
    /// The `Host` header value (validated, possibly with a port).
    pub fn host(&self) -> Option<&[u8]> {
        self.host.map(|s| self.bytes.slice(s))
    }
    /// The `Host` without its port, for routing.
    pub fn host_name(&self) -> Option<&[u8]> {
        let host = self.host()?;
        if host.starts_with(b"[") {
            return Some(match host.iter().position(|&b| b == b']') {
                Some(i) => &host[..=i],
                None => host,
            });
        }
        Some(match host.iter().position(|&b| b == b':') {
            Some(i) => &host[..i],
            None => host,
        })
    }
}

/// A parsed response head, owned and compact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    bytes: HeadBytes,
    reason: Span,
    pub status: u16,
    pub version: Version,
    /// Body framing for the request it answers.
    pub framing: BodyFraming,
    pub facts: FramingHeaders,
    /// The server keeps the connection open after this response (still
    /// subject to the body being read to its end).
    pub keep_alive: bool,
}

impl ResponseHead {
    pub fn headers(&self) -> &HeadBytes {
        &self.bytes
    }
    pub fn reason(&self) -> &[u8] {
        self.bytes.slice(self.reason)
    }
    /// A 1xx other than 101: forwarded (or dropped), then the real response
    /// follows.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// What a response answers, for its framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answering {
    pub method: Method,
    pub upgrade_requested: bool,
}

/// The authority of an absolute-form target (`http://a:8080/p` -> `a:8080`),
/// `None` for the other forms.
fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    if target.starts_with(b"/") || target == b"*" {
        return None;
    }
    let rest = &target[find(target, b"://")? + 3..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The refusal for a head that is still incomplete at the size limit: 414
/// while the request line itself is not complete, else 431.
fn over_limit(window: &[u8], is_request: bool) -> Reject {
    if !is_request {
        return Reject::bad_gateway("response head too large");
    }
    // Leading empty lines are skipped by the parser, as by httparse.
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    if window[start..].contains(&b'\n') {
        Reject::new(431, "request head too large")
    } else {
        Reject::new(414, "request target too long")
    }
}

fn request_error(e: httparse::Error) -> Reject {
    Reject::bad_request(match e {
        httparse::Error::HeaderName => "bad header name",
        httparse::Error::HeaderValue => "bad header value",
        httparse::Error::NewLine => "bad line ending",
        httparse::Error::Status => "bad status",
        httparse::Error::Token => "bad method or target",
        httparse::Error::TooManyHeaders => return Reject::new(431, "too many headers"),
        httparse::Error::Version => "bad version",
    })
}

/// A `Host` value: a reg-name, IPv4 or bracketed IPv6 literal and an
/// optional port; nothing that could confuse routing (no spaces, `/`, `@`).
fn valid_host(value: &[u8]) -> bool {
    value.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'.' | b'-'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            )
    })
}

/// Parses a request head from the start of `buf`.
pub fn parse_request(buf: &[u8], limits: &HeadLimits) -> Result<Parsed<RequestHead>, Reject> {
    let window = &buf[..buf.len().min(limits.head_bytes())];
    // Uninitialised storage: a slow client makes us parse its head again on
    // every read, and initialising 256 headers each time would dominate.
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        window,
        &mut storage[..limits.headers()],
    );
    let consumed = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if window.len() >= limits.head_bytes() => {
            return Err(over_limit(window, true))
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Incomplete),
        Err(e) => return Err(request_error(e)),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Reject::bad_request("incomplete request line"));
    };
    let raw = &window[..consumed];
    let version = Version::from_minor(minor);
    let http10 = version == Version::Http10;
    let method_kind = Method::from_bytes(method.as_bytes());
    if method_kind == Method::Connect {
        return Err(Reject::new(501, "CONNECT not supported"));
    }
    let bytes = HeadBytes::capture(raw, req.headers);
    let facts = framing::gather(bytes.iter(), Reject::bad_request)?;
    let framing = framing::request_framing(&facts, http10, limits.max_body)?;

    let mut host = None;
    let mut expect_continue = false;
    for (i, (name, value)) in bytes.iter().enumerate() {
        if name.eq_ignore_ascii_case(b"host") {
            if host.is_some() {
                return Err(Reject::bad_request("more than one Host"));
            }
            if !valid_host(value) {
                return Err(Reject::bad_request("invalid Host"));
            }
            host = Some(bytes.headers[i].1);
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    if host.is_none() && !http10 {
        return Err(Reject::bad_request("missing Host"));
    }
    let target_span = Span::of(raw, target.as_bytes());
    let target_bytes = target.as_bytes();
    if target_bytes == b"*" && method_kind != Method::Options {
        return Err(Reject::bad_request("* target outside OPTIONS"));
    }
    if !(target_bytes.starts_with(b"/")
        || target_bytes == b"*"
        || find(target_bytes, b"://").is_some())
    {
        return Err(Reject::bad_request("bad request target"));
    }
    // Absolute-form: routing uses Host, servers may use the target's
    // authority, so the two must agree (HAProxy's rule).
    if let Some(authority) = absolute_authority(target_bytes) {
        let host_value = host.map(|span| bytes.slice(span));
        match host_value {
            Some(h) if h.eq_ignore_ascii_case(authority) => {}
            Some(_) => {
                return Err(Reject::bad_request(
                    "Host differs from the target authority",
                ))
            }
            None => {
                return Err(Reject::bad_request("absolute target without Host"));
            }
        }
    }
    Ok(Parsed::Complete {
        head: RequestHead {
            method_span: Span::of(raw, method.as_bytes()),
            target: target_span,
            method: method_kind,
            version,
            framing,
            keep_alive: framing::persistent(http10, facts.connection),
            upgrade: !http10 && facts.upgrade_header && facts.connection.upgrade,
            expect_continue: expect_continue && !http10,
            facts,
            host,
            bytes,
        },
        consumed,
    })
}

/// Parses a response head from the start of `buf`, answering a request as
/// described by `answering`. Every failure is a 502 for the client.
pub fn parse_response(
    buf: &[u8],
    limits: &HeadLimits,
    answering: Answering,
) -> Result<Parsed<ResponseHead>, Reject> {
    let window = &buf[..buf.len().min(limits.head_bytes())];
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        window,
        &mut storage[..limits.headers()],
    );
    let consumed = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if window.len() >= limits.head_bytes() => {
            return Err(over_limit(window, false))
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Incomplete),
        Err(_) => return Err(Reject::bad_gateway("malformed response head")),
    };
    let (Some(minor), Some(status), Some(reason)) = (resp.version, resp.code, resp.reason) else {
        return Err(Reject::bad_gateway("incomplete status line"));
    };
    if !(100..=999).contains(&status) {
        return Err(Reject::bad_gateway("bad status code"));
    }
    let raw = &window[..consumed];
    let version = Version::from_minor(minor);
    let bytes = HeadBytes::capture(raw, resp.headers);
    let facts = framing::gather(bytes.iter(), Reject::bad_gateway)?;
    let framing = framing::response_framing(
        status,
        &facts,
        answering.method,
        answering.upgrade_requested,
    )?;
    let keep_alive = framing::persistent(version == Version::Http10, facts.connection)
        && framing != BodyFraming::CloseDelimited
        && framing != BodyFraming::Tunnel;
    Ok(Parsed::Complete {
        head: ResponseHead {
            reason: Span::of(raw, reason.as_bytes()),
            status,
            version,
            framing,
            facts,
            keep_alive,
            bytes,
        },
        consumed,
    })
}
