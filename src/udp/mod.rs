//! UDP proxying for one event loop: the socket shell around the sans-IO
//! [`FlowTable`].
//!
//! Owns this loop's UDP listener sockets, one connected upstream socket per
//! session, the receive/send batches, session admission (listener and global
//! caps through [`Runtime::reserve`], and the process fd budget), idle-timer
//! arming, ICMP-unreachable handling and the access-log line per session.
//! It does not own the session bookkeeping (`flow_table.rs`), server choice
//! (`servers.rs`) or binding (`run.rs`).
//!
//! Data path: client datagrams arrive on a listener socket in `recvmmsg`
//! batches that also say which local address each was sent to (PKTINFO);
//! each goes whole to its session's connected upstream socket. Replies are
//! read from that socket in batches and sent back with `sendmmsg` from the
//! listener socket, from the address the client reached — wildcard binds
//! included — so the client recognises them.

pub mod flow_table;
mod listeners;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mio::net::UdpSocket;
use reactor::udp::{RecvBatch, RecvMeta, SendBatch};
use reactor::{Ctx, Interest, IoStatus, Ready, TimerKey, Token, DEFAULT_BUDGET};

use crate::balancer::{ServerId, Tried};
use crate::config::{AcceptProxy, ProxyVersion};
use crate::events::{Tag, Timer};
use crate::logging::{timestamp, AccessLog};
use crate::proxy_protocol::{
    write_v2, Accept, Command, Header, Parsed, Transport, V2_ADDR_MAX_LEN,
};
use crate::runtime::{LogLimiter, Runtime};
use crate::worker::Worker;
pub use flow_table::{Flow, FlowCounters, FlowId, FlowKey, FlowTable, IdleCheck};
use listeners::{ListenerSlot, ListenerSlots};

/// One UDP listening socket owned by this loop (one port of a listener's
/// bind, or one `SO_REUSEPORT` copy of it).
pub struct UdpListenerSock {
    /// Index into `plan.listeners`.
    pub plan: usize,
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
    /// Index into `plan.listeners`.
    plan: usize,
    timer: Option<TimerKey>,
    /// Every datagram upstream starts with a PROXY v2 DGRAM header.
    send_proxy: bool,
    /// The configuration the session started under (a reload does not move it).
    rt: Arc<Runtime>,
    /// `accept_proxy`: the original client and destination from the
    /// header of the latest datagram.
    origin: Option<(SocketAddr, SocketAddr)>,
}

/// The original client and the address it reached, from a PROXY header.
type Origin = (SocketAddr, SocketAddr);

/// File descriptors kept out of the session budget for listeners, accepted
/// TCP connections' first moments, health checks and log files.
const FD_RESERVE: usize = 64;

/// Receive slots per `recvmmsg`: 16 x 64 KiB per loop, allocated on first use.
const RECV_BATCH: usize = 16;

/// Replies queued for one `sendmmsg` at most (bytes).
const REPLY_BATCH_BYTES: usize = 256 * 1024;

const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// How many upstream sockets the whole process may hold: the fd table is a
/// process resource, so this is one shared counter, sized once (after the
/// listeners are bound) as the limit minus a reserve minus what is open.
pub struct FdBudget {
    limit: usize,
    used: AtomicUsize,
}

impl FdBudget {
    pub fn new(limit: usize) -> FdBudget {
        FdBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes one descriptor from the budget; false when it is spent.
    pub fn take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u < self.limit).then_some(u + 1)
            })
            .is_ok()
    }

    pub fn give_back(&self) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1));
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

static FD_BUDGET: OnceLock<FdBudget> = OnceLock::new();

fn fd_budget() -> &'static FdBudget {
    FD_BUDGET.get_or_init(|| {
        let limit = usize::try_from(reactor::sys::fd_limit()).unwrap_or(usize::MAX);
        FdBudget::new(
            limit
                .saturating_sub(FD_RESERVE)
                .saturating_sub(reactor::sys::open_fds()),
        )
    })
}

/// Why a datagram from a new client found no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    SessionLimit,
    FdLimit,
    NoServer,
    Socket,
    Stopped,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::SessionLimit => "session limit (max_connections) reached",
            Refused::FdLimit => "file descriptor budget for sessions spent",
            Refused::NoServer => "no server available",
            Refused::Socket => "cannot open an upstream socket",
            Refused::Stopped => "shutting down",
        })
    }
}

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
    down_warn: LogLimiter,
    err_warn: LogLimiter,
    header_warn: LogLimiter,
    /// The listener the queued `replies` leave from, and their size.
    pending_li: Option<usize>,
    pending_bytes: usize,
}

/// The client's address for balancing and logs: IPv4-mapped shown as IPv4.
fn show(a: &SocketAddr) -> String {
    SocketAddr::new(a.ip().to_canonical(), a.port()).to_string()
}

fn upstream_socket(target: SocketAddr) -> io::Result<UdpSocket> {
    let local = match target {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(target)?;
    Ok(sock)
}

/// The address and port a client reached on `slot`: the datagram's
/// destination (PKTINFO), else the socket's own address.
fn reached(local_ip: Option<IpAddr>, slot: &ListenerSlot) -> SocketAddr {
    let ip = local_ip
        .or_else(|| slot.l.sock.local_addr().ok().map(|a| a.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    SocketAddr::new(ip, slot.l.port)
}

/// `scratch` = PROXY v2 DGRAM header for (client -> reached) + payload.
/// `None` (datagram dropped) only if the header cannot be written, which
/// the fixed-size buffer rules out for any IPv4/IPv6 pair.
fn with_proxy_header<'a>(
    scratch: &'a mut Vec<u8>,
    client: SocketAddr,
    reached: SocketAddr,
    payload: &[u8],
) -> Option<&'a [u8]> {
    let mut hdr = [0u8; V2_ADDR_MAX_LEN];
    let n = match write_v2(&mut hdr, Transport::Dgram, client, reached) {
        Ok(n) => n,
        Err(e) => {
            log::debug!("cannot write PROXY header for {client}: {e}");
            return None;
        }
    };
    scratch.clear();
    scratch.extend_from_slice(&hdr[..n]);
    scratch.extend_from_slice(payload);
    Some(scratch)
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
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

    pub fn start(&mut self, ctx: &mut Ctx<Worker>) {
        if !self.listeners.is_empty() {
            // Size the shared budget now that every listener is bound.
            let _ = fd_budget();
        }
        for i in self.listeners.ids() {
            self.register_listener(ctx, i);
        }
    }

    fn register_listener(&mut self, ctx: &mut Ctx<Worker>, i: usize) {
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
    pub fn close_removed_listeners(&mut self, ctx: &mut Ctx<Worker>, keep: &[Option<usize>]) {
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
        ctx: &mut Ctx<Worker>,
        rt: Arc<Runtime>,
        keep: &[Option<usize>],
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
    pub fn stop_listening(&mut self, ctx: &mut Ctx<Worker>) {
        self.stopped = true;
        for mut slot in self.listeners.drain() {
            if let Some(t) = slot.token {
                ctx.deregister(&mut slot.l.sock, t);
            }
        }
        self.close_all(ctx, "shutdown");
    }

    pub fn close_all(&mut self, ctx: &mut Ctx<Worker>, why: &'static str) {
        for id in self.flows.ids() {
            self.end(ctx, id, why, false);
        }
    }

    /// Datagrams from clients: drain the listener socket within the budget.
    pub fn on_listener_ready(&mut self, ctx: &mut Ctx<Worker>, i: usize, token: Token) {
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

    /// `accept_proxy` on a UDP listener: every datagram must start with a
    /// PROXY v2 header; it is stripped, and its addresses stand for the
    /// client. `Err` = drop the datagram.
    fn strip_proxy_header<'a>(
        &self,
        li: usize,
        buf: &'a [u8],
    ) -> Result<(&'a [u8], Option<Origin>), String> {
        let plan = self.listeners.get(li).map(|s| s.l.plan).unwrap_or(0);
        if self.rt.plan.listeners[plan].accept_proxy == AcceptProxy::Off {
            return Ok((buf, None));
        }
        match Header::parse(buf, Accept::V2) {
            Ok(Parsed::Complete { header, consumed }) => {
                let origin = match header.command {
                    Command::Proxy => header.addresses,
                    Command::Local => None,
                };
                Ok((&buf[consumed..], origin))
            }
            Ok(Parsed::Incomplete { .. }) => Err("datagram shorter than its PROXY header".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn client_datagram(&mut self, ctx: &mut Ctx<Worker>, li: usize, buf: &[u8], meta: RecvMeta) {
        if meta.truncated {
            // Larger than any valid UDP payload: never pass a cut datagram.
            self.flows.note_dropped();
            return;
        }
        let (buf, origin) = match self.strip_proxy_header(li, buf) {
            Ok(x) => x,
            Err(why) => {
                self.flows.note_dropped();
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
                    self.warn_refused(ctx, li, &meta.peer, why);
                    return;
                }
            },
        };
        self.flows.datagram_in(id, now, buf.len(), meta.local_ip);
        let Some(f) = self.flows.get_mut(id) else {
            return;
        };
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
                self.end(ctx, id, "server unreachable", true);
            }
        }
    }

    fn warn_refused(&mut self, ctx: &Ctx<Worker>, li: usize, peer: &SocketAddr, why: Refused) {
        let limiter = match why {
            Refused::NoServer => &mut self.down_warn,
            Refused::Stopped => return,
            _ => &mut self.full_warn,
        };
        if let Some(n) = limiter.allow(ctx.now()) {
            let plan = self.listeners.get(li).map(|s| s.l.plan).unwrap_or(0);
            let name = self
                .rt
                .plan
                .listeners
                .get(plan)
                .map(|l| l.name.as_str())
                .unwrap_or("?");
            log::warn!(
                "listener {name}: dropping datagrams from new client {}: {why} ({n} similar messages suppressed)",
                show(peer)
            );
        }
    }

    /// Admits a new session: caps, fd budget, server choice, upstream socket.
    fn open(
        &mut self,
        ctx: &mut Ctx<Worker>,
        key: FlowKey,
        local_ip: Option<IpAddr>,
        origin: Option<(SocketAddr, SocketAddr)>,
    ) -> Result<FlowId, Refused> {
        if self.stopped {
            return Err(Refused::Stopped);
        }
        let now = ctx.now();
        let (plan, port) = match self.listeners.get(key.listener) {
            Some(s) => (s.l.plan, s.l.port),
            None => return Err(Refused::Stopped),
        };
        let rt = Arc::clone(&self.rt);
        if rt.reserve(plan, 1) == 0 {
            return Err(Refused::SessionLimit);
        }
        let budget = fd_budget();
        if !budget.take() {
            rt.unreserve(plan, 1);
            return Err(Refused::FdLimit);
        }
        let lp = &rt.plan.listeners[plan];
        let backend = &rt.backends[lp.backend];
        let client = origin.map_or(key.client, |(src, _)| src);
        let Some(server) = backend.acquire(client.ip().to_canonical(), &Tried::new(), now) else {
            budget.give_back();
            rt.unreserve(plan, 1);
            return Err(Refused::NoServer);
        };
        let target = backend.server(server).target(port);
        let give_back = |why: Refused| {
            backend.release(server);
            budget.give_back();
            rt.unreserve(plan, 1);
            Err(why)
        };
        let sock = match upstream_socket(target) {
            Ok(s) => s,
            Err(e) if is_fd_exhaustion(&e) => return give_back(Refused::FdLimit),
            Err(e) => {
                log::debug!("udp upstream socket to {target}: {e}");
                backend.report_failure(server, now, "cannot connect");
                return give_back(Refused::Socket);
            }
        };
        let up = Upstream {
            sock,
            token: None,
            server,
            target,
            plan,
            timer: None,
            send_proxy: backend.plan.send_proxy == Some(ProxyVersion::V2),
            rt: Arc::clone(&rt),
            origin,
        };
        let id = match self.flows.insert(key, local_ip, now, lp.idle_timeout, up) {
            Ok(id) => id,
            // The caller looked the key up first; keep the invariant anyway.
            Err(_) => return give_back(Refused::Socket),
        };
        let Some(f) = self.flows.get_mut(id) else {
            return Err(Refused::Socket);
        };
        match ctx.register(&mut f.io.sock, Interest::READABLE, Tag::UdpUpstream(id)) {
            Ok(t) => f.io.token = Some(t),
            Err(e) => {
                log::error!("cannot register udp upstream socket to {target}: {e}");
                self.end(ctx, id, "internal error", false);
                return Err(Refused::Socket);
            }
        }
        let deadline = f.deadline();
        f.io.timer = Some(ctx.set_timer(deadline, Timer::UdpIdle(id)));
        Ok(id)
    }

    /// Replies from a session's upstream: drain within the budget, send them
    /// back to the client in one `sendmmsg` per batch.
    pub fn on_upstream_ready(&mut self, ctx: &mut Ctx<Worker>, id: FlowId, token: Token) {
        let now = ctx.now();
        let mut budget = DEFAULT_BUDGET;
        let mut failure = None;
        loop {
            if budget == 0 {
                ctx.requeue(token, Ready::READABLE);
                break;
            }
            let Some(f) = self.flows.get(id) else { return };
            let (client, from, li) = (f.key.client, f.local_ip, f.key.listener);
            let first_reply = f.datagrams_out == 0;
            match self.batch.recv(&f.io.sock) {
                IoStatus::Progress(n) => {
                    budget = budget.saturating_sub(n.max(1));
                    if first_reply {
                        // A reply proves the server takes this session.
                        if let Some(f) = self.flows.get(id) {
                            let rt = &f.io.rt;
                            let backend = &rt.backends[rt.plan.listeners[f.io.plan].backend];
                            backend.report_success(f.io.server, now);
                        }
                    }
                    let incoming: usize = self.batch.iter().map(|(b, _)| b.len()).sum();
                    if self.pending_li.is_some_and(|p| p != li)
                        || self.pending_bytes + incoming > REPLY_BATCH_BYTES
                    {
                        self.flush_pending(ctx);
                    }
                    for (buf, meta) in self.batch.iter() {
                        if meta.truncated {
                            continue;
                        }
                        self.replies.push(buf, Some(client), from);
                        self.pending_bytes += buf.len();
                        self.flows.datagram_out(id, now, buf.len());
                    }
                    self.pending_li = Some(li);
                    if n < self.batch.capacity() {
                        break; // drained, as on the listener side
                    }
                }
                IoStatus::WouldBlock | IoStatus::Closed => break,
                IoStatus::Error(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            // ECONNREFUSED (ICMP port unreachable) or another ICMP error on
            // the connected socket: this server does not take the session.
            if let Some(f) = self.flows.get(id) {
                log::debug!("{} -> {}: {e}", show(&f.key.client), f.io.target);
            }
            self.end(ctx, id, "server unreachable", true);
        }
    }

    /// Sends the replies queued during this event batch: one `sendmmsg`
    /// for the replies of every session that answered in the same wakeup.
    /// Called when the batch is full, when replies for another listener
    /// come, and after every batch of events (`Worker::on_tick`).
    pub fn flush_pending(&mut self, ctx: &Ctx<Worker>) {
        if let Some(li) = self.pending_li.take() {
            self.pending_bytes = 0;
            self.flush_replies(ctx, li);
        }
    }

    fn flush_replies(&mut self, ctx: &Ctx<Worker>, li: usize) {
        let Some(slot) = self.listeners.get(li) else {
            self.replies.clear();
            return;
        };
        while !self.replies.is_empty() {
            match self.replies.flush(&slot.l.sock) {
                IoStatus::Progress(_) if self.replies.is_empty() => break,
                // The failed datagram was dropped by flush; go on with the rest.
                IoStatus::Error(e) => {
                    if let Some(n) = self.err_warn.allow(ctx.now()) {
                        log::warn!(
                            "udp send on port {}: {e} ({n} similar messages suppressed)",
                            slot.l.port
                        );
                    }
                }
                // Socket buffer full: drop what is left, as the network would.
                _ => {
                    self.replies.clear();
                    break;
                }
            }
        }
    }

    pub fn on_idle_timer(&mut self, ctx: &mut Ctx<Worker>, id: FlowId) {
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
    fn end(&mut self, ctx: &mut Ctx<Worker>, id: FlowId, why: &'static str, failed: bool) {
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
        let lp = &rt.plan.listeners[f.io.plan];
        let backend = &rt.backends[lp.backend];
        if failed {
            backend.report_failure(f.io.server, now, why);
        }
        backend.release(f.io.server);
        rt.unreserve(f.io.plan, 1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy_protocol::{Accept, Command, Header, Parsed};

    #[test]
    fn a_proxied_datagram_is_one_v2_dgram_header_then_the_payload() {
        let client: SocketAddr = "[::ffff:192.0.2.7]:40000".parse().unwrap();
        let reached: SocketAddr = "127.0.0.2:5353".parse().unwrap();
        let mut scratch = vec![0xAA; 3];
        let out = with_proxy_header(&mut scratch, client, reached, b"query")
            .unwrap()
            .to_vec();
        let Ok(Parsed::Complete { header, consumed }) = Header::parse(&out, Accept::V2) else {
            panic!("not a complete v2 header: {out:?}");
        };
        assert_eq!(header.command, Command::Proxy);
        assert_eq!(header.transport, Transport::Dgram);
        // The mapped client is written as plain IPv4, like the destination.
        assert_eq!(
            header.addresses,
            Some(("192.0.2.7:40000".parse().unwrap(), reached))
        );
        assert_eq!(consumed, 28);
        assert_eq!(&out[consumed..], b"query");
        // An empty datagram still carries its header.
        let out = with_proxy_header(&mut scratch, client, reached, b"").unwrap();
        assert_eq!(out.len(), 28);
    }

    #[test]
    fn the_fd_budget_stops_at_its_limit_and_refills() {
        let b = FdBudget::new(2);
        assert!(b.take());
        assert!(b.take());
        assert!(!b.take());
        assert_eq!(b.used(), 2);
        b.give_back();
        assert!(b.take());
        b.give_back();
        b.give_back();
        b.give_back();
        assert_eq!(b.used(), 0);
    }
}
