//! Run-time state of backends shared by every event loop: the balancer of
//! each backend, per-server connection counts and health.
//!
//! Loops pick servers concurrently, so each backend's balancer sits behind a
//! `Mutex` (held for one pick: a few hundred nanoseconds, negligible at L4
//! connection rates, and it keeps round-robin and weights exact across loops).
//! `balance: maglev` needs no such state per pick: its table is shared
//! read-only by the loops (`maglev_rt`), without the lock.
//! Connection counts are atomics; a server's `max_connections` (and the
//! backend's, before the pick) is enforced by reserving the slot with a
//! compare-exchange after the pick (a check and
//! a later increment let every loop pass the same check at once).
//!
//! Operators steer servers at run time through the admin API
//! ([`AdminMode`], [`BackendRt::set_weight`]); that state, the per-loop
//! counters ([`ServerStats`]) and the last health-check result live here
//! too, and carry over a reload for servers that remain
//! ([`BackendRt::inherit`]).
//!
//! Does not own the health rules (`health/state.rs`), the balancing
//! algorithms (`balancer/`) or the plan (`config/`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::balancer::{new_balancer, Balancer, Candidate, Member, ServerId, Tried};
use crate::config::{BackendPlan, BalanceKind, ServerPlan};
use crate::health::state::{Health, State, Transition};
use crate::maglev_rt::MaglevRt;
use crate::metrics::ServerStats;

/// What an operator said about a server (admin API); lasts until the
/// process restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminMode {
    /// In service (the default).
    Ready = 0,
    /// No new connections; open ones finish; health checks go on.
    Drain = 1,
    /// No new connections, no health checks; open ones finish.
    Disabled = 2,
}

impl AdminMode {
    fn from_u8(v: u8) -> AdminMode {
        match v {
            1 => AdminMode::Drain,
            2 => AdminMode::Disabled,
            _ => AdminMode::Ready,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AdminMode::Ready => "ready",
            AdminMode::Drain => "drain",
            AdminMode::Disabled => "disabled",
        }
    }
}

/// Why [`BackendRt::acquire_from`] gave no server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The backend's own `max_connections` is reached.
    BackendFull,
    /// No server is usable (down, drained, disabled, at its own cap, or
    /// every one already tried).
    NoServer,
}

/// The outcome of the latest active health check of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRecord {
    pub ok: bool,
    pub at: SystemTime,
    pub detail: String,
}

pub struct ServerRt {
    pub plan: ServerPlan,
    pub active: AtomicU32,
    health: Mutex<Health>,
    /// Per-loop counters; shared with the previous runtime on reload.
    pub stats: Arc<ServerStats>,
    admin: AtomicU8,
    /// The weight in force (the configured one unless an operator set one).
    weight: AtomicU32,
    weight_set_by_admin: AtomicBool,
    last_check: Mutex<Option<CheckRecord>>,
}

impl ServerRt {
    /// The address to connect to: the server's port, or the port the client
    /// reached when the server has none (destination-port preservation).
    pub fn target(&self, client_port: u16) -> SocketAddr {
        SocketAddr::new(self.plan.ip, self.plan.port.unwrap_or(client_port))
    }

    pub fn admin_mode(&self) -> AdminMode {
        AdminMode::from_u8(self.admin.load(Ordering::Relaxed))
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// The health state (up, down, probing) as last computed.
    pub fn health_state(&self) -> State {
        lock(&self.health).state()
    }

    /// What the status page and the API show: the operator's word first,
    /// then health.
    pub fn state_label(&self) -> &'static str {
        match self.admin_mode() {
            AdminMode::Disabled => "disabled",
            AdminMode::Drain => "draining",
            AdminMode::Ready => match self.health_state() {
                State::Up => "up",
                State::Down => "down",
                State::Probing => "probing",
            },
        }
    }

    pub fn last_check(&self) -> Option<CheckRecord> {
        lock(&self.last_check).clone()
    }
}

pub struct BackendRt {
    pub plan: BackendPlan,
    picker: Picker,
    seed: u64,
    pub servers: Vec<ServerRt>,
    /// Slots taken across all servers, for the backend's `max_connections`.
    pub active: AtomicU32,
}

enum Picker {
    /// Algorithms with state per pick (round-robin position, PRNG, ...).
    Locked(Mutex<Box<dyn Balancer>>),
    /// Rebuilds by itself when the servers in rotation or their weights
    /// change (it compares on every pick).
    Maglev(MaglevRt),
}

impl BackendRt {
    /// `loops`: event loops, one counter cell each.
    pub fn new(plan: &BackendPlan, seed: u64, loops: usize) -> BackendRt {
        let picker = match plan.balance {
            BalanceKind::Maglev => {
                Picker::Maglev(MaglevRt::new(&plan.name, &plan.servers, plan.hash_key))
            }
            kind => {
                let members: Vec<Member> = plan.servers.iter().map(member).collect();
                Picker::Locked(Mutex::new(new_balancer(kind, &members, seed)))
            }
        };
        BackendRt {
            plan: plan.clone(),
            picker,
            seed,
            active: AtomicU32::new(0),
            servers: plan
                .servers
                .iter()
                .map(|s| ServerRt {
                    plan: s.clone(),
                    active: AtomicU32::new(0),
                    health: Mutex::new(Health::new(&plan.health)),
                    stats: Arc::new(ServerStats::new(loops)),
                    admin: AtomicU8::new(AdminMode::Ready as u8),
                    weight: AtomicU32::new(s.weight),
                    weight_set_by_admin: AtomicBool::new(false),
                    last_check: Mutex::new(None),
                })
                .collect(),
        }
    }

    /// Reload of a changed backend: servers of `old` that remain (same
    /// label) keep their counters, the operator's mode and weight, and
    /// their last check result.
    pub fn inherit(&mut self, old: &BackendRt) {
        for s in &mut self.servers {
            let Some(o) = old.servers.iter().find(|o| o.plan.label == s.plan.label) else {
                continue;
            };
            s.stats = Arc::clone(&o.stats);
            s.admin
                .store(o.admin.load(Ordering::Relaxed), Ordering::Relaxed);
            if o.weight_set_by_admin.load(Ordering::Relaxed) {
                s.weight.store(o.weight(), Ordering::Relaxed);
                s.weight_set_by_admin.store(true, Ordering::Relaxed);
            }
            *lock(&s.last_check) = o.last_check();
        }
        self.rebuild_balancer();
    }

    /// The server written as `label` in the configuration.
    pub fn find_server(&self, label: &str) -> Option<ServerId> {
        self.servers
            .iter()
            .position(|s| s.plan.label == label)
            .map(ServerId)
    }

    /// Admin API: drain, disable or enable a server.
    pub fn set_admin_mode(&self, id: ServerId, mode: AdminMode) {
        self.servers[id.0]
            .admin
            .store(mode as u8, Ordering::Relaxed);
    }

    /// Admin API: the server's weight from now on (>= 1).
    pub fn set_weight(&self, id: ServerId, weight: u32) {
        let s = &self.servers[id.0];
        s.weight.store(weight.max(1), Ordering::Relaxed);
        s.weight_set_by_admin.store(true, Ordering::Relaxed);
        self.rebuild_balancer();
    }

    /// Algorithms that precompute from the weights (the hash ring) start
    /// over with the weights in force.
    fn rebuild_balancer(&self) {
        if let Picker::Locked(b) = &self.picker {
            let members: Vec<Member> = self
                .servers
                .iter()
                .map(|s| Member {
                    weight: s.weight(),
                    ..member(&s.plan)
                })
                .collect();
            *lock(b) = new_balancer(self.plan.balance, &members, self.seed);
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
    /// `Health::in_rotation`; both need the operator's `Ready`, and usable
    /// also needs room below `max_connections`.
    fn usable(&self, s: &ServerRt, now: Instant) -> (bool, bool) {
        let below_cap = match s.plan.max_connections {
            Some(max) => (s.active.load(Ordering::Relaxed) as usize) < max,
            None => true,
        };
        let ready = s.admin_mode() == AdminMode::Ready;
        let h = lock(&s.health);
        (
            below_cap && ready && h.is_usable(now),
            ready && h.in_rotation(now),
        )
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
            .ok()
    }

    /// Picks a server not yet in `tried` for `client` (the PROXY header's
    /// client when there is one) and counts a connection on it and on the
    /// backend; `BackendFull` when the backend is at its `max_connections`
    /// (the slot reserved with a compare-exchange, as a server's),
    /// `NoServer` when no server is usable. The caller must call
    /// [`release`](Self::release) exactly once for it.
    pub fn acquire_from(
        &self,
        client: SocketAddr,
        tried: &Tried,
        now: Instant,
    ) -> Result<ServerId, Unavailable> {
        if !reserve_below(&self.active, self.plan.max_connections) {
            return Err(Unavailable::BackendFull);
        }
        let picked = self.pick_and_reserve(client, tried, now);
        if picked.is_none() {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
        picked.ok_or(Unavailable::NoServer)
    }

    fn pick_and_reserve(
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
                weight: s.weight(),
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
        self.active.fetch_sub(1, Ordering::Relaxed);
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
        *lock(&s.last_check) = Some(CheckRecord {
            ok,
            at: SystemTime::now(),
            detail: detail.to_string(),
        });
        // The checker runs on loop 0 only: its cell has a single writer.
        let c = if ok {
            crate::metrics::server::CHECKS_OK
        } else {
            crate::metrics::server::CHECKS_FAILED
        };
        s.stats.add(0, c, 1);
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

fn member(s: &ServerPlan) -> Member {
    Member {
        label: s.label.clone(),
        weight: s.weight,
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
        BackendRt::new(&plan.backends[0], 1, 1)
    }

    #[test]
    fn the_backend_cap_counts_across_servers_and_racing_loops() {
        let text = "listeners:\n  - { name: l, bind: \"127.0.0.1:1\", backend: b }\nbackends:\n  - name: b\n    max_connections: 3\n    servers: [\"127.0.0.1:9\", \"127.0.0.1:10\"]\n";
        let plan = load_str(text, Path::new("t.yaml")).unwrap();
        assert_eq!(plan.backends[0].max_connections, Some(3));
        let ip = IpAddr::from([127, 0, 0, 1]);
        let b = BackendRt::new(&plan.backends[0], 1, 1);
        let got: Vec<_> = (0..4)
            .map(|_| b.acquire(ip, &Tried::new(), Instant::now()))
            .collect();
        assert!(got[..3].iter().all(Option::is_some) && got[3].is_none());
        assert_eq!(b.active.load(Ordering::Relaxed), 3);
        b.release(got[0].unwrap());
        assert!(b.acquire(ip, &Tried::new(), Instant::now()).is_some());
        // A failed pick (every server tried) gives the backend slot back.
        let mut all = Tried::new();
        all.insert(ServerId(0));
        all.insert(ServerId(1));
        b.release(got[1].unwrap());
        let c = SocketAddr::new(ip, 1);
        assert_eq!(
            b.acquire_from(c, &all, Instant::now()),
            Err(Unavailable::NoServer)
        );
        assert_eq!(b.active.load(Ordering::Relaxed), 2);
        let last = b.acquire(ip, &Tried::new(), Instant::now()).unwrap();
        let full = b.acquire_from(c, &Tried::new(), Instant::now());
        assert_eq!(full, Err(Unavailable::BackendFull));
        b.release(last);
        // Four loops race for the last slot: exactly one gets it.
        for round in 0..200 {
            let b = Arc::new(BackendRt::new(&plan.backends[0], 1, 1));
            b.active.store(2, Ordering::Relaxed);
            let start = Arc::new(Barrier::new(4));
            let won: usize = (0..4)
                .map(|_| {
                    let (b, start) = (Arc::clone(&b), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        usize::from(b.acquire(ip, &Tried::new(), Instant::now()).is_some())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .sum();
            assert_eq!(won, 1, "round {round}");
            assert_eq!(b.active.load(Ordering::Relaxed), 3);
        }
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

    #[test]
    fn maglev_drain_moves_only_the_drained_servers_clients() {
        let text = "listeners:\n  - { name: l, bind: \"127.0.0.1:1\", backend: b }\nbackends:\n  - name: b\n    balance: maglev\n    servers: [\"127.0.0.1:9\", \"127.0.0.1:10\", \"127.0.0.1:11\", \"127.0.0.1:12\"]\n";
        let plan = load_str(text, Path::new("t.yaml")).unwrap();
        let b = BackendRt::new(&plan.backends[0], 1, 1);
        let now = Instant::now();
        let pick = |n: u32| {
            let c = SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 | n), 1));
            let id = b.acquire_from(c, &Tried::new(), now).unwrap();
            b.release(id);
            id.0
        };
        let before: Vec<usize> = (0..1000).map(pick).collect();
        b.set_admin_mode(ServerId(2), AdminMode::Drain);
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let after: Vec<usize> = (0..1000).map(pick).collect();
            for (was, now) in before.iter().zip(&after) {
                assert_ne!(*now, 2);
                if *was != 2 {
                    assert_eq!(was, now);
                }
            }
            let Picker::Maglev(m) = &b.picker else {
                panic!("not maglev")
            };
            let view: Vec<Candidate> = b
                .servers
                .iter()
                .map(|s| Candidate {
                    weight: 1,
                    backup: false,
                    usable: s.admin_mode() == AdminMode::Ready,
                    active: 0,
                })
                .collect();
            if m.is_current(&view, &[true, true, false, true]) {
                break;
            }
            assert!(Instant::now() < deadline, "no rebuild");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
