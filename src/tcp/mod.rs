//! TCP proxying for one event loop: the socket shell around the sans-IO
//! connection state machine ([`phase::ConnState`]).
//!
//! Owns this loop's TCP listeners and connections, split by concept:
//! - `accept.rs`: listener sockets, accepting under the connection caps
//!   and the listener's `rate_limit`, the access rules (`crate::acl`) for a
//!   client without PROXY header, pausing and resuming accepts (caps, rate,
//!   fd exhaustion), reload and shutdown of listeners;
//! - `header.rs`: `accept_proxy`, reading and judging the client's PROXY
//!   header (then the access rules, on the client it names);
//! - `conn.rs`: one connection's life: server choice, connect with
//!   timeout and retries, relaying, idle timeout, close and access log;
//! - `intake_tls.rs`: `sni_routes` (reading the ClientHello without
//!   consuming it, choosing the backend by its server name) and `tls:`
//!   (the handshake with the client); `relay_tls.rs`: relaying when either
//!   side speaks TLS, and the `backend_tls` handshake of a connect attempt;
//! - `phase.rs`: the phases and their transitions, without sockets;
//! - `relay.rs`: one direction's byte pump (copy or splice), `buffer.rs`:
//!   the per-loop buffer pool.
//!
//! Does not own server choice or health (`backend_rt.rs`, `health/`),
//! PROXY header parsing (`proxy_protocol/`) or binding (`run.rs`).

mod accept;
pub mod buffer;
mod conn;
pub(crate) mod header;
mod intake_tls;
pub mod phase;
pub mod relay;
mod relay_tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reactor::splice::PipePool;
use slab::Slab;

use crate::acl::Denied;
use crate::config::ListenerId;
use crate::events::Loop;
use crate::http_proxy::{HttpId, HttpProxy};
use crate::limits::LogLimiter;
use crate::logging::AccessLog;
use crate::runtime::Runtime;
use buffer::BufPool;
use reactor::{Ctx, Ready};

pub use crate::events::ConnId;
pub use accept::TcpListenerSock;
pub use phase::PROXY_HEADER_TIMEOUT;

/// At most one log line per this interval for each reason of refusal.
pub const DENY_LOG_INTERVAL: Duration = Duration::from_secs(10);

use accept::ListenerSlot;
use conn::Conn;

pub struct TcpProxy {
    rt: Arc<Runtime>,
    access: AccessLog,
    listeners: Vec<ListenerSlot>,
    conns: Slab<Conn>,
    pool: BufPool,
    pipes: PipePool,
    retry_armed: bool,
    paused: accept::PausedListeners,
    stopped: bool,
    fd_warn: LogLimiter,
    down_warn: LogLimiter,
    header_warn: LogLimiter,
    /// One per [`Denied`] reason.
    deny_warn: [LogLimiter; 5],
    /// `protocol: http` connections accepted on this loop's listeners.
    pub http: HttpProxy,
}

fn client_ip(a: &SocketAddr) -> IpAddr {
    a.ip().to_canonical()
}

/// A client address for logs: IPv4-mapped shown as IPv4.
fn show(a: &SocketAddr) -> String {
    SocketAddr::new(client_ip(a), a.port()).to_string()
}

impl TcpProxy {
    pub fn new(rt: Arc<Runtime>, access: AccessLog, listeners: Vec<TcpListenerSock>) -> TcpProxy {
        TcpProxy {
            rt,
            http: HttpProxy::new(access.clone()),
            access,
            listeners: listeners.into_iter().map(ListenerSlot::new).collect(),
            conns: Slab::new(),
            pool: BufPool::new(64),
            pipes: PipePool::new(16),
            retry_armed: false,
            paused: accept::PausedListeners::default(),
            stopped: false,
            fd_warn: LogLimiter::new(Duration::from_secs(10)),
            down_warn: LogLimiter::new(Duration::from_secs(1)),
            header_warn: LogLimiter::new(Duration::from_secs(1)),
            deny_warn: std::array::from_fn(|_| LogLimiter::new(DENY_LOG_INTERVAL)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty() && self.http.is_empty()
    }

    pub fn on_http_client_ready(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId, ready: Ready) {
        self.http.on_client_ready(ctx, id, ready);
        self.after_http(ctx);
    }

    pub fn on_http_upstream_ready(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId, ready: Ready) {
        self.http.on_upstream_ready(ctx, id, ready);
        self.after_http(ctx);
    }

    pub fn on_http_timer(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) {
        self.http.on_timer(ctx, id);
        self.after_http(ctx);
    }

    /// The end of a wake-up: HTTP connections send what they queued.
    pub fn flush_http(&mut self, ctx: &mut Ctx<impl Loop>) {
        self.http.flush_writes(ctx);
        self.after_http(ctx);
    }

    /// HTTP connections closed: their listener slots are free again.
    fn after_http(&mut self, ctx: &mut Ctx<impl Loop>) {
        if std::mem::take(&mut self.http.closed) > 0 {
            self.resume_paused(ctx);
        }
    }

    /// Logs a refusal, at most once per [`DENY_LOG_INTERVAL`] and reason.
    fn warn_denied(
        &mut self,
        now: Instant,
        listener: ListenerId,
        client: &SocketAddr,
        why: Denied,
    ) {
        if let Some(n) = self.deny_warn[why.index()].allow(now) {
            log::warn!(
                "listener {}: closing {}: {} ({n} similar messages suppressed)",
                self.rt.plan.listener(listener).name,
                show(client),
                why.describe()
            );
        }
    }
}
