//! State shared by every event loop of one running configuration: the plan,
//! the backends (balancers, counts, health), the connection counters
//! behind `max_connections` and each listener's access-control state.
//!
//! Does not own the process fd budget or warning rate limits (`limits.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reactor::LoopStats;

use crate::acl::ListenerAccess;
use crate::backend_rt::BackendRt;
use crate::config::{BackendId, ListenerId, Plan};
use crate::metrics::ListenerStats;

pub struct Runtime {
    pub plan: Plan,
    /// Shared with the previous configuration when a reload left a backend
    /// unchanged, so its health, balancer state and counts carry over.
    pub backends: Vec<Arc<BackendRt>>,
    /// Open TCP connections + UDP sessions, all listeners; the same counter
    /// across reloads (connections of the old configuration still count).
    pub active: Arc<AtomicUsize>,
    /// Per listener plan (all its ports and reuseport sockets together),
    /// indexed by `ListenerId`; carried over for listeners a reload kept.
    pub listener_active: Vec<Arc<AtomicUsize>>,
    /// Per listener plan: its rate bucket, per-client table and refusal
    /// counts; carried over for listeners a reload kept (the rules
    /// themselves are read from `plan` at each check).
    pub access: Vec<Arc<ListenerAccess>>,
    /// Per listener, indexed by `ListenerId`: per-loop counters, carried
    /// over for listeners a reload kept.
    pub listener_stats: Vec<Arc<ListenerStats>>,
    /// Per event loop, by loop index: its wakeup figures (written by the
    /// loop itself, read by a scrape); the same across reloads.
    pub loop_stats: Arc<[Arc<LoopStats>]>,
}

impl Runtime {
    pub fn new(plan: Plan) -> Runtime {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        let loops = plan.server.workers.max(1);
        let backends = plan
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Arc::new(BackendRt::new(
                    b,
                    seed ^ (i as u64).wrapping_mul(0x9E37_79B9),
                    loops,
                ))
            })
            .collect();
        let listener_stats = plan
            .listeners
            .iter()
            .map(|_| Arc::new(ListenerStats::new(loops)))
            .collect();
        let listener_active = plan
            .listeners
            .iter()
            .map(|_| Arc::new(AtomicUsize::new(0)))
            .collect();
        let access = plan
            .listeners
            .iter()
            .map(|_| Arc::new(ListenerAccess::new(plan.server.max_tracked_sources, loops)))
            .collect();
        Runtime {
            plan,
            backends,
            active: Arc::new(AtomicUsize::new(0)),
            listener_active,
            access,
            listener_stats,
            loop_stats: (0..loops).map(|_| Arc::new(LoopStats::new())).collect(),
        }
    }

    /// The runtime for a reloaded `plan`. `keep[old] = Some(new)` maps each
    /// listener of `old` that the new plan keeps (same socket) to its new
    /// index; those keep their connection counters. Backends whose plan is
    /// unchanged are shared with `old`, so their health, balancer state and
    /// connection counts carry over.
    pub fn reloaded(plan: Plan, old: &Runtime, keep: &[Option<ListenerId>]) -> Runtime {
        let mut fresh = Runtime::new(plan);
        fresh.active = Arc::clone(&old.active);
        fresh.loop_stats = Arc::clone(&old.loop_stats);
        for (o, n) in keep.iter().enumerate() {
            if let (Some(n), Some(counter)) = (n, old.listener_active.get(o)) {
                fresh.listener_active[n.0] = Arc::clone(counter);
            }
            if let (Some(n), Some(access)) = (n, old.access.get(o)) {
                fresh.access[n.0] = Arc::clone(access);
            }
            if let (Some(n), Some(stats)) = (n, old.listener_stats.get(o)) {
                fresh.listener_stats[n.0] = Arc::clone(stats);
            }
        }
        for b in fresh.backends.iter_mut() {
            if let Some(same) = old.backends.iter().find(|ob| ob.plan == b.plan) {
                *b = Arc::clone(same);
            } else if let Some(prev) = old.backends.iter().find(|ob| ob.plan.name == b.plan.name) {
                // Changed: servers that remain keep counters and admin state.
                if let Some(fresh_b) = Arc::get_mut(b) {
                    fresh_b.inherit(prev);
                }
            }
        }
        fresh
    }

    /// The access-control state of listener `l`.
    pub fn access(&self, l: ListenerId) -> &ListenerAccess {
        &self.access[l.0]
    }

    /// The running backend `id` (balancer, counts, health).
    pub fn backend(&self, id: BackendId) -> &BackendRt {
        &self.backends[id.0]
    }

    /// The running backend tcp or udp listener `l` sends its clients to.
    pub fn backend_of(&self, l: ListenerId) -> &BackendRt {
        self.backend(self.plan.listener(l).stream_backend())
    }

    /// Reserves up to `want` connection slots for listener `li` under both
    /// the global and the listener cap. Returns how many were reserved; the
    /// caller gives back unused ones with [`unreserve`](Self::unreserve).
    pub fn reserve(&self, li: ListenerId, want: usize) -> usize {
        let global = reserve_on(&self.active, self.plan.server.max_connections, want);
        if global == 0 {
            return 0;
        }
        let cap = self.plan.listener(li).max_connections.unwrap_or(usize::MAX);
        let got = reserve_on(&self.listener_active[li.0], cap, global);
        if got < global {
            self.active.fetch_sub(global - got, Ordering::AcqRel);
        }
        got
    }

    pub fn unreserve(&self, li: ListenerId, n: usize) {
        if n > 0 {
            self.active.fetch_sub(n, Ordering::AcqRel);
            self.listener_active[li.0].fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// True when a listener paused at a cap should accept again: below
    /// both caps by a small margin (hysteresis: 1% of the cap), so a
    /// listener at the edge does not flap between paused and accepting on
    /// every close.
    pub fn has_room(&self, li: ListenerId) -> bool {
        let cap = self.plan.listener(li).max_connections.unwrap_or(usize::MAX);
        below_resume_mark(
            self.active.load(Ordering::Acquire),
            self.plan.server.max_connections,
        ) && below_resume_mark(self.listener_active[li.0].load(Ordering::Acquire), cap)
    }
}

/// `count` is low enough to resume accepting under `cap`.
fn below_resume_mark(count: usize, cap: usize) -> bool {
    count < cap.saturating_sub(cap / 100)
}

fn reserve_on(counter: &AtomicUsize, cap: usize, want: usize) -> usize {
    let mut cur = counter.load(Ordering::Acquire);
    loop {
        let room = cap.saturating_sub(cur).min(want);
        if room == 0 {
            return 0;
        }
        match counter.compare_exchange_weak(cur, cur + room, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return room,
            Err(actual) => cur = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_respects_both_caps() {
        let c = AtomicUsize::new(0);
        assert_eq!(reserve_on(&c, 3, 2), 2);
        assert_eq!(reserve_on(&c, 3, 2), 1);
        assert_eq!(reserve_on(&c, 3, 2), 0);
        assert_eq!(c.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn resume_mark_has_hysteresis_on_big_caps_only() {
        assert!(
            below_resume_mark(1, 2),
            "small caps resume as soon as one closes"
        );
        assert!(!below_resume_mark(2, 2));
        assert!(
            !below_resume_mark(9_950, 10_000),
            "within 1% of the cap: stay paused"
        );
        assert!(below_resume_mark(9_899, 10_000));
        assert!(below_resume_mark(5, usize::MAX));
    }
}
