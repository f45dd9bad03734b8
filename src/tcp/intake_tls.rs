//! TLS on a TCP listener, the socket shell: `sni_routes` (read the
//! ClientHello without consuming it, choose the backend by its server
//! name, relay the untouched bytes) and `tls:` (the handshake with the
//! client; relaying is in `relay_tls.rs`).
//!
//! Owns: reading the ClientHello into the connection's `early` bytes (they
//! go to the server first, as they came) up to
//! [`MAX_CLIENT_HELLO`], the route lookup, one handshake step per
//! readiness event of that connection (so a handshake never holds the
//! loop for other connections longer than its own records take). Does not own the ClientHello format
//! (`tls::client_hello`), rustls (`tls::session`), the timeouts and
//! phases (`phase.rs`) or plain relaying (`conn.rs`).

use reactor::Ctx;

use super::header::read_intake;
use super::phase::{Event, Limits, Phase, Reason};
use super::{show, ConnId, TcpProxy};
use crate::config::route_by_sni;
use crate::events::Loop;
use crate::metrics::TlsFailure;
use crate::tls::client_hello::{peek, Peek, MAX_CLIENT_HELLO};
use crate::tls::Handshake;

impl TcpProxy {
    /// After the PROXY header: goes on with the ClientHello or the
    /// handshake at once, on the bytes that came with the header.
    pub(super) fn continue_intake(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        match c.state.phase() {
            Phase::AwaitingHello => self.read_hello(ctx, id),
            Phase::Handshaking => {
                let early = std::mem::take(&mut c.early);
                if let Some(tls) = c.client_tls.as_deref_mut() {
                    if let Err(why) = tls.feed(&early) {
                        self.tls_refused(ctx, id, &why);
                        return self.step(ctx, id, Event::HandshakeFailed);
                    }
                }
                self.client_handshake(ctx, id)
            }
            _ => {}
        }
    }

    /// Reads what the client sent so far (kept in `early`) and, once the
    /// ClientHello is whole, chooses the backend by its server name.
    pub(super) fn read_hello(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let closed = read_intake(
            &mut c.client,
            &mut c.client_ready,
            &mut c.early,
            MAX_CLIENT_HELLO,
        );
        let event = match peek(&c.early) {
            Peek::NeedMore if !closed => return,
            Peek::NeedMore => {
                self.hello_refused(ctx, id, "the client closed before its ClientHello ended");
                Event::HelloRejected
            }
            Peek::NotTls(why) => {
                self.hello_refused(ctx, id, why);
                Event::HelloRejected
            }
            Peek::ServerName(name) => {
                let lp = c.rt.plan.listener(c.listener);
                if let Some(b) = route_by_sni(&lp.sni_routes, name.as_deref()) {
                    let bp = c.rt.plan.backend(b);
                    c.backend = b;
                    c.state.set_limits(Limits {
                        retries: bp.retries,
                        connect_timeout: bp.connect_timeout,
                        idle_timeout: lp.idle_timeout,
                    });
                }
                log::debug!(
                    "listener {}: {} asked for {} -> backend {}",
                    lp.name,
                    show(&c.peer),
                    name.as_deref().unwrap_or("(no server name)"),
                    c.rt.plan.backend(c.backend).name
                );
                Event::HelloRouted
            }
        };
        self.step(ctx, id, event);
    }

    fn hello_refused(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId, why: &str) {
        self.count_tls_failure(ctx, id, TlsFailure::BadClientHello);
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        if let Some(n) = self.header_warn.allow(ctx.now()) {
            log::warn!(
                "listener {}: closing {}: no TLS ClientHello: {why} ({n} similar messages suppressed)",
                c.rt.plan.listener(c.listener).name,
                show(&c.peer)
            );
        }
    }

    fn tls_refused(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId, why: &str) {
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        let reason = match c.client_tls.as_deref() {
            Some(t) if t.peer_gone() => TlsFailure::PeerClosed,
            _ => TlsFailure::HandshakeError,
        };
        self.count_tls_failure(ctx, id, reason);
        if let Some(n) = self.header_warn.allow(ctx.now()) {
            log::warn!(
                "listener {}: TLS handshake with {} failed: {why} ({n} similar messages suppressed)",
                c.rt.plan.listener(c.listener).name,
                show(&c.peer)
            );
        }
    }

    /// The ClientHello or the handshake did not come in time.
    pub(super) fn tls_intake_timed_out(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId, r: Reason) {
        let reason = match r {
            Reason::ClientHelloTimeout => TlsFailure::ClientHelloTimeout,
            _ => TlsFailure::HandshakeTimeout,
        };
        self.count_tls_failure(ctx, id, reason);
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        if let Some(n) = self.header_warn.allow(ctx.now()) {
            log::warn!(
                "listener {}: closing {}: {r} ({n} similar messages suppressed)",
                c.rt.plan.listener(c.listener).name,
                show(&c.peer),
            );
        }
    }

    fn count_tls_failure(&self, ctx: &Ctx<impl Loop>, id: ConnId, why: TlsFailure) {
        if let Some(c) = self.conns.get(id.0) {
            c.rt.listener_stats[c.listener.0].add(ctx.loop_index(), why.counter(), 1);
        }
    }

    /// One handshake step for this connection only.
    pub(super) fn client_handshake(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let Some(tls) = c.client_tls.as_deref_mut() else {
            return;
        };
        match tls.handshake(&mut c.client) {
            Handshake::Pending => {}
            Handshake::Done => {
                // Application data may have come with the client's
                // Finished and sit decrypted in rustls: read it even if
                // the socket has no new edge.
                c.client_ready.readable = true;
                self.step(ctx, id, Event::HandshakeDone);
            }
            Handshake::Failed(why) => {
                self.tls_refused(ctx, id, &why);
                self.step(ctx, id, Event::HandshakeFailed);
            }
        }
    }
}
