//! Header editing, in one place (like sozu's `editor.rs`): the request head
//! as sent to a server and the response head as sent to the client.
//!
//! Owns: hop-by-hop removal (`Connection`, `Keep-Alive`, `Proxy-Connection`,
//! `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, and every header named
//! in `Connection` except `Host`), the framing headers written back from the framing
//! decision (one `Content-Length`, or `Transfer-Encoding: chunked`), the
//! `Connection` header of each hop, `X-Forwarded-For` (appended),
//! `X-Forwarded-Proto`, `X-Forwarded-Port`, the configured add/set/remove
//! edits and the backend-server header. Does not own parsing, framing
//! decisions or configuration syntax: the config layer builds
//! [`EditOptions`] and checks it with [`HeaderEdits::validate`].
//!
//! Order of edits on each head: hop-by-hop removal, `remove`, `set`
//! (removes then writes once), `add` (appends, even if present).

use std::io::Write as _;
use std::net::IpAddr;

use super::framing::{list_elements, offered_upgrade, BodyFraming, TransferCoding};
use super::head::{HeadBytes, RequestHead, ResponseHead, Version};

/// Headers nvelox never forwards from one hop to the next.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "http2-settings",
];

/// Headers users may not edit: they decide framing and connection handling,
/// which only the editor writes.
const NOT_EDITABLE: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Add/set/remove lists for one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Appended, even when the header is already there.
    pub add: Vec<(String, String)>,
    /// Replaces every header of that name with this one.
    pub set: Vec<(String, String)>,
    /// Every header of that name is removed.
    pub remove: Vec<String>,
}

impl HeaderEdits {
    /// Checks every name is a token (and not a framing or hop-by-hop header)
    /// and every value is visible text, so a configuration can never inject
    /// a line break or change framing. The message names the culprit.
    pub fn validate(&self) -> Result<(), String> {
        let names = self
            .add
            .iter()
            .chain(&self.set)
            .map(|(n, _)| n)
            .chain(&self.remove);
        for name in names {
            if name.is_empty() || !name.bytes().all(is_token) {
                return Err(format!("invalid header name {name:?}"));
            }
            if NOT_EDITABLE.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                return Err(format!(
                    "header {name:?} cannot be edited (nvelox writes it)"
                ));
            }
        }
        for (name, value) in self.add.iter().chain(&self.set) {
            let ok = value
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80);
            if !ok {
                return Err(format!("invalid value for header {name:?}"));
            }
        }
        Ok(())
    }

    fn drops(&self, name: &[u8]) -> bool {
        self.remove
            .iter()
            .chain(self.set.iter().map(|(n, _)| n))
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    }

    fn write_added(&self, out: &mut Vec<u8>) {
        for (name, value) in self.set.iter().chain(&self.add) {
            header(out, name.as_bytes(), value.as_bytes());
        }
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a listener does to heads (the config layer maps YAML onto it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditOptions {
    /// `X-Forwarded-For/-Proto/-Port` (`forwarded_for`, default true).
    pub forwarded_for: bool,
    pub request: HeaderEdits,
    pub response: HeaderEdits,
    /// `backend_server_header`: response header naming the server.
    pub backend_server_header: Option<String>,
}

impl Default for EditOptions {
    fn default() -> Self {
        EditOptions {
            forwarded_for: true,
            request: HeaderEdits::default(),
            response: HeaderEdits::default(),
            backend_server_header: None,
        }
    }
}

/// Facts about the client side needed to write the upstream request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestContext<'a> {
    pub client_ip: IpAddr,
    /// `http` or `https`.
    pub proto: &'a str,
    /// The listener port the client connected to.
    pub port: u16,
    /// Ask the server to keep the connection (the pool will reuse it).
    pub upstream_keep_alive: bool,
}

/// Facts needed to write the response head for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseContext<'a> {
    /// The server's address as written in the configuration.
    pub server: &'a str,
    /// The client connection stays open after this response.
    pub client_keep_alive: bool,
    /// The client spoke HTTP/1.0 (gets `Connection: keep-alive` to persist).
    pub client_version: Version,
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The header names listed in a head's `Connection` headers: the first
/// few on the stack (no allocation for a usual head), any more in a Vec.
struct Named<'a> {
    first: [&'a [u8]; 4],
    n: usize,
    more: Vec<&'a [u8]>,
}

impl<'a> Named<'a> {
    fn of(headers: &'a HeadBytes) -> Self {
        let mut named = Named {
            first: [&[]; 4],
            n: 0,
            more: Vec::new(),
        };
        let tokens = headers
            .values("connection")
            .flat_map(list_elements)
            .filter(|t| !t.is_empty());
        for t in tokens {
            match named.first.get_mut(named.n) {
                Some(slot) => {
                    *slot = t;
                    named.n += 1;
                }
                None => named.more.push(t),
            }
        }
        named
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.first[..self.n]
            .iter()
            .chain(&self.more)
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

/// Whether a header of this name is hop-by-hop in a head whose
/// `Connection` headers list `named`. `Host` stays whatever `Connection`
/// says: the request was routed by it, and a server that did not see it
/// (an HTTP/1.0 one serves its default site then) would disagree with the
/// route.
fn hop_by_hop(name: &[u8], named: &Named<'_>) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        || (named.contains(name) && !name.eq_ignore_ascii_case(b"host"))
}

/// `n` in decimal (without the formatting machinery: this runs for
/// every head).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `ip` as text (dotted decimal for IPv4).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

fn write_framing(out: &mut Vec<u8>, framing: BodyFraming) {
    match framing {
        BodyFraming::Length(n) => content_length(out, n),
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyFraming::None | BodyFraming::CloseDelimited | BodyFraming::Tunnel => {}
    }
}

/// Writes the head to send to a server for `head` into `out`.
pub fn write_request_head(
    head: &RequestHead,
    ctx: &RequestContext<'_>,
    opts: &EditOptions,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(head.method_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target());
    out.push(b' ');
    out.extend_from_slice(head.version.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");

    let headers = head.headers();
    let named = Named::of(headers);
    for (name, value) in headers.iter() {
        if hop_by_hop(name, &named) || opts.request.drops(name) {
            continue;
        }
        // Written once, at the end (the forwarded values merged).
        if opts.forwarded_for
            && (name.eq_ignore_ascii_case(b"x-forwarded-for")
                || name.eq_ignore_ascii_case(b"x-forwarded-proto")
                || name.eq_ignore_ascii_case(b"x-forwarded-port"))
        {
            continue;
        }
        header(out, name, value);
    }
    write_framing(out, head.framing);
    if head.upgrade {
        // The protocols offered, in order, but `h2c` (see
        // `framing::offered_upgrade`): at least one, or no upgrade.
        out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
        let offered = headers
            .values("upgrade")
            .flat_map(list_elements)
            .filter(|t| offered_upgrade(t));
        for (i, token) in offered.enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(token);
        }
        out.extend_from_slice(b"\r\n");
    } else {
        match (head.version, ctx.upstream_keep_alive) {
            (Version::Http11, false) => out.extend_from_slice(b"Connection: close\r\n"),
            (Version::Http10, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            _ => {}
        }
    }
    if opts.forwarded_for {
        // The forwarded values (in order, joined), then the client.
        out.extend_from_slice(b"X-Forwarded-For: ");
        let start = out.len();
        for (name, value) in headers.iter() {
            if name.eq_ignore_ascii_case(b"x-forwarded-for")
                && !hop_by_hop(name, &named)
                && !opts.request.drops(name)
            {
                if out.len() > start {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(value);
            }
        }
        if out.len() > start {
            out.extend_from_slice(b", ");
        }
        push_ip(out, ctx.client_ip);
        out.extend_from_slice(b"\r\n");
        header(out, b"X-Forwarded-Proto", ctx.proto.as_bytes());
        out.extend_from_slice(b"X-Forwarded-Port: ");
        push_decimal(out, u64::from(ctx.port));
        out.extend_from_slice(b"\r\n");
    }
    opts.request.write_added(out);
    out.extend_from_slice(b"\r\n");
}

/// Writes the head to send to the client for the server's `head` into
/// `out`. The status line is always `HTTP/1.1` (the proxy's version; the
/// body framing and `Connection` written here are what the client obeys).
pub fn write_response_head(
    head: &ResponseHead,
    ctx: &ResponseContext<'_>,
    opts: &EditOptions,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    // Three digits (a parsed status is 100..=999).
    if head.status < 100 {
        out.push(b'0');
    }
    if head.status < 10 {
        out.push(b'0');
    }
    push_decimal(out, u64::from(head.status));
    out.push(b' ');
    out.extend_from_slice(head.reason());
    out.extend_from_slice(b"\r\n");

    let headers = head.headers();
    let named = Named::of(headers);
    let mut upgrade_value: Option<&[u8]> = None;
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_value.get_or_insert(value);
        }
        if hop_by_hop(name, &named) || opts.response.drops(name) {
            continue;
        }
        if let Some(server_header) = &opts.backend_server_header {
            if name.eq_ignore_ascii_case(server_header.as_bytes()) {
                continue;
            }
        }
        header(out, name, value);
    }
    let has_body_headers = head.status >= 200 && head.status != 204;
    if has_body_headers && head.facts.transfer_coding != TransferCoding::Absent {
        // The codings are end-to-end content (`gzip, chunked`): forwarded as
        // declared, and with them no Content-Length. Never to an HTTP/1.0
        // client (RFC 9112 section 6.1): the session sends it the body
        // without chunked framing, ended by the close.
        if ctx.client_version == Version::Http11 {
            for value in headers.values("transfer-encoding") {
                header(out, b"Transfer-Encoding", value);
            }
        }
    } else if let BodyFraming::Length(n) = head.framing {
        content_length(out, n);
    } else if let (true, BodyFraming::None, Some(n)) =
        (has_body_headers, head.framing, head.facts.content_length)
    {
        // HEAD and 304 responses describe the body they did not send.
        content_length(out, n);
    }
    if head.framing == BodyFraming::Tunnel {
        out.extend_from_slice(b"Connection: upgrade\r\n");
        if let Some(value) = upgrade_value {
            header(out, b"Upgrade", value);
        }
    } else if head.is_informational() {
        // 1xx: no connection semantics of its own.
    } else if !ctx.client_keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if ctx.client_version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    if let Some(name) = &opts.backend_server_header {
        if !head.is_informational() {
            header(out, name.as_bytes(), ctx.server.as_bytes());
        }
    }
    if !head.is_informational() {
        opts.response.write_added(out);
    }
    out.extend_from_slice(b"\r\n");
}
