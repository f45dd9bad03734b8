//! Relaying when either side speaks TLS (`tls:` listeners, `backend_tls`
//! backends), and the TLS part of connecting to a server.
//!
//! Owns: starting the client session to a server once its TCP connect
//! completed (our PROXY header goes out first, in clear), its handshake as
//! part of the connect attempt (a failure is a failed attempt: reported to
//! passive health, next server), and one relay step through
//! [`Plaintext`], a socket or the socket seen through its TLS session.
//! Always copies: splice cannot move what nvelox encrypts or decrypts.
//! Does not own the
//! plain relay (`conn.rs`), the byte pump (`relay.rs`) or rustls
//! (`tls::session`).

use std::io::Write;
use std::sync::Arc;

use reactor::{Ctx, DEFAULT_BUDGET};

use super::conn::Conn;
use super::relay::Pump;
use super::{show, ConnId, TcpProxy};
use crate::events::Loop;
use crate::metrics::BackendTlsFailure;
use crate::tls::{Handshake, Plaintext};

impl Conn {
    /// Counts a failed `backend_tls` handshake against the attempt's
    /// server (`nvelox_server_tls_handshake_failures_total`).
    pub(super) fn count_tls_failure(&self, lp: usize, failure: BackendTlsFailure) {
        if let Some(sid) = self.server {
            let stats = &self.rt.backend(self.backend).server(sid).stats;
            stats.add(lp, failure.counter(), 1);
        }
    }
}

impl TcpProxy {
    /// The TCP connect to a `backend_tls` server completed: sends our PROXY
    /// header in clear and starts the TLS session. False when the backend
    /// does not use TLS (the caller goes on as for plain TCP).
    pub(super) fn start_upstream_tls(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        let rt = Arc::clone(&c.rt);
        let backend = rt.backend(c.backend);
        let (Some(tls), Some(sid)) = (backend.plan.tls.as_ref(), c.server) else {
            return false;
        };
        let server = &backend.plan.servers[sid.0];
        let session = match tls.session(server) {
            Ok(s) => s,
            Err(e) => {
                log::error!("backend {}: cannot start TLS: {e}", backend.plan.name);
                self.connect_failed(ctx, id, "TLS set-up failed");
                return true;
            }
        };
        let header = c.proxy_header(backend.plan.send_proxy);
        if let Some((s, _)) = c.upstream.as_mut() {
            // A fresh connection takes a header of at most 232 bytes whole.
            if !header.is_empty() && !matches!(s.write(&header), Ok(n) if n == header.len()) {
                self.connect_failed(ctx, id, "PROXY header not sent");
                return true;
            }
        }
        c.upstream_tls = Some(Box::new(session));
        true
    }

    /// One step of the handshake with a `backend_tls` server. True when
    /// the caller may relay (no TLS to the server, or the handshake just
    /// completed and the connection is established).
    pub(super) fn upstream_handshake(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        let (Some(tls), Some((sock, _))) = (c.upstream_tls.as_deref_mut(), c.upstream.as_mut())
        else {
            return true;
        };
        match tls.handshake(sock) {
            Handshake::Pending => false,
            Handshake::Done => {
                // Data may sit decrypted in rustls, and the socket was
                // writable all along.
                c.upstream_ready.readable = true;
                c.upstream_ready.writable = true;
                self.connected(ctx, id);
                true
            }
            Handshake::Failed(why) => {
                let failure = BackendTlsFailure::of(tls.cert_rejected(), tls.peer_gone());
                c.count_tls_failure(ctx.loop_index(), failure);
                if let Some(n) = self.down_warn.allow(ctx.now()) {
                    log::warn!(
                        "backend {}: TLS handshake with a server failed for {}: {why} ({n} similar messages suppressed)",
                        c.rt.plan.backend(c.backend).name,
                        show(&c.peer)
                    );
                }
                self.connect_failed(ctx, id, "TLS handshake failed");
                false
            }
        }
    }

    /// One relay step for a connection with TLS on either side.
    pub(super) fn relay_tls(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        let now = ctx.now();
        let c = &mut self.conns[id.0];
        let Some((upstream, _)) = c.upstream.as_mut() else {
            return;
        };
        let (up_before, down_before) = (c.up.bytes, c.down.bytes);
        // Records rustls still holds (a ticket, the tail of a write, a
        // close_notify) go first, on every event.
        let mut client_failed = None;
        if let Some(t) = c.client_tls.as_deref_mut() {
            client_failed = t.flush(&mut c.client).err();
        }
        let mut server_failed = None;
        if let Some(t) = c.upstream_tls.as_deref_mut() {
            server_failed = t.flush(upstream).err();
        }
        // A TLS sink's FIN must follow its close_notify: never by close().
        c.up.fin_by_close = c.down.is_done() && c.upstream_tls.is_none();
        let up = match server_failed {
            Some(e) => Pump::SinkFailed(e),
            None => c.up.pump(
                &mut Plaintext::of(&mut c.client, c.client_tls.as_deref_mut()),
                &mut c.client_ready,
                &mut Plaintext::of(upstream, c.upstream_tls.as_deref_mut()),
                &mut c.upstream_ready,
                &mut self.pool,
                DEFAULT_BUDGET,
            ),
        };
        c.down.fin_by_close = c.up.is_done() && c.client_tls.is_none();
        let down = match client_failed {
            Some(e) => Pump::SinkFailed(e),
            None => c.down.pump(
                &mut Plaintext::of(upstream, c.upstream_tls.as_deref_mut()),
                &mut c.upstream_ready,
                &mut Plaintext::of(&mut c.client, c.client_tls.as_deref_mut()),
                &mut c.client_ready,
                &mut self.pool,
                DEFAULT_BUDGET,
            ),
        };
        self.after_relay(ctx, id, (up, down), (up_before, down_before), now);
    }
}
