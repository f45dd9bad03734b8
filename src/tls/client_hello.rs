//! The ClientHello peeker for `sni_routes`: the first bytes a client sent
//! in, its TLS server name (SNI) out. Pure: no sockets, no allocation
//! beyond the reassembled handshake message, nothing consumed (the caller
//! keeps the bytes and relays them untouched once a backend is chosen).
//!
//! Owns: the TLS record layer just far enough to reassemble the first
//! handshake message over several records (RFC 8446 §5.1 allows a
//! ClientHello split into many records, and TCP may split those records
//! anywhere), the ClientHello layout up to its extensions, and the
//! `server_name` extension (RFC 6066 §3). Does not own routing by the name
//! (`sni_routes` in `tcp/`) or TLS itself (rustls, for `tls:` listeners).
//!
//! Check-then-parse: every length is checked against what is there before
//! a field is read; every length that could make the input grow without
//! end is bounded by [`MAX_CLIENT_HELLO`].

/// The most bytes (records and their headers) looked at before a client
/// is refused: a ClientHello with post-quantum key shares is about 1.8 KB,
/// one with many PSK identities a few KB more.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

/// The largest TLS plaintext record body (RFC 8446 §5.1: 2^14).
const MAX_RECORD: usize = 1 << 14;
/// Record header: content type, legacy version (2), length (2).
const RECORD_HEADER: usize = 5;
const CONTENT_HANDSHAKE: u8 = 0x16;
/// Handshake header: message type, length (3).
const HANDSHAKE_HEADER: usize = 4;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
/// ClientHello body: legacy_version (2) and random (32) before the session id.
const HELLO_FIXED: usize = 2 + 32;
const EXT_SERVER_NAME: u16 = 0x0000;
const NAME_TYPE_HOST: u8 = 0x00;
/// DNS names are at most 253 characters written out.
const MAX_HOST_NAME: usize = 253;

/// What the bytes received so far amount to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peek {
    /// A valid prefix of a ClientHello: wait for more bytes.
    NeedMore,
    /// A complete ClientHello; its server name (lowercase, without a
    /// trailing dot), or `None` when it sent no `server_name`.
    ServerName(Option<String>),
    /// Not a TLS ClientHello (or one nvelox refuses): close the client.
    /// The text says why, for the log.
    NotTls(&'static str),
}

/// Judges `buf`, the first bytes of a connection.
pub fn peek(buf: &[u8]) -> Peek {
    let verdict = match reassemble(buf) {
        Ok(Some(msg)) => parse_client_hello(&msg),
        Ok(None) => Peek::NeedMore,
        Err(why) => Peek::NotTls(why),
    };
    match verdict {
        Peek::NeedMore if buf.len() >= MAX_CLIENT_HELLO => Peek::NotTls("ClientHello too long"),
        v => v,
    }
}

/// Collects the first handshake message from the handshake records at the
/// start of `buf`: `Ok(None)` when it is not complete yet.
fn reassemble(buf: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let mut msg: Vec<u8> = Vec::new();
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        // The record header, judged byte by byte as it arrives so garbage
        // is refused on its first byte.
        if let Some(&t) = rest.first() {
            if t != CONTENT_HANDSHAKE {
                return Err(if at == 0 {
                    "not a TLS handshake"
                } else {
                    "a non-handshake record inside the ClientHello"
                });
            }
        }
        if let Some(&major) = rest.get(1) {
            if major != 3 {
                return Err("not a TLS record version");
            }
        }
        if rest.len() < RECORD_HEADER {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 {
            return Err("an empty handshake record");
        }
        if len > MAX_RECORD {
            return Err("a TLS record over 16 KiB");
        }
        let body = &rest[RECORD_HEADER..];
        let take = len.min(body.len());
        msg.extend_from_slice(&body[..take]);
        if msg.first().is_some_and(|&t| t != HANDSHAKE_CLIENT_HELLO) {
            return Err("the first handshake message is not a ClientHello");
        }
        if msg.len() >= HANDSHAKE_HEADER {
            let want = HANDSHAKE_HEADER + u24(&msg[1..4]);
            if want > MAX_CLIENT_HELLO {
                return Err("ClientHello too long");
            }
            if msg.len() >= want {
                msg.truncate(want);
                return Ok(Some(msg));
            }
        }
        if take < len {
            return Ok(None);
        }
        at += RECORD_HEADER + len;
    }
}

fn u24(b: &[u8]) -> usize {
    (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2])
}

/// A cursor that only ever hands out bytes that are there.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.rest.len() < n {
            return Err("a truncated ClientHello");
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a 1- or 2-byte length prefix.
    fn vec8(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// `msg` is a whole handshake message (header included) of type ClientHello.
fn parse_client_hello(msg: &[u8]) -> Peek {
    match server_name(&msg[HANDSHAKE_HEADER..]) {
        Ok(name) => Peek::ServerName(name),
        Err(why) => Peek::NotTls(why),
    }
}

fn server_name(body: &[u8]) -> Result<Option<String>, &'static str> {
    let mut r = Reader { rest: body };
    let fixed = r.take(HELLO_FIXED)?;
    if fixed[0] != 3 {
        return Err("not a TLS ClientHello version");
    }
    let session_id = r.vec8()?;
    if session_id.len() > 32 {
        return Err("a session id over 32 bytes");
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err("a bad cipher suite list");
    }
    if r.vec8()?.is_empty() {
        return Err("an empty compression method list");
    }
    if r.rest.is_empty() {
        // TLS 1.2 and older may omit extensions altogether.
        return Ok(None);
    }
    let mut exts = Reader { rest: r.vec16()? };
    if !r.rest.is_empty() {
        return Err("bytes after the ClientHello's extensions");
    }
    let mut found = None;
    while !exts.rest.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind == EXT_SERVER_NAME {
            if found.is_some() {
                return Err("two server_name extensions");
            }
            found = Some(host_name(data)?);
        }
    }
    Ok(found.flatten())
}

/// The `server_name` extension's host name (RFC 6066: at most one per type).
fn host_name(data: &[u8]) -> Result<Option<String>, &'static str> {
    let mut ext = Reader { rest: data };
    let mut list = Reader { rest: ext.vec16()? };
    if !ext.rest.is_empty() {
        return Err("bytes after the server_name list");
    }
    let mut host = None;
    while !list.rest.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == NAME_TYPE_HOST {
            if host.is_some() {
                return Err("two host names in server_name");
            }
            host = Some(normalize(name)?);
        }
    }
    Ok(host)
}

/// Lowercase, without a trailing dot; only the characters of DNS names
/// (letters, digits, `-`, `_`, `.`), so what reaches the logs and the
/// route table is plain text.
fn normalize(name: &[u8]) -> Result<String, &'static str> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > MAX_HOST_NAME {
        return Err("a bad server name length");
    }
    if !name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("a server name with characters DNS names do not have");
    }
    Ok(String::from_utf8_lossy(name).to_ascii_lowercase())
}

#[cfg(test)]
#[path = "client_hello_tests.rs"]
mod tests;
