//! The server side of one request: picking a server with the backend's
//! balancer (per request), reusing a pooled connection or connecting,
//! failures (retry on another server or a generated reply), the end of an
//! exchange (back to the pool or closed) and the access-log line.
//!
//! Retry and status decisions are the session's (`http/session.rs`); this
//! file does the I/O and reports passive health outcomes.

use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use reactor::{Ctx, Interest};

use super::{Conn, HttpId, HttpProxy, Request, ServerStream, Upstream};
use crate::backend_rt::Unavailable;
use crate::events::{Loop, Tag};
use crate::http::redirect::write_redirect;
use crate::http::reply::write_error_response;
use crate::http::{ExchangeEnd, UpstreamFailure, UpstreamStep};
use crate::limits::is_resource_exhaustion;
use crate::logging::timestamp;
use crate::metrics::server as sc;
use crate::tcp::relay::Readiness;

impl HttpProxy {
    /// Starts an attempt for the request in flight: a server not yet
    /// tried, a pooled connection to it or a new non-blocking connect.
    /// `Err((status, why))`: no server left (503 when none was tried, else
    /// 502); `why` is `backend full` when the backend's `max_connections`
    /// refused the attempt.
    pub(super) fn start_attempt(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
    ) -> Result<(), (u16, Option<&'static str>)> {
        let now = ctx.now();
        loop {
            let c = &mut self.conns[id.0];
            let rt = Arc::clone(&c.rt);
            let Some(req) = c.req.as_mut() else {
                return Err((502, None));
            };
            // Only requests routed to a backend come here.
            let Some(backend_id) = req.backend else {
                return Err((502, None));
            };
            let backend = rt.backend(backend_id);
            let sid = match backend.acquire_from(c.peer, &req.tried, now) {
                Ok(sid) => sid,
                Err(why) => {
                    let status = if req.tried.is_empty() { 503 } else { 502 };
                    let full = why == Unavailable::BackendFull;
                    return Err((status, full.then_some("backend full")));
                }
            };
            let stats = &backend.server(sid).stats;
            stats.add(ctx.loop_index(), sc::CONNECTIONS, 1);
            if !req.tried.is_empty() {
                stats.add(ctx.loop_index(), sc::RETRIES, 1);
            }
            req.tried.insert(sid);
            req.server = Some(sid);
            let target = backend.server(sid).target(c.port);
            c.session.attempt_started(backend.plan.http.retry, now);
            let tls = backend.plan.tls.as_ref();
            let pooled = match req.stale_retried {
                // The retry of a stale pooled connection: a fresh one.
                true => None,
                false => {
                    let plan = &backend.server(sid).plan;
                    self.pool.take(target, tls.map(|t| t.id(plan)).as_ref())
                }
            };
            if let Some((stream, token)) = pooled {
                if let Some(tag) = ctx.tag_mut(token) {
                    *tag = Tag::HttpUpstream(id);
                }
                c.up = Some(Upstream {
                    stream,
                    token,
                    // No event since it was pooled: nothing to read; a
                    // response raises a new edge.
                    ready: Readiness {
                        readable: false,
                        writable: true,
                        hangup: false,
                        fin: false,
                    },
                    connecting: None,
                    backend: backend_id,
                    server: sid,
                    target,
                    written: 0,
                    eof: false,
                    reused: true,
                });
                return Ok(());
            }
            match connect(ctx, id, target, tls, &backend.server(sid).plan) {
                Ok((stream, token)) => {
                    c.up = Some(Upstream {
                        stream,
                        token,
                        ready: Readiness::default(),
                        connecting: Some(crate::clock::after(now, backend.plan.connect_timeout)),
                        backend: backend_id,
                        server: sid,
                        target,
                        written: 0,
                        eof: false,
                        reused: false,
                    });
                    return Ok(());
                }
                Err(e) => {
                    backend.release(sid);
                    if is_resource_exhaustion(&e) {
                        log::warn!("connect to {target}: {e}");
                        return Err((503, None));
                    }
                    stats.add(ctx.loop_index(), sc::CONNECTION_ERRORS, 1);
                    backend.report_failure(sid, now, "connect failed");
                    match c.session.upstream_failed(UpstreamFailure::ConnectFailed) {
                        UpstreamStep::Retry { .. } => continue,
                        UpstreamStep::Reply { status, .. } => return Err((status, None)),
                        _ => return Err((502, None)),
                    }
                }
            }
        }
    }

    /// Drops the request's server connection: to the pool when `reuse`,
    /// else closed; the server's slot is released either way.
    pub(super) fn drop_upstream(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId, reuse: bool) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let Some(up) = c.up.take() else {
            return;
        };
        let backend = c.rt.backend(up.backend);
        backend.release(up.server);
        c.uin.clear();
        // A FIN seen with the last response bytes raises no new edge.
        if reuse && !up.eof && !up.ready.hangup && !self.draining {
            let keepalive = backend.plan.http.keepalive;
            self.pool
                .put(ctx, up.target, up.stream, up.token, keepalive);
        } else {
            let mut stream = up.stream;
            if stream.is_tls() && up.connecting.is_none() {
                // Best effort: close_notify, as far as the socket takes it.
                stream.shutdown_write();
            }
            ctx.forget(up.token);
        }
    }

    /// The attempt failed: count it, then retry elsewhere or reply.
    pub(super) fn upstream_failed(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        failure: UpstreamFailure,
    ) {
        if failure == UpstreamFailure::Reset && self.retry_stale(ctx, id) {
            return;
        }
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let step = c.session.upstream_failed(failure);
        self.after_failure(ctx, id, failure, step);
    }

    /// The server closed the connection of the request in flight: a
    /// failure before any response byte, else the end of the response.
    pub(super) fn upstream_eof(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) {
        let now = ctx.now();
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        if c.up.as_ref().is_some_and(|u| u.reused) {
            return self.upstream_failed(ctx, id, UpstreamFailure::Reset);
        }
        let step = c.session.upstream_eof(now);
        self.upstream_step(ctx, id, step);
    }

    /// A pooled connection closed (EOF or reset) before any response
    /// byte: the server may have closed it while the request was on its
    /// way, so the request is sent once more on a fresh connection,
    /// whatever its method (as nginx and HAProxy do), when it can be sent
    /// whole again. The server is not blamed and the resend does not count
    /// against `retry.attempts`. False: not that case.
    fn retry_stale(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> bool {
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        let (Some(up), Some(req)) = (c.up.as_ref(), c.req.as_mut()) else {
            return false;
        };
        let written = up.written;
        if !up.reused || req.stale_retried || (written > 0 && c.resend.is_empty()) {
            return false;
        }
        req.stale_retried = true;
        req.tried.remove(up.server);
        c.session.attempt_on_stale_connection();
        self.drop_upstream(ctx, id, false);
        let c = &mut self.conns[id.0];
        if written > 0 {
            c.uout.clone_from(&c.resend);
        }
        if let Err((status, why)) = self.start_attempt(ctx, id) {
            self.reply(ctx, id, status, why.unwrap_or("no server left"));
        }
        true
    }

    /// Carries out a Retry / Reply / Abort step for `failure`.
    pub(super) fn after_failure(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        failure: UpstreamFailure,
        step: UpstreamStep,
    ) {
        let now = ctx.now();
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let written = c.up.as_ref().map_or(0, |u| u.written);
        if let Some(up) = &c.up {
            let backend = c.rt.backend(up.backend);
            match failure {
                UpstreamFailure::ConnectFailed | UpstreamFailure::Reset => {
                    backend
                        .server(up.server)
                        .stats
                        .add(ctx.loop_index(), sc::CONNECTION_ERRORS, 1);
                    backend.report_failure(up.server, now, "connect failed or reset");
                }
                // A status listed in `retry.on` (only those are retried).
                UpstreamFailure::Status(_) => {
                    backend.report_failure(up.server, now, "status listed in retry.on")
                }
                _ => {}
            }
        }
        self.drop_upstream(ctx, id, false);
        let why = self.conns[id.0].up_why.take().or(match failure {
            UpstreamFailure::BadBody => Some("bad response body"),
            _ => None,
        });
        match step {
            UpstreamStep::Retry { .. } => {
                let c = &mut self.conns[id.0];
                if written > 0 {
                    c.uout.clone_from(&c.resend);
                }
                if let Err((status, full)) = self.start_attempt(ctx, id) {
                    self.reply(ctx, id, status, why.or(full).unwrap_or("no server left"));
                }
            }
            UpstreamStep::Reply { status, .. } => {
                self.reply(ctx, id, status, why.unwrap_or("server failed"))
            }
            UpstreamStep::Abort => self.abort(ctx, id),
            _ => {}
        }
    }

    /// The server failed after the response started (a bad chunk, a
    /// close or reset inside the body). When no byte of this response
    /// left nvelox yet (all of them are still at the end of `cout`, which
    /// is written at the end of a wake-up), they are dropped and the
    /// client gets nvelox's own 502 (then the close: the session has
    /// ended); else the connection closes now.
    pub(super) fn abort(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let unsent = c
            .req
            .as_mut()
            .filter(|r| !c.tunnel && r.bytes_out > 0 && r.bytes_out <= c.cout.len() as u64);
        let Some(r) = unsent else {
            return self.close(ctx, id, "server failed mid-response");
        };
        let keep = c.cout.len() - r.bytes_out as usize;
        r.bytes_out = 0;
        c.cout.truncate(keep);
        self.reply(ctx, id, 502, "server failed mid-response");
    }

    /// Writes a generated error response (dropping any server connection
    /// of the request). The client connection stays open when the session
    /// says the stream is in sync (the rest of a request body already
    /// buffered is dropped) and no shutdown is under way; else it closes
    /// after the reply, which then says `Connection: close`.
    pub(super) fn reply(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        status: u16,
        reason: &str,
    ) {
        self.reply_located(ctx, id, status, reason, None);
    }

    /// [`reply`](Self::reply), or with `location`: a redirect with that
    /// `Location` (from `http::redirect`, visible ASCII only).
    pub(super) fn reply_located(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        status: u16,
        reason: &str,
        location: Option<&[u8]>,
    ) {
        self.drop_upstream(ctx, id, false);
        let now = ctx.now();
        let draining = self.draining;
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        c.up_why = None;
        let keep = c.session.local_reply(&c.cin, now).filter(|_| !draining);
        let before = c.cout.len();
        let head = c.req.as_ref().is_some_and(|r| r.head_method);
        self.bufs.fill(&mut c.cout);
        match location {
            Some(l) => write_redirect(status, l, keep.is_none(), head, &mut c.cout),
            None => write_error_response(status, keep.is_none(), head, &mut c.cout),
        }
        c.closing = keep.is_none();
        let rest_of_body = keep.unwrap_or(0).min(c.cin.len());
        c.cin.drain(..rest_of_body);
        self.bufs.give(&mut c.uout);
        self.bufs.give(&mut c.resend);
        if let Some(mut r) = c.req.take() {
            r.status = status;
            r.bytes_in += rest_of_body as u64;
            r.bytes_out += (c.cout.len() - before) as u64;
            self.log(&self.conns[id.0], &r, reason);
        } else {
            let r = Request {
                started: now,
                method: "-".into(),
                path: "-".into(),
                head_method: false,
                backend: c.rt.plan.listener(c.listener).backend,
                tried: Default::default(),
                stale_retried: false,
                server: None,
                status,
                bytes_in: 0,
                bytes_out: (c.cout.len() - before) as u64,
                body: 0,
                client_version: crate::http::Version::Http11,
            };
            self.log(&self.conns[id.0], &r, reason);
        }
    }

    /// The response is complete: the server connection is pooled or
    /// closed, the request logged, the client kept or closed.
    pub(super) fn finish(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId, end: ExchangeEnd) {
        let reuse = {
            let c = &self.conns[id.0];
            end.upstream_reusable && c.uin.is_empty()
        };
        self.drop_upstream(ctx, id, reuse);
        let c = &mut self.conns[id.0];
        c.up_why = None;
        // Between requests a connection holds no buffer memory.
        for b in [&mut c.resend, &mut c.uout, &mut c.uin] {
            self.bufs.give(b);
        }
        if c.cin.is_empty() {
            self.bufs.give(&mut c.cin);
        }
        if let Some(r) = c.req.take() {
            self.log(&self.conns[id.0], &r, "done");
        }
        let c = &mut self.conns[id.0];
        if end.close_client || self.draining {
            c.closing = true;
        }
    }

    /// One access-log line for a request.
    pub(super) fn log(&self, c: &Conn, r: &Request, reason: &str) {
        if (100..600).contains(&r.status) {
            let class = usize::from(r.status / 100 - 1);
            c.rt.listener_stats[c.listener.0].add(
                self.loop_index,
                crate::metrics::listener::HTTP_RESPONSES + class,
                1,
            );
        }
        if !self.access.enabled() {
            return;
        }
        self.access.line(format!(
            "{} http listener={} client={} method={} path=\"{}\" status={} bytes_in={} bytes_out={} duration_ms={} server={} reason=\"{}\"",
            timestamp(std::time::SystemTime::now()),
            c.rt.plan.listener(c.listener).name,
            SocketAddr::new(c.peer.ip().to_canonical(), c.peer.port()),
            r.method,
            r.path,
            r.status,
            r.bytes_in,
            r.bytes_out,
            r.started.elapsed().as_millis(),
            (r.server.zip(r.backend))
                .map_or("-", |(s, b)| c.rt.backend(b).server(s).plan.label.as_str()),
            reason
        ));
    }
}

/// A non-blocking connect to `target`, with the TLS session that will
/// run on it for a `backend_tls` backend (a session that cannot be made
/// fails the attempt like a connect).
// Without the `tls` feature no session can exist (an empty enum).
#[cfg_attr(not(feature = "tls"), allow(unreachable_code))]
fn connect(
    ctx: &mut Ctx<impl Loop>,
    id: HttpId,
    target: SocketAddr,
    tls: Option<&crate::tls::ClientTls>,
    server: &crate::config::ServerPlan,
) -> std::io::Result<(ServerStream, reactor::Token)> {
    let session = match tls {
        None => None,
        Some(t) => Some((
            t.http_session(server).map_err(std::io::Error::other)?,
            t.id(server),
        )),
    };
    let mut s = TcpStream::connect(target)?;
    let _ = s.set_nodelay(true);
    let t = ctx.register(
        &mut s,
        Interest::READABLE | Interest::WRITABLE,
        Tag::HttpUpstream(id),
    )?;
    Ok((ServerStream::connecting(s, session), t))
}

impl Conn {
    /// Passive health hears of a response head from the request's server:
    /// a status listed in `retry.on` counts against it (even when it is not
    /// retried); any other head is a success, which ends a trial. (The
    /// connect alone is not: a server that accepts and then fails every
    /// request must not pass a trial.)
    pub(super) fn report_response(&self, status: u16, now: std::time::Instant) {
        let Some(up) = &self.up else {
            return;
        };
        let backend = self.rt.backend(up.backend);
        if backend.plan.http.retry.retries_status(status) {
            backend.report_failure(up.server, now, "status listed in retry.on");
        } else {
            backend.report_success(up.server, now);
        }
    }
}

/// `bytes` for a log line: at most `max` bytes, quotes, backslashes and
/// non-printable bytes escaped.
pub(super) fn printable(bytes: &[u8], max: usize) -> String {
    // Sized for the common case (nothing escaped): one allocation.
    let mut s = String::with_capacity(bytes.len().min(max) + 3);
    for &b in bytes.iter().take(max) {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x21..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        s.push_str("...");
    }
    s
}
