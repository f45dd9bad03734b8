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

use crate::backend::{Health, Transition};
use crate::balancer::{new_balancer, Balancer, Candidate, ServerId, Tried};
use crate::config::{BackendPlan, ServerPlan};

pub struct ServerRt {
    pub plan: ServerPlan,
    pub active: AtomicU32,
    health: Mutex<Health>,
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
                    health: Mutex::new(Health::new(&plan.health)),
                })
                .collect(),
        }
    }

    pub fn server(&self, id: ServerId) -> &ServerRt {
        &self.servers[id.0]
    }

    fn usable(&self, s: &ServerRt, now: Instant) -> bool {
        let below_cap = match s.plan.max_connections {
            Some(max) => (s.active.load(Ordering::Relaxed) as usize) < max,
            None => true,
        };
        below_cap && lock(&s.health).is_usable(now)
    }

    /// Applies `f` to a server's health and logs the state change, if any.
    pub fn with_health(&self, id: ServerId, f: impl FnOnce(&mut Health) -> Option<Transition>) {
        let s = &self.servers[id.0];
        let t = f(&mut lock(&s.health));
        if let Some(t) = t {
            log::warn!("backend {} server {}: {t}", self.plan.name, s.plan.label);
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
        self.with_health(id, |h| h.on_pick(now));
        Some(id)
    }

    pub fn release(&self, id: ServerId) {
        self.servers[id.0].active.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connect failure, connect timeout or reset before any byte.
    pub fn report_failure(&self, id: ServerId, now: Instant, why: &str) {
        log::debug!(
            "backend {} server {}: {why}",
            self.plan.name,
            self.servers[id.0].plan.label
        );
        self.with_health(id, |h| h.on_failure(now));
    }

    /// A connection to the server was established (UDP: a reply arrived).
    pub fn report_success(&self, id: ServerId, now: Instant) {
        self.with_health(id, |h| h.on_success(now));
    }

    /// Result of one active probe; `detail` (what the last probe saw) is
    /// appended to a state-change warning so it says why.
    pub fn report_probe(&self, id: ServerId, ok: bool, now: Instant, detail: &str) {
        let s = &self.servers[id.0];
        let t = lock(&s.health).on_probe_result(ok, now);
        if let Some(t) = t {
            log::warn!(
                "backend {} server {}: {t} (last probe: {detail})",
                self.plan.name,
                s.plan.label
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
