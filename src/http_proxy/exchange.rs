//! Moving one HTTP connection's bytes and carrying out its session's
//! steps: read the client (bounded), route a request and send its edited
//! head, stream the request body, read the server (bounded), send the
//! edited response head and stream the body back, finish or fail the
//! exchange, tunnel after a `101`.
//!
//! Backpressure: a side is read only while the buffer it fills is below
//! [`BUF_CAP`], so a body is streamed through at most a few buffers and
//! never held whole (only a whole small body already read is kept for a
//! retry).

use std::ops::Range;
use std::sync::Arc;

use reactor::io::{read, write};
use reactor::{Ctx, IoStatus, Ready};

use super::{HttpId, HttpProxy, Request, BUF_CAP};
use crate::events::Loop;
use crate::http::{
    write_request_head, write_response_head, ClientStep, ExchangeEnd, RequestContext, RequestHead,
    ResponseContext, UpstreamFailure, UpstreamStep,
};
use crate::tcp::relay::{ShortRead, ShortReadMeans};

/// Rounds of [`HttpProxy::drive`] per wake-up of one connection.
const DRIVE_BUDGET: usize = 256;

/// Longest path kept for the access log.
const LOG_PATH_MAX: usize = 200;

pub(super) enum Flow {
    Go(bool),
    Closed,
}

impl HttpProxy {
    /// Moves bytes and steps the session until nothing more can be done now.
    pub(super) fn drive(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) {
        if !self.handshake_step(ctx, id) {
            return self.arm(ctx, id);
        }
        // A budget per wake-up, so one busy connection lets the others in;
        // when it runs out with bytes still moving, the connection is
        // served again at the end of the batch (edge-triggered epoll would
        // not say again what it already said: a stalled transfer).
        let mut spent = true;
        for _ in 0..DRIVE_BUDGET {
            let mut progress = false;
            for f in [
                Self::read_client,
                Self::client_steps,
                Self::write_upstream,
                Self::read_upstream,
                Self::upstream_steps,
                Self::write_client,
            ] {
                match f(self, ctx, id) {
                    Flow::Go(p) => progress |= p,
                    Flow::Closed => return,
                }
                if !self.conns.contains(id.0) {
                    return;
                }
            }
            let c = &self.conns[id.0];
            if c.closing && c.cout.is_empty() && !c.client.has_queued_records() {
                return self.close(ctx, id, "closed");
            }
            if c.tunnel
                && c.client_eof
                && !c.up.as_ref().is_some_and(|u| !u.eof)
                && c.cout.is_empty()
            {
                return self.close(ctx, id, "tunnel closed");
            }
            if !progress {
                spent = false;
                break;
            }
            self.conns[id.0].last_progress = ctx.now();
        }
        if spent {
            ctx.requeue(self.conns[id.0].client_token, Ready::default());
        }
        self.settle(ctx, id);
    }

    /// The end of connection `id`'s work in this wake-up. Buffers emptied
    /// go back to the free list (the next bytes take one again): a request
    /// in flight holds only the ones with bytes in them, so the list serves
    /// 50 busy clients with `bufs::KEEP` buffers. The held request
    /// (`resend`) stays. Unless bytes wait for the end-of-wake-up pass
    /// (no write stall yet; the timer is set when they are sent), write
    /// stalls are noted and the timer set.
    pub(super) fn settle(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) {
        let c = &mut self.conns[id.0];
        for b in [&mut c.cin, &mut c.uout, &mut c.uin, &mut c.cout] {
            if b.is_empty() {
                self.bufs.give(b);
            }
        }
        if !self.conns[id.0].write_queued {
            self.conns[id.0].note_write_stalls(ctx.now());
            self.arm(ctx, id);
        }
    }

    fn client_steps(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> Flow {
        let now = ctx.now();
        let mut progress = false;
        loop {
            let c = &mut self.conns[id.0];
            if c.closing || c.cin.is_empty() || c.uout.len() >= BUF_CAP {
                return Flow::Go(progress);
            }
            if c.tunnel {
                c.uout.append(&mut c.cin);
                return Flow::Go(true);
            }
            match c.session.client_input(&c.cin, now) {
                ClientStep::NeedMore | ClientStep::Hold => return Flow::Go(progress),
                ClientStep::Body { forward, done } => {
                    if forward == 0 && !done {
                        return Flow::Go(progress);
                    }
                    let n = forward.min(c.cin.len());
                    c.uout.extend_from_slice(&c.cin[..n]);
                    c.cin.drain(..n);
                    let max =
                        c.rt.plan
                            .listener(c.listener)
                            .http
                            .as_ref()
                            .and_then(|h| h.max_body_size);
                    if let Some(r) = c.req.as_mut() {
                        r.bytes_in += n as u64;
                        r.body += n as u64;
                        // A chunked body has no length up front: it is
                        // counted as it streams (framing included).
                        if max.is_some_and(|m| r.body > m) {
                            if r.status != 0 {
                                self.close(ctx, id, "request body too large");
                                return Flow::Closed;
                            }
                            self.drop_upstream(ctx, id, false);
                            self.reply(ctx, id, 413, "request body too large");
                            return Flow::Go(true);
                        }
                    }
                    progress = true;
                    if n == 0 {
                        return Flow::Go(progress);
                    }
                }
                ClientStep::Request {
                    consumed,
                    head,
                    whole_body,
                } => {
                    progress = true;
                    self.request(ctx, id, consumed, &head, whole_body);
                }
                ClientStep::Reject(r) => {
                    self.drop_upstream(ctx, id, false);
                    self.reply(ctx, id, r.status, r.reason);
                    return Flow::Go(true);
                }
                ClientStep::Tunnel => {
                    c.tunnel = true;
                }
                ClientStep::Close => {
                    self.close(ctx, id, "client closed");
                    return Flow::Closed;
                }
            }
        }
    }

    /// A new request head: route it, queue its edited head, start an attempt.
    fn request(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        consumed: usize,
        head: &RequestHead,
        whole_body: Option<usize>,
    ) {
        let c = &mut self.conns[id.0];
        let rt = Arc::clone(&c.rt);
        // http virtual hosts: each request goes to the listener its Host
        // names (https ones were chosen once, by SNI).
        let owner = rt.plan.listener(c.owner);
        if let (Some(v), None) = (&owner.vhosts, &owner.tls) {
            c.listener = v.choose(head.host_name());
        }
        let lp = rt.plan.listener(c.listener);
        let Some(hp) = lp.http.as_ref() else {
            return;
        };
        c.cin.drain(..consumed.min(c.cin.len()));
        let (backend, redirect) = super::redirect::route(hp, head, c.client.is_tls());
        let logged = self.access.enabled();
        c.req = Some(Request {
            started: ctx.now(),
            method: match logged {
                true => super::upstream::printable(head.method_bytes(), 16),
                false => String::new(),
            },
            path: match logged {
                true => super::upstream::printable(head.target(), LOG_PATH_MAX),
                false => String::new(),
            },
            head_method: head.method == crate::http::Method::Head,
            backend: backend.or(lp.backend),
            tried: Default::default(),
            stale_retried: false,
            server: None,
            status: 0,
            bytes_in: consumed as u64,
            bytes_out: 0,
            body: 0,
            client_version: head.version,
        });
        // `ip_rate_limit` counts requests on HTTP listeners.
        let client = c.peer.ip();
        if let Err(why) =
            rt.access(c.listener)
                .take_request(ctx.loop_index(), &lp.access, client, ctx.now())
        {
            return self.reply(ctx, id, 429, why.describe());
        }
        let Some(backend) = backend else {
            return self.no_backend(ctx, id, redirect);
        };
        c.timeouts.response = rt
            .backend(backend)
            .plan
            .http
            .response_timeout
            .unwrap_or(crate::clock::FAR_FUTURE);
        let keepalive = rt.backend(backend).plan.http.keepalive > 0;
        let rc = RequestContext {
            client_ip: c.peer.ip().to_canonical(),
            proto: if c.client.is_tls() { "https" } else { "http" },
            port: c.port,
            upstream_keep_alive: keepalive,
        };
        c.uout.clear();
        self.bufs.fill(&mut c.uout);
        write_request_head(head, &rc, &hp.edits, &mut c.uout);
        c.resend.clear();
        if let Some(n) = whole_body {
            self.bufs.fill(&mut c.resend);
            c.resend.extend_from_slice(&c.uout);
            c.resend.extend_from_slice(&c.cin[..n.min(c.cin.len())]);
        }
        if let Err((status, why)) = self.start_attempt(ctx, id) {
            self.reply(ctx, id, status, why.unwrap_or("no server"));
        }
    }

    pub(super) fn write_upstream(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> Flow {
        let c = &mut self.conns[id.0];
        let Some(up) = c.up.as_mut() else {
            return Flow::Go(false);
        };
        if up.connecting.is_some() || !up.ready.writable || c.uout.is_empty() {
            if c.tunnel && c.client_eof && c.uout.is_empty() {
                up.stream.shutdown_write();
            }
            return Flow::Go(false);
        }
        if self.defer_write(id) {
            return Flow::Go(false);
        }
        let c = &mut self.conns[id.0];
        let Some(up) = c.up.as_mut() else {
            return Flow::Go(false);
        };
        match write(&mut up.stream, &c.uout) {
            IoStatus::Progress(n) => {
                c.uout.drain(..n);
                c.uout_stall = None;
                up.written += n as u64;
                Flow::Go(true)
            }
            IoStatus::WouldBlock => {
                up.ready.writable = false;
                Flow::Go(false)
            }
            IoStatus::Closed | IoStatus::Error(_) => {
                if c.tunnel {
                    self.close(ctx, id, "server reset");
                    return Flow::Closed;
                }
                self.upstream_failed(ctx, id, UpstreamFailure::Reset);
                Flow::Go(true)
            }
        }
    }

    fn read_upstream(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> Flow {
        let c = &mut self.conns[id.0];
        let uin_cap = BUF_CAP.max(c.session_head_cap());
        let Some(up) = c.up.as_mut() else {
            return Flow::Go(false);
        };
        if up.connecting.is_some()
            || up.eof
            || !up.ready.readable
            || c.cout.len() >= BUF_CAP
            || c.uin.len() >= uin_cap
        {
            return Flow::Go(false);
        }
        let tmp = &mut self.scratch[..];
        match read(&mut up.stream, tmp) {
            IoStatus::Progress(n) => {
                self.bufs.fill(&mut c.uin);
                c.uin.extend_from_slice(&tmp[..n]);
                up.reused = false;
                // A short read that drained the stream: wait for the next
                // edge (at the end, read on: the next read returns 0).
                if n < tmp.len() && up.stream.short_read(&up.ready) == ShortReadMeans::Drained {
                    up.ready.readable = false;
                }
                Flow::Go(true)
            }
            IoStatus::WouldBlock => {
                up.ready.readable = false;
                Flow::Go(false)
            }
            IoStatus::Closed => {
                up.eof = true;
                if c.tunnel {
                    return Flow::Go(true);
                }
                // Bytes still buffered are consumed first.
                if !c.uin.is_empty() {
                    return Flow::Go(true);
                }
                self.upstream_eof(ctx, id);
                Flow::Go(true)
            }
            IoStatus::Error(_) => {
                if c.tunnel {
                    self.close(ctx, id, "server reset");
                    return Flow::Closed;
                }
                self.upstream_failed(ctx, id, UpstreamFailure::Reset);
                Flow::Go(true)
            }
        }
    }

    fn upstream_steps(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> Flow {
        let now = ctx.now();
        let mut progress = false;
        loop {
            let Some(c) = self.conns.get_mut(id.0) else {
                return Flow::Closed;
            };
            if c.tunnel {
                if !c.uin.is_empty() {
                    c.cout.append(&mut c.uin);
                    progress = true;
                }
                if c.up.as_ref().is_some_and(|u| u.eof) && c.cout.is_empty() {
                    c.client.shutdown_write();
                }
                return Flow::Go(progress);
            }
            if c.up.is_none() || c.cout.len() >= BUF_CAP {
                return Flow::Go(progress);
            }
            if c.uin.is_empty() {
                // A server EOF seen while bytes were still buffered.
                if c.up.as_ref().is_some_and(|u| u.eof) {
                    let step = c.session.upstream_eof(now);
                    self.upstream_step(ctx, id, step);
                    return Flow::Go(true);
                }
                return Flow::Go(progress);
            }
            let step = c.session.upstream_input(&c.uin, now);
            if matches!(step, UpstreamStep::NeedMore) {
                return Flow::Go(progress);
            }
            if matches!(
                step,
                UpstreamStep::Body {
                    forward: 0,
                    end: None
                } | UpstreamStep::Payload {
                    consumed: 0,
                    end: None,
                    ..
                }
            ) {
                return Flow::Go(progress);
            }
            progress = true;
            self.upstream_step(ctx, id, step);
        }
    }

    /// Carries out one step the session took on server bytes or events.
    pub(super) fn upstream_step(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        step: UpstreamStep,
    ) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let rt = Arc::clone(&c.rt);
        let Some(hp) = rt.plan.listener(c.listener).http.as_ref() else {
            return;
        };
        let before = c.cout.len();
        let (server, version) = c
            .req
            .as_ref()
            .map_or(("-", crate::http::Version::Http11), |r| {
                let label = (r.server.zip(r.backend))
                    .map(|(s, b)| rt.backend(b).server(s).plan.label.as_str());
                (label.unwrap_or_default(), r.client_version)
            });
        match step {
            UpstreamStep::NeedMore => {}
            UpstreamStep::Informational {
                consumed,
                head,
                forward,
            } => {
                c.uin.drain(..consumed.min(c.uin.len()));
                if forward {
                    self.bufs.fill(&mut c.cout);
                    let rc = ResponseContext {
                        server,
                        client_keep_alive: true,
                        client_version: version,
                    };
                    write_response_head(&head, &rc, &hp.edits, &mut c.cout);
                }
            }
            UpstreamStep::Response {
                consumed,
                head,
                client_keep_alive,
                end,
            } => {
                c.uin.drain(..consumed.min(c.uin.len()));
                let rc = ResponseContext {
                    server,
                    client_keep_alive: client_keep_alive && !self.draining,
                    client_version: version,
                };
                self.bufs.fill(&mut c.cout);
                write_response_head(&head, &rc, &hp.edits, &mut c.cout);
                if let Some(r) = c.req.as_mut() {
                    r.status = head.status;
                }
                c.report_response(head.status, ctx.now());
                count(c, before);
                if let Some(end) = end {
                    self.finish(ctx, id, end);
                }
                return;
            }
            UpstreamStep::Body { forward, end } => {
                let n = forward.min(c.uin.len());
                if n > 0 {
                    self.bufs.fill(&mut c.cout);
                }
                c.cout.extend_from_slice(&c.uin[..n]);
                c.uin.drain(..n);
                count(c, before);
                if let Some(end) = end {
                    self.finish(ctx, id, end);
                }
                return;
            }
            UpstreamStep::Payload {
                consumed,
                data,
                end,
            } => {
                return self.payload(ctx, id, (consumed, data, end));
            }
            UpstreamStep::Tunnel { consumed, head } => {
                c.uin.drain(..consumed.min(c.uin.len()));
                let rc = ResponseContext {
                    server,
                    client_keep_alive: false,
                    client_version: version,
                };
                write_response_head(&head, &rc, &hp.edits, &mut c.cout);
                if let Some(r) = c.req.as_mut() {
                    r.status = head.status;
                }
                c.report_response(head.status, ctx.now());
                c.tunnel = true;
                let cin = std::mem::take(&mut c.cin);
                c.uout.extend_from_slice(&cin);
            }
            UpstreamStep::Retry { failure } | UpstreamStep::Reply { failure, .. } => {
                self.after_failure(ctx, id, failure, step);
                return;
            }
            UpstreamStep::Abort => return self.abort(ctx, id),
            UpstreamStep::Unexpected => {
                self.drop_upstream(ctx, id, false);
                return;
            }
        }
        count(c, before);
    }
}

impl HttpProxy {
    /// Payload of a response sent without its chunked framing (to an
    /// HTTP/1.0 client), from the session's first piece on: the pieces of
    /// what is buffered are taken in one run and the input is dropped
    /// once (dropping it per piece would move the buffer once per chunk,
    /// however small the chunks).
    fn payload(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        first: (usize, Range<usize>, Option<ExchangeEnd>),
    ) {
        let now = ctx.now();
        let c = &mut self.conns[id.0];
        let before = c.cout.len();
        self.bufs.fill(&mut c.cout);
        let (mut off, mut piece, mut next) = (0, first, None);
        let end = loop {
            let (consumed, data, end) = piece;
            let len = c.uin.len();
            let data = (off + data.start).min(len)..(off + data.end).min(len);
            c.cout.extend_from_slice(&c.uin[data]);
            off = (off + consumed).min(len);
            if end.is_some() || consumed == 0 || off == len || c.cout.len() >= BUF_CAP {
                break end;
            }
            match c.session.upstream_input(&c.uin[off..], now) {
                UpstreamStep::Payload {
                    consumed,
                    data,
                    end,
                } => piece = (consumed, data, end),
                other => {
                    next = Some(other);
                    break None;
                }
            }
        };
        c.uin.drain(..off);
        count(c, before);
        if let Some(end) = end {
            self.finish(ctx, id, end);
        }
        if let Some(step) = next {
            self.upstream_step(ctx, id, step);
        }
    }
}

impl super::Conn {
    fn session_head_cap(&self) -> usize {
        self.rt
            .plan
            .listener(self.listener)
            .http
            .as_ref()
            .map_or(0, |h| h.max_header_size + 1)
    }
}

fn count(c: &mut super::Conn, before: usize) {
    let added = c.cout.len().saturating_sub(before) as u64;
    if let Some(r) = c.req.as_mut() {
        r.bytes_out += added;
    }
}
