//! UDP proxying for one event loop: the socket shell around the sans-IO
//! [`FlowTable`].
//!
//! This file owns the `UdpProxy` itself: this loop's listener sockets
//! (registration, reload, shutdown), receiving client datagrams and sending
//! each to its session's upstream socket, idle-timer handling and ending a
//! session (releases, passive failure, access-log line). The rest is split
//! by concept:
//! - `admission.rs`: opening a session for a new client (caps, fd budget,
//!   server choice, upstream socket) or saying why not;
//! - `replies.rs`: server replies back to clients in `sendmmsg` batches;
//! - `proxy_header.rs`: stripping and writing per-datagram PROXY v2 headers;
//! - `listeners.rs`: the listener slot table; `flow_table.rs`: the sessions.
//!
//! It does not own server choice (`backend_rt.rs`), binding (`run.rs`) or
//! the process fd budget (`limits.rs`).
//!
//! Data path: client datagrams arrive on a listener socket in `recvmmsg`
//! batches that also say which local address each was sent to (PKTINFO);
//! each goes whole to its session's connected upstream socket. Replies are
//! read from that socket in batches and sent back with `sendmmsg` from the
//! listener socket, from the address the client reached — wildcard binds
//! included — so the client recognises them.

mod admission;
pub mod flow_table;
mod listeners;
mod proxy_header;
mod replies;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::UdpSocket;
use reactor::udp::{RecvBatch, RecvMeta, SendBatch};
use reactor::{Ctx, Interest, IoStatus, Ready, TimerKey, Token, DEFAULT_BUDGET};

use crate::acl::access::Admitted;
use crate::balancer::ServerId;
use crate::config::{AcceptProxy, ListenerId};
use crate::events::{Loop, Tag, Timer};
use crate::limits::{fd_budget, LogLimiter};
use crate::logging::{timestamp, AccessLog};
use crate::metrics::{listener as lc, server as sc, Drop};
use crate::runtime::Runtime;
pub use flow_table::{Flow, FlowCounters, FlowId, FlowKey, FlowTable, IdleCheck, UdpSlot};
use listeners::ListenerSlots;
use proxy_header::{reached, strip_proxy_header, with_proxy_header};

/// One UDP listening socket owned by this loop (one port of a listener's
/// bind, or one `SO_REUSEPORT` copy of it).
pub struct UdpListenerSock {
    /// The listener of the plan this socket belongs to.
    pub plan: ListenerId,
    pub port: u16,
    pub sock: UdpSocket,
}

/// The shell's part of a session: its upstream socket and what to give back.
pub struct Upstream {
    sock: UdpSocket,
    /// `None` only between inserting the flow and registering the socket.
    token: Option<Token>,
    server: ServerId,
    target: SocketAddr,
    /// Its listener in `rt.plan`.
    plan: ListenerId,
    timer: Option<TimerKey>,
    /// Every datagram upstream starts with a PROXY v2 DGRAM header.
    send_proxy: bool,
    /// The configuration the session started under (a reload does not move it).
    rt: Arc<Runtime>,
    /// `accept_proxy`: the original client and destination from the
    /// header of the latest datagram.
    origin: Option<proxy_header::Origin>,
    /// What the access rules counted for the client (given back at the end).
    admitted: Admitted,
}

/// Receive slots per `recvmmsg`: 16 x 64 KiB per loop, allocated on first use.
const RECV_BATCH: usize = 16;

/// Replies queued for one `sendmmsg` at most (bytes).
pub(super) const REPLY_BATCH_BYTES: usize = 256 * 1024;

const WARN_INTERVAL: Duration = Duration::from_secs(10);

pub struct UdpProxy {
    rt: Arc<Runtime>,
    access: AccessLog,
    /// Indexed by `FlowKey::listener`; a slot closed by a reload is reused
    /// by the next added listener, the other indexes never move.
    listeners: ListenerSlots,
    flows: FlowTable<Upstream>,
    batch: RecvBatch,
    replies: SendBatch,
    /// PROXY header + payload of one datagram, reused.
    scratch: Vec<u8>,
    stopped: bool,
    full_warn: LogLimiter,
    /// One per [`crate::acl::Denied`] reason.
    deny_warn: [LogLimiter; 5],
    down_warn: LogLimiter,
    err_warn: LogLimiter,
    header_warn: LogLimiter,
    /// The listener the queued `replies` leave from, and their size.
    pending_li: Option<UdpSlot>,
    pending_bytes: usize,
}

/// Counts `count` datagrams of `bytes` on session `f`'s listener and
/// server, in loop `lp`'s cells: from the client (`inbound`) or to it.
fn count_datagrams(lp: usize, f: &Flow<Upstream>, count: u64, bytes: u64, inbound: bool) {
    if count == 0 {
        return;
    }
    let rt = &f.io.rt;
    let (ld, lb, sd, sb) = if inbound {
        (
            lc::DATAGRAMS_IN,
            lc::BYTES_IN,
            sc::DATAGRAMS_IN,
            sc::BYTES_IN,
        )
    } else {
        (
            lc::DATAGRAMS_OUT,
            lc::BYTES_OUT,
            sc::DATAGRAMS_OUT,
            sc::BYTES_OUT,
        )
    };
    let l = &rt.listener_stats[f.io.plan.0];
    l.add(lp, ld, count);
    l.add(lp, lb, bytes);
    let s = &rt.backend_of(f.io.plan).server(f.io.server).stats;
    s.add(lp, sd, count);
    s.add(lp, sb, bytes);
}

/// The client's address for balancing and logs: IPv4-mapped shown as IPv4.
fn show(a: &SocketAddr) -> String {
    SocketAddr::new(a.ip().to_canonical(), a.port()).to_string()
}

impl UdpProxy {
    pub fn new(rt: Arc<Runtime>, access: AccessLog, listeners: Vec<UdpListenerSock>) -> UdpProxy {
        UdpProxy {
            rt,
            access,
            listeners: ListenerSlots::new(listeners),
            flows: FlowTable::new(),
            batch: RecvBatch::new(RECV_BATCH),
            replies: SendBatch::new(),
            scratch: Vec::new(),
            stopped: false,
            full_warn: LogLimiter::new(WARN_INTERVAL),
            deny_warn: std::array::from_fn(|_| LogLimiter::new(crate::tcp::DENY_LOG_INTERVAL)),
            down_warn: LogLimiter::new(WARN_INTERVAL),
            err_warn: LogLimiter::new(WARN_INTERVAL),
            header_warn: LogLimiter::new(Duration::from_secs(1)),
            pending_li: None,
            pending_bytes: 0,
        }
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn counters(&self) -> FlowCounters {
        self.flows.counters()
    }

    pub fn start(&mut self, ctx: &mut Ctx<impl Loop>) {
        if !self.listeners.is_empty() {
            // Size the shared budget now that every listener is bound.
            let _ = fd_budget();
        }
        for i in self.listeners.ids() {
            self.register_listener(ctx, i);
        }
    }

    fn register_listener(&mut self, ctx: &mut Ctx<impl Loop>, i: UdpSlot) {
        let Some(slot) = self.listeners.get_mut(i) else {
            return;
        };
        match ctx.register(&mut slot.l.sock, Interest::READABLE, Tag::UdpListener(i)) {
            Ok(t) => slot.token = Some(t),
            Err(e) => log::error!("cannot register udp listener port {}: {e}", slot.l.port),
        }
    }

    /// Reload, phase 1: closes the listeners whose plan index maps to no
    /// listener of the new plan, and ends their sessions (their replies
    /// could no longer leave from the address the client reached).
    pub fn close_removed_listeners(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        keep: &[Option<ListenerId>],
    ) {
        // Replies queued for a closing listener leave now, before its slot
        // can be reused by a listener added in phase 2.
        self.flush_pending(ctx);
        let mut closed = Vec::new();
        for (i, mut slot) in self.listeners.remove_unkept(keep) {
            if let Some(t) = slot.token {
                ctx.deregister(&mut slot.l.sock, t);
            }
            closed.push(i);
        }
        for id in self.flows.ids() {
            if self
                .flows
                .get(id)
                .is_some_and(|f| closed.contains(&f.key.listener))
            {
                self.end(ctx, id, "listener removed by reload", false);
            }
        }
    }

    /// Reload, phase 2: new sessions use `rt`; kept listeners are relabelled
    /// with their new plan index; `added` sockets start listening. Open
    /// sessions keep the configuration they started under.
    pub fn apply_reload(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        rt: Arc<Runtime>,
        keep: &[Option<ListenerId>],
        added: Vec<UdpListenerSock>,
    ) {
        self.rt = rt;
        self.listeners.relabel(keep);
        if !added.is_empty() {
            let _ = fd_budget();
        }
        for l in added {
            let i = self.listeners.insert(l);
            self.register_listener(ctx, i);
        }
    }

    /// Shutdown: close every listening socket and end every session (UDP
    /// has nothing in flight to drain).
    pub fn stop_listening(&mut self, ctx: &mut Ctx<impl Loop>) {
        self.stopped = true;
        for mut slot in self.listeners.drain() {
            if let Some(t) = slot.token {
                ctx.deregister(&mut slot.l.sock, t);
            }
        }
        self.close_all(ctx, "shutdown");
    }

    pub fn close_all(&mut self, ctx: &mut Ctx<impl Loop>, why: &'static str) {
        for id in self.flows.ids() {
            self.end(ctx, id, why, false);
        }
    }

    /// Datagrams from clients: drain the listener socket within the budget.
    pub fn on_listener_ready(&mut self, ctx: &mut Ctx<impl Loop>, i: UdpSlot, token: Token) {
        let mut batch = std::mem::replace(&mut self.batch, RecvBatch::new(0));
        let mut budget = DEFAULT_BUDGET;
        loop {
            if budget == 0 {
                ctx.requeue(token, Ready::READABLE);
                break;
            }
            let status = match self.listeners.get(i) {
                Some(slot) => batch.recv(&slot.l.sock),
                None => break,
            };
            match status {
                IoStatus::Progress(n) => {
                    budget = budget.saturating_sub(n.max(1));
                    for (buf, meta) in batch.iter() {
                        self.client_datagram(ctx, i, buf, meta);
                    }
                    // A partial batch emptied the queue; every datagram that
                    // arrives later raises a new edge. Skip the EAGAIN call.
                    if n < batch.capacity() {
                        break;
                    }
                }
                IoStatus::WouldBlock => break,
                IoStatus::Closed => break,
                IoStatus::Error(e) => {
                    // Not re-queued: a new datagram brings a new edge, and a
                    // persistent error must not become a busy loop.
                    if let Some(n) = self.err_warn.allow(ctx.now()) {
                        let port = self.listeners.get(i).map(|s| s.l.port).unwrap_or(0);
                        log::warn!(
                            "udp receive on port {port}: {e} ({n} similar messages suppressed)"
                        );
                    }
                    break;
                }
            }
        }
        self.batch = batch;
    }

    fn client_datagram(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        li: UdpSlot,
        buf: &[u8],
        meta: RecvMeta,
    ) {
        if meta.truncated {
            // Larger than any valid UDP payload: never pass a cut datagram.
            self.flows.note_dropped();
            self.count_drop(ctx, li, Drop::Truncated);
            return;
        }
        let accept_proxy = self.listeners.get(li).map_or(AcceptProxy::Off, |s| {
            self.rt.plan.listener(s.l.plan).accept_proxy
        });
        let stripped = match accept_proxy {
            AcceptProxy::Off => Ok((buf, None)),
            _ => strip_proxy_header(buf),
        };
        let (buf, origin) = match stripped {
            Ok(x) => x,
            Err(why) => {
                self.flows.note_dropped();
                self.count_drop(ctx, li, Drop::BadProxyHeader);
                if let Some(n) = self.header_warn.allow(ctx.now()) {
                    log::warn!(
                        "udp: dropping a datagram from {}: bad PROXY header: {why} ({n} similar messages suppressed)",
                        show(&meta.peer)
                    );
                }
                return;
            }
        };
        let now = ctx.now();
        let key = FlowKey {
            listener: li,
            client: meta.peer,
        };
        let id = match self.flows.find(&key) {
            Some(id) => id,
            None => match self.open(ctx, key, meta.local_ip, origin) {
                Ok(id) => id,
                Err(why) => {
                    self.flows.note_dropped();
                    if let Some(d) = why.drop_reason() {
                        self.count_drop(ctx, li, d);
                    }
                    self.warn_refused(ctx, li, &meta.peer, why);
                    return;
                }
            },
        };
        self.flows.datagram_in(id, now, buf.len(), meta.local_ip);
        let Some(f) = self.flows.get_mut(id) else {
            return;
        };
        count_datagrams(ctx.loop_index(), f, 1, buf.len() as u64, true);
        if origin.is_some() {
            f.io.origin = origin;
        }
        let out = if f.io.send_proxy {
            let Some(slot) = self.listeners.get(li) else {
                return;
            };
            let (src, dst) =
                f.io.origin
                    .unwrap_or((key.client, reached(f.local_ip, slot)));
            match with_proxy_header(&mut self.scratch, src, dst, buf) {
                Some(d) => d,
                None => return,
            }
        } else {
            buf
        };
        match f.io.sock.send(out) {
            Ok(_) => {}
            // Upstream socket buffer full: UDP drops; the client retries.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("{} -> {}: {e}", show(&key.client), f.io.target);
                let lp = ctx.loop_index();
                f.io.rt.listener_stats[f.io.plan.0].add(
                    lp,
                    lc::DROPS + Drop::SendError as usize,
                    1,
                );
                self.end(ctx, id, "server unreachable", true);
            }
        }
    }

    /// A datagram of listener socket `li` dropped before any session took it.
    fn count_drop(&self, ctx: &Ctx<impl Loop>, li: UdpSlot, why: Drop) {
        if let Some(slot) = self.listeners.get(li) {
            if let Some(stats) = self.rt.listener_stats.get(slot.l.plan.0) {
                stats.add(ctx.loop_index(), lc::DROPS + why as usize, 1);
            }
        }
    }

    pub fn on_idle_timer(&mut self, ctx: &mut Ctx<impl Loop>, id: FlowId) {
        match self.flows.check_idle(id, ctx.now()) {
            IdleCheck::Stale => {}
            IdleCheck::Expired => {
                if let Some(f) = self.flows.get_mut(id) {
                    f.io.timer = None;
                }
                self.end(ctx, id, "idle timeout", false);
            }
            IdleCheck::RearmAt(at) => {
                let key = ctx.set_timer(at, Timer::UdpIdle(id));
                if let Some(f) = self.flows.get_mut(id) {
                    f.io.timer = Some(key);
                }
            }
        }
    }

    /// Ends a session: gives back its socket, server, slot and fd; logs it.
    fn end(&mut self, ctx: &mut Ctx<impl Loop>, id: FlowId, why: &'static str, failed: bool) {
        let Some(mut f) = self.flows.remove(id) else {
            return;
        };
        let now = ctx.now();
        if let Some(k) = f.io.timer.take() {
            ctx.cancel_timer(k);
        }
        // The socket is closed when `f` drops, which also removes it from
        // epoll: only the token needs to go.
        if let Some(t) = f.io.token {
            ctx.forget(t);
        }
        let rt = Arc::clone(&f.io.rt);
        let lp = rt.plan.listener(f.io.plan);
        let backend = rt.backend(lp.stream_backend());
        if failed {
            backend
                .server(f.io.server)
                .stats
                .add(ctx.loop_index(), sc::CONNECTION_ERRORS, 1);
            backend.report_failure(f.io.server, now, why);
        }
        backend.release(f.io.server);
        rt.unreserve(f.io.plan, 1);
        rt.access(f.io.plan).release(f.io.admitted);
        fd_budget().give_back();
        if self.access.enabled() {
            self.access.line(format!(
                "{} udp listener={} client={} server={} bytes_in={} bytes_out={} datagrams_in={} datagrams_out={} duration_ms={} reason=\"{}\"",
                timestamp(std::time::SystemTime::now()),
                lp.name,
                show(&f.io.origin.map_or(f.key.client, |(src, _)| src)),
                f.io.target,
                f.bytes_in,
                f.bytes_out,
                f.datagrams_in,
                f.datagrams_out,
                now.saturating_duration_since(f.created).as_millis(),
                why
            ));
        }
    }
}
