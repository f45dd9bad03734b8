//! Accepting TCP clients on this loop's listeners.
//!
//! Owns: the listener sockets and their tokens, reserving connection slots
//! (`Runtime::reserve`) before accepting, pausing a listener at a cap, on
//! fd exhaustion or on an accept error (it is deregistered; clients wait in
//! the kernel backlog), resuming it when there is room (a close or the
//! [`ACCEPT_RETRY`] timer for a cap, the timer only otherwise), and listener
//! changes on reload and shutdown. Pausing and resuming touch only the
//! listeners concerned: a paused listener is paused at most once, and the
//! paused ones are kept in lists, so a close on a loop with a 10,000-port
//! range costs nothing when none is paused. Does not own what happens to an
//! accepted client (`conn.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use reactor::listener::{accept_batch, AcceptStop};
use reactor::{Ctx, Interest, Ready, Token, DEFAULT_BUDGET};

use super::conn::Conn;
use super::phase::{ConnState, Intake, Limits};
use super::{ConnId, TcpProxy};
use crate::config::{AcceptProxy, ListenerId};
use crate::events::{Loop, Tag, TcpSlot, Timer};

/// How long accepting stays paused before it is tried again.
pub(super) const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// One listening socket owned by this loop.
pub struct TcpListenerSock {
    /// The listener of the plan this socket belongs to.
    pub plan: ListenerId,
    pub port: u16,
    pub sock: TcpListener,
}

pub(super) struct ListenerSlot {
    l: TcpListenerSock,
    token: Option<Token>,
    paused: Option<Pause>,
}

/// Why a listener is paused, which decides what resumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pause {
    /// Its connection cap is reached: a close on this loop, or the retry
    /// timer (caps are shared with other loops), resumes it once there is room.
    AtCap,
    /// Out of file descriptors or an accept error: the retry timer resumes
    /// it (resuming on every close would churn while fds stay scarce).
    UntilRetry,
}

/// The paused listeners, by reason.
#[derive(Default)]
pub(super) struct PausedListeners {
    at_cap: Vec<TcpSlot>,
    until_retry: Vec<TcpSlot>,
}

impl PausedListeners {
    fn list(&mut self, why: Pause) -> &mut Vec<TcpSlot> {
        match why {
            Pause::AtCap => &mut self.at_cap,
            Pause::UntilRetry => &mut self.until_retry,
        }
    }

    fn is_empty(&self) -> bool {
        self.at_cap.is_empty() && self.until_retry.is_empty()
    }
}

impl ListenerSlot {
    pub(super) fn new(l: TcpListenerSock) -> ListenerSlot {
        ListenerSlot {
            l,
            token: None,
            paused: None,
        }
    }

    /// Takes the socket out of the loop (it closes when the slot drops).
    fn unregister(&mut self, ctx: &mut Ctx<impl Loop>) {
        if let Some(t) = self.token.take() {
            if self.paused.is_some() {
                ctx.forget(t);
            } else {
                ctx.deregister(&mut self.l.sock, t);
            }
        }
    }
}

impl TcpProxy {
    pub fn start(&mut self, ctx: &mut Ctx<impl Loop>) {
        for i in 0..self.listeners.len() {
            self.register_listener(ctx, TcpSlot(i));
        }
    }

    fn register_listener(&mut self, ctx: &mut Ctx<impl Loop>, i: TcpSlot) {
        let slot = &mut self.listeners[i.0];
        match ctx.register(&mut slot.l.sock, Interest::READABLE, Tag::TcpListener(i)) {
            Ok(t) => slot.token = Some(t),
            Err(e) => log::error!("cannot register listener port {}: {e}", slot.l.port),
        }
    }

    /// Reload, phase 1: closes the listeners whose plan index maps to no
    /// listener of the new plan (their port may be re-bound by the new one).
    /// Established connections are not touched.
    pub fn close_removed_listeners(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        keep: &[Option<ListenerId>],
    ) {
        for mut slot in std::mem::take(&mut self.listeners) {
            if keep.get(slot.l.plan.0).copied().flatten().is_some() {
                self.listeners.push(slot);
            } else {
                slot.unregister(ctx);
            }
        }
        // Listener tags are indexes into `listeners`: renumber the survivors.
        self.paused = PausedListeners::default();
        for (i, slot) in self.listeners.iter().enumerate() {
            let i = TcpSlot(i);
            if let Some(tag) = slot.token.and_then(|t| ctx.tag_mut(t)) {
                *tag = Tag::TcpListener(i);
            }
            if let Some(why) = slot.paused {
                self.paused.list(why).push(i);
            }
        }
    }

    /// Reload, phase 2: new connections use `rt`; kept listeners are
    /// relabelled with their index in the new plan; `added` start listening.
    pub fn apply_reload(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        rt: Arc<crate::runtime::Runtime>,
        keep: &[Option<ListenerId>],
        added: Vec<TcpListenerSock>,
    ) {
        self.rt = rt;
        for slot in self.listeners.iter_mut() {
            if let Some(Some(j)) = keep.get(slot.l.plan.0) {
                slot.l.plan = *j;
            }
        }
        for l in added {
            self.listeners.push(ListenerSlot::new(l));
            let i = TcpSlot(self.listeners.len() - 1);
            self.register_listener(ctx, i);
        }
    }

    /// Shutdown: close every listening socket; open connections continue.
    pub fn stop_listening(&mut self, ctx: &mut Ctx<impl Loop>) {
        self.stopped = true;
        for mut slot in self.listeners.drain(..) {
            slot.unregister(ctx);
        }
        self.paused = PausedListeners::default();
        self.http.drain(ctx);
    }

    fn pause(&mut self, ctx: &mut Ctx<impl Loop>, i: TcpSlot, why: Pause) {
        let slot = &mut self.listeners[i.0];
        match slot.paused {
            None => {
                ctx.pause(&mut slot.l.sock);
                self.paused.list(why).push(i);
            }
            Some(was) if was != why => {
                self.paused.list(was).retain(|&j| j != i);
                self.paused.list(why).push(i);
            }
            Some(_) => {}
        }
        slot.paused = Some(why);
        if !self.retry_armed {
            self.retry_armed = true;
            ctx.set_timer_after(ACCEPT_RETRY, Timer::AcceptRetry);
        }
    }

    /// After a close: resumes the listeners paused at a cap that have room
    /// again. Looks only at those.
    pub(super) fn resume_paused(&mut self, ctx: &mut Ctx<impl Loop>) {
        self.resume(ctx, Pause::AtCap);
    }

    fn resume(&mut self, ctx: &mut Ctx<impl Loop>, why: Pause) {
        if self.stopped {
            return;
        }
        let mut k = 0;
        while k < self.paused.list(why).len() {
            let i = self.paused.list(why)[k];
            let slot = &mut self.listeners[i.0];
            let resumed = self.rt.has_room(slot.l.plan)
                && slot
                    .token
                    .is_some_and(|t| ctx.resume(&mut slot.l.sock, t, Interest::READABLE).is_ok());
            if resumed {
                slot.paused = None;
                self.paused.list(why).swap_remove(k);
            } else {
                k += 1;
            }
        }
    }

    pub fn on_accept_retry(&mut self, ctx: &mut Ctx<impl Loop>) {
        self.retry_armed = false;
        self.resume(ctx, Pause::AtCap);
        self.resume(ctx, Pause::UntilRetry);
        if !self.paused.is_empty() {
            self.retry_armed = true;
            ctx.set_timer_after(ACCEPT_RETRY, Timer::AcceptRetry);
        }
    }

    pub fn on_listener_ready(&mut self, ctx: &mut Ctx<impl Loop>, i: TcpSlot, token: Token) {
        let plan = self.listeners[i.0].l.plan;
        let reserved = self.rt.reserve(plan, DEFAULT_BUDGET);
        if reserved == 0 {
            self.pause(ctx, i, Pause::AtCap);
            return;
        }
        // The listener's `rate_limit`: beyond it clients wait in the
        // kernel's backlog while accepting pauses until the retry timer.
        let rules = &self.rt.plan.listener(plan).access;
        let access = self.rt.access(plan);
        let allowed = access.take_listener_tokens(rules, ctx.now(), reserved);
        if allowed == 0 {
            self.rt.unreserve(plan, reserved);
            self.pause(ctx, i, Pause::UntilRetry);
            return;
        }
        let mut fresh = Vec::new();
        let (n, stop) = accept_batch(&self.listeners[i.0].l.sock, allowed, |s, a| {
            fresh.push((s, a))
        });
        self.rt.unreserve(plan, reserved - n);
        let rules = &self.rt.plan.listener(plan).access;
        self.rt
            .access(plan)
            .give_back_listener_tokens(rules, allowed - n);
        for (stream, peer) in fresh {
            self.open(ctx, i, stream, peer);
        }
        match stop {
            AcceptStop::WouldBlock => {}
            AcceptStop::Budget => {
                if allowed < reserved {
                    // Stopped by the rate limit.
                    self.pause(ctx, i, Pause::UntilRetry);
                } else if reserved < DEFAULT_BUDGET {
                    // Stopped by a cap, not by the budget.
                    self.pause(ctx, i, Pause::AtCap);
                } else {
                    ctx.requeue(token, Ready::READABLE);
                }
            }
            AcceptStop::FdExhausted(e) => self.on_fd_exhausted(ctx, i, &e),
            AcceptStop::Error(e) => {
                log::error!("accept on port {}: {e}", self.listeners[i.0].l.port);
                self.pause(ctx, i, Pause::UntilRetry);
            }
        }
    }

    /// Out of file descriptors while accepting on listener `i`.
    fn on_fd_exhausted(&mut self, ctx: &mut Ctx<impl Loop>, i: TcpSlot, e: &std::io::Error) {
        if let Some(suppressed) = self.fd_warn.allow(ctx.now()) {
            log::warn!(
                "accept: {e}; pausing accepts for {} ms ({} similar messages suppressed)",
                ACCEPT_RETRY.as_millis(),
                suppressed
            );
        }
        // Only this listener: the others pause when they hit it too, and
        // idle ones are never touched.
        self.pause(ctx, i, Pause::UntilRetry);
    }

    /// Registers an accepted client (its slot is already reserved) and
    /// starts its life: waiting for a PROXY header, or connecting. Without
    /// `accept_proxy` the access rules judge the client first: a refused
    /// one is closed at once, before any server is contacted.
    fn open(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        li: TcpSlot,
        mut stream: TcpStream,
        peer: SocketAddr,
    ) {
        let plan = self.listeners[li.0].l.plan;
        let mut admitted = None;
        let lp = self.rt.plan.listener(plan);
        if lp.accept_proxy == AcceptProxy::Off {
            match self.rt.access(plan).admit(
                ctx.loop_index(),
                &lp.access,
                peer.ip(),
                ctx.now(),
                false,
            ) {
                Ok(a) => admitted = Some(a),
                Err(why) => {
                    self.rt.unreserve(plan, 1);
                    self.warn_denied(ctx.now(), plan, &peer, why);
                    drop(stream);
                    return;
                }
            }
        }
        if lp.protocol == crate::config::Protocol::Http {
            let port = self.listeners[li.0].l.port;
            let rt = Arc::clone(&self.rt);
            let client = match crate::http_proxy::ClientStream::accepted(lp, stream, &peer) {
                Some(c) => c,
                None => {
                    self.rt.unreserve(plan, 1);
                    if let Some(a) = admitted {
                        self.rt.access(plan).release(a);
                    }
                    return;
                }
            };
            return self.http.open(ctx, rt, plan, port, client, peer, admitted);
        }
        let entry = self.conns.vacant_entry();
        let id = ConnId(entry.key());
        let token = match ctx.register(
            &mut stream,
            Interest::READABLE | Interest::WRITABLE,
            Tag::Client(id),
        ) {
            Ok(t) => t,
            Err(e) => {
                log::error!("cannot register client {peer}: {e}");
                self.rt.unreserve(plan, 1);
                if let Some(a) = admitted {
                    self.rt.access(plan).release(a);
                }
                return;
            }
        };
        self.rt.listener_stats[plan.0].add(
            ctx.loop_index(),
            crate::metrics::listener::CONNECTIONS,
            1,
        );
        let lp = self.rt.plan.listener(plan);
        let backend = &self.rt.backend(lp.stream_backend()).plan;
        let limits = Limits {
            retries: backend.retries,
            connect_timeout: backend.connect_timeout,
            idle_timeout: lp.idle_timeout,
        };
        let intake = Intake {
            proxy_header: lp.accept_proxy != AcceptProxy::Off,
            client_hello: !lp.sni_routes.is_empty(),
            tls_handshake: lp.tls.is_some(),
        };
        let client_tls = match lp.tls.as_ref().map(|t| t.session()) {
            None => None,
            Some(Ok(s)) => Some(Box::new(s)),
            Some(Err(e)) => {
                log::error!("listener {}: cannot start TLS for {peer}: {e}", lp.name);
                ctx.forget(token);
                self.rt.unreserve(plan, 1);
                if let Some(a) = admitted {
                    self.rt.access(plan).release(a);
                }
                return;
            }
        };
        let (state, first) = ConnState::accepted_with(ctx.now(), intake, limits);
        let mut conn = Conn::new(
            Arc::clone(&self.rt),
            plan,
            self.listeners[li.0].l.port,
            stream,
            token,
            peer,
            state,
        );
        conn.admitted = admitted;
        conn.client_tls = client_tls;
        entry.insert(conn);
        self.apply(ctx, id, first);
    }
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
