//! Admitting a new UDP client: one session per (listener socket, client).
//!
//! Owns the admission checks, in order: not shutting down, the access
//! rules (`crate::acl`: lists, per-client limits, the listener's
//! `rate_limit`), the listener and global `max_connections` (through `Runtime::reserve`, shared with
//! TCP), the process fd budget ([`fd_budget`]), a server from the
//! balancer, and the session's own upstream socket (bound to an ephemeral
//! port, `connect`ed to the server, registered in the loop, with its idle
//! timer). Whatever fails gives back what was taken and says why
//! ([`Refused`]), with at most one warning per interval.
//! Does not own the session table (`flow_table.rs`) or the data path
//! (`mod.rs`, `replies.rs`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use mio::net::UdpSocket;
use reactor::{Ctx, Interest};

use super::proxy_header::Origin;
use super::{show, FlowId, FlowKey, UdpProxy, UdpSlot, Upstream};
use crate::acl::Denied;
use crate::balancer::Tried;
use crate::config::ProxyVersion;
use crate::events::{Loop, Tag, Timer};
use crate::limits::{fd_budget, is_fd_exhaustion};

/// Why a datagram from a new client found no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    SessionLimit,
    FdLimit,
    NoServer,
    Socket,
    Stopped,
    /// The access rules (lists, rate limits, per-client limits).
    Denied(Denied),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::SessionLimit => "session limit (max_connections) reached",
            Refused::FdLimit => "file descriptor budget for sessions spent",
            Refused::NoServer => "no server available",
            Refused::Socket => "cannot open an upstream socket",
            Refused::Stopped => "shutting down",
            Refused::Denied(why) => why.describe(),
        })
    }
}

impl Refused {
    /// The `nvelox_listener_udp_drops_total` reason; `None` for a client
    /// the access rules refused (`nvelox_listener_denied_total` counts it).
    pub(super) fn drop_reason(self) -> Option<crate::metrics::Drop> {
        use crate::metrics::Drop;
        Some(match self {
            Refused::SessionLimit => Drop::SessionLimit,
            Refused::FdLimit => Drop::FdLimit,
            Refused::NoServer => Drop::NoServer,
            Refused::Socket => Drop::SocketError,
            Refused::Stopped => Drop::ShuttingDown,
            Refused::Denied(_) => return None,
        })
    }
}

fn upstream_socket(target: SocketAddr) -> io::Result<UdpSocket> {
    let local = match target {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(target)?;
    Ok(sock)
}

impl UdpProxy {
    pub(super) fn warn_refused(
        &mut self,
        ctx: &Ctx<impl Loop>,
        li: UdpSlot,
        peer: &SocketAddr,
        why: Refused,
    ) {
        let limiter = match why {
            Refused::NoServer => &mut self.down_warn,
            Refused::Denied(d) => &mut self.deny_warn[d.index()],
            Refused::Stopped => return,
            _ => &mut self.full_warn,
        };
        if let Some(n) = limiter.allow(ctx.now()) {
            let name = self
                .listeners
                .get(li)
                .and_then(|s| self.rt.plan.listeners.get(s.l.plan.0))
                .map(|l| l.name.as_str())
                .unwrap_or("?");
            log::warn!(
                "listener {name}: dropping datagrams from new client {}: {why} ({n} similar messages suppressed)",
                show(peer)
            );
        }
    }

    /// Admits a new session: caps, fd budget, server choice, upstream socket.
    pub(super) fn open(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        key: FlowKey,
        local_ip: Option<IpAddr>,
        origin: Option<Origin>,
    ) -> Result<FlowId, Refused> {
        if self.stopped {
            return Err(Refused::Stopped);
        }
        let now = ctx.now();
        let (plan, port) = match self.listeners.get(key.listener) {
            Some(s) => (s.l.plan, s.l.port),
            None => return Err(Refused::Stopped),
        };
        let rt = Arc::clone(&self.rt);
        let lp = rt.plan.listener(plan);
        let client = origin.map_or(key.client, |(src, _)| src);
        // Before anything is taken: a refused client costs no session.
        let admitted = rt
            .access(plan)
            .admit(ctx.loop_index(), &lp.access, client.ip(), now, true)
            .map_err(Refused::Denied)?;
        let access = rt.access(plan);
        if rt.reserve(plan, 1) == 0 {
            access.release(admitted);
            return Err(Refused::SessionLimit);
        }
        let budget = fd_budget();
        if !budget.take() {
            rt.unreserve(plan, 1);
            access.release(admitted);
            return Err(Refused::FdLimit);
        }
        let backend = rt.backend(lp.stream_backend());
        let Ok(server) = backend.acquire_from(client, &Tried::new(), now) else {
            budget.give_back();
            rt.unreserve(plan, 1);
            access.release(admitted);
            return Err(Refused::NoServer);
        };
        let target = backend.server(server).target(port);
        let give_back = |why: Refused| {
            backend.release(server);
            budget.give_back();
            rt.unreserve(plan, 1);
            access.release(admitted);
            Err(why)
        };
        let sock = match upstream_socket(target) {
            Ok(s) => s,
            Err(e) if is_fd_exhaustion(&e) => return give_back(Refused::FdLimit),
            Err(e) => {
                log::debug!("udp upstream socket to {target}: {e}");
                backend.server(server).stats.add(
                    ctx.loop_index(),
                    crate::metrics::server::CONNECTION_ERRORS,
                    1,
                );
                backend.report_failure(server, now, "cannot connect");
                return give_back(Refused::Socket);
            }
        };
        let up = Upstream {
            sock,
            token: None,
            server,
            target,
            plan,
            timer: None,
            send_proxy: backend.plan.send_proxy == Some(ProxyVersion::V2),
            rt: Arc::clone(&rt),
            origin,
            admitted,
        };
        let id = match self.flows.insert(key, local_ip, now, lp.idle_timeout, up) {
            Ok(id) => id,
            // The caller looked the key up first; keep the invariant anyway.
            Err(_) => return give_back(Refused::Socket),
        };
        let Some(f) = self.flows.get_mut(id) else {
            return Err(Refused::Socket);
        };
        match ctx.register(&mut f.io.sock, Interest::READABLE, Tag::UdpUpstream(id)) {
            Ok(t) => f.io.token = Some(t),
            Err(e) => {
                log::error!("cannot register udp upstream socket to {target}: {e}");
                self.end(ctx, id, "internal error", false);
                return Err(Refused::Socket);
            }
        }
        let deadline = f.deadline();
        f.io.timer = Some(ctx.set_timer(deadline, Timer::UdpIdle(id)));
        let lp = ctx.loop_index();
        rt.listener_stats[plan.0].add(lp, crate::metrics::listener::CONNECTIONS, 1);
        backend
            .server(server)
            .stats
            .add(lp, crate::metrics::server::CONNECTIONS, 1);
        Ok(id)
    }
}
