//! One TCP connection's life, as the socket shell of [`ConnState`]:
//! choosing a server and connecting (with timeout and retries), relaying
//! both directions, the idle timer, closing (with reset propagation) and
//! the access-log line.
//!
//! Every decision (retry or give up, which timer, when idle, why it ended)
//! is the state machine's (`phase.rs`); this file does the I/O, reports
//! passive health outcomes and carries out the returned [`Action`]s.
//! Does not own accepting (`accept.rs`) or the PROXY header intake
//! (`header.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use reactor::{Ctx, Interest, Ready, TimerKey, Token, DEFAULT_BUDGET};

use super::phase::{Action, ConnState, Event, Phase, Reason, Relayed, TimerKind};
use super::relay::{Direction, Pump, Readiness};
use super::{show, ConnId, TcpProxy};
use crate::acl::access::Admitted;
use crate::backend_rt::Unavailable;
use crate::balancer::{ServerId, Tried};
use crate::config::{BackendId, ListenerId};
use crate::events::{Loop, Tag, Timer};
use crate::limits::is_resource_exhaustion;
use crate::logging::timestamp;
use crate::metrics::{listener as lc, server as sc, BackendTlsFailure};
use crate::runtime::Runtime;
use crate::tls::TlsSession;

pub(super) struct Conn {
    /// The configuration this connection was accepted under: a reload
    /// does not change an established connection's backend or timeouts.
    pub(super) rt: Arc<Runtime>,
    /// Its listener in `rt.plan`.
    pub(super) listener: ListenerId,
    /// The backend its servers come from: the listener's, or the one an
    /// `sni_routes` entry chose.
    pub(super) backend: BackendId,
    /// `tls:` listeners: the TLS session with the client (boxed: a plain
    /// connection pays one pointer for it).
    pub(super) client_tls: Option<Box<TlsSession>>,
    /// `backend_tls`: the TLS session with the server (from the TCP
    /// connect on; its handshake is part of the connect attempt).
    pub(super) upstream_tls: Option<Box<TlsSession>>,
    /// The port the client reached (a port-less server gets the same one).
    port: u16,
    pub(super) client: TcpStream,
    client_token: Token,
    pub(super) client_ready: Readiness,
    pub(super) upstream: Option<(TcpStream, Token)>,
    pub(super) upstream_ready: Readiness,
    pub(super) peer: SocketAddr,
    /// The original client and destination from an accepted PROXY header.
    pub(super) origin: Option<(SocketAddr, SocketAddr)>,
    /// `accept_proxy`: the client's bytes until the header is complete.
    pub(super) header: Vec<u8>,
    /// Client bytes read past the accepted PROXY header, sent upstream first.
    pub(super) early: Vec<u8>,
    pub(super) state: ConnState,
    pub(super) server: Option<ServerId>,
    tried: Tried,
    pub(super) up: Direction,
    pub(super) down: Direction,
    /// The one running timer (`Timer::TcpDeadline` or `Timer::TcpIdle`).
    timer: Option<TimerKey>,
    /// What the access rules counted for this client (given back at close).
    pub(super) admitted: Option<Admitted>,
}

/// How one attempt to reach a server went.
enum Attempt {
    /// A non-blocking connect is under way.
    Pending,
    NoServer(Unavailable),
    Failed,
    OutOfFds,
}

impl Conn {
    pub(super) fn new(
        rt: Arc<Runtime>,
        listener: ListenerId,
        port: u16,
        client: TcpStream,
        client_token: Token,
        peer: SocketAddr,
        state: ConnState,
    ) -> Conn {
        let backend = rt.plan.listener(listener).stream_backend();
        Conn {
            rt,
            listener,
            backend,
            client_tls: None,
            upstream_tls: None,
            port,
            client,
            client_token,
            client_ready: Readiness::default(),
            upstream: None,
            upstream_ready: Readiness::default(),
            peer,
            origin: None,
            header: Vec::new(),
            early: Vec::new(),
            state,
            server: None,
            tried: Tried::new(),
            up: Direction::default(),
            down: Direction::default(),
            timer: None,
            admitted: None,
        }
    }

    /// The client as the rest of the system sees it: from the PROXY header
    /// when one was accepted, else the socket peer.
    pub(super) fn client(&self) -> SocketAddr {
        self.origin.map_or(self.peer, |(src, _)| src)
    }

    fn cancel_timer(&mut self, ctx: &mut Ctx<impl Loop>) {
        if let Some(k) = self.timer.take() {
            ctx.cancel_timer(k);
        }
    }
}

impl TcpProxy {
    /// Carries out what the state machine decided.
    pub(super) fn apply(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId, action: Action) {
        match action {
            Action::Wait => {}
            Action::Connect => {
                if let Some(c) = self.conns.get_mut(id.0) {
                    c.cancel_timer(ctx);
                }
                self.connect_next(ctx, id);
            }
            Action::Arm(at, kind) => {
                if let Some(c) = self.conns.get_mut(id.0) {
                    c.cancel_timer(ctx);
                    let timer = match kind {
                        TimerKind::Deadline => Timer::TcpDeadline(id),
                        TimerKind::Idle => Timer::TcpIdle(id),
                    };
                    c.timer = Some(ctx.set_timer(at, timer));
                }
            }
            Action::AbandonAttempt(why) => self.connect_failed(ctx, id, why),
            Action::Requeue => {
                if let Some(c) = self.conns.get(id.0) {
                    ctx.requeue(c.client_token, Ready::READABLE);
                }
            }
            Action::Close(reason) => self.close(ctx, id, reason),
        }
    }

    /// Feeds `event` to connection `id`'s state machine and acts on it.
    pub(super) fn step(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId, event: Event<'_>) {
        let now = ctx.now();
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let action = c.state.on(event, now);
        self.apply(ctx, id, action);
    }

    /// Tries servers until a non-blocking connect is under way, or closes
    /// the client when none is left.
    fn connect_next(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        loop {
            let event = match self.try_server(ctx, id) {
                Some(Attempt::Pending) => Event::ConnectPending,
                Some(Attempt::NoServer(Unavailable::NoServer)) => Event::NoServer,
                Some(Attempt::NoServer(Unavailable::BackendFull)) => Event::BackendFull,
                Some(Attempt::Failed) => Event::AttemptFailed,
                Some(Attempt::OutOfFds) => Event::OutOfFds,
                None => return,
            };
            let now = ctx.now();
            let action = self.conns[id.0].state.on(event, now);
            match action {
                Action::Connect => continue,
                other => return self.apply(ctx, id, other),
            }
        }
    }

    /// Chooses the next server and starts a non-blocking connect to it.
    fn try_server(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) -> Option<Attempt> {
        let now = ctx.now();
        let c = self.conns.get_mut(id.0)?;
        let rt = Arc::clone(&c.rt);
        let backend = rt.backend(c.backend);
        let client = c.client();
        let sid = match backend.acquire_from(client, &c.tried, now) {
            Ok(sid) => sid,
            Err(why) => {
                if let Some(n) = self.down_warn.allow(now) {
                    log::warn!(
                        "listener {}: {} in backend {} for {} ({n} similar messages suppressed)",
                        rt.plan.listener(c.listener).name,
                        match why {
                            Unavailable::BackendFull => "max_connections reached",
                            Unavailable::NoServer => "no server available",
                        },
                        backend.plan.name,
                        show(&client)
                    );
                }
                return Some(Attempt::NoServer(why));
            }
        };
        c.state.on(Event::ServerChosen, now);
        let lp = ctx.loop_index();
        let stats = &backend.server(sid).stats;
        stats.add(lp, sc::CONNECTIONS, 1);
        if !c.tried.is_empty() {
            stats.add(lp, sc::RETRIES, 1);
        }
        c.tried.insert(sid);
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
                        Some(Attempt::Pending)
                    }
                    Err(e) => {
                        log::error!("cannot register upstream {addr}: {e}");
                        backend.release(sid);
                        c.server = None;
                        Some(Attempt::Failed)
                    }
                }
            }
            Err(e) if is_resource_exhaustion(&e) => {
                // Our fd table is full, not the server's fault: no
                // failure reported, no retry elsewhere (it would fail
                // the same way); the client goes, which frees room.
                backend.release(sid);
                c.server = None;
                if let Some(n) = self.fd_warn.allow(now) {
                    log::warn!("connect to {addr}: {e}; closing clients until descriptors free up ({n} similar messages suppressed)");
                }
                Some(Attempt::OutOfFds)
            }
            Err(e) => {
                log::debug!("connect to {addr} failed at once: {e}");
                backend
                    .server(sid)
                    .stats
                    .add(ctx.loop_index(), sc::CONNECTION_ERRORS, 1);
                backend.report_failure(sid, now, "connect failed");
                backend.release(sid);
                c.server = None;
                Some(Attempt::Failed)
            }
        }
    }

    /// The current connect attempt failed: forget the upstream, count the
    /// failure, let the state machine choose between the next server and
    /// giving up.
    pub(super) fn connect_failed(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: ConnId,
        why: &'static str,
    ) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        c.cancel_timer(ctx);
        c.upstream_tls = None;
        if let Some((_closed_on_drop, t)) = c.upstream.take() {
            ctx.forget(t);
        }
        let rt = Arc::clone(&c.rt);
        let backend = rt.backend(c.backend);
        if let Some(sid) = c.server.take() {
            log::debug!(
                "{} -> {}: {why}",
                show(&c.peer),
                backend.server(sid).target(c.port)
            );
            backend
                .server(sid)
                .stats
                .add(ctx.loop_index(), sc::CONNECTION_ERRORS, 1);
            backend.report_failure(sid, ctx.now(), why);
            backend.release(sid);
        }
        self.step(ctx, id, Event::AttemptFailed);
    }

    /// The PROXY header or connect deadline passed.
    pub fn on_deadline(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        let now = ctx.now();
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        c.timer = None;
        if c.upstream_tls.as_ref().is_some_and(|t| t.is_handshaking()) {
            c.count_tls_failure(ctx.loop_index(), BackendTlsFailure::HandshakeTimeout);
        }
        let action = c.state.on(Event::Deadline, now);
        if action == Action::Close(Reason::HeaderTimeout) {
            if let Some(n) = self.header_warn.allow(now) {
                log::warn!(
                    "listener {}: closing {}: no PROXY header within {}s ({n} similar messages suppressed)",
                    c.rt.plan.listener(c.listener).name,
                    show(&c.peer),
                    super::PROXY_HEADER_TIMEOUT.as_secs()
                );
            }
        }
        if let Action::Close(r @ (Reason::ClientHelloTimeout | Reason::HandshakeTimeout)) = action {
            self.tls_intake_timed_out(ctx, id, r);
        }
        self.apply(ctx, id, action);
    }

    pub fn on_idle_timer(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        c.timer = None;
        self.step(ctx, id, Event::IdleTimer);
    }

    pub fn on_client_ready(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId, ready: Ready) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        note(&mut c.client_ready, ready);
        match c.state.phase() {
            Phase::AwaitingHeader => self.read_header(ctx, id),
            Phase::AwaitingHello => self.read_hello(ctx, id),
            Phase::Handshaking => self.client_handshake(ctx, id),
            _ if c.state.is_relaying() => self.relay(ctx, id),
            _ => {}
        }
    }

    pub fn on_upstream_ready(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId, ready: Ready) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        note(&mut c.upstream_ready, ready);
        if matches!(c.state.phase(), Phase::Connecting { .. }) {
            if c.upstream_tls.is_none() {
                let Some((s, _)) = &c.upstream else { return };
                match reactor::io::connect_result_for(s, &ready) {
                    Ok(false) => return,
                    Ok(true) if self.start_upstream_tls(ctx, id) => {}
                    Ok(true) => self.connected(ctx, id),
                    Err(_) => return self.connect_failed(ctx, id, "connect refused"),
                }
            }
            // `backend_tls`: the attempt succeeds once the handshake does.
            if !self.upstream_handshake(ctx, id) {
                return;
            }
        }
        self.relay(ctx, id);
    }

    /// The upstream connect completed: report the success, queue what goes
    /// before the client's bytes (our PROXY header, bytes that came with
    /// theirs), start relaying.
    pub(super) fn connected(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        let now = ctx.now();
        let c = &mut self.conns[id.0];
        let rt = Arc::clone(&c.rt);
        let backend = rt.backend(c.backend);
        if let Some(sid) = c.server {
            backend.report_success(sid, now);
        }
        // With `backend_tls` the PROXY header went out in clear before
        // the handshake (as HAProxy sends it).
        let mut preamble = if c.upstream_tls.is_some() {
            Vec::new()
        } else {
            c.proxy_header(backend.plan.send_proxy)
        };
        preamble.append(&mut c.early);
        if !preamble.is_empty() {
            c.up.set_preamble(preamble);
        }
        self.step(ctx, id, Event::Connected);
    }

    pub(super) fn relay(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        let now = ctx.now();
        let c = &mut self.conns[id.0];
        if c.client_tls.is_some() || c.upstream_tls.is_some() {
            return self.relay_tls(ctx, id);
        }
        let Some((upstream, _)) = c.upstream.as_mut() else {
            return;
        };
        let (up_before, down_before) = (c.up.bytes, c.down.bytes);
        let zero_copy = c.rt.plan.listener(c.listener).zero_copy;
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
        self.after_relay(ctx, id, (up, down), (up_before, down_before), now);
    }

    /// After both directions of a relay step (plain or TLS): count the bytes
    /// moved since `before` and feed the outcome to the phase machine.
    pub(super) fn after_relay(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: ConnId,
        (up, down): (Pump, Pump),
        before: (u64, u64),
        now: Instant,
    ) {
        let c = &mut self.conns[id.0];
        let moved = c.up.bytes != before.0 || c.down.bytes != before.1;
        if moved {
            count_bytes(ctx.loop_index(), c, before.0, before.1);
        }
        let relayed = Relayed {
            up: &up,
            down: &down,
            up_done: c.up.is_done(),
            down_done: c.down.is_done(),
            moved,
        };
        let action = c.state.on(Event::Relayed(relayed), now);
        self.apply(ctx, id, action);
    }

    /// Shutdown: the drain time is over, close what is left.
    pub fn close_all(&mut self, ctx: &mut Ctx<impl Loop>) {
        let ids: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in ids {
            self.step(ctx, ConnId(k), Event::Shutdown);
        }
        self.http.close_all(ctx);
    }

    /// Drops connection `id`: both sockets (with RST for a reset), its
    /// timer, server, buffers and slot; writes its access-log line; lets
    /// a paused listener accept again.
    fn close(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId, reason: Reason) {
        let Some(mut c) = self.conns.try_remove(id.0) else {
            return;
        };
        c.cancel_timer(ctx);
        let reset = reason.is_reset();
        // Closing the fd removes it from epoll: no EPOLL_CTL_DEL needed
        // (the fds are never duplicated), only the token goes.
        ctx.forget(c.client_token);
        if reset {
            set_rst(&c.client);
        }
        let rt = Arc::clone(&c.rt);
        let backend = rt.backend(c.backend);
        let server = c.server.map(|sid| backend.server(sid).target(c.port));
        if let Some((s, t)) = c.upstream.take() {
            ctx.forget(t);
            if reset {
                set_rst(&s);
            }
        }
        if let Some(sid) = c.server {
            if reason.blames_server(c.down.bytes) {
                backend
                    .server(sid)
                    .stats
                    .add(ctx.loop_index(), sc::CONNECTION_ERRORS, 1);
                backend.report_failure(sid, ctx.now(), "reset before any byte");
            }
            backend.release(sid);
        }
        c.up.release(&mut self.pool);
        c.down.release(&mut self.pool);
        c.up.release_pipe(&mut self.pipes);
        c.down.release_pipe(&mut self.pipes);
        rt.unreserve(c.listener, 1);
        if let Some(a) = c.admitted {
            rt.access(c.listener).release(a);
        }
        if reason.never_reached_a_server() {
            rt.listener_stats[c.listener.0].add(ctx.loop_index(), lc::CONNECTION_ERRORS, 1);
        }
        if self.access.enabled() {
            self.access.line(format!(
                "{} tcp listener={} client={} server={} bytes_in={} bytes_out={} duration_ms={} reason=\"{}\"",
                timestamp(std::time::SystemTime::now()),
                rt.plan.listener(c.listener).name,
                show(&c.client()),
                server.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                c.up.bytes,
                c.down.bytes,
                ctx.now().saturating_duration_since(c.state.started()).as_millis(),
                reason
            ));
        }
        self.resume_paused(ctx);
    }
}

/// Counts what one relay round moved: on the listener and on the server,
/// in this loop's cells (no shared write).
fn count_bytes(lp: usize, c: &Conn, up_before: u64, down_before: u64) {
    let (up, down) = (c.up.bytes - up_before, c.down.bytes - down_before);
    let l = &c.rt.listener_stats[c.listener.0];
    l.add(lp, lc::BYTES_IN, up);
    l.add(lp, lc::BYTES_OUT, down);
    if let Some(sid) = c.server {
        let s = &c.rt.backend(c.backend).server(sid).stats;
        s.add(lp, sc::BYTES_IN, up);
        s.add(lp, sc::BYTES_OUT, down);
    }
}

fn note(r: &mut Readiness, ready: Ready) {
    // A hang-up or error is "readable": the next read reports it.
    r.readable |= ready.readable || ready.read_closed || ready.error;
    r.writable |= ready.writable || ready.write_closed || ready.error;
    r.hangup |= ready.read_closed || ready.error;
    r.fin |= ready.read_closed && !ready.error;
}

/// Makes the coming close send RST instead of FIN (pass a reset on).
fn set_rst(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}
