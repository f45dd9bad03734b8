//! Idle upstream HTTP connections of one event loop, per server address.
//!
//! Owns the idle connections: one enters only after a complete response
//! with nothing extra read, at most `keepalive` per server (the oldest
//! leaves first), and stays registered under [`Tag::HttpPooled`] so that a
//! server closing it (FIN, RST, close_notify over TLS) or sending bytes
//! unasked is seen at once and dropped ([`Pool::remove_token`]). A
//! connection taken out is trusted without a syscall (no event: still
//! open); the race with a close in flight is covered by the transparent
//! retry of a reused connection that fails before any response byte
//! (`HttpProxy::retry_stale`). A `backend_tls` connection keeps its TLS session and is
//! only taken for the same loaded `backend_tls` block (never for plain
//! HTTP, nor for another block's name or trust anchors). Does not own
//! which server a request goes to.

use std::collections::HashMap;
use std::net::SocketAddr;

use reactor::{Ctx, Token};

use super::ServerStream;
use crate::events::{Loop, Tag};
use crate::tls::ClientTlsId;

#[derive(Default)]
pub struct Pool {
    idle: HashMap<SocketAddr, Vec<(ServerStream, Token)>>,
}

impl Pool {
    /// Keeps `stream` (registered under `token`) for later requests to `target`.
    pub fn put(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        target: SocketAddr,
        stream: ServerStream,
        token: Token,
        keepalive: usize,
    ) {
        if keepalive == 0 || stream.has_queued_records() {
            ctx.forget(token);
            return;
        }
        if let Some(tag) = ctx.tag_mut(token) {
            *tag = Tag::HttpPooled;
        }
        let list = self.idle.entry(target).or_default();
        list.push((stream, token));
        // Counted per address whatever the TLS identity, so connections
        // of a `backend_tls` block a reload replaced leave in turn.
        while list.len() > keepalive {
            let (_closed_on_drop, t) = list.remove(0);
            ctx.forget(t);
        }
    }

    /// The newest idle connection to `target` made with `tls` (`None`:
    /// plain), if any; its token is left for the caller to retag. No
    /// syscall: a connection that had an event is already gone.
    pub fn take(
        &mut self,
        target: SocketAddr,
        tls: Option<&ClientTlsId>,
    ) -> Option<(ServerStream, Token)> {
        let list = self.idle.get_mut(&target)?;
        let k = list.iter().rposition(|(s, _)| s.tls_id() == tls)?;
        Some(list.remove(k))
    }

    /// A pooled connection had an event: the server closed it (or sent
    /// bytes unasked); drop it.
    pub fn remove_token(&mut self, ctx: &mut Ctx<impl Loop>, token: Token) {
        for list in self.idle.values_mut() {
            if let Some(k) = list.iter().position(|(_, t)| *t == token) {
                let (mut s, t) = list.swap_remove(k);
                if s.idle_usable() {
                    // A spurious wake-up (e.g. the initial writable edge,
                    // or a TLS session ticket): keep it.
                    list.push((s, t));
                } else {
                    ctx.forget(t);
                }
                return;
            }
        }
    }

    pub fn clear(&mut self, ctx: &mut Ctx<impl Loop>) {
        for (_, list) in self.idle.drain() {
            for (_s, t) in list {
                ctx.forget(t);
            }
        }
    }
}
