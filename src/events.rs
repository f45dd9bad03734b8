//! What a token and a timer stand for in one event loop: the [`Tag`] and
//! [`Timer`] vocabulary shared by the loop's handler (`worker.rs`) and the
//! parts it drives (`tcp/`, `udp/`, `health/`).
//!
//! Owns: the tag and timer enums, the indexes [`ConnId`], [`ProbeId`] and
//! [`TcpSlot`], and the
//! [`Loop`] bound the proxies take their `Ctx` under, so they depend on
//! this small module instead of on the handler that routes to them.
//! Does not own: the routing itself (`worker.rs`) or the main thread's
//! messages (`worker::Msg`).

use reactor::Handler;

use crate::http_proxy::HttpId;
use crate::udp::flow_table::{FlowId, UdpSlot};

/// Index of a TCP connection in its loop's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub usize);

/// Index of a probed server in the health checker's table (loop 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProbeId(pub usize);

/// Index of an admin/metrics HTTP connection (loop 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdminConnId(pub usize);

/// A TCP listening socket of this loop: its index in the loop's TCP
/// listener table (not a plan's `ListenerId`: one plan listener has a
/// socket per port, and per loop with `reuseport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpSlot(pub usize);

/// What a token stands for in this loop.
#[derive(Clone, Copy, Debug)]
pub enum Tag {
    TcpListener(TcpSlot),
    Client(ConnId),
    Upstream(ConnId),
    UdpListener(UdpSlot),
    UdpUpstream(FlowId),
    /// An active health probe's socket (loop 0 only).
    Probe(ProbeId),
    /// An admin/metrics listening socket (loop 0 only).
    AdminListener(usize),
    /// An admin/metrics HTTP connection (loop 0 only).
    AdminConn(AdminConnId),
    /// An HTTP listener's client connection.
    HttpClient(HttpId),
    /// The server connection of an HTTP client's request in flight.
    HttpUpstream(HttpId),
    /// An idle upstream connection in the HTTP keep-alive pool.
    HttpPooled,
}

/// Timers of this loop.
#[derive(Clone, Copy, Debug)]
pub enum Timer {
    /// A TCP connection's PROXY header or connect attempt is due.
    TcpDeadline(ConnId),
    /// Check a TCP connection for inactivity.
    TcpIdle(ConnId),
    /// Accepting was paused (fd exhaustion or a connection cap): try again.
    AcceptRetry,
    /// `shutdown_timeout` is over: close what is left.
    DrainDeadline,
    /// A UDP session's single idle timer.
    UdpIdle(FlowId),
    /// Start the next health probe of a server.
    ProbeDue(ProbeId),
    /// A health probe ran out of time.
    ProbeTimeout(ProbeId),
    /// An admin/metrics connection ran out of time.
    AdminDeadline(AdminConnId),
    /// An HTTP connection's next deadline (head, idle, connect, response).
    HttpDeadline(HttpId),
}

/// Any handler whose tokens are [`Tag`]s and whose timers are [`Timer`]s:
/// the proxies take `&mut Ctx<impl Loop>` (in practice the `Worker`).
pub trait Loop: Handler<Tag = Tag, Timer = Timer> {}

impl<H: Handler<Tag = Tag, Timer = Timer>> Loop for H {}
