//! One event loop's handler: routes readiness, timers and messages to the
//! TCP and UDP proxies and the health checker it owns.
//!
//! Does not own what tokens and timers mean (`events.rs`) or any protocol
//! logic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reactor::{Action, Ctx, Handler, Ready, Token};

use crate::admin::{AdminServer, AdminSock};
use crate::config::ListenerId;
use crate::events::{Tag, Timer};
use crate::health::HealthChecker;
use crate::logging::AccessLog;
use crate::runtime::Runtime;
use crate::tcp::{TcpListenerSock, TcpProxy};
use crate::udp::{UdpListenerSock, UdpProxy};

/// Messages from the main thread.
pub enum Msg {
    /// Stop accepting; finish open connections until `deadline`.
    Shutdown { deadline: Instant },
    /// Reload, phase 1: close the listeners the new configuration drops
    /// (`keep[old plan index]` is `None`), then acknowledge on `done` so the
    /// main thread may bind their ports again.
    CloseRemoved {
        keep: Arc<Vec<Option<ListenerId>>>,
        done: std::sync::mpsc::Sender<()>,
    },
    /// Reload, phase 2: switch new connections to `rt`, relabel kept
    /// listeners, start the added ones. Open connections and sessions keep
    /// the configuration they started under. `done` is told once this
    /// loop's new connections use `rt`.
    Apply {
        rt: Arc<Runtime>,
        keep: Arc<Vec<Option<ListenerId>>>,
        tcp: Vec<TcpListenerSock>,
        udp: Vec<UdpListenerSock>,
        done: std::sync::mpsc::Sender<()>,
    },
}

pub struct Worker {
    pub tcp: TcpProxy,
    pub udp: UdpProxy,
    /// Runs probes on loop 0 only; idle elsewhere.
    health: HealthChecker,
    /// The admin/metrics server: sockets on loop 0 only.
    admin: AdminServer,
    draining: bool,
    /// `server.scheduler_slice`, applied to the loop's thread at start.
    scheduler_slice: Option<Duration>,
}

impl Worker {
    pub fn new(
        rt: Arc<Runtime>,
        access: AccessLog,
        tcp_listeners: Vec<TcpListenerSock>,
        udp_listeners: Vec<UdpListenerSock>,
        admin: Vec<AdminSock>,
    ) -> Worker {
        Worker {
            scheduler_slice: rt.plan.server.scheduler_slice,
            admin: AdminServer::new(Arc::clone(&rt), access.clone(), admin),
            udp: UdpProxy::new(Arc::clone(&rt), access.clone(), udp_listeners),
            health: HealthChecker::new(Arc::clone(&rt)),
            tcp: TcpProxy::new(rt, access, tcp_listeners),
            draining: false,
        }
    }

    fn finished_draining(&self) -> bool {
        self.draining && self.tcp.is_empty() && self.udp.is_empty()
    }
}

impl Handler for Worker {
    type Tag = Tag;
    type Timer = Timer;
    type Message = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<Self>) -> Action {
        // On the loop's own thread. Not applying it changes no behaviour,
        // only how soon the loop gets its core back from a busy neighbour.
        if let Some(slice) = self.scheduler_slice {
            match reactor::sys::set_thread_slice(Some(slice)) {
                Ok(()) => log::debug!(
                    "event loop {}: scheduler slice {} us requested",
                    ctx.loop_index(),
                    slice.as_micros()
                ),
                Err(e) => log::info!(
                    "event loop {}: server.scheduler_slice not applied ({e}): the kernel's default slice stays",
                    ctx.loop_index()
                ),
            }
        }
        self.tcp.start(ctx);
        self.udp.start(ctx);
        if ctx.loop_index() == 0 {
            self.health.start(ctx);
        }
        self.admin.start(ctx);
        Action::Continue
    }

    fn on_ready(&mut self, ctx: &mut Ctx<Self>, token: Token, ready: Ready) -> Action {
        match ctx.tag(token).copied() {
            Some(Tag::TcpListener(i)) => self.tcp.on_listener_ready(ctx, i, token),
            Some(Tag::Client(id)) => self.tcp.on_client_ready(ctx, id, ready),
            Some(Tag::Upstream(id)) => self.tcp.on_upstream_ready(ctx, id, ready),
            Some(Tag::UdpListener(i)) => self.udp.on_listener_ready(ctx, i, token),
            Some(Tag::UdpUpstream(id)) => self.udp.on_upstream_ready(ctx, id, token),
            Some(Tag::Probe(id)) => self.health.on_ready(ctx, id, ready),
            Some(Tag::AdminListener(i)) => self.admin.on_listener_ready(ctx, i, token),
            Some(Tag::AdminConn(id)) => self.admin.on_conn_ready(ctx, id, ready),
            Some(Tag::HttpClient(id)) => self.tcp.on_http_client_ready(ctx, id, ready),
            Some(Tag::HttpUpstream(id)) => self.tcp.on_http_upstream_ready(ctx, id, ready),
            Some(Tag::HttpPooled) => self.tcp.http.on_pooled_ready(ctx, token),
            None => {}
        }
        Action::Continue
    }

    fn on_timer(&mut self, ctx: &mut Ctx<Self>, timer: Timer) -> Action {
        match timer {
            Timer::TcpDeadline(id) => self.tcp.on_deadline(ctx, id),
            Timer::TcpIdle(id) => self.tcp.on_idle_timer(ctx, id),
            Timer::AcceptRetry => self.tcp.on_accept_retry(ctx),
            Timer::UdpIdle(id) => self.udp.on_idle_timer(ctx, id),
            Timer::ProbeDue(id) => self.health.on_due(ctx, id),
            Timer::ProbeTimeout(id) => self.health.on_timeout(ctx, id),
            Timer::AdminDeadline(id) => self.admin.on_deadline(ctx, id),
            Timer::HttpDeadline(id) => self.tcp.on_http_timer(ctx, id),
            Timer::DrainDeadline => {
                self.tcp.close_all(ctx);
                self.udp.close_all(ctx, "shutdown");
                return Action::Stop;
            }
        }
        Action::Continue
    }

    fn on_message(&mut self, ctx: &mut Ctx<Self>, msg: Msg) -> Action {
        match msg {
            Msg::Shutdown { deadline } => {
                self.draining = true;
                self.tcp.stop_listening(ctx);
                self.udp.stop_listening(ctx);
                self.health.stop(ctx);
                self.admin.stop(ctx);
                ctx.set_timer(deadline, Timer::DrainDeadline);
            }
            Msg::CloseRemoved { keep, done } => {
                if !self.draining {
                    self.tcp.close_removed_listeners(ctx, &keep);
                    self.udp.close_removed_listeners(ctx, &keep);
                }
                let _ = done.send(());
            }
            Msg::Apply {
                rt,
                keep,
                tcp,
                udp,
                done,
            } => {
                let _confirm = Confirm(done);
                if self.draining {
                    return Action::Continue;
                }
                self.health.stop(ctx);
                self.health = HealthChecker::new(Arc::clone(&rt));
                if ctx.loop_index() == 0 {
                    self.health.start(ctx);
                }
                self.admin.set_runtime(Arc::clone(&rt));
                self.tcp.apply_reload(ctx, Arc::clone(&rt), &keep, tcp);
                self.udp.apply_reload(ctx, rt, &keep, udp);
            }
        }
        Action::Continue
    }

    fn on_tick(&mut self, ctx: &mut Ctx<Self>) -> Action {
        self.udp.flush_pending(ctx);
        self.tcp.flush_http(ctx);
        if self.finished_draining() {
            Action::Stop
        } else {
            Action::Continue
        }
    }
}

/// Tells the reloading thread a message was handled when dropped, whichever
/// way the handler returns.
struct Confirm(std::sync::mpsc::Sender<()>);

impl Drop for Confirm {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}
