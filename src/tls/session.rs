//! The adapter that lets a reactor-driven shell read and write plaintext
//! over a rustls connection on a non-blocking socket.
//!
//! Owns: one rustls *unbuffered* connection (server side for `tls:`
//! listeners and https, client side for `backend_tls`), the session's
//! byte buffers and its end-of-stream state. nvelox, not rustls, owns the
//! buffers (`buffers.rs`): ciphertext read but not yet processed (a
//! partial record), plaintext decrypted but not yet taken, records not yet
//! sent. Each one holds storage only while bytes wait in it and gives it
//! back to a per-loop pool when empty, so an idle connection keeps only
//! rustls's own state (keys, the handshake deframer) — no 4 KiB receive
//! buffer as rustls's buffered connection keeps for a connection's life.
//!
//! The socket stays with the caller: [`TlsSession::io`] borrows it and
//! returns a [`TlsIo`] that implements `Read` + `Write` + `ShutdownWrite`
//! with the socket's own semantics (`WouldBlock` only when the socket
//! would block, `Ok(0)` at the end of the stream), so the relay's pump and
//! an HTTP codec can use it like a `TcpStream`.
//!
//! Edge-triggered rules it keeps: a read goes on until the caller's buffer
//! is full, the socket would block or the stream ended (so a short read
//! means "drained" unless the session ended: its [`ShortRead`] answer);
//! records rustls produces (handshake, alerts, tickets) are
//! flushed on every call and by [`TlsSession::flush`], which the shell calls
//! on every readiness event; a write is refused with `WouldBlock` while
//! earlier records are still unsent, so at most one caller buffer of
//! ciphertext waits per connection. Unprocessed ciphertext is bounded by
//! [`MAX_INPUT`] (a 64 KiB handshake message being joined plus a record).
//! Does not own sockets, timers or the phase machine.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::{ClientConfig, CommonState, ServerConfig};

use super::buffers::Buf;
use super::records::{advance, Buffers, Progress};
use crate::tcp::relay::{Readiness, ShortRead, ShortReadMeans, ShutdownWrite};

/// The most plaintext taken in one write: one TLS record's worth times
/// four, so a relay buffer goes out in a few records.
const MAX_PLAIN_WRITE: usize = 64 * 1024;

/// Room asked for on each socket read: a whole TLS record (16 KiB of
/// plaintext plus the largest overhead rustls accepts).
const READ_MIN: usize = 16 * 1024 + 2048 + 5;

/// The most ciphertext a session holds unprocessed: a handshake message
/// being joined (rustls refuses those over 64 KiB) plus one record.
pub const MAX_INPUT: usize = 0xffff + READ_MIN;

const PEER_CLOSED: &str = "the peer closed during the handshake";

/// How a handshake step went.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Complete: application data may flow.
    Done,
    /// Waiting for the peer (or for the socket to take our records).
    Pending,
    /// Failed (bad certificate, protocol error, the peer closed); the
    /// reason is for the log. An alert was sent when possible.
    Failed(String),
}

enum Conn {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

/// One TLS connection's state, apart from its socket.
pub struct TlsSession {
    conn: Conn,
    bufs: Buffers,
    /// rustls failed: every later step fails the same way.
    failed: Option<rustls::Error>,
    /// The peer's close_notify was processed.
    peer_closed: bool,
    /// The peer's stream ended (close_notify, or a TCP FIN) and every
    /// plaintext byte before the end was taken.
    eof: bool,
    /// A TCP FIN was read.
    tcp_eof: bool,
    /// Our close_notify is queued; the socket's write side closes once it
    /// is flushed.
    closing: bool,
    /// The socket's write side is shut.
    shut: bool,
    /// The handshake failed on the socket (the peer closed or reset it),
    /// not on a TLS error.
    peer_gone: bool,
    /// The handshake failed because the peer's certificate was refused
    /// (client side: verification against the trust anchors or the name).
    cert_rejected: bool,
}

/// A session borrowed together with its socket: the plaintext stream.
pub struct TlsIo<'a, S> {
    pub session: &'a mut TlsSession,
    pub sock: &'a mut S,
}

impl TlsSession {
    /// The server side of a new client connection.
    pub fn server(config: Arc<ServerConfig>) -> Result<TlsSession, rustls::Error> {
        Ok(TlsSession::new(Conn::Server(
            UnbufferedServerConnection::new(config)?,
        )))
    }

    /// The client side of a new connection to a server named `name`
    /// (SNI and certificate verification).
    pub fn client(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<TlsSession, rustls::Error> {
        Ok(TlsSession::new(Conn::Client(
            UnbufferedClientConnection::new(config, name)?,
        )))
    }

    fn new(conn: Conn) -> TlsSession {
        TlsSession {
            conn,
            bufs: Buffers::default(),
            failed: None,
            peer_closed: false,
            eof: false,
            tcp_eof: false,
            closing: false,
            shut: false,
            peer_gone: false,
            cert_rejected: false,
        }
    }

    pub fn io<'a, S>(&'a mut self, sock: &'a mut S) -> TlsIo<'a, S> {
        TlsIo {
            session: self,
            sock,
        }
    }

    fn common(&self) -> &CommonState {
        match &self.conn {
            Conn::Server(c) => c,
            Conn::Client(c) => c,
        }
    }

    pub fn is_handshaking(&self) -> bool {
        self.common().is_handshaking()
    }

    /// Records are waiting to be written to the socket.
    pub fn wants_write(&self) -> bool {
        // rustls's own queue is drained by every `process` (a failed
        // session's is never sent: nothing would take it out).
        !self.bufs.output.is_empty() || (self.failed.is_none() && self.common().wants_write())
    }

    /// The peer's stream ended (close_notify or a FIN) and every plaintext
    /// byte was taken: a read returns `Ok(0)` without the socket.
    pub fn ended(&self) -> bool {
        self.eof
    }

    /// Bytes of buffer storage the session holds now (0 when idle).
    pub fn buffered_capacity(&self) -> usize {
        self.bufs.input.capacity() + self.bufs.plain.capacity() + self.bufs.output.capacity()
    }

    /// The last failed handshake step failed because the peer closed or
    /// reset the connection (not because of a TLS error).
    pub fn peer_gone(&self) -> bool {
        self.peer_gone
    }

    /// The last failed handshake step failed because the peer's
    /// certificate was refused (e.g. unknown issuer, wrong name).
    pub fn cert_rejected(&self) -> bool {
        self.cert_rejected
    }

    /// The protocol agreed by ALPN, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.common().alpn_protocol()
    }

    /// The peer presented a certificate (client certificates on the
    /// server side).
    pub fn has_peer_certificate(&self) -> bool {
        self.common()
            .peer_certificates()
            .is_some_and(|c| !c.is_empty())
    }

    /// Bytes the peer sent before the session existed (read past a PROXY
    /// header): processed as if just read from the socket.
    pub fn feed(&mut self, early: &[u8]) -> Result<(), String> {
        if self.bufs.input.len() + early.len() > MAX_INPUT {
            return Err("too much TLS data before the handshake".into());
        }
        self.bufs.input.extend(early);
        self.process(None, None, false)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Lets rustls work on the buffered ciphertext: decrypted bytes go to
    /// `sink` (then to the plaintext buffer), `write` is encrypted and
    /// `close` queues close_notify once application data may flow.
    fn process(
        &mut self,
        sink: Option<&mut [u8]>,
        write: Option<&[u8]>,
        close: bool,
    ) -> Result<Progress, rustls::Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let res = match &mut self.conn {
            Conn::Server(c) => advance(&mut **c, &mut self.bufs, sink, write, close),
            Conn::Client(c) => advance(&mut **c, &mut self.bufs, sink, write, close),
        };
        match &res {
            Ok(p) if p.peer_closed => {
                self.peer_closed = true;
                // rustls reads nothing after close_notify: keep nothing.
                self.bufs.input = Buf::default();
            }
            Ok(_) => {}
            Err(e) => {
                self.cert_rejected = matches!(e, rustls::Error::InvalidCertificate(_));
                self.failed = Some(e.clone());
                // Nothing more will be processed.
                self.bufs.input = Buf::default();
                self.bufs.plain = Buf::default();
            }
        }
        res
    }

    /// Writes queued records until none is left (`Ok(true)`) or the
    /// socket would block (`Ok(false)`). Shuts the write side once a
    /// queued close_notify is out.
    pub fn flush<S: Write + ShutdownWrite>(&mut self, sock: &mut S) -> io::Result<bool> {
        let out = &mut self.bufs.output;
        while !out.is_empty() {
            match sock.write(out.filled()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => out.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.closing && !self.shut {
            self.shut = true;
            let _ = sock.shutdown_write();
        }
        Ok(true)
    }

    /// One handshake step: reads what the socket has, lets rustls work
    /// on it, writes its answer. Only this connection's records are
    /// processed, so one slow peer cannot hold the loop.
    pub fn handshake<S: Read + Write + ShutdownWrite>(&mut self, sock: &mut S) -> Handshake {
        let step = self.handshake_step(sock);
        if let Handshake::Failed(why) = &step {
            self.peer_gone =
                why.starts_with("write: ") || why.starts_with("read: ") || why == PEER_CLOSED;
        }
        step
    }

    fn handshake_step<S: Read + Write + ShutdownWrite>(&mut self, sock: &mut S) -> Handshake {
        loop {
            if let Err(e) = self.flush(sock) {
                return Handshake::Failed(format!("write: {e}"));
            }
            if !self.is_handshaking() {
                return Handshake::Done;
            }
            if !self.bufs.output.is_empty() {
                return Handshake::Pending;
            }
            if let Err(e) = self.process(None, None, false) {
                // Best effort: tell the peer why (the alert is queued).
                let _ = self.flush(sock);
                return Handshake::Failed(e.to_string());
            }
            if !self.bufs.output.is_empty() || !self.is_handshaking() {
                continue;
            }
            if self.bufs.input.len() >= MAX_INPUT {
                return Handshake::Failed("handshake message too large".into());
            }
            match self.bufs.input.read_from(sock, READ_MIN) {
                Ok(0) => return Handshake::Failed(PEER_CLOSED.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.bufs.input.shrink();
                    return Handshake::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Handshake::Failed(format!("read: {e}")),
            }
        }
    }
}

/// A read through the session goes on until the caller's buffer is full,
/// the socket would block or the stream ended, so a short read means
/// "drained" unless the session saw the end: a close_notify (or FIN) in
/// the same bytes as the last data ends the stream without a new edge.
/// The socket's own FIN says nothing here: records before it may still
/// have to be read (the session reads them and then the end).
impl ShortRead for TlsSession {
    fn short_read(&self, ready: &Readiness) -> ShortReadMeans {
        ShortReadMeans::of(ready, self.ended())
    }
}

impl<S: Read + Write + ShutdownWrite> Read for TlsIo<'_, S> {
    /// Plaintext until `buf` is full, the socket would block, or the
    /// stream ended (`Ok(0)` once nothing is left; a FIN without
    /// close_notify counts as an end too, as most clients do that).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let s = &mut *self.session;
        let mut filled = 0;
        while filled < buf.len() && !s.eof {
            filled += s.bufs.plain.take_into(&mut buf[filled..]);
            if filled == buf.len() {
                break;
            }
            match s.process(Some(&mut buf[filled..]), None, false) {
                Ok(p) if p.delivered > 0 => {
                    filled += p.delivered;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = s.flush(self.sock);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            if !s.bufs.plain.is_empty() {
                continue;
            }
            if s.peer_closed || s.tcp_eof {
                s.eof = true;
                break;
            }
            if s.bufs.input.len() >= MAX_INPUT {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "too much TLS data without a complete record",
                ));
            }
            match s.bufs.input.read_from(self.sock, READ_MIN) {
                Ok(0) => s.tcp_eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Drained: waiting for the peer, maybe mid-record.
                    s.bufs.input.shrink();
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Tickets, key updates or alerts rustls wants to send.
        if let Err(e) = s.flush(self.sock) {
            if filled == 0 {
                return Err(e);
            }
        }
        if filled > 0 || s.eof {
            Ok(filled)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}

impl<S: Read + Write + ShutdownWrite> Write for TlsIo<'_, S> {
    /// Takes plaintext only when every earlier record is out (else
    /// `WouldBlock`, so the relay keeps its buffer and waits for the edge).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let s = &mut *self.session;
        if s.closing {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if !s.flush(self.sock)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let data = &buf[..buf.len().min(MAX_PLAIN_WRITE)];
        let n = s
            .process(None, Some(data), false)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            .wrote;
        if n == 0 {
            // Application data may not flow yet (the handshake is not done).
            s.flush(self.sock)?;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // What the socket does not take now goes on the next call or flush.
        s.flush(self.sock)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.session.flush(self.sock).map(|_| ())
    }
}

impl<S: Read + Write + ShutdownWrite> ShutdownWrite for TlsIo<'_, S> {
    /// Queues close_notify; the socket's write side is shut once every
    /// record is out (here, or by a later [`TlsSession::flush`]).
    fn shutdown_write(&mut self) -> io::Result<()> {
        let s = &mut *self.session;
        if !s.closing {
            s.closing = true;
            // Without application keys (a failed or unfinished handshake)
            // there is no close_notify to send: the FIN alone ends it.
            let _ = s.process(None, None, true);
        }
        if s.flush(self.sock)? {
            Ok(())
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
