// Oracle shared by the `tls_session` fuzz target and the stable tests in
// `tests/tls_session_fuzz.rs` (`include!`d by both, hence no `//!` header).
// The includer has `nvelox` and `rustls` as dependencies.
//
// Drives one `TlsSession` sans-IO over an in-memory non-blocking socket
// (the server side, and in modes 5 and 6 the client side of `backend_tls`;
// the socket, configurations and handshake are `nvelox::tls::test_support`,
// shared with the session's own tests).
// The first input byte picks a mode:
// - raw (0): the rest is what a client sends as the first bytes of the
//   connection (some of it through `feed`, as after a PROXY header), cut
//   into reads by a seeded generator;
// - rustls (1, 2): a real handshake with a rustls client (TLS 1.3 / 1.2),
//   then a script of operations: the client writes, asks for a key update,
//   sends close_notify; bytes on the wire are injected, corrupted,
//   truncated, delivered in parts; the server reads, writes, shuts down;
//   the client reads or does not;
// - rustls server (5, 6): the same script with our session as the client
//   and a rustls server as the peer (TLS 1.3 / 1.2);
// - crafted (3, 4; in `tls_session_craft.rs`): a real handshake, then the
//   client's keys are taken out of rustls and the script sends records of
//   any content type (handshake messages such as a renegotiating
//   ClientHello or a huge fragmented message, alerts, ChangeCipherSpec,
//   floods of tiny records) encrypted with them.
// Checks: no panic; buffers bounded at every step; a read returns
// `WouldBlock` only when the socket would block and a write only when
// records wait; in a script without injected bytes the server reads
// exactly what the client sent, the client exactly what the server wrote
// (a client error is a finding), and an idle session holds no buffer.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use nvelox::tcp::relay::ShutdownWrite;
use nvelox::tls::test_support::{self as support, client_config_with, only, server_name};
pub use nvelox::tls::test_support::MemSocket as Wire;
use nvelox::tls::{Handshake, TlsSession};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// The most buffer storage a session may hold: three buffers, none over
/// the 128 KiB its pool keeps.
pub const TLS_BUFFER_BOUND: usize = 3 * 128 * 1024;

/// rustls issue 959: with debug assertions on, rustls panics when input
/// fails to decrypt or parse after its own close_notify went out
/// (`assert!(!self.sent_fatal_alert)`; release builds queue an alert no
/// one reads). Such a server read is skipped in debug builds.
const RUSTLS_959: bool = cfg!(debug_assertions);

fn skip_read(server_shut: bool, tampered: bool) -> bool {
    RUSTLS_959 && server_shut && tampered
}

/// nvelox's server settings that matter here (its provider, default
/// session cache, so TLS 1.3 tickets are sent; ALPN), both versions.
pub fn tls_server_config() -> Arc<ServerConfig> {
    support::server_config(rustls::DEFAULT_VERSIONS)
}

/// A client that offers one version and AES-128-GCM only (so its keys
/// can be taken out and used by [`Crafter`]).
pub fn tls_client_config(tls12: bool) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
        rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ];
    let mut c = client_config_with(Arc::new(provider), only(tls12));
    c.enable_secret_extraction = true;
    Arc::new(c)
}

/// Script bytes; zeros once they run out.
pub struct Script<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Script<'a> {
    pub fn new(data: &'a [u8]) -> Script<'a> {
        Script { data, pos: 0 }
    }
    pub fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub fn u16(&mut self) -> usize {
        usize::from(self.u8()) << 8 | usize::from(self.u8())
    }
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = (start + n).min(self.data.len());
        self.pos = start + n;
        &self.data[start..end]
    }
}

fn assert_bounded(s: &TlsSession) {
    let held = s.buffered_capacity();
    assert!(held <= TLS_BUFFER_BOUND, "session holds {held} B of buffers");
}

/// What one server read pass did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    Blocked,
    Eof,
    Failed,
}

/// Reads plaintext with a `len`-byte buffer until the socket would block,
/// the stream ends or the session fails.
pub fn server_read(s: &mut TlsSession, w: &mut Wire, len: usize, got: &mut Vec<u8>) -> ReadEnd {
    let mut buf = vec![0u8; len.max(1)];
    // Each read that does not end the pass returns at least one byte.
    let most = w.rx.len() + TLS_BUFFER_BOUND + 2;
    for _ in 0..most {
        let res = s.io(w).read(&mut buf);
        assert_bounded(s);
        match res {
            Ok(0) => return ReadEnd::Eof,
            Ok(n) => {
                assert!(n <= buf.len());
                got.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(w.rx.is_empty(), "WouldBlock with {} B unread", w.rx.len());
                return ReadEnd::Blocked;
            }
            Err(_) => return ReadEnd::Failed,
        }
    }
    panic!("a read pass never ended");
}

/// Writes `data` (the count taken; stops at the first refusal).
pub fn server_write(s: &mut TlsSession, w: &mut Wire, data: &[u8]) -> Result<usize, ()> {
    let mut sent = 0;
    for _ in 0..10_000 {
        if sent == data.len() {
            break;
        }
        let res = s.io(w).write(&data[sent..]);
        assert_bounded(s);
        match res {
            Ok(0) => panic!("write took nothing"),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    s.wants_write() || s.is_handshaking(),
                    "WouldBlock with nothing queued"
                );
                break;
            }
            Err(_) => return Err(()),
        }
    }
    Ok(sent)
}

/// A rustls client for the server session (one version, see
/// [`tls_client_config`]).
pub fn rustls_client(tls12: bool) -> Connection {
    let mut c = ClientConnection::new(tls_client_config(tls12), server_name()).unwrap();
    c.set_buffer_limit(None);
    c.into()
}

/// Handshake steps of a server session until done, `client`'s records
/// passed on `step` bytes at a time (`None` if it never ends).
pub fn handshake(client: &mut Connection, w: &mut Wire, step: usize) -> Option<TlsSession> {
    drive_handshake(client, TlsSession::server(tls_server_config()).unwrap(), w, step)
}

/// Handshake steps of `s` against `peer` until both are done, the
/// session's buffers bounded at every step.
fn drive_handshake(
    peer: &mut Connection,
    s: TlsSession,
    w: &mut Wire,
    step: usize,
) -> Option<TlsSession> {
    support::handshake(peer, s, w, step, assert_bounded)
}

/// Mode 0: arbitrary bytes as the start of a connection.
pub fn check_raw(data: &[u8]) {
    let mut script = Script::new(data);
    let fed = usize::from(script.u8()) * 4;
    let mut seed = u32::from(script.u8()) | 1;
    let rest = script.bytes(data.len());
    let mut s = TlsSession::server(tls_server_config()).unwrap();
    let mut w = Wire::new();
    let (early, rest) = rest.split_at(fed.min(rest.len()));
    if !early.is_empty() && s.feed(early).is_err() {
        return;
    }
    let mut at = 0;
    let mut got = Vec::new();
    let mut done = false;
    for _ in 0..100_000 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed as usize % 700 + 1).min(rest.len() - at);
        w.rx.extend(&rest[at..at + n]);
        at += n;
        w.fin = at == rest.len();
        if !done {
            match s.handshake(&mut w) {
                Handshake::Done => done = true,
                Handshake::Pending => {}
                Handshake::Failed(_) => {
                    assert!(s.handshake(&mut w) != Handshake::Done, "a failure is final");
                    return;
                }
            }
            assert_bounded(&s);
        }
        if done && server_read(&mut s, &mut w, 4096, &mut got) != ReadEnd::Blocked {
            return;
        }
        if at == rest.len() && (done || w.rx.is_empty()) {
            return;
        }
    }
}

/// Modes 1, 2 (our server session, a rustls client) and 5, 6 (our client
/// session, as for `backend_tls`, and a rustls server): a real handshake,
/// then a script. In the script "client" is the rustls peer and "server"
/// our session, whichever side each is.
pub fn check_rustls_peer(tls12: bool, ours_is_client: bool, data: &[u8]) {
    let mut script = Script::new(data);
    let step = usize::from(script.u8()).max(1) * 64;
    let mut w = Wire::new();
    let (mut client, ours) = if ours_is_client {
        let mut peer = ServerConnection::new(tls_server_config()).unwrap();
        peer.set_buffer_limit(None);
        let ours = TlsSession::client(tls_client_config(tls12), server_name()).unwrap();
        (Connection::from(peer), ours)
    } else {
        let ours = TlsSession::server(tls_server_config()).unwrap();
        (rustls_client(tls12), ours)
    };
    let Some(mut s) = drive_handshake(&mut client, ours, &mut w, step) else {
        return;
    };
    // rustls refuses more than 32 key update requests in a row.
    let mut key_updates = 0;
    // Client -> server bytes not yet delivered.
    let mut pending: VecDeque<u8> = VecDeque::new();
    let (mut sent, mut got) = (Vec::new(), Vec::new());
    let (mut wrote, mut came) = (Vec::new(), Vec::new());
    // Bytes were injected, dropped or cut: only prefixes are checked.
    let mut tampered = false;
    let mut client_closed = false;
    let mut server_failed = false;
    let mut client_failed = false;
    let mut server_shut = false;
    let mut counter = 0u8;
    while !script.done() {
        match script.u8() % 12 {
            0 if !client_closed => {
                let n = script.u16() % 40_000;
                let bytes: Vec<u8> = (0..n)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                // Refused once the client took a fatal alert.
                if client.writer().write_all(&bytes).is_err() {
                    assert!(client_failed, "the client refused to write");
                    continue;
                }
                sent.extend_from_slice(&bytes);
                if n > 0 {
                    key_updates = 0;
                }
            }
            1 if !client_closed && !tls12 => {
                if client.refresh_traffic_keys().is_err() {
                    assert!(client_failed, "the client refused a key update");
                    continue;
                }
                key_updates += 1;
                tampered |= key_updates > 32;
            }
            2 => {
                client.send_close_notify();
                client_closed = true;
            }
            3 => {
                let n = usize::from(script.u8());
                pending.extend(script.bytes(n));
                tampered = true;
            }
            4 => {
                let at = script.u16();
                let x = script.u8() | 1;
                if let Some(b) = pending.get_mut(at % pending.len().max(1)) {
                    *b ^= x;
                    tampered = true;
                }
            }
            5 => {
                let n = script.u16();
                while client.wants_write() {
                    client.write_tls(&mut VecWriter(&mut pending)).unwrap();
                }
                let n = n.min(pending.len());
                w.rx.extend(pending.drain(..n));
            }
            6 if !server_failed && !skip_read(server_shut, tampered) => {
                let len = usize::from(script.u8()) * 256 + 1;
                let end = server_read(&mut s, &mut w, len, &mut got);
                server_failed = end == ReadEnd::Failed;
            }
            7 if !server_failed && !server_shut => {
                let n = script.u16();
                let bytes: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
                match server_write(&mut s, &mut w, &bytes) {
                    Ok(k) => wrote.extend_from_slice(&bytes[..k]),
                    Err(()) => server_failed = true,
                }
            }
            8 => {
                if !client_failed {
                    client_failed = !client_take(&mut client, &mut w, &mut came);
                }
                w.tx.clear();
            }
            9 => {
                let cut = script.u16().min(pending.len());
                pending.truncate(pending.len() - cut);
                tampered |= cut > 0;
                w.fin = true;
            }
            10 => {
                server_shut = true;
                let _ = s.io(&mut w).shutdown_write();
                let _ = s.flush(&mut w);
            }
            11 => w.room = usize::from(script.u8()) * 64,
            _ => {}
        }
        assert_bounded(&s);
        if !s.is_handshaking() {
            let _ = s.flush(&mut w);
        }
    }
    // Everything out, everything read, the client takes what came.
    while client.wants_write() {
        client.write_tls(&mut VecWriter(&mut pending)).unwrap();
    }
    w.rx.extend(pending.drain(..));
    w.room = usize::MAX;
    let mut end = ReadEnd::Failed;
    if skip_read(server_shut, tampered) {
        return;
    }
    if !server_failed {
        end = server_read(&mut s, &mut w, 16 * 1024, &mut got);
        let _ = s.flush(&mut w);
    }
    if !client_failed {
        client_failed = !client_take(&mut client, &mut w, &mut came);
    }
    assert!(got.len() <= sent.len() && got == sent[..got.len()], "read a prefix");
    assert!(came.len() <= wrote.len() && came == wrote[..came.len()], "client a prefix");
    if tampered || w.fin {
        return;
    }
    assert!(!server_failed && end != ReadEnd::Failed, "an untouched stream failed");
    assert!(!client_failed, "the client refused what the server sent");
    assert_eq!(got.len(), sent.len(), "the server read all");
    assert_eq!(came.len(), wrote.len(), "the client got all");
    assert_eq!(end == ReadEnd::Eof, client_closed);
    if !s.wants_write() {
        assert_eq!(s.buffered_capacity(), 0, "an idle session holds no buffer");
    }
}

struct VecWriter<'a>(&'a mut VecDeque<u8>);

impl Write for VecWriter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.extend(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The client processes what the server sent; false if it refused it.
fn client_take(client: &mut Connection, w: &mut Wire, came: &mut Vec<u8>) -> bool {
    let mut rd = &w.tx[..];
    let mut ok = true;
    while !rd.is_empty() && ok {
        if client.read_tls(&mut rd).is_err() {
            ok = false;
            break;
        }
        match client.process_new_packets() {
            Ok(_) => {
                let _ = client.reader().read_to_end(came);
            }
            Err(_) => ok = false,
        }
    }
    w.tx.clear();
    ok
}

/// The whole oracle: the mode from the first byte, the rest as its input.
pub fn check_tls_session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 8 {
        0 => check_raw(rest),
        1 => check_rustls_peer(false, false, rest),
        2 => check_rustls_peer(true, false, rest),
        3 => check_crafted(false, rest),
        4 => check_crafted(true, rest),
        5 => check_rustls_peer(false, true, rest),
        6 => check_rustls_peer(true, true, rest),
        _ => check_raw(rest),
    }
}
