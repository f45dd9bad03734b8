//! The client socket's side of an HTTP connection: bounded reads into
//! `cin` and writes of `cout` (and of TLS records a socket did not take
//! yet), with the per-listener byte counters.

use std::io::Write;

use reactor::io::{read, write};
use reactor::{Ctx, IoStatus};

use super::exchange::Flow;
use super::{HttpId, HttpProxy, BUF_CAP};
use crate::events::Loop;
use crate::http::ClientStep;
use crate::metrics::listener as lc;
use crate::tcp::relay::{ShortRead, ShortReadMeans};

impl HttpProxy {
    /// Whether a write of connection `id` waits for the end of the
    /// wake-up (queued then); false while that pass runs.
    pub(super) fn defer_write(&mut self, id: HttpId) -> bool {
        if self.write_now {
            return false;
        }
        let c = &mut self.conns[id.0];
        if !c.write_queued {
            c.write_queued = true;
            self.deferred.push(id);
        }
        true
    }

    /// The end of a wake-up: every connection with bytes to send sends
    /// them now (all reads of the wake-up first, then the writes, as
    /// HAProxy does).
    pub fn flush_writes(&mut self, ctx: &mut Ctx<impl Loop>) {
        if self.deferred.is_empty() {
            return;
        }
        self.write_now = true;
        let mut ids = std::mem::take(&mut self.deferred);
        for &id in &ids {
            if self.conns.get(id.0).is_some_and(|c| c.write_queued) {
                self.conns[id.0].write_queued = false;
                self.flush_one(ctx, id);
            }
        }
        ids.clear();
        self.deferred = ids;
        self.write_now = false;
    }

    /// Sends what connection `id` queued; when that leaves nothing else
    /// to do (the keep-alive case: every buffer empty, both sockets
    /// drained), only its buffers and timer are settled, else it is
    /// driven as on any event.
    fn flush_one(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) {
        for f in [Self::write_upstream, Self::write_client] {
            if matches!(f(self, ctx, id), Flow::Closed) || !self.conns.contains(id.0) {
                return;
            }
        }
        let c = &mut self.conns[id.0];
        let settled = !c.closing
            && !c.tunnel
            && !c.client_ready.readable
            && !c.client.has_queued_records()
            && !c.up.as_ref().is_some_and(|u| {
                u.ready.readable || u.connecting.is_some() || u.stream.has_queued_records()
            })
            && [&c.cin, &c.cout, &c.uin, &c.uout]
                .iter()
                .all(|b| b.is_empty());
        if !settled {
            return self.drive(ctx, id);
        }
        self.settle(ctx, id);
    }

    pub(super) fn read_client(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> Flow {
        let c = &mut self.conns[id.0];
        let cap = BUF_CAP.max(
            c.rt.plan
                .listener(c.listener)
                .http
                .as_ref()
                .map_or(0, |h| h.max_header_size)
                + 1,
        );
        if c.client_eof || c.closing || !c.client_ready.readable || c.cin.len() >= cap {
            return Flow::Go(false);
        }
        let tmp = &mut self.scratch[..];
        let room = (cap - c.cin.len()).min(tmp.len());
        match read(&mut c.client, &mut tmp[..room]) {
            IoStatus::Progress(n) => {
                self.bufs.fill(&mut c.cin);
                c.cin.extend_from_slice(&tmp[..n]);
                c.rt.listener_stats[c.listener.0].add(ctx.loop_index(), lc::BYTES_IN, n as u64);
                // A short read that drained the stream (as in the TCP
                // relay): the next bytes raise a new edge, so skip the read
                // that would only say EAGAIN. At the end, read on: the
                // next read returns 0.
                if n < room && c.client.short_read(&c.client_ready) == ShortReadMeans::Drained {
                    c.client_ready.readable = false;
                }
                Flow::Go(true)
            }
            IoStatus::WouldBlock => {
                c.client_ready.readable = false;
                Flow::Go(false)
            }
            IoStatus::Closed => {
                c.client_eof = true;
                if c.tunnel {
                    return Flow::Go(true);
                }
                match c.session.client_eof() {
                    ClientStep::Close => {
                        self.close(ctx, id, "client closed");
                        Flow::Closed
                    }
                    _ => Flow::Go(true),
                }
            }
            IoStatus::Error(_) => {
                self.close(ctx, id, "client reset");
                Flow::Closed
            }
        }
    }

    pub(super) fn write_client(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> Flow {
        let c = &mut self.conns[id.0];
        if !c.client_ready.writable {
            return Flow::Go(false);
        }
        if c.cout.is_empty() {
            // TLS records of earlier writes the socket did not take yet.
            if c.client.has_queued_records() {
                match c.client.flush_records() {
                    Ok(true) => {
                        c.cout_stall = None;
                        return Flow::Go(true);
                    }
                    Ok(false) => c.client_ready.writable = false,
                    Err(_) => {
                        self.close(ctx, id, "client reset");
                        return Flow::Closed;
                    }
                }
            }
            return Flow::Go(false);
        }
        if self.defer_write(id) {
            return Flow::Go(false);
        }
        let c = &mut self.conns[id.0];
        match write(&mut c.client, &c.cout) {
            IoStatus::Progress(n) => {
                c.cout.drain(..n);
                c.cout_stall = None;
                c.rt.listener_stats[c.listener.0].add(ctx.loop_index(), lc::BYTES_OUT, n as u64);
                // Written out: no buffer kept when it grew past the cap,
                // nor between requests (an idle keep-alive connection then
                // holds no buffer memory, as `finish` does for the others).
                if c.cout.is_empty() && (c.cout.capacity() > BUF_CAP || c.req.is_none()) {
                    self.bufs.give(&mut c.cout);
                }
                let _ = c.client.flush();
                Flow::Go(true)
            }
            IoStatus::WouldBlock => {
                c.client_ready.writable = false;
                Flow::Go(false)
            }
            IoStatus::Closed | IoStatus::Error(_) => {
                self.close(ctx, id, "client reset");
                Flow::Closed
            }
        }
    }
}
