//! Idle upstream HTTP connections of one event loop, per server address.
//!
//! Owns the idle sockets: a connection enters only after a complete
//! response with nothing extra read, at most `keepalive` per server (the
//! oldest leaves first), and stays registered under [`Tag::HttpPooled`] so
//! that a server closing it is seen at once ([`Pool::remove_token`]). A
//! connection taken out is checked with a non-blocking peek first: one the
//! server closed meanwhile is dropped, never used. Does not own which
//! server a request goes to.

use std::collections::HashMap;
use std::net::SocketAddr;

use mio::net::TcpStream;
use reactor::{Ctx, Token};

use crate::events::{Loop, Tag};

#[derive(Default)]
pub struct Pool {
    idle: HashMap<SocketAddr, Vec<(TcpStream, Token)>>,
}

impl Pool {
    /// Keeps `stream` (registered under `token`) for later requests to `target`.
    pub fn put(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        target: SocketAddr,
        stream: TcpStream,
        token: Token,
        keepalive: usize,
    ) {
        if keepalive == 0 {
            ctx.forget(token);
            return;
        }
        if let Some(tag) = ctx.tag_mut(token) {
            *tag = Tag::HttpPooled;
        }
        let list = self.idle.entry(target).or_default();
        list.push((stream, token));
        while list.len() > keepalive {
            let (_closed_on_drop, t) = list.remove(0);
            ctx.forget(t);
        }
    }

    /// An idle connection to `target` that is still open, if any; its
    /// token is left for the caller to retag.
    pub fn take(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        target: SocketAddr,
    ) -> Option<(TcpStream, Token)> {
        let list = self.idle.get_mut(&target)?;
        while let Some((s, t)) = list.pop() {
            let mut probe = [0u8; 1];
            match s.peek(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some((s, t)),
                // Closed (0), unexpected bytes, or an error: not usable.
                _ => {
                    ctx.forget(t);
                }
            }
        }
        None
    }

    /// A pooled connection had an event: the server closed it (or sent
    /// bytes unasked); drop it.
    pub fn remove_token(&mut self, ctx: &mut Ctx<impl Loop>, token: Token) {
        for list in self.idle.values_mut() {
            if let Some(k) = list.iter().position(|(_, t)| *t == token) {
                let (s, t) = list.swap_remove(k);
                let mut probe = [0u8; 1];
                if matches!(s.peek(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
                {
                    // A spurious wake-up (e.g. the initial writable edge): keep it.
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
