//! Run-time state of backends shared by every event loop: the balancer of
//! each backend, per-server connection counts and health.
//!
//! Loops pick servers concurrently, so each backend's balancer sits behind a
//! `Mutex` (held for one pick: a few hundred nanoseconds, negligible at L4
//! connection rates, and it keeps round-robin and weights exact across loops).
//! `balance: maglev` needs no such state per pick: its table is shared
//! read-only by the loops (`maglev_rt`), without the lock.
//! Connection counts are atomics; a server's `max_connections` is enforced
//! by reserving the slot with a compare-exchange after the pick (a check and
//! a later increment let every loop pass the same check at once).
//!
//! Does not own the health rules (`health/state.rs`), the balancing
//! algorithms (`balancer/`) or the plan (`config/`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::balancer::{new_balancer, Balancer, Candidate, Member, ServerId, Tried};
use crate::config::{BackendPlan, BalanceKind, ServerPlan};
use crate::health::state::{Health, Transition};
use crate::maglev_rt::MaglevRt;

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
    picker: Picker,
    pub servers: Vec<ServerRt>,
}

enum Picker {
    /// Algorithms with state per pick (round-robin position, PRNG, ...).
    Locked(Mutex<Box<dyn Balancer>>),
    Maglev(MaglevRt),
}

impl BackendRt {
    pub fn new(plan: &BackendPlan, seed: u64) -> BackendRt {
        let picker = match plan.balance {
            BalanceKind::Maglev => Picker::Maglev(MaglevRt::new(&plan.servers, plan.hash_key)),
            kind => {
                let members: Vec<Member> = plan
                    .servers
                    .iter()
                    .map(|s| Member {
                        label: s.label.clone(),
                        weight: s.weight,
                    })
                    .collect();
                Picker::Locked(Mutex::new(new_balancer(kind, &members, seed)))
            }
        };
        BackendRt {
            plan: plan.clone(),
            picker,
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

    /// Counts one connection on `s` unless that would exceed its cap.
    fn reserve(s: &ServerRt) -> bool {
        reserve_below(&s.active, s.plan.max_connections)
    }

    /// (usable now, in rotation): see `Health::is_usable` and
    /// `Health::in_rotation`; usable also needs room below `max_connections`.
    fn usable(&self, s: &ServerRt, now: Instant) -> (bool, bool) {
        let below_cap = match s.plan.max_connections {
            Some(max) => (s.active.load(Ordering::Relaxed) as usize) < max,
            None => true,
        };
        let h = lock(&s.health);
        (below_cap && h.is_usable(now), h.in_rotation(now))
    }

    /// Applies `f` to a server's health and logs the state change, if any.
    pub fn with_health(&self, id: ServerId, f: impl FnOnce(&mut Health) -> Option<Transition>) {
        let s = &self.servers[id.0];
        let t = f(&mut lock(&s.health));
        if let Some(t) = t {
            log::warn!("backend {} server {}: {t}", self.plan.name, s.plan.label);
        }
    }

    /// [`acquire_from`](Self::acquire_from) for a caller without the
    /// client's port (`hash_key: ip_port` then hashes port 0).
    pub fn acquire(&self, client: IpAddr, tried: &Tried, now: Instant) -> Option<ServerId> {
        self.acquire_from(SocketAddr::new(client, 0), tried, now)
    }

    /// Picks a server not yet in `tried` for `client` (the PROXY header's
    /// client when there is one) and counts a connection on it.
    /// The caller must call [`release`](Self::release) exactly once for it.
    pub fn acquire_from(
        &self,
        client: SocketAddr,
        tried: &Tried,
        now: Instant,
    ) -> Option<ServerId> {
        let mut stack = [Candidate {
            weight: 1,
            backup: false,
            usable: false,
            active: 0,
        }; 16];
        let mut rot_stack = [false; 16];
        let (mut heap, mut rot_heap);
        let n = self.servers.len();
        let (view, rot): (&mut [Candidate], &mut [bool]) = if n <= stack.len() {
            (&mut stack[..n], &mut rot_stack[..n])
        } else {
            heap = vec![stack[0]; n];
            rot_heap = vec![false; n];
            (&mut heap, &mut rot_heap)
        };
        for ((c, r), s) in view.iter_mut().zip(rot.iter_mut()).zip(&self.servers) {
            let (usable, in_rotation) = self.usable(s, now);
            *c = Candidate {
                weight: s.plan.weight,
                backup: s.plan.backup,
                usable,
                active: s.active.load(Ordering::Relaxed),
            };
            *r = in_rotation;
        }
        // Another loop may take a server's last slot between the look at
        // `active` above and the reservation: then that server is out and
        // the balancer picks again (at most once per server).
        for _ in 0..view.len() {
            let id = match &self.picker {
                Picker::Locked(b) => lock(b).pick(view, client.ip().to_canonical(), tried)?,
                Picker::Maglev(m) => m.pick(view, rot, client, tried)?,
            };
            if Self::reserve(&self.servers[id.0]) {
                self.with_health(id, |h| h.on_pick(now));
                return Some(id);
            }
            view[id.0].usable = false;
        }
        None
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

/// Adds one to `active` if it stays within `max` (no cap: always);
/// atomic, so racing loops can never take more than `max` together.
fn reserve_below(active: &AtomicU32, max: Option<usize>) -> bool {
    let max = max.map_or(u32::MAX, |m| u32::try_from(m).unwrap_or(u32::MAX));
    active
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
            a.checked_add(1).filter(|&n| n <= max)
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;
    use std::sync::{Arc, Barrier};

    fn backend(servers: &str) -> BackendRt {
        let text = format!(
            "listeners:\n  - {{ name: l, bind: \"127.0.0.1:1\", default_backend: b }}\nbackends:\n  - name: b\n    balance: leastconn\n    servers:\n{servers}"
        );
        let plan = load_str(&text, Path::new("t.yaml")).unwrap();
        BackendRt::new(&plan.backends[0], 1)
    }

    #[test]
    fn the_reservation_never_passes_the_cap() {
        let a = AtomicU32::new(0);
        assert!(reserve_below(&a, Some(2)));
        assert!(reserve_below(&a, Some(2)));
        assert!(!reserve_below(&a, Some(2)));
        assert_eq!(a.load(Ordering::Relaxed), 2);
        let a = AtomicU32::new(u32::MAX - 1);
        assert!(reserve_below(&a, None));
        assert!(!reserve_below(&a, None), "no wrap at u32::MAX");
        assert!(!reserve_below(&a, Some(usize::MAX)));
    }

    #[test]
    fn loops_racing_for_a_capped_server_never_exceed_its_max_connections() {
        // Four "event loops" acquire at the same moment, round after round,
        // on a server with room for one more connection.
        let threads = 4;
        for round in 0..300 {
            let b = Arc::new(backend(
                "      - { address: \"127.0.0.1:9\", max_connections: 3 }\n",
            ));
            b.servers[0].active.store(2, Ordering::Relaxed);
            let start = Arc::new(Barrier::new(threads));
            let got: usize = (0..threads)
                .map(|_| {
                    let (b, start) = (Arc::clone(&b), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        let ip = IpAddr::from([127, 0, 0, 1]);
                        usize::from(b.acquire(ip, &Tried::new(), Instant::now()).is_some())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .sum();
            assert_eq!(got, 1, "round {round}: {got} loops got the last slot");
            assert_eq!(b.servers[0].active.load(Ordering::Relaxed), 3);
        }
    }

    #[test]
    fn a_full_server_is_skipped_for_one_with_room() {
        let b = backend(
            "      - { address: \"127.0.0.1:9\", max_connections: 1 }\n      - { address: \"127.0.0.1:10\" }\n",
        );
        let ip = IpAddr::from([127, 0, 0, 1]);
        let now = Instant::now();
        let picks: Vec<usize> = (0..4)
            .map(|_| b.acquire(ip, &Tried::new(), now).unwrap().0)
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 1, "{picks:?}");
        assert_eq!(b.servers[0].active.load(Ordering::Relaxed), 1);
    }
}
