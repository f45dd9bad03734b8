//! The adapter that lets a reactor-driven shell read and write plaintext
//! over a rustls connection on a non-blocking socket.
//!
//! Owns: one rustls connection (server side for `tls:` listeners and
//! https, client side for `backend_tls`) and its end-of-stream state.
//! The socket stays with the caller: [`TlsSession::io`] borrows it and
//! returns a [`TlsIo`] that implements `Read` + `Write` + `ShutdownWrite`
//! with the socket's own semantics (`WouldBlock` only when the socket
//! would block, `Ok(0)` at the end of the stream), so the relay's pump and
//! an HTTP codec can use it like a `TcpStream`.
//!
//! Edge-triggered rules it keeps: a read goes on until the caller's buffer
//! is full or the socket would block (a short read therefore still means
//! "drained"); rustls' own output (handshake, alerts, tickets) is flushed
//! on every call and by [`TlsSession::flush`], which the shell calls on
//! every readiness event; a write is refused with `WouldBlock` while
//! earlier records are still unsent, so at most one caller buffer of
//! ciphertext waits per connection. Does not own sockets, timers or the
//! phase machine.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::tcp::relay::ShutdownWrite;

/// The most plaintext taken in one write: one TLS record's worth times
/// four, so a relay buffer goes out in a few records.
const MAX_PLAIN_WRITE: usize = 64 * 1024;

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

/// One TLS connection's state, apart from its socket.
pub struct TlsSession {
    conn: Connection,
    /// The peer's stream ended (close_notify, or a TCP FIN).
    eof: bool,
    /// A TCP FIN was read (rustls has been told).
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
        Ok(TlsSession::new(ServerConnection::new(config)?.into()))
    }

    /// The client side of a new connection to a server named `name`
    /// (SNI and certificate verification).
    pub fn client(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<TlsSession, rustls::Error> {
        Ok(TlsSession::new(ClientConnection::new(config, name)?.into()))
    }

    fn new(conn: Connection) -> TlsSession {
        TlsSession {
            conn,
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

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Records are waiting to be written to the socket.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// The server name the client asked for (server side).
    pub fn server_name(&self) -> Option<&str> {
        match &self.conn {
            Connection::Server(s) => s.server_name(),
            Connection::Client(_) => None,
        }
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
        self.conn.alpn_protocol()
    }

    /// The peer presented a certificate (client certificates on the
    /// server side).
    pub fn has_peer_certificate(&self) -> bool {
        self.conn.peer_certificates().is_some_and(|c| !c.is_empty())
    }

    /// Bytes the peer sent before the session existed (read past a PROXY
    /// header): fed to rustls as if just read from the socket.
    pub fn feed(&mut self, mut early: &[u8]) -> Result<(), String> {
        while !early.is_empty() {
            match self.conn.read_tls(&mut early) {
                Ok(0) => break,
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        return Err(e.to_string());
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// Writes queued records until none is left (`Ok(true)`) or the
    /// socket would block (`Ok(false)`). Shuts the write side once a
    /// queued close_notify is out.
    pub fn flush<S: Write + ShutdownWrite>(&mut self, sock: &mut S) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
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
            if !self.conn.is_handshaking() {
                return Handshake::Done;
            }
            if self.conn.wants_write() {
                return Handshake::Pending;
            }
            match self.conn.read_tls(sock) {
                Ok(0) => return Handshake::Failed(PEER_CLOSED.into()),
                Ok(_) => {
                    if let Err(e) = self.conn.process_new_packets() {
                        self.cert_rejected = matches!(e, rustls::Error::InvalidCertificate(_));
                        // Best effort: tell the peer why (the alert is queued).
                        let _ = self.flush(sock);
                        return Handshake::Failed(e.to_string());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return match self.flush(sock) {
                        Err(e) => Handshake::Failed(format!("write: {e}")),
                        Ok(_) if self.conn.is_handshaking() => Handshake::Pending,
                        Ok(_) => Handshake::Done,
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Handshake::Failed(format!("read: {e}")),
            }
        }
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
            match s.conn.reader().read(&mut buf[filled..]) {
                Ok(0) => s.eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if s.tcp_eof {
                        s.eof = true;
                        break;
                    }
                    match s.conn.read_tls(self.sock) {
                        Ok(0) => {
                            s.tcp_eof = true;
                            // Lets rustls see the end (close_notify or not).
                            let _ = s.conn.process_new_packets();
                        }
                        Ok(_) => {
                            if let Err(e) = s.conn.process_new_packets() {
                                let _ = s.flush(self.sock);
                                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => s.eof = true,
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
        let n = s
            .conn
            .writer()
            .write(&buf[..buf.len().min(MAX_PLAIN_WRITE)])?;
        if n == 0 && !buf.is_empty() {
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
            s.conn.send_close_notify();
        }
        if s.flush(self.sock)? {
            Ok(())
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}
