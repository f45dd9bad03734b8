//! The client side of an HTTP connection: a plain socket (`protocol:
//! http`) or a socket seen through its TLS session (`protocol: https`),
//! and the TLS handshake that comes before the first request.
//!
//! Owns: [`ClientStream`] (plaintext `Read`/`Write` either way, TLS records
//! still queued in rustls, the close_notify at the end), one handshake
//! step per readiness event of this connection (so a handshake never holds
//! the loop for the others longer than its own records take), the
//! handshake deadline ([`HANDSHAKE_TIMEOUT`]) and counting refused
//! handshakes. Does not own rustls (`tls::session`), the certificates
//! (`tls::server`, reloaded with the plan on SIGHUP: a new connection
//! takes the plan's current ones) or HTTP (`exchange.rs`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;
use reactor::Ctx;

use super::{HttpId, HttpProxy};
use crate::config::ListenerPlan;
use crate::events::Loop;
use crate::metrics::TlsFailure;
use crate::tcp::relay::ShutdownWrite;
use crate::tls::{Handshake, TlsSession};

/// A client that has not completed its TLS handshake by then is closed
/// (as on `tls:` tcp listeners).
pub const HANDSHAKE_TIMEOUT: Duration = crate::tcp::phase::TLS_HANDSHAKE_TIMEOUT;

/// The client's byte stream: plaintext for the HTTP code either way.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(TcpStream, Box<TlsSession>),
}

impl ClientStream {
    /// The stream for a client accepted on listener `lp`: with a new TLS
    /// session when the listener has `tls:` (https). `None` (logged) when
    /// the session cannot be made.
    pub fn accepted(lp: &ListenerPlan, sock: TcpStream, peer: &SocketAddr) -> Option<ClientStream> {
        match lp.tls.as_ref().map(|t| t.session()) {
            None => Some(ClientStream::Plain(sock)),
            Some(Ok(s)) => Some(ClientStream::Tls(sock, Box::new(s))),
            Some(Err(e)) => {
                log::error!("listener {}: cannot start TLS for {peer}: {e}", lp.name);
                None
            }
        }
    }

    pub(super) fn tcp(&mut self) -> &mut TcpStream {
        match self {
            ClientStream::Plain(s) | ClientStream::Tls(s, _) => s,
        }
    }

    pub(super) fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(..))
    }

    /// Ends our side: close_notify first over TLS (its records go out
    /// now or with a later [`ClientStream::flush_records`]), then the FIN.
    pub(super) fn shutdown_write(&mut self) {
        match self {
            ClientStream::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            ClientStream::Tls(s, t) => {
                let _ = t.io(s).shutdown_write();
            }
        }
    }

    /// TLS records are queued in rustls, not yet written to the socket.
    pub(super) fn has_queued_records(&self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(_, t) => t.wants_write(),
        }
    }

    /// Writes queued TLS records: `Ok(true)` when none is left.
    pub(super) fn flush_records(&mut self) -> io::Result<bool> {
        match self {
            ClientStream::Plain(_) => Ok(true),
            ClientStream::Tls(s, t) => t.flush(s),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(s, t) => t.io(s).read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(s, t) => t.io(s).write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(_) => Ok(()),
            ClientStream::Tls(s, t) => t.io(s).flush(),
        }
    }
}

impl HttpProxy {
    /// One handshake step of connection `id`, when it is still in its
    /// handshake. True when HTTP may go on (no TLS, or the handshake is
    /// complete); false while it is pending or after it failed (the
    /// connection is closed then).
    pub(super) fn handshake_step(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> bool {
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        if c.handshake_due.is_none() {
            return true;
        }
        let ClientStream::Tls(sock, tls) = &mut c.client else {
            c.handshake_due = None;
            return true;
        };
        match tls.handshake(sock) {
            Handshake::Pending => false,
            Handshake::Done => {
                c.handshake_due = None;
                // Application data may have come with the client's
                // Finished and sit decrypted in rustls.
                c.client_ready.readable = true;
                c.client_ready.writable = true;
                true
            }
            Handshake::Failed(why) => {
                let reason = if tls.peer_gone() {
                    TlsFailure::PeerClosed
                } else {
                    TlsFailure::HandshakeError
                };
                self.tls_refused(ctx, id, reason, &why);
                false
            }
        }
    }

    /// The handshake deadline passed: counted, closed.
    pub(super) fn handshake_timed_out(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) {
        self.tls_refused(
            ctx,
            id,
            TlsFailure::HandshakeTimeout,
            "no TLS handshake in time",
        );
    }

    fn tls_refused(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId, reason: TlsFailure, why: &str) {
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        c.rt.listener_stats[c.listener.0].add(ctx.loop_index(), reason.counter(), 1);
        if let Some(n) = self.tls_warn.allow(ctx.now()) {
            log::warn!(
                "listener {}: TLS handshake with {} failed: {why} ({n} similar messages suppressed)",
                c.rt.plan.listener(c.listener).name,
                c.peer
            );
        }
        self.close(ctx, id, "TLS handshake failed");
    }
}
