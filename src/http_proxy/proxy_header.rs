//! `accept_proxy` on an `http`/`https` listener: the client's PROXY
//! header, read before anything else (TLS included).
//!
//! Owns: reading the header (at most `PROXY_HEADER_MAX` bytes, within
//! `PROXY_HEADER_TIMEOUT`, the connection's intake deadline), taking its
//! client as the connection's peer (`X-Forwarded-For`, `ip_rate_limit`,
//! logs), judging that client by the listener's access rules (closed
//! before any server is contacted when refused) and handing the bytes
//! past the header on (to the ClientHello, the TLS session or the HTTP
//! buffer). Does not own parsing (`proxy_protocol/`, `tcp::header::judge`).

use reactor::Ctx;

use super::{HttpId, HttpProxy};
use crate::events::Loop;
use crate::tcp::header::{accepted_versions, judge, read_intake, Intake, PROXY_HEADER_MAX};

impl HttpProxy {
    /// Reads what the client sent so far; once the header is complete,
    /// admits its client and passes the rest on. True when the connection
    /// may go on (false: waiting for more, or closed).
    pub(super) fn read_proxy_header(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> bool {
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        let accept = accepted_versions(c.rt.plan.listener(c.owner).accept_proxy);
        let Some(buf) = c.client.proxy.as_mut() else {
            return true;
        };
        let closed = read_intake(
            &mut c.client.sock,
            &mut c.client_ready,
            buf,
            PROXY_HEADER_MAX,
        );
        let (origin, consumed) = match judge(buf, closed, accept) {
            Intake::NeedMore => return false,
            Intake::Refused(why) => {
                self.intake_refused(ctx, id, &why);
                return false;
            }
            Intake::Complete { origin, consumed } => (origin, consumed),
        };
        let mut header = c.client.proxy.take().unwrap_or_default();
        let early = header.split_off(consumed.min(header.len()));
        if let Some((client, _)) = origin {
            c.peer = client;
        }
        let rt = std::sync::Arc::clone(&c.rt);
        let lp = rt.plan.listener(c.owner);
        match rt
            .access(c.owner)
            .admit(ctx.loop_index(), &lp.access, c.peer.ip(), ctx.now(), false)
        {
            Ok(a) => c.admitted = Some(a),
            Err(why) => {
                self.intake_refused(ctx, id, why.describe());
                return false;
            }
        }
        match c.client.after_proxy_header(early) {
            Ok(plain) => c.cin.extend_from_slice(&plain),
            Err(why) => {
                let r = crate::metrics::TlsFailure::HandshakeError;
                self.tls_refused(ctx, id, r, &why);
                return false;
            }
        }
        c.handshake_due = c
            .client
            .wants_tls()
            .then(|| crate::clock::after(ctx.now(), super::client::HANDSHAKE_TIMEOUT));
        true
    }

    /// A client refused before TLS or HTTP (bad or late PROXY header, or
    /// the access rules refused its header's client): logged (rate
    /// limited), counted as a connection error, closed.
    pub(super) fn intake_refused(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId, why: &str) {
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        let errors = crate::metrics::listener::CONNECTION_ERRORS;
        c.rt.listener_stats[c.owner.0].add(ctx.loop_index(), errors, 1);
        if let Some(n) = self.tls_warn.allow(ctx.now()) {
            log::warn!(
                "listener {}: closing {}: {why} ({n} similar messages suppressed)",
                c.rt.plan.listener(c.owner).name,
                c.peer
            );
        }
        self.close(ctx, id, "refused");
    }
}
