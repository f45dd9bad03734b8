//! One probe conversation as a pure judge: what to send, and what a reply
//! (so far) means. No sockets: the shell in `mod.rs` feeds it bytes and
//! events and acts on the [`Verdict`].
//!
//! Owns: the request bytes of each check kind (PROXY LOCAL header, `send`
//! bytes, the HTTP request line and headers), the reply rules (substring
//! match, HTTP status line), and the bound on how much of a reply is read.
//! Does not own: timeouts (the shell arms a timer), scheduling, or what a
//! result does to the server's state (`health::state::Health`).

use std::fmt;
use std::net::SocketAddr;

use crate::config::{ActiveCheck, CheckKind, ProxyVersion};
use crate::proxy_protocol::{Header, Version};

/// The most reply bytes a TCP `expect` check reads before giving up: a
/// health endpoint that streams more than this without the expected bytes
/// is broken, and the bound keeps a probe's memory fixed.
pub const MAX_REPLY: usize = 16 * 1024;
/// The most bytes an HTTP status line may take (`HTTP/1.1 200 OK\r\n` is 17).
pub const MAX_STATUS_LINE: usize = 1024;
/// The biggest UDP reply a probe reads; larger datagrams are truncated.
pub const MAX_DATAGRAM: usize = 2048;

/// Why a probe failed, for the debug log and the state-change warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Refused,
    Timeout,
    /// The connection broke (reset, or an error other than refused).
    Broken,
    /// Closed before the expected reply.
    ClosedEarly,
    /// A reply arrived but did not contain `expect`.
    WrongReply,
    /// `expect` was not within [`MAX_REPLY`] bytes.
    ReplyTooLong,
    BadStatusLine,
    /// A well-formed HTTP status outside 2xx/3xx.
    Status(u16),
    /// `backend_tls`: the server's certificate was refused.
    TlsVerify,
    /// `backend_tls`: the handshake failed otherwise.
    TlsHandshake,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused => f.write_str("connection refused"),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Broken => f.write_str("connection error"),
            Failure::ClosedEarly => f.write_str("closed before the expected reply"),
            Failure::WrongReply => f.write_str("reply did not contain the expected bytes"),
            Failure::ReplyTooLong => {
                write!(f, "expected bytes not within {MAX_REPLY} bytes of reply")
            }
            Failure::BadStatusLine => f.write_str("not an HTTP status line"),
            Failure::Status(code) => write!(f, "HTTP status {code}"),
            Failure::TlsVerify => f.write_str("tls verify failed"),
            Failure::TlsHandshake => f.write_str("tls handshake failed"),
        }
    }
}

/// What the probe knows so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep reading (until the timeout).
    Pending,
    Up,
    Down(Failure),
}

/// The request and reply rules of one server's check, built once.
#[derive(Clone, Debug)]
pub struct Conversation {
    kind: CheckKind,
    request: Vec<u8>,
    /// The PROXY header's length at the start of `request` (it goes in
    /// clear before a `backend_tls` handshake, the rest through it).
    header_len: usize,
    expect: Vec<u8>,
}

impl Conversation {
    /// `addr` is the probe address (the HTTP `Host` header names it);
    /// `proxy` is the backend's `send_proxy`: a server that expects a PROXY
    /// header gets a LOCAL one first (the probe speaks for itself, not for
    /// a client). UDP only has a v2 form; a v1 backend's UDP probe gets none.
    pub fn new(check: &ActiveCheck, addr: SocketAddr, proxy: Option<ProxyVersion>) -> Conversation {
        let mut request = Vec::new();
        let version = match (check.kind, proxy) {
            (_, None) | (CheckKind::Udp, Some(ProxyVersion::V1)) => None,
            (_, Some(ProxyVersion::V1)) => Some(Version::V1),
            (_, Some(ProxyVersion::V2)) => Some(Version::V2),
        };
        if let Some(v) = version {
            // A LOCAL header has no addresses and no TLVs: it cannot fail to
            // encode; should it ever, the probe goes without it.
            if Header::local(v).emit(&mut request).is_err() {
                request.clear();
            }
        }
        let header_len = request.len();
        match check.kind {
            CheckKind::Http => request.extend_from_slice(
                format!(
                    "GET {} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: nvelox-health\r\nConnection: close\r\n\r\n",
                    check.path
                )
                .as_bytes(),
            ),
            CheckKind::Tcp | CheckKind::Udp => request.extend_from_slice(&check.send),
        }
        Conversation {
            kind: check.kind,
            request,
            header_len,
            expect: check.expect.clone(),
        }
    }

    pub fn kind(&self) -> CheckKind {
        self.kind
    }

    /// The bytes to write once connected (TCP) or the datagram (UDP).
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// How many bytes at the start of [`request`](Self::request) are the
    /// PROXY header (0 without one).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// How many reply bytes are worth reading at most.
    pub fn reply_limit(&self) -> usize {
        match self.kind {
            CheckKind::Http => MAX_STATUS_LINE,
            CheckKind::Tcp => MAX_REPLY,
            CheckKind::Udp => MAX_DATAGRAM,
        }
    }

    /// The whole request was written (TCP and HTTP; at once after connect
    /// when there is nothing to send). A plain TCP check is done here.
    pub fn sent(&self) -> Verdict {
        match self.kind {
            CheckKind::Tcp if self.expect.is_empty() => Verdict::Up,
            _ => Verdict::Pending,
        }
    }

    /// The stream reply so far; `eof` when the server closed its side.
    pub fn judge_stream(&self, reply: &[u8], eof: bool) -> Verdict {
        match self.kind {
            CheckKind::Http => match memchr::memchr(b'\n', reply) {
                Some(end) => status_verdict(&reply[..end]),
                None if reply.len() >= MAX_STATUS_LINE => Verdict::Down(Failure::BadStatusLine),
                None if eof => Verdict::Down(Failure::ClosedEarly),
                None => Verdict::Pending,
            },
            _ => {
                if self.expect.is_empty() || contains(reply, &self.expect) {
                    Verdict::Up
                } else if reply.len() >= MAX_REPLY {
                    Verdict::Down(Failure::ReplyTooLong)
                } else if eof {
                    Verdict::Down(Failure::ClosedEarly)
                } else {
                    Verdict::Pending
                }
            }
        }
    }

    /// One UDP reply datagram: it must contain `expect` (any reply will do
    /// when `expect` is empty). The probe socket is fresh and connected to
    /// the server, so a datagram here is the server's answer to this probe.
    pub fn judge_datagram(&self, datagram: &[u8]) -> Verdict {
        if self.expect.is_empty() || contains(datagram, &self.expect) {
            Verdict::Up
        } else {
            Verdict::Down(Failure::WrongReply)
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// `HTTP/1.x NNN ...` (the line without its `\n`): 2xx and 3xx are up.
fn status_verdict(line: &[u8]) -> Verdict {
    match parse_status(line) {
        Some(code) if (200..400).contains(&code) => Verdict::Up,
        Some(code) => Verdict::Down(Failure::Status(code)),
        None => Verdict::Down(Failure::BadStatusLine),
    }
}

/// The status code of an HTTP/1.x status line, or `None` if it is not one.
pub fn parse_status(line: &[u8]) -> Option<u16> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let rest = line.strip_prefix(PREFIX)?;
    // One minor-version digit, one space, three digits, then the end or a space.
    let (minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match rest.get(3) {
        None | Some(b' ') | Some(b'\r') => {}
        Some(_) => return None,
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    (100..=599).contains(&code).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy_protocol::{Accept, Command, Parsed};
    use std::time::Duration;

    fn check(kind: CheckKind, send: &[u8], expect: &[u8]) -> ActiveCheck {
        ActiveCheck {
            kind,
            port: None,
            path: "/health".into(),
            send: send.to_vec(),
            expect: expect.to_vec(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 1,
            fall: 1,
        }
    }

    fn addr() -> SocketAddr {
        "10.0.0.7:8080".parse().unwrap()
    }

    #[test]
    fn http_request_is_exact() {
        let c = Conversation::new(&check(CheckKind::Http, b"", b""), addr(), None);
        assert_eq!(
            c.request(),
            b"GET /health HTTP/1.0\r\nHost: 10.0.0.7:8080\r\nUser-Agent: nvelox-health\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(c.sent(), Verdict::Pending);
    }

    #[test]
    fn http_status_classes() {
        let c = Conversation::new(&check(CheckKind::Http, b"", b""), addr(), None);
        let cases: &[(&[u8], Verdict)] = &[
            (b"HTTP/1.1 200 OK\r\n", Verdict::Up),
            (b"HTTP/1.0 204 No Content\r\n", Verdict::Up),
            (b"HTTP/1.1 301 Moved\r\nLocation: /\r\n", Verdict::Up),
            (b"HTTP/1.1 399\r\n", Verdict::Up),
            (
                b"HTTP/1.1 404 Not Found\r\n",
                Verdict::Down(Failure::Status(404)),
            ),
            (b"HTTP/1.1 500 Oops\n", Verdict::Down(Failure::Status(500))),
            (b"HTTP/1.1 199 Odd\r\n", Verdict::Down(Failure::Status(199))),
            (b"HTTP/2 200\r\n", Verdict::Down(Failure::BadStatusLine)),
            (b"HTTP/1.1 20 OK\r\n", Verdict::Down(Failure::BadStatusLine)),
            (
                b"HTTP/1.1 2000 OK\r\n",
                Verdict::Down(Failure::BadStatusLine),
            ),
            (b"HTTP/1.1 600 X\r\n", Verdict::Down(Failure::BadStatusLine)),
            (
                b"SSH-2.0-OpenSSH\r\n",
                Verdict::Down(Failure::BadStatusLine),
            ),
            (b"\n", Verdict::Down(Failure::BadStatusLine)),
        ];
        for (reply, want) in cases {
            assert_eq!(
                c.judge_stream(reply, false),
                *want,
                "{}",
                String::from_utf8_lossy(reply)
            );
        }
    }

    #[test]
    fn http_partial_line_waits_closed_line_fails_endless_line_fails() {
        let c = Conversation::new(&check(CheckKind::Http, b"", b""), addr(), None);
        assert_eq!(c.judge_stream(b"HTTP/1.1 200", false), Verdict::Pending);
        assert_eq!(
            c.judge_stream(b"HTTP/1.1 200", true),
            Verdict::Down(Failure::ClosedEarly)
        );
        assert_eq!(
            c.judge_stream(b"", true),
            Verdict::Down(Failure::ClosedEarly)
        );
        let garbage = vec![b'x'; MAX_STATUS_LINE];
        assert_eq!(
            c.judge_stream(&garbage, false),
            Verdict::Down(Failure::BadStatusLine)
        );
        assert_eq!(c.reply_limit(), MAX_STATUS_LINE);
    }

    #[test]
    fn plain_tcp_is_up_once_connected_and_sent() {
        let c = Conversation::new(&check(CheckKind::Tcp, b"", b""), addr(), None);
        assert!(c.request().is_empty());
        assert_eq!(c.sent(), Verdict::Up);
        // send without expect: writing it is enough.
        let c = Conversation::new(&check(CheckKind::Tcp, b"ping", b""), addr(), None);
        assert_eq!(c.request(), b"ping");
        assert_eq!(c.sent(), Verdict::Up);
    }

    #[test]
    fn tcp_expect_needs_the_substring_within_the_bound() {
        let c = Conversation::new(&check(CheckKind::Tcp, b"ping\n", b"pong"), addr(), None);
        assert_eq!(c.sent(), Verdict::Pending);
        assert_eq!(c.judge_stream(b"", false), Verdict::Pending);
        assert_eq!(c.judge_stream(b"+po", false), Verdict::Pending);
        assert_eq!(c.judge_stream(b"+pong\r\n", false), Verdict::Up);
        assert_eq!(
            c.judge_stream(b"+pang", true),
            Verdict::Down(Failure::ClosedEarly)
        );
        let long = vec![b'a'; MAX_REPLY];
        assert_eq!(
            c.judge_stream(&long, false),
            Verdict::Down(Failure::ReplyTooLong)
        );
    }

    #[test]
    fn udp_datagram_must_contain_expect() {
        let c = Conversation::new(&check(CheckKind::Udp, b"ping", b"pong"), addr(), None);
        assert_eq!(c.request(), b"ping");
        assert_eq!(c.judge_datagram(b"pong!"), Verdict::Up);
        assert_eq!(
            c.judge_datagram(b"pang"),
            Verdict::Down(Failure::WrongReply)
        );
        let any = Conversation::new(&check(CheckKind::Udp, b"ping", b""), addr(), None);
        assert_eq!(any.judge_datagram(b""), Verdict::Up);
    }

    #[test]
    fn proxy_backends_get_a_local_header_first() {
        for (kind, version, accept) in [
            (CheckKind::Tcp, ProxyVersion::V1, Accept::V1),
            (CheckKind::Http, ProxyVersion::V2, Accept::V2),
            (CheckKind::Udp, ProxyVersion::V2, Accept::V2),
        ] {
            let c = Conversation::new(&check(kind, b"ping", b"pong"), addr(), Some(version));
            let Ok(Parsed::Complete { header, consumed }) = Header::parse(c.request(), accept)
            else {
                panic!("{kind:?}: no PROXY header in {:?}", c.request());
            };
            assert_eq!(header.command, Command::Local);
            assert_eq!(c.header_len(), consumed, "{kind:?}");
            let rest = &c.request()[consumed..];
            match kind {
                CheckKind::Http => assert!(rest.starts_with(b"GET /health HTTP/1.0\r\n")),
                _ => assert_eq!(rest, b"ping"),
            }
        }
        // v1 has no datagram form: a UDP probe goes without a header.
        let c = Conversation::new(
            &check(CheckKind::Udp, b"ping", b""),
            addr(),
            Some(ProxyVersion::V1),
        );
        assert_eq!(c.request(), b"ping");
        assert_eq!(c.header_len(), 0);
    }

    #[test]
    fn parse_status_never_panics_on_prefixes() {
        let line = b"HTTP/1.1 200 OK\r";
        for n in 0..=line.len() {
            let _ = parse_status(&line[..n]);
        }
        assert_eq!(parse_status(line), Some(200));
        assert_eq!(parse_status(b"HTTP/1.1 200"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.x 200"), None);
        assert_eq!(parse_status(b"HTTP/1.1 2a0"), None);
        assert_eq!(parse_status(b"HTTP/1.1 200x"), None);
    }
}
