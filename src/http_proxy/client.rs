//! The client side of an HTTP connection: a plain socket (`protocol:
//! http`) or a socket seen through its TLS session (`protocol: https`),
//! and the TLS handshake that comes before the first request.
//!
//! Owns: [`ClientStream`] (plaintext `Read`/`Write` either way, TLS records
//! still queued in rustls, the close_notify at the end), for a group of
//! https virtual hosts the ClientHello read first (bounded, like
//! `sni_routes`) to choose the listener and so its certificates, one handshake
//! step per readiness event of this connection (so a handshake never holds
//! the loop for the others longer than its own records take), the
//! handshake deadline ([`HANDSHAKE_TIMEOUT`]) and counting refused
//! handshakes. Does not own rustls (`tls::session`), the certificates
//! (`tls::server`, reloaded with the plan on SIGHUP: a new connection
//! takes the plan's current ones) or HTTP (`exchange.rs`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use mio::net::TcpStream;
use reactor::Ctx;

use super::{HttpId, HttpProxy};
use crate::config::ListenerPlan;
use crate::events::Loop;
use crate::metrics::TlsFailure;
use crate::tcp::header::read_intake;
use crate::tcp::relay::{Readiness, ShortRead, ShortReadMeans, ShutdownWrite};
use crate::tls::client_hello::{peek, Peek, MAX_CLIENT_HELLO};
use crate::tls::{Handshake, Plaintext, TlsSession};

/// A client that has not completed its TLS handshake by then is closed
/// (as on `tls:` tcp listeners).
pub const HANDSHAKE_TIMEOUT: Duration = crate::tcp::phase::TLS_HANDSHAKE_TIMEOUT;

/// The client's byte stream: plaintext for the HTTP code either way.
pub struct ClientStream {
    pub(super) sock: TcpStream,
    /// https: the TLS session (once chosen, for virtual hosts).
    tls: Option<Box<TlsSession>>,
    /// https virtual hosts: the ClientHello read so far; the listener,
    /// and so the certificates, are chosen by its server name.
    hello: Option<Vec<u8>>,
    /// `accept_proxy`: the PROXY header read so far (it comes first).
    pub(super) proxy: Option<Vec<u8>>,
}

impl ClientStream {
    /// The stream for a client accepted on listener `lp`: plain, with a
    /// new TLS session when the listener has `tls:` (https), or waiting
    /// for the ClientHello when it heads a group of https virtual hosts.
    /// `None` (logged) when the session cannot be made.
    pub fn accepted(lp: &ListenerPlan, sock: TcpStream, peer: &SocketAddr) -> Option<ClientStream> {
        let mut s = ClientStream {
            sock,
            tls: None,
            hello: None,
            proxy: (lp.accept_proxy != crate::config::AcceptProxy::Off).then(Vec::new),
        };
        if lp.tls.is_some() && lp.vhosts.is_some() {
            s.hello = Some(Vec::new());
        } else if !s.start_tls(lp, peer) {
            return None;
        }
        Some(s)
    }

    /// Starts the TLS session of listener `lp` (nothing without `tls:`).
    fn start_tls(&mut self, lp: &ListenerPlan, peer: &SocketAddr) -> bool {
        match lp.tls.as_ref().map(|t| t.session()) {
            None => true,
            Some(Ok(s)) => {
                self.tls = Some(Box::new(s));
                true
            }
            Some(Err(e)) => {
                log::error!("listener {}: cannot start TLS for {peer}: {e}", lp.name);
                false
            }
        }
    }

    /// Bytes the client sent after its PROXY header: the start of the
    /// ClientHello (virtual hosts), of the TLS handshake, or of a request
    /// (given back: they go to the HTTP buffer).
    pub(super) fn after_proxy_header(&mut self, early: Vec<u8>) -> Result<Vec<u8>, String> {
        if let Some(hello) = self.hello.as_mut() {
            *hello = early;
            return Ok(Vec::new());
        }
        match self.tls.as_deref_mut() {
            Some(t) => t.feed(&early).map(|_| Vec::new()),
            None => Ok(early),
        }
    }

    /// TLS comes next (a ClientHello to read or a handshake to make).
    pub(super) fn wants_tls(&self) -> bool {
        self.hello.is_some() || self.tls.is_some()
    }

    pub(super) fn tcp(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    pub(super) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Ends our side: close_notify first over TLS (its records go out
    /// now or with a later [`ClientStream::flush_records`]), then the FIN.
    pub(super) fn shutdown_write(&mut self) {
        let _ = self.plaintext().shutdown_write();
    }

    /// The socket, or the socket through its TLS session.
    fn plaintext(&mut self) -> Plaintext<'_> {
        Plaintext::of(&mut self.sock, self.tls.as_deref_mut())
    }

    /// TLS records are queued in rustls, not yet written to the socket.
    pub(super) fn has_queued_records(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Writes queued TLS records: `Ok(true)` when none is left.
    pub(super) fn flush_records(&mut self) -> io::Result<bool> {
        match &mut self.tls {
            None => Ok(true),
            Some(t) => t.flush(&mut self.sock),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.plaintext().read(buf)
    }
}

impl ShortRead for ClientStream {
    fn short_read(&self, ready: &Readiness) -> ShortReadMeans {
        match &self.tls {
            None => self.sock.short_read(ready),
            Some(t) => t.short_read(ready),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.plaintext().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.plaintext().flush()
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
        if c.client.proxy.is_some() && !self.read_proxy_header(ctx, id) {
            return false;
        }
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        if c.client.hello.is_some() && !self.read_hello(ctx, id) {
            return false;
        }
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        let ClientStream {
            sock,
            tls: Some(tls),
            ..
        } = &mut c.client
        else {
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

    /// https virtual hosts: reads the ClientHello (bounded), chooses the
    /// listener by its server name and starts that listener's TLS session
    /// on the bytes read. True once the session has started.
    fn read_hello(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> bool {
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        let Some(hello) = c.client.hello.as_mut() else {
            return true;
        };
        let closed = read_intake(
            &mut c.client.sock,
            &mut c.client_ready,
            hello,
            MAX_CLIENT_HELLO,
        );
        let name = match peek(hello) {
            Peek::NeedMore if !closed => return false,
            Peek::NeedMore => {
                self.tls_refused(
                    ctx,
                    id,
                    TlsFailure::PeerClosed,
                    "closed during its ClientHello",
                );
                return false;
            }
            Peek::NotTls(why) => {
                self.tls_refused(ctx, id, TlsFailure::BadClientHello, why);
                return false;
            }
            Peek::ServerName(name) => name,
        };
        let rt = Arc::clone(&c.rt);
        let owner = rt.plan.listener(c.owner);
        if let Some(v) = &owner.vhosts {
            c.listener = v.choose(name.as_deref().map(str::as_bytes));
        }
        let early = c.client.hello.take().unwrap_or_default();
        let lp = rt.plan.listener(c.listener);
        let (limits, timeouts) = super::settings(&rt, c.listener);
        c.session = crate::http::Session::new(limits, ctx.now());
        c.timeouts = timeouts;
        c.write_timeout = super::write_timeout(&rt, c.listener);
        let peer = c.peer;
        if !c.client.start_tls(lp, &peer) {
            self.close(ctx, id, "TLS set-up failed");
            return false;
        }
        let fed = match c.client.tls.as_deref_mut() {
            Some(t) => t.feed(&early),
            None => Err("no tls: block".into()),
        };
        if let Err(why) = fed {
            self.tls_refused(ctx, id, TlsFailure::HandshakeError, &why);
            return false;
        }
        true
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

    pub(super) fn tls_refused(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        reason: TlsFailure,
        why: &str,
    ) {
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

#[cfg(test)]
mod tests {
    use super::super::server_stream::ServerStream;
    use super::*;
    use crate::tcp::relay::{Readiness, ShortRead, ShortReadMeans};

    fn loopback_pair() -> (TcpStream, TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (TcpStream::from_std(a), TcpStream::from_std(b))
    }

    #[test]
    fn plain_streams_answer_short_reads_as_their_socket() {
        let (a, b) = loopback_pair();
        let client = ClientStream {
            sock: a,
            tls: None,
            hello: None,
            proxy: None,
        };
        let server = ServerStream::connecting(b, None);
        let fin = Readiness {
            hangup: true,
            fin: true,
            ..Readiness::default()
        };
        let reset = Readiness {
            hangup: true,
            ..Readiness::default()
        };
        for s in [&client as &dyn ShortRead, &server] {
            assert_eq!(s.short_read(&Readiness::default()), ShortReadMeans::Drained);
            assert_eq!(s.short_read(&fin), ShortReadMeans::Ended);
            assert_eq!(s.short_read(&reset), ShortReadMeans::ReadOn);
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_tls_client_stream_answers_short_reads_as_its_session() {
        use crate::tls::test_support::{
            client_config, handshake, only, server_config, server_name, MemSocket,
        };
        use rustls::{ClientConnection, Connection};
        let mut peer: Connection = ClientConnection::new(client_config(only(false)), server_name())
            .unwrap()
            .into();
        let session = TlsSession::server(server_config(only(false))).unwrap();
        let session = handshake(
            &mut peer,
            session,
            &mut MemSocket::new(),
            usize::MAX,
            |_| {},
        );
        let (sock, _other_end) = loopback_pair();
        let mut client = ClientStream {
            sock,
            tls: Some(Box::new(session.unwrap())),
            hello: None,
            proxy: None,
        };
        let records = |peer: &mut Connection| {
            let mut out = Vec::new();
            while peer.wants_write() {
                peer.write_tls(&mut out).unwrap();
            }
            out
        };
        let quiet = Readiness::default();
        peer.writer().write_all(b"GET").unwrap();
        let early = records(&mut peer);
        client.tls.as_deref_mut().unwrap().feed(&early).unwrap();
        assert_eq!(client.read(&mut [0u8; 64]).unwrap(), 3);
        assert_eq!(client.short_read(&quiet), ShortReadMeans::Drained);
        // The last data and close_notify in one read: the end was read.
        peer.writer().write_all(b"last").unwrap();
        peer.send_close_notify();
        let early = records(&mut peer);
        client.tls.as_deref_mut().unwrap().feed(&early).unwrap();
        assert_eq!(client.read(&mut [0u8; 64]).unwrap(), 4);
        assert_eq!(client.short_read(&quiet), ShortReadMeans::Ended);
        assert_eq!(client.read(&mut [0u8; 64]).unwrap(), 0);
    }
}
