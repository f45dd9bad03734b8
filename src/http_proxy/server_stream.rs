//! The server side of an HTTP exchange: a plain socket, or a socket seen
//! through its TLS session for a backend with `backend_tls`, and the TLS
//! handshake that completes a connect attempt.
//!
//! Owns: [`ServerStream`] (plaintext `Read`/`Write` either way, records
//! still queued in rustls, close_notify at the end); the TLS client
//! session, started with the connect (SNI and verification name as on tcp
//! listeners: `server_name`, else the server's host name as written, else
//! its IP address, verified but sent as no SNI; ALPN `http/1.1`); one handshake step per
//! readiness event, under the connect deadline (`connect_timeout` covers
//! the TCP connect and the handshake); a failed handshake (counted by
//! reason for `nvelox_server_tls_handshake_failures_total`) as a failed
//! connect (passive health, the next server, else 502, logged as `tls
//! verify failed` or `tls handshake failed`); and whether an idle pooled
//! connection is still usable (a TLS one reads what the server sent
//! meanwhile: a session ticket is fine, data or close_notify/EOF is not).
//! Does not own rustls (`tls::session`), the pool (`pool.rs`) or the
//! request (`upstream.rs`, `exchange.rs`).

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use reactor::{Ctx, Ready};

use super::{HttpId, HttpProxy};
use crate::events::Loop;
use crate::http::UpstreamFailure;
use crate::metrics::BackendTlsFailure;
use crate::tcp::relay::{Readiness, ShortRead, ShortReadMeans, ShutdownWrite};
use crate::tls::{ClientTlsId, Handshake, Plaintext, TlsSession};

/// A connection to a server, as the HTTP code sees it.
pub struct ServerStream {
    sock: TcpStream,
    /// `backend_tls`: the session, and the block it was made with (pooled
    /// connections are reused only for the same block).
    tls: Option<(Box<TlsSession>, ClientTlsId)>,
    /// The TCP connect completed.
    connected: bool,
}

impl ServerStream {
    /// A connection being made (`tls`: the session that will run on it).
    pub fn connecting(sock: TcpStream, tls: Option<(TlsSession, ClientTlsId)>) -> ServerStream {
        ServerStream {
            sock,
            tls: tls.map(|(s, id)| (Box::new(s), id)),
            connected: false,
        }
    }

    pub fn tcp(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TCP connect completed and the TLS handshake has not.
    pub fn in_handshake(&self) -> bool {
        self.connected && self.tls.as_ref().is_some_and(|(t, _)| t.is_handshaking())
    }

    /// The identity of the `backend_tls` block (`None`: plain).
    pub fn tls_id(&self) -> Option<&ClientTlsId> {
        self.tls.as_ref().map(|(_, id)| id)
    }

    /// Ends our side: close_notify first over TLS, then the FIN.
    pub fn shutdown_write(&mut self) {
        let _ = self.plaintext().shutdown_write();
    }

    /// The socket, or the socket through its TLS session.
    fn plaintext(&mut self) -> Plaintext<'_> {
        Plaintext::of(&mut self.sock, self.tls.as_mut().map(|(t, _)| &mut **t))
    }

    /// TLS records are queued in rustls, not yet written to the socket.
    pub fn has_queued_records(&self) -> bool {
        self.tls.as_ref().is_some_and(|(t, _)| t.wants_write())
    }

    /// Writes queued TLS records as far as the socket takes them.
    pub fn flush_records(&mut self) -> io::Result<bool> {
        match &mut self.tls {
            None => Ok(true),
            Some((t, _)) => t.flush(&mut self.sock),
        }
    }

    /// An idle (pooled) connection can carry a new request: the server
    /// neither closed it nor sent anything unasked. Over TLS, records that
    /// carry no data (a session ticket, a key update) are read and are fine.
    pub fn idle_usable(&mut self) -> bool {
        let mut probe = [0u8; 1];
        let res = match &mut self.tls {
            None => self.sock.peek(&mut probe),
            Some((t, _)) => t.io(&mut self.sock).read(&mut probe),
        };
        matches!(res, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
            && !self.has_queued_records()
    }
}

impl Read for ServerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.plaintext().read(buf)
    }
}

impl ShortRead for ServerStream {
    fn short_read(&self, ready: &Readiness) -> ShortReadMeans {
        match &self.tls {
            None => self.sock.short_read(ready),
            Some((t, _)) => t.short_read(ready),
        }
    }
}

impl Write for ServerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.plaintext().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.plaintext().flush()
    }
}

impl HttpProxy {
    /// A readiness event on the server connection of `id` while its
    /// connect attempt is under way: the TCP connect's result, then one
    /// handshake step with a `backend_tls` server. True when the caller
    /// should drive the connection (connected, or the attempt failed and
    /// was handled).
    pub(super) fn connect_step(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        ready: &Ready,
    ) -> bool {
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        let Some(up) = c.up.as_mut() else {
            return false;
        };
        if !up.stream.connected {
            match reactor::io::connect_result_for(&up.stream.sock, ready) {
                Ok(false) => return false,
                Ok(true) => up.stream.connected = true,
                Err(_) => {
                    self.upstream_failed(ctx, id, UpstreamFailure::ConnectFailed);
                    return true;
                }
            }
        }
        let s = &mut up.stream;
        if let Some((tls, _)) = s.tls.as_mut().filter(|(t, _)| t.is_handshaking()) {
            match tls.handshake(&mut s.sock) {
                Handshake::Pending => return false,
                Handshake::Done => {
                    // Data may sit decrypted in rustls, and the socket was
                    // writable all along.
                    up.ready.readable = true;
                    up.ready.writable = true;
                }
                Handshake::Failed(why) => {
                    let reason = if tls.cert_rejected() {
                        "tls verify failed"
                    } else {
                        "tls handshake failed"
                    };
                    let backend = c.rt.backend(up.backend);
                    let failure = BackendTlsFailure::of(tls.cert_rejected(), tls.peer_gone());
                    let stats = &backend.server(up.server).stats;
                    stats.add(ctx.loop_index(), failure.counter(), 1);
                    if let Some(n) = self.tls_warn.allow(ctx.now()) {
                        log::warn!(
                            "backend {} server {}: {reason}: {why} ({n} similar messages suppressed)",
                            backend.plan.name,
                            backend.server(up.server).plan.label,
                        );
                    }
                    c.up_why = Some(reason);
                    self.upstream_failed(ctx, id, UpstreamFailure::ConnectFailed);
                    return true;
                }
            }
        }
        // Passive health hears of this server again from the response
        // (`Conn::report_response`): a server that accepts and then fails
        // every request must not pass a trial by connecting.
        up.connecting = None;
        true
    }
}
