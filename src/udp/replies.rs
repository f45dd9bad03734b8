//! Replies: datagrams from a session's upstream socket back to its client.
//!
//! Owns reading replies in `recvmmsg` batches (within the loop's budget),
//! the first reply's passive-health success, queueing them for one
//! `sendmmsg` per listener socket and wakeup, sending them from the address
//! the client reached, and dropping what a full socket buffer cannot take
//! (as the network would). An error on the connected upstream socket (ICMP
//! unreachable) ends the session as a server failure.
//! Does not own the client-to-server direction (`mod.rs`).

use reactor::{Ctx, IoStatus, Ready, Token, DEFAULT_BUDGET};

use super::{count_datagrams, show, FlowId, UdpProxy, UdpSlot, REPLY_BATCH_BYTES};
use crate::events::Loop;

impl UdpProxy {
    /// Replies from a session's upstream: drain within the budget, send them
    /// back to the client in one `sendmmsg` per batch.
    pub fn on_upstream_ready(&mut self, ctx: &mut Ctx<impl Loop>, id: FlowId, token: Token) {
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
                            let backend = rt.backend_of(f.io.plan);
                            backend.report_success(f.io.server, now);
                        }
                    }
                    let incoming: usize = self.batch.iter().map(|(b, _)| b.len()).sum();
                    if self.pending_li.is_some_and(|p| p != li)
                        || self.pending_bytes + incoming > REPLY_BATCH_BYTES
                    {
                        self.flush_pending(ctx);
                    }
                    let (mut count, mut bytes) = (0u64, 0u64);
                    for (buf, meta) in self.batch.iter() {
                        if meta.truncated {
                            continue;
                        }
                        self.replies.push(buf, Some(client), from);
                        self.pending_bytes += buf.len();
                        self.flows.datagram_out(id, now, buf.len());
                        count += 1;
                        bytes += buf.len() as u64;
                    }
                    if let Some(f) = self.flows.get(id) {
                        count_datagrams(ctx.loop_index(), f, count, bytes, false);
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
    pub fn flush_pending(&mut self, ctx: &Ctx<impl Loop>) {
        if let Some(li) = self.pending_li.take() {
            self.pending_bytes = 0;
            self.flush_replies(ctx, li);
        }
    }

    fn flush_replies(&mut self, ctx: &Ctx<impl Loop>, li: UdpSlot) {
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
}
