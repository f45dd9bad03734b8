//! `protocol: http` for one event loop: the socket shell around the sans-IO
//! HTTP core ([`crate::http::Session`]).
//!
//! Owns this loop's HTTP client connections (accepted by `tcp/accept.rs`,
//! which owns the listening sockets and the connection caps), their
//! bounded buffers and timers, the per-request server choice and connect,
//! and the upstream keep-alive pool ([`pool`]). Split by concept:
//! - `mod.rs`: the connection table, accepting a client, readiness and
//!   timer entry points, closing;
//! - `client.rs`: the client stream (plain, or TLS for https) and the
//!   TLS handshake;
//! - `exchange.rs`: moving bytes and carrying out the session's steps
//!   (route, edit heads, stream bodies, retry, reply, finish a request);
//! - `upstream.rs`: picking a server per request and connecting (or reusing
//!   a pooled connection), the access-log line;
//! - `server_stream.rs`: the server stream (plain, or TLS for
//!   `backend_tls`) and the TLS handshake of a connect attempt;
//! - `pool.rs`: idle upstream connections per server;
//! - `bufs.rs`: this loop's free list of byte buffers (held by a
//!   connection only while a request is in flight).
//!
//! Does not own the HTTP wire rules (`http/`), balancing and health
//! (`backend_rt.rs`) or the listeners (`tcp/accept.rs`).

mod bufs;
mod client;
mod client_io;
mod exchange;
pub mod pool;
mod proxy_header;
mod redirect;
mod server_stream;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reactor::{Ctx, Interest, Ready, TimerKey, Token};
use slab::Slab;

use crate::acl::access::Admitted;
use crate::balancer::{ServerId, Tried};
use crate::config::{BackendId, ListenerId};
use crate::events::{Loop, Tag, Timer};
use crate::http::{HeadLimits, Session, Timeouts};
use crate::logging::AccessLog;
use crate::runtime::Runtime;
use crate::tcp::relay::Readiness;

pub use client::ClientStream;
pub use server_stream::ServerStream;

/// Index of an HTTP client connection in its loop's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HttpId(pub usize);

/// Bytes buffered per direction before reading that side pauses
/// (backpressure): a body is never held whole.
pub(crate) const BUF_CAP: usize = 64 * 1024;

/// The most bytes one read takes from a socket.
const SCRATCH: usize = 16 * 1024;

/// The server connection of the request in flight.
pub(crate) struct Upstream {
    stream: ServerStream,
    token: Token,
    ready: Readiness,
    /// The non-blocking connect (and the TLS handshake, with
    /// `backend_tls`) has not completed yet; due by this time.
    connecting: Option<Instant>,
    /// The request's backend, and its server this connection goes to.
    backend: BackendId,
    server: ServerId,
    target: SocketAddr,
    /// Bytes written to it (a retry resends the held request only then).
    written: u64,
    eof: bool,
    /// Taken from the pool and no byte read from it yet.
    reused: bool,
}

/// Bookkeeping of the request in flight, for routing, retries and the log.
pub(crate) struct Request {
    started: Instant,
    /// The method and target as the log writes them (empty when the
    /// access log is off: no allocation per request then).
    method: String,
    path: String,
    /// A HEAD request (a generated reply has no body then).
    head_method: bool,
    /// Where the request goes (its route's backend, else the listener's);
    /// `None` only on a listener of redirects without any backend.
    backend: Option<BackendId>,
    tried: Tried,
    /// The request was sent again after a pooled connection failed
    /// before any response byte (once per request).
    stale_retried: bool,
    /// The server of the last attempt (its label is the log's `server=`).
    server: Option<ServerId>,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    /// Request body bytes forwarded (chunked framing included).
    body: u64,
    client_version: crate::http::Version,
}

pub(crate) struct Conn {
    rt: Arc<Runtime>,
    /// The listener serving the connection (or its request in flight):
    /// with virtual hosts, the one chosen by SNI or by `Host`.
    listener: ListenerId,
    /// The listener whose socket accepted it: its slot and admission.
    owner: ListenerId,
    /// The port the client reached (`X-Forwarded-Port`).
    port: u16,
    peer: SocketAddr,
    client: ClientStream,
    client_token: Token,
    client_ready: Readiness,
    client_eof: bool,
    /// Client bytes not yet consumed (a head, body bytes, a pipelined request).
    cin: Vec<u8>,
    /// Bytes for the client.
    cout: Vec<u8>,
    session: Session,
    timeouts: Timeouts,
    up: Option<Upstream>,
    /// Server bytes not yet consumed.
    uin: Vec<u8>,
    /// Bytes for the server.
    uout: Vec<u8>,
    /// The edited head and the whole body, kept for a retry.
    resend: Vec<u8>,
    req: Option<Request>,
    /// Close once `cout` is written.
    closing: bool,
    /// After a `101`: bytes pass untouched.
    tunnel: bool,
    timer: Option<(TimerKey, Instant)>,
    /// Last time bytes moved (stalls inside bodies and tunnels).
    last_progress: Instant,
    /// The listener's `timeouts.write`: bytes waiting for a peer that
    /// takes none of them for this long close the connection.
    write_timeout: Duration,
    /// Since when `cout` has waited for the client with no write progress.
    cout_stall: Option<Instant>,
    /// Since when `uout` has waited for the (connected) server with no
    /// write progress.
    uout_stall: Option<Instant>,
    /// The access-control admission to give back at close.
    admitted: Option<Admitted>,
    /// Why the last server attempt failed, when more precise than
    /// "server failed" (a TLS handshake), for the access log.
    up_why: Option<&'static str>,
    /// The PROXY header (`accept_proxy`) or the TLS handshake (https) is
    /// not complete; it must be by then.
    handshake_due: Option<Instant>,
    /// In [`HttpProxy::deferred`], waiting for the end of the wake-up.
    write_queued: bool,
}

/// This loop's HTTP connections and upstream pool.
pub struct HttpProxy {
    access: AccessLog,
    conns: Slab<Conn>,
    pool: pool::Pool,
    /// Connections closed since the caller last looked (their listener
    /// slots were released: paused listeners may resume).
    pub closed: usize,
    /// Shutting down: no keep-alive after the request in flight.
    draining: bool,
    /// This loop's index (for its counter cells).
    loop_index: usize,
    /// Failed TLS handshakes: one log line per second at most.
    tls_warn: crate::limits::LogLimiter,
    /// The buffer every read of this loop goes through (allocated once:
    /// a zeroed stack array per read cost a 16 KiB memset each time).
    scratch: Box<[u8]>,
    /// Free byte buffers for the connections' requests in flight.
    bufs: bufs::Bufs,
    /// Connections with bytes to send, sent at the end of the wake-up
    /// (see `client_io.rs`).
    deferred: Vec<HttpId>,
    /// Sending now: the end-of-wake-up pass is running.
    write_now: bool,
}

impl HttpProxy {
    pub fn new(access: AccessLog) -> HttpProxy {
        HttpProxy {
            access,
            conns: Slab::new(),
            pool: pool::Pool::default(),
            closed: 0,
            draining: false,
            loop_index: 0,
            tls_warn: crate::limits::LogLimiter::new(std::time::Duration::from_secs(1)),
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
            bufs: bufs::Bufs::default(),
            deferred: Vec::new(),
            write_now: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// A client accepted on an HTTP listener (its slot already reserved,
    /// `admitted` by its access rules).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        rt: Arc<Runtime>,
        listener: ListenerId,
        port: u16,
        mut client: ClientStream,
        peer: SocketAddr,
        admitted: Option<Admitted>,
    ) {
        let release = |rt: &Runtime| {
            rt.unreserve(listener, 1);
            if let Some(a) = admitted {
                rt.access(listener).release(a);
            }
        };
        self.loop_index = ctx.loop_index();
        let entry = self.conns.vacant_entry();
        let id = HttpId(entry.key());
        let token = match ctx.register(
            client.tcp(),
            Interest::READABLE | Interest::WRITABLE,
            Tag::HttpClient(id),
        ) {
            Ok(t) => t,
            Err(e) => {
                log::error!("cannot register client {peer}: {e}");
                release(&rt);
                return;
            }
        };
        rt.listener_stats[listener.0].add(
            ctx.loop_index(),
            crate::metrics::listener::CONNECTIONS,
            1,
        );
        if rt.plan.listener(listener).http.is_none() {
            release(&rt);
            ctx.forget(token);
            return;
        }
        let now = ctx.now();
        let (limits, timeouts) = settings(&rt, listener);
        let tls = rt.plan.listener(listener).tls.is_some();
        entry.insert(Conn {
            rt: Arc::clone(&rt),
            listener,
            owner: listener,
            port,
            peer,
            handshake_due: intake_due(&client, tls, now),
            client,
            client_token: token,
            client_ready: Readiness::default(),
            client_eof: false,
            cin: Vec::new(),
            cout: Vec::new(),
            session: Session::new(limits, now),
            timeouts,
            up: None,
            uin: Vec::new(),
            uout: Vec::new(),
            resend: Vec::new(),
            req: None,
            closing: false,
            tunnel: false,
            timer: None,
            last_progress: now,
            write_timeout: write_timeout(&rt, listener),
            cout_stall: None,
            uout_stall: None,
            admitted,
            up_why: None,
            write_queued: false,
        });
        self.arm(ctx, id);
    }

    pub fn on_client_ready(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId, ready: Ready) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        note(&mut c.client_ready, ready);
        self.drive(ctx, id);
    }

    pub fn on_upstream_ready(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId, ready: Ready) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let Some(up) = c.up.as_mut() else {
            return;
        };
        note(&mut up.ready, ready);
        if up.connecting.is_some() {
            if !self.connect_step(ctx, id, &ready) {
                return;
            }
        } else if up.ready.writable && up.stream.has_queued_records() {
            // TLS records a full socket did not take (the request's tail).
            match up.stream.flush_records() {
                Ok(true) => c.uout_stall = None,
                Ok(false) => {}
                Err(_) => up.ready.writable = false,
            }
        }
        self.drive(ctx, id);
    }

    /// A pooled idle connection reported readiness: the server closed it
    /// or sent bytes it should not have; either way it is done.
    pub fn on_pooled_ready(&mut self, ctx: &mut Ctx<impl Loop>, token: Token) {
        self.pool.remove_token(ctx, token);
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) {
        let now = ctx.now();
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        c.timer = None;
        if c.cout_stall
            .is_some_and(|t| now >= crate::clock::after(t, c.write_timeout))
        {
            return self.close(ctx, id, "client write timeout");
        }
        if c.uout_stall
            .is_some_and(|t| now >= crate::clock::after(t, c.write_timeout))
        {
            if c.tunnel {
                return self.close(ctx, id, "server write timeout");
            }
            // 504 before any response byte, else the connection closes.
            self.upstream_failed(ctx, id, crate::http::UpstreamFailure::Timeout);
            return self.drive(ctx, id);
        }
        if c.handshake_due.is_some_and(|due| now >= due) {
            return self.handshake_timed_out(ctx, id);
        }
        if c.up
            .as_ref()
            .and_then(|u| u.connecting)
            .is_some_and(|due| now >= due)
        {
            if let Some(u) = c.up.as_ref().filter(|u| u.stream.in_handshake()) {
                c.up_why = Some("tls handshake timeout");
                let failure = crate::metrics::BackendTlsFailure::HandshakeTimeout;
                c.rt.backend(u.backend).server(u.server).stats.add(
                    ctx.loop_index(),
                    failure.counter(),
                    1,
                );
            }
            self.upstream_failed(ctx, id, crate::http::UpstreamFailure::ConnectFailed);
            return self.drive(ctx, id);
        }
        match c.session.check_timeout(now, &c.timeouts) {
            Some(crate::http::TimeoutStep::CloseIdle) => {
                return self.close(ctx, id, "idle timeout");
            }
            Some(crate::http::TimeoutStep::Reply(status)) => {
                self.drop_upstream(ctx, id, false);
                self.reply(
                    ctx,
                    id,
                    status,
                    if status == 408 {
                        "head timeout"
                    } else {
                        "server timeout"
                    },
                );
                return self.drive(ctx, id);
            }
            None => {}
        }
        let c = &self.conns[id.0];
        if c.session.deadline(&c.timeouts).is_none() {
            let stall = c.rt.plan.listener(c.listener).idle_timeout;
            if now >= crate::clock::after(c.last_progress, stall) {
                return self.close(ctx, id, "stalled");
            }
        }
        self.arm(ctx, id);
    }

    /// Shutdown begins: idle keep-alive connections close now, the others
    /// after the response in flight (which says `Connection: close`).
    pub fn drain(&mut self, ctx: &mut Ctx<impl Loop>) {
        self.draining = true;
        self.pool.clear(ctx);
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.req.is_none() && c.cin.is_empty() && c.cout.is_empty())
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            self.close(ctx, HttpId(k), "shutdown");
        }
    }

    /// Shutdown: the drain time is over, close what is left.
    pub fn close_all(&mut self, ctx: &mut Ctx<impl Loop>) {
        let ids: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in ids {
            self.close(ctx, HttpId(k), "shutdown");
        }
        self.pool.clear(ctx);
    }

    /// (Re)arms the connection's one timer at its next deadline (or
    /// earlier).
    fn arm(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let stall = c.rt.plan.listener(c.listener).idle_timeout;
        let mut due = c
            .session
            .deadline(&c.timeouts)
            .unwrap_or_else(|| crate::clock::after(c.last_progress, stall));
        if let Some(at) = c.up.as_ref().and_then(|u| u.connecting) {
            due = due.min(at);
        }
        for since in [c.cout_stall, c.uout_stall].into_iter().flatten() {
            due = due.min(crate::clock::after(since, c.write_timeout));
        }
        if let Some(at) = c.handshake_due {
            due = due.min(at);
        }
        // A timer due no later stays: moving it costs a cancel and an
        // insert, twice per keep-alive request (response wait, then idle);
        // when it fires early, `on_timer` finds nothing due and arms the
        // timer again at the real deadline.
        if c.timer.is_some_and(|(_, at)| at <= due) {
            return;
        }
        if let Some((k, _)) = c.timer.take() {
            ctx.cancel_timer(k);
        }
        c.timer = Some((ctx.set_timer(due, Timer::HttpDeadline(id)), due));
    }

    /// Drops connection `id`: both sockets, its timer, its server, its slot.
    fn close(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId, reason: &str) {
        self.drop_upstream(ctx, id, false);
        let Some(mut c) = self.conns.try_remove(id.0) else {
            return;
        };
        if c.client.is_tls() && c.handshake_due.is_none() {
            // Best effort: close_notify, as far as the socket takes it.
            c.client.shutdown_write();
        }
        if let Some((k, _)) = c.timer {
            ctx.cancel_timer(k);
        }
        ctx.forget(c.client_token);
        if let Some(r) = &c.req {
            if r.status != 0 || !c.closing {
                self.log(&c, r, reason);
            }
        }
        c.rt.unreserve(c.owner, 1);
        for b in [
            &mut c.cin,
            &mut c.cout,
            &mut c.uin,
            &mut c.uout,
            &mut c.resend,
        ] {
            self.bufs.give(b);
        }
        if let Some(a) = c.admitted {
            c.rt.access(c.owner).release(a);
        }
        self.closed += 1;
    }
}

/// When the intake must be done: the PROXY header (`accept_proxy`), else
/// the TLS handshake (https); `None`: HTTP starts at once.
fn intake_due(client: &ClientStream, tls: bool, now: Instant) -> Option<Instant> {
    if client.proxy.is_some() {
        Some(crate::clock::after(now, crate::tcp::PROXY_HEADER_TIMEOUT))
    } else {
        tls.then(|| crate::clock::after(now, client::HANDSHAKE_TIMEOUT))
    }
}

/// `timeouts.write` of listener `l` (far away: no limit).
fn write_timeout(rt: &Runtime, l: ListenerId) -> std::time::Duration {
    rt.plan
        .listener(l)
        .http
        .as_ref()
        .and_then(|h| h.timeouts.write)
        .unwrap_or(crate::clock::FAR_FUTURE)
}

/// The HTTP core's head limits and client timeouts of listener `l`.
fn settings(rt: &Runtime, l: ListenerId) -> (HeadLimits, Timeouts) {
    let lp = rt.plan.listener(l);
    let far = crate::clock::FAR_FUTURE;
    let Some(hp) = lp.http.as_ref() else {
        let t = Timeouts {
            head: far,
            idle: lp.idle_timeout,
            response: far,
        };
        return (HeadLimits::default(), t);
    };
    let limits = HeadLimits {
        max_head_bytes: hp.max_header_size,
        max_body: hp.max_body_size,
        ..HeadLimits::default()
    };
    let backend = hp.default_backend.or(lp.backend).map(|b| rt.backend(b));
    let timeouts = Timeouts {
        head: hp.timeouts.head.unwrap_or(far),
        idle: lp.idle_timeout,
        response: backend
            .and_then(|b| b.plan.http.response_timeout)
            .unwrap_or(far),
    };
    (limits, timeouts)
}

impl Conn {
    /// Starts (or stops) the write-stall clocks of `timeouts.write`: a
    /// buffer waiting for its peer since `now`, unless already waiting.
    /// A write that makes progress resets its clock.
    fn note_write_stalls(&mut self, now: std::time::Instant) {
        let to_client = !self.cout.is_empty() || self.client.has_queued_records();
        let to_server = self.up.as_ref().is_some_and(|u| {
            u.connecting.is_none() && (!self.uout.is_empty() || u.stream.has_queued_records())
        });
        for (waiting, stall) in [
            (to_client, &mut self.cout_stall),
            (to_server, &mut self.uout_stall),
        ] {
            if !waiting {
                *stall = None;
            } else if stall.is_none() {
                *stall = Some(now);
            }
        }
    }
}

fn note(r: &mut Readiness, ready: Ready) {
    r.readable |= ready.readable || ready.read_closed || ready.error;
    r.writable |= ready.writable || ready.write_closed || ready.error;
    r.hangup |= ready.read_closed || ready.error;
}
