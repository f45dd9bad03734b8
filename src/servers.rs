//! Run-time state of backends shared by every event loop: the balancer of
//! each backend, per-server connection counts and health.
//!
//! Loops pick servers concurrently, so each backend's balancer sits behind a
//! `Mutex` (held for one pick: a few hundred nanoseconds, negligible at L4
//! connection rates, and it keeps round-robin and weights exact across loops).
//! Connection counts are atomics.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::balancer::{new_balancer, Balancer, Candidate, ServerId, Tried};
use crate::config::{BackendPlan, ServerPlan};

pub struct ServerRt {
    pub plan: ServerPlan,
    pub active: AtomicU32,
}

impl ServerRt {
    /// The address to connect to: the server's port, or the port the client
    /// reached when the server has none (destination-port preservation).
    pub fn target(&self, client_port: u16) -> SocketAddr {
        SocketAddr::new(self.plan.ip, self.plan.port.unwrap_or(client_port))
    }
}

pub struct BackendRt {
    pub plan: BackendPlan,
    balancer: Mutex<Box<dyn Balancer>>,
    pub servers: Vec<ServerRt>,
}

impl BackendRt {
    pub fn new(plan: &BackendPlan, seed: u64) -> BackendRt {
        let weights: Vec<u32> = plan.servers.iter().map(|s| s.weight).collect();
        BackendRt {
            plan: plan.clone(),
            balancer: Mutex::new(new_balancer(plan.balance, &weights, seed)),
            servers: plan
                .servers
                .iter()
                .map(|s| ServerRt {
                    plan: s.clone(),
                    active: AtomicU32::new(0),
                })
                .collect(),
        }
    }

    pub fn server(&self, id: ServerId) -> &ServerRt {
        &self.servers[id.0]
    }

    fn usable(&self, s: &ServerRt, _now: Instant) -> bool {
        match s.plan.max_connections {
            Some(max) => (s.active.load(Ordering::Relaxed) as usize) < max,
            None => true,
        }
    }

    /// Picks a server not yet in `tried` and counts a connection on it.
    /// The caller must call [`release`](Self::release) exactly once for it.
    pub fn acquire(&self, client: IpAddr, tried: &Tried, now: Instant) -> Option<ServerId> {
        let mut stack = [Candidate {
            weight: 1,
            backup: false,
            usable: false,
            active: 0,
        }; 16];
        let mut heap;
        let view: &mut [Candidate] = if self.servers.len() <= stack.len() {
            &mut stack[..self.servers.len()]
        } else {
            heap = vec![stack[0]; self.servers.len()];
            &mut heap
        };
        for (c, s) in view.iter_mut().zip(&self.servers) {
            *c = Candidate {
                weight: s.plan.weight,
                backup: s.plan.backup,
                usable: self.usable(s, now),
                active: s.active.load(Ordering::Relaxed),
            };
        }
        let id = self
            .balancer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pick(view, client, tried)?;
        self.servers[id.0].active.fetch_add(1, Ordering::Relaxed);
        Some(id)
    }

    pub fn release(&self, id: ServerId) {
        self.servers[id.0].active.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connect failure, connect timeout or reset before any byte.
    pub fn report_failure(&self, _id: ServerId, _now: Instant, _why: &str) {}

    /// A connection to the server was established.
    pub fn report_success(&self, _id: ServerId, _now: Instant) {}
}
