//! TCP proxying for one event loop: accepting on this loop's listeners,
//! choosing a server, connecting (with timeout and retries), relaying both
//! directions with half-close and reset propagation, idle timeouts, caps,
//! access-log lines.
//!
//! The per-direction byte pump lives in `relay.rs`, buffers in `buffer.rs`.
//! This file owns the connection life cycle:
//! `Connecting -> Relaying (-> half-closed per direction) -> Closed`.

pub mod buffer;
pub mod relay;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use reactor::listener::{accept_batch, AcceptStop};
use reactor::splice::PipePool;
use reactor::{Ctx, Interest, IoStatus, Ready, TimerKey, Token, DEFAULT_BUDGET};
use slab::Slab;

use crate::balancer::{ServerId, Tried};
use crate::config::{AcceptProxy, ProxyVersion};
use crate::logging::{timestamp, AccessLog};
use crate::proxy_protocol::{Accept, Command, Header, Parsed, Transport, Version};
use crate::runtime::{LogLimiter, Runtime};
use crate::worker::{Tag, Timer, Worker};
use buffer::BufPool;
use relay::{Direction, Pump, Readiness};

/// Index of a connection in this loop's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub usize);

/// One listening socket owned by this loop.
pub struct TcpListenerSock {
    /// Index into `plan.listeners`.
    pub plan: usize,
    pub port: u16,
    pub sock: TcpListener,
}

struct ListenerSlot {
    l: TcpListenerSock,
    token: Option<Token>,
    paused: bool,
}

enum Phase {
    /// `accept_proxy`: reading the client's PROXY header (bytes so far).
    AwaitingHeader(Vec<u8>),
    Connecting,
    Relaying,
}

struct Conn {
    /// The configuration this connection was accepted under: a reload
    /// does not change an established connection's backend or timeouts.
    rt: Arc<Runtime>,
    listener: usize,
    client: TcpStream,
    client_token: Token,
    client_ready: Readiness,
    upstream: Option<(TcpStream, Token)>,
    upstream_ready: Readiness,
    peer: SocketAddr,
    /// The original client and destination from an accepted PROXY header.
    origin: Option<(SocketAddr, SocketAddr)>,
    /// Client bytes read past the accepted PROXY header, sent upstream first.
    early: Vec<u8>,
    port: u16,
    phase: Phase,
    server: Option<ServerId>,
    tried: Tried,
    attempts: u32,
    up: Direction,
    down: Direction,
    started: Instant,
    last_active: Instant,
    timer: Option<TimerKey>,
}

/// How a connection ended, for the access log.
#[derive(Clone, Copy)]
enum End {
    Normal(&'static str),
    /// Close with RST on both sides.
    Reset(&'static str),
}

const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How long a client on an `accept_proxy` listener has to send its header.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most we buffer while waiting for a complete PROXY header.
const PROXY_HEADER_MAX: usize = 4096;

pub struct TcpProxy {
    rt: Arc<Runtime>,
    access: AccessLog,
    listeners: Vec<ListenerSlot>,
    conns: Slab<Conn>,
    pool: BufPool,
    pipes: PipePool,
    retry_armed: bool,
    stopped: bool,
    fd_warn: LogLimiter,
    down_warn: LogLimiter,
    header_warn: LogLimiter,
}

fn client_ip(a: &SocketAddr) -> IpAddr {
    a.ip().to_canonical()
}

fn show(a: &SocketAddr) -> String {
    SocketAddr::new(client_ip(a), a.port()).to_string()
}

impl TcpProxy {
    pub fn new(rt: Arc<Runtime>, access: AccessLog, listeners: Vec<TcpListenerSock>) -> TcpProxy {
        TcpProxy {
            rt,
            access,
            listeners: listeners
                .into_iter()
                .map(|l| ListenerSlot {
                    l,
                    token: None,
                    paused: false,
                })
                .collect(),
            conns: Slab::new(),
            pool: BufPool::new(64),
            pipes: PipePool::new(16),
            retry_armed: false,
            stopped: false,
            fd_warn: LogLimiter::new(Duration::from_secs(10)),
            down_warn: LogLimiter::new(Duration::from_secs(1)),
            header_warn: LogLimiter::new(Duration::from_secs(1)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn start(&mut self, ctx: &mut Ctx<Worker>) {
        for i in 0..self.listeners.len() {
            self.register_listener(ctx, i);
        }
    }

    fn register_listener(&mut self, ctx: &mut Ctx<Worker>, i: usize) {
        let slot = &mut self.listeners[i];
        match ctx.register(&mut slot.l.sock, Interest::READABLE, Tag::TcpListener(i)) {
            Ok(t) => slot.token = Some(t),
            Err(e) => log::error!("cannot register listener port {}: {e}", slot.l.port),
        }
    }

    /// Reload, phase 1: closes the listeners whose plan index maps to no
    /// listener of the new plan (their port may be re-bound by the new one).
    /// Established connections are not touched.
    pub fn close_removed_listeners(&mut self, ctx: &mut Ctx<Worker>, keep: &[Option<usize>]) {
        for mut slot in std::mem::take(&mut self.listeners) {
            if keep.get(slot.l.plan).copied().flatten().is_some() {
                self.listeners.push(slot);
                continue;
            }
            if let Some(t) = slot.token {
                if slot.paused {
                    ctx.forget(t);
                } else {
                    ctx.deregister(&mut slot.l.sock, t);
                }
            }
        }
        // Listener tags are indexes into `listeners`: renumber the survivors.
        for (i, slot) in self.listeners.iter().enumerate() {
            if let Some(tag) = slot.token.and_then(|t| ctx.tag_mut(t)) {
                *tag = Tag::TcpListener(i);
            }
        }
    }

    /// Reload, phase 2: new connections use `rt`; kept listeners are
    /// relabelled with their index in the new plan; `added` start listening.
    pub fn apply_reload(
        &mut self,
        ctx: &mut Ctx<Worker>,
        rt: Arc<Runtime>,
        keep: &[Option<usize>],
        added: Vec<TcpListenerSock>,
    ) {
        self.rt = rt;
        for slot in self.listeners.iter_mut() {
            if let Some(Some(j)) = keep.get(slot.l.plan) {
                slot.l.plan = *j;
            }
        }
        for l in added {
            self.listeners.push(ListenerSlot {
                l,
                token: None,
                paused: false,
            });
            let i = self.listeners.len() - 1;
            self.register_listener(ctx, i);
        }
    }

    /// Shutdown: close every listening socket; open connections continue.
    pub fn stop_listening(&mut self, ctx: &mut Ctx<Worker>) {
        self.stopped = true;
        for slot in self.listeners.drain(..) {
            let mut slot = slot;
            if let Some(t) = slot.token {
                if slot.paused {
                    ctx.forget(t);
                } else {
                    ctx.deregister(&mut slot.l.sock, t);
                }
            }
        }
    }

    fn pause(&mut self, ctx: &mut Ctx<Worker>, i: usize) {
        let slot = &mut self.listeners[i];
        if !slot.paused {
            ctx.pause(&mut slot.l.sock);
            slot.paused = true;
        }
        if !self.retry_armed {
            self.retry_armed = true;
            ctx.set_timer_after(ACCEPT_RETRY, Timer::AcceptRetry);
        }
    }

    /// Resumes paused listeners that have room again.
    fn resume_paused(&mut self, ctx: &mut Ctx<Worker>) {
        for slot in self.listeners.iter_mut() {
            if slot.paused && self.rt.has_room(slot.l.plan) {
                if let Some(t) = slot.token {
                    if ctx.resume(&mut slot.l.sock, t, Interest::READABLE).is_ok() {
                        slot.paused = false;
                    }
                }
            }
        }
    }

    pub fn on_accept_retry(&mut self, ctx: &mut Ctx<Worker>) {
        self.retry_armed = false;
        self.resume_paused(ctx);
        if self.listeners.iter().any(|s| s.paused) {
            self.retry_armed = true;
            ctx.set_timer_after(ACCEPT_RETRY, Timer::AcceptRetry);
        }
    }

    pub fn on_listener_ready(&mut self, ctx: &mut Ctx<Worker>, i: usize, token: Token) {
        let plan = self.listeners[i].l.plan;
        let reserved = self.rt.reserve(plan, DEFAULT_BUDGET);
        if reserved == 0 {
            self.pause(ctx, i);
            return;
        }
        let mut fresh = Vec::new();
        let (n, stop) = accept_batch(&self.listeners[i].l.sock, reserved, |s, a| {
            fresh.push((s, a))
        });
        self.rt.unreserve(plan, reserved - n);
        for (stream, peer) in fresh {
            self.open(ctx, i, stream, peer);
        }
        match stop {
            AcceptStop::WouldBlock => {}
            AcceptStop::Budget => {
                if reserved < DEFAULT_BUDGET {
                    // Stopped by a cap, not by the budget.
                    self.pause(ctx, i);
                } else {
                    ctx.requeue(token, Ready::READABLE);
                }
            }
            AcceptStop::FdExhausted(e) => {
                if let Some(suppressed) = self.fd_warn.allow(ctx.now()) {
                    log::warn!(
                        "accept: {e}; pausing accepts for {} ms ({} similar messages suppressed)",
                        ACCEPT_RETRY.as_millis(),
                        suppressed
                    );
                }
                for j in 0..self.listeners.len() {
                    self.pause(ctx, j);
                }
            }
            AcceptStop::Error(e) => {
                log::error!("accept on port {}: {e}", self.listeners[i].l.port);
                self.pause(ctx, i);
            }
        }
    }

    fn open(&mut self, ctx: &mut Ctx<Worker>, li: usize, mut stream: TcpStream, peer: SocketAddr) {
        let now = ctx.now();
        let plan = self.listeners[li].l.plan;
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
                return;
            }
        };
        entry.insert(Conn {
            rt: Arc::clone(&self.rt),
            listener: plan,
            client: stream,
            client_token: token,
            client_ready: Readiness::default(),
            upstream: None,
            upstream_ready: Readiness::default(),
            peer,
            origin: None,
            early: Vec::new(),
            port: self.listeners[li].l.port,
            phase: Phase::Connecting,
            server: None,
            tried: Tried::new(),
            attempts: 0,
            up: Direction::default(),
            down: Direction::default(),
            started: now,
            last_active: now,
            timer: None,
        });
        if self.rt.plan.listeners[plan].accept_proxy != AcceptProxy::Off {
            let c = &mut self.conns[id.0];
            c.phase = Phase::AwaitingHeader(Vec::new());
            c.timer = Some(ctx.set_timer_after(PROXY_HEADER_TIMEOUT, Timer::Connect(id)));
            return;
        }
        self.connect_next(ctx, id);
    }

    /// `accept_proxy`: reads what the client sent so far and, once the
    /// PROXY header is complete, records the original endpoints and starts
    /// connecting. Garbage closes the connection with a log line.
    fn read_header(&mut self, ctx: &mut Ctx<Worker>, id: ConnId) {
        let accept =
            match self.conns[id.0].rt.plan.listeners[self.conns[id.0].listener].accept_proxy {
                AcceptProxy::V1 => Accept::V1,
                AcceptProxy::V2 => Accept::V2,
                AcceptProxy::Any | AcceptProxy::Off => Accept::Any,
            };
        let c = &mut self.conns[id.0];
        let Phase::AwaitingHeader(buf) = &mut c.phase else {
            return;
        };
        let mut chunk = [0u8; 512];
        let mut closed = false;
        while c.client_ready.readable && buf.len() < PROXY_HEADER_MAX {
            let room = (PROXY_HEADER_MAX - buf.len()).min(chunk.len());
            match reactor::io::read(&mut c.client, &mut chunk[..room]) {
                IoStatus::Progress(n) => buf.extend_from_slice(&chunk[..n]),
                IoStatus::WouldBlock => c.client_ready.readable = false,
                IoStatus::Closed | IoStatus::Error(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let problem = match Header::parse(buf, accept) {
            Ok(Parsed::Complete { header, consumed }) => {
                if header.command == Command::Proxy {
                    c.origin = header.addresses;
                }
                c.early = buf.split_off(consumed);
                None
            }
            Ok(Parsed::Incomplete { .. }) if closed => {
                Some("client closed before its PROXY header ended".to_string())
            }
            Ok(Parsed::Incomplete { .. }) if buf.len() >= PROXY_HEADER_MAX => {
                Some("PROXY header too long".to_string())
            }
            Ok(Parsed::Incomplete { .. }) => return,
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = problem {
            if let Some(n) = self.header_warn.allow(ctx.now()) {
                log::warn!(
                    "listener {}: closing {}: {why} ({n} similar messages suppressed)",
                    c.rt.plan.listeners[c.listener].name,
                    show(&c.peer)
                );
            }
            return self.close(ctx, id, End::Normal("bad PROXY header"));
        }
        if let Some(k) = c.timer.take() {
            ctx.cancel_timer(k);
        }
        c.phase = Phase::Connecting;
        self.connect_next(ctx, id);
    }

    /// The client as the rest of the system sees it: from the PROXY header
    /// when one was accepted, else the socket peer.
    fn client_of(c: &Conn) -> SocketAddr {
        c.origin.map_or(c.peer, |(src, _)| src)
    }

    /// Tries servers until a non-blocking connect is under way, or closes
    /// the client when none is left.
    fn connect_next(&mut self, ctx: &mut Ctx<Worker>, id: ConnId) {
        let rt = Arc::clone(&self.conns[id.0].rt);
        loop {
            let c = &mut self.conns[id.0];
            let backend_idx = rt.plan.listeners[c.listener].backend;
            let backend = &rt.backends[backend_idx];
            if c.attempts > backend.plan.retries {
                return self.close(ctx, id, End::Normal("connect failed"));
            }
            let client = Self::client_of(c);
            let Some(sid) = backend.acquire(client_ip(&client), &c.tried, ctx.now()) else {
                if let Some(n) = self.down_warn.allow(ctx.now()) {
                    log::warn!(
                        "listener {}: no server available in backend {} for {} ({n} similar messages suppressed)",
                        rt.plan.listeners[c.listener].name,
                        backend.plan.name,
                        show(&client)
                    );
                }
                let why = if c.attempts == 0 {
                    "no server available"
                } else {
                    "connect failed"
                };
                return self.close(ctx, id, End::Normal(why));
            };
            c.tried.insert(sid);
            c.attempts += 1;
            c.server = Some(sid);
            let addr = backend.server(sid).target(c.port);
            match TcpStream::connect(addr) {
                Ok(mut s) => {
                    // Small writes (PROXY header, request/response) go out at once.
                    let _ = s.set_nodelay(true);
                    match ctx.register(
                        &mut s,
                        Interest::READABLE | Interest::WRITABLE,
                        Tag::Upstream(id),
                    ) {
                        Ok(t) => {
                            c.upstream = Some((s, t));
                            c.upstream_ready = Readiness::default();
                            let timeout = backend.plan.connect_timeout;
                            c.timer = Some(ctx.set_timer_after(timeout, Timer::Connect(id)));
                            return;
                        }
                        Err(e) => {
                            log::error!("cannot register upstream {addr}: {e}");
                            backend.release(sid);
                            c.server = None;
                        }
                    }
                }
                Err(e) if crate::health::is_resource_exhaustion(&e) => {
                    // Our fd table is full, not the server's fault: no
                    // failure reported, no retry elsewhere (it would fail
                    // the same way); the client goes, which frees room.
                    backend.release(sid);
                    c.server = None;
                    if let Some(n) = self.fd_warn.allow(ctx.now()) {
                        log::warn!("connect to {addr}: {e}; closing clients until descriptors free up ({n} similar messages suppressed)");
                    }
                    return self.close(ctx, id, End::Normal("out of file descriptors"));
                }
                Err(e) => {
                    log::debug!("connect to {addr} failed at once: {e}");
                    backend.report_failure(sid, ctx.now(), "connect failed");
                    backend.release(sid);
                    c.server = None;
                }
            }
        }
    }

    /// The current connect attempt failed: forget the upstream, count the
    /// failure, try the next server.
    fn connect_failed(&mut self, ctx: &mut Ctx<Worker>, id: ConnId, why: &'static str) {
        let rt = Arc::clone(&self.conns[id.0].rt);
        let c = &mut self.conns[id.0];
        if let Some(k) = c.timer.take() {
            ctx.cancel_timer(k);
        }
        if let Some((_closed_on_drop, t)) = c.upstream.take() {
            ctx.forget(t);
        }
        let backend = &rt.backends[rt.plan.listeners[c.listener].backend];
        if let Some(sid) = c.server.take() {
            log::debug!(
                "{} -> {}: {why}",
                show(&c.peer),
                backend.server(sid).target(c.port)
            );
            backend.report_failure(sid, ctx.now(), why);
            backend.release(sid);
        }
        self.connect_next(ctx, id);
    }

    pub fn on_connect_timeout(&mut self, ctx: &mut Ctx<Worker>, id: ConnId) {
        if let Some(c) = self.conns.get_mut(id.0) {
            c.timer = None;
            match c.phase {
                Phase::Connecting => self.connect_failed(ctx, id, "connect timeout"),
                Phase::AwaitingHeader(_) => {
                    if let Some(n) = self.header_warn.allow(ctx.now()) {
                        log::warn!(
                            "listener {}: closing {}: no PROXY header within {}s ({n} similar messages suppressed)",
                            c.rt.plan.listeners[c.listener].name,
                            show(&c.peer),
                            PROXY_HEADER_TIMEOUT.as_secs()
                        );
                    }
                    self.close(ctx, id, End::Normal("PROXY header timeout"));
                }
                Phase::Relaying => {}
            }
        }
    }

    pub fn on_idle_timer(&mut self, ctx: &mut Ctx<Worker>, id: ConnId) {
        let idle = match self.conns.get(id.0) {
            Some(c) => c.rt.plan.listeners[c.listener].idle_timeout,
            None => return,
        };
        let c = &mut self.conns[id.0];
        let due = crate::clock::after(c.last_active, idle);
        if ctx.now() >= due {
            c.timer = None;
            self.close(ctx, id, End::Normal("idle timeout"));
        } else {
            c.timer = Some(ctx.set_timer(due, Timer::Idle(id)));
        }
    }

    pub fn on_client_ready(&mut self, ctx: &mut Ctx<Worker>, id: ConnId, ready: Ready) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        note(&mut c.client_ready, ready);
        match c.phase {
            Phase::Relaying => self.relay(ctx, id),
            Phase::AwaitingHeader(_) => self.read_header(ctx, id),
            Phase::Connecting => {}
        }
    }

    pub fn on_upstream_ready(&mut self, ctx: &mut Ctx<Worker>, id: ConnId, ready: Ready) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        note(&mut c.upstream_ready, ready);
        if matches!(c.phase, Phase::Connecting) {
            let Some((s, _)) = &c.upstream else { return };
            match reactor::io::connect_result_for(s, &ready) {
                Ok(false) => return,
                Ok(true) => self.connected(ctx, id),
                Err(_) => return self.connect_failed(ctx, id, "connect refused"),
            }
        }
        self.relay(ctx, id);
    }

    fn connected(&mut self, ctx: &mut Ctx<Worker>, id: ConnId) {
        let rt = Arc::clone(&self.conns[id.0].rt);
        let c = &mut self.conns[id.0];
        c.phase = Phase::Relaying;
        if let Some(k) = c.timer.take() {
            ctx.cancel_timer(k);
        }
        let backend = &rt.backends[rt.plan.listeners[c.listener].backend];
        if let Some(sid) = c.server {
            backend.report_success(sid, ctx.now());
        }
        let mut preamble = Vec::new();
        if let Some(version) = backend.plan.send_proxy {
            let (src, dst) = match c.origin {
                Some(o) => o,
                None => (c.peer, c.client.local_addr().unwrap_or(c.peer)),
            };
            let v = match version {
                ProxyVersion::V1 => Version::V1,
                ProxyVersion::V2 => Version::V2,
            };
            if let Err(e) = Header::proxy(v, Transport::Stream, src, dst).emit(&mut preamble) {
                log::warn!("cannot write PROXY header for {}: {e}", show(&src));
                preamble.clear();
            }
        }
        preamble.append(&mut c.early);
        if !preamble.is_empty() {
            c.up.set_preamble(preamble);
        }
        c.last_active = ctx.now();
        let idle = rt.plan.listeners[c.listener].idle_timeout;
        c.timer = Some(ctx.set_timer_after(idle, Timer::Idle(id)));
    }

    fn relay(&mut self, ctx: &mut Ctx<Worker>, id: ConnId) {
        let c = &mut self.conns[id.0];
        let Some((upstream, _)) = c.upstream.as_mut() else {
            return;
        };
        let before = c.up.bytes + c.down.bytes;
        let zero_copy = c.rt.plan.listeners[c.listener].zero_copy;
        c.up.fin_by_close = c.down.is_done();
        let up = if zero_copy {
            c.up.pump_zero_copy(
                &mut c.client,
                &mut c.client_ready,
                upstream,
                &mut c.upstream_ready,
                &mut self.pool,
                &mut self.pipes,
                DEFAULT_BUDGET,
            )
        } else {
            c.up.pump(
                &mut c.client,
                &mut c.client_ready,
                upstream,
                &mut c.upstream_ready,
                &mut self.pool,
                DEFAULT_BUDGET,
            )
        };
        c.down.fin_by_close = c.up.is_done();
        let down = if zero_copy {
            c.down.pump_zero_copy(
                upstream,
                &mut c.upstream_ready,
                &mut c.client,
                &mut c.client_ready,
                &mut self.pool,
                &mut self.pipes,
                DEFAULT_BUDGET,
            )
        } else {
            c.down.pump(
                upstream,
                &mut c.upstream_ready,
                &mut c.client,
                &mut c.client_ready,
                &mut self.pool,
                DEFAULT_BUDGET,
            )
        };
        if c.up.bytes + c.down.bytes != before {
            c.last_active = ctx.now();
        }
        let end = match (up, down) {
            (Pump::SourceFailed(e), _) | (_, Pump::SinkFailed(e)) => Some(failure(&e, "client")),
            (Pump::SinkFailed(e), _) | (_, Pump::SourceFailed(e)) => Some(failure(&e, "server")),
            (Pump::Budget, _) | (_, Pump::Budget) => {
                ctx.requeue(c.client_token, Ready::READABLE);
                None
            }
            _ => None,
        };
        match end {
            Some(end) => self.close(ctx, id, end),
            None if c.up.is_done() && c.down.is_done() => self.close(ctx, id, End::Normal("done")),
            None => {}
        }
    }

    pub fn close_all(&mut self, ctx: &mut Ctx<Worker>, why: &'static str) {
        let ids: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in ids {
            self.close(ctx, ConnId(k), End::Normal(why));
        }
    }

    fn close(&mut self, ctx: &mut Ctx<Worker>, id: ConnId, end: End) {
        let mut c = self.conns.remove(id.0);
        if let Some(k) = c.timer.take() {
            ctx.cancel_timer(k);
        }
        let reset = matches!(end, End::Reset(_));
        // Closing the fd removes it from epoll: no EPOLL_CTL_DEL needed
        // (the fds are never duplicated), only the token goes.
        ctx.forget(c.client_token);
        if reset {
            set_rst(&c.client);
        }
        let rt = Arc::clone(&c.rt);
        let backend = &rt.backends[rt.plan.listeners[c.listener].backend];
        let server = c.server.map(|sid| backend.server(sid).target(c.port));
        if let Some((s, t)) = c.upstream.take() {
            ctx.forget(t);
            if reset {
                set_rst(&s);
            }
        }
        if let Some(sid) = c.server {
            if matches!(end, End::Reset("server reset")) && c.down.bytes == 0 {
                backend.report_failure(sid, ctx.now(), "reset before any byte");
            }
            backend.release(sid);
        }
        c.up.release(&mut self.pool);
        c.down.release(&mut self.pool);
        c.up.release_pipe(&mut self.pipes);
        c.down.release_pipe(&mut self.pipes);
        rt.unreserve(c.listener, 1);
        if self.access.enabled() {
            let reason = match end {
                End::Normal(r) | End::Reset(r) => r,
            };
            self.access.line(format!(
                "{} tcp listener={} client={} server={} bytes_in={} bytes_out={} duration_ms={} reason=\"{}\"",
                timestamp(std::time::SystemTime::now()),
                rt.plan.listeners[c.listener].name,
                show(&Self::client_of(&c)),
                server.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                c.up.bytes,
                c.down.bytes,
                ctx.now().saturating_duration_since(c.started).as_millis(),
                reason
            ));
        }
        if !self.stopped {
            self.resume_paused(ctx);
        }
    }
}

fn note(r: &mut Readiness, ready: Ready) {
    // A hang-up or error is "readable": the next read reports it.
    r.readable |= ready.readable || ready.read_closed || ready.error;
    r.writable |= ready.writable || ready.write_closed || ready.error;
    r.hangup |= ready.read_closed || ready.error;
}

fn failure(e: &io::Error, side: &'static str) -> End {
    let reset = matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    );
    match (side, reset) {
        ("client", true) => End::Reset("client reset"),
        ("client", false) => End::Reset("client error"),
        (_, true) => End::Reset("server reset"),
        _ => End::Reset("server error"),
    }
}

/// Makes the coming close send RST instead of FIN (pass a reset on).
fn set_rst(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}
