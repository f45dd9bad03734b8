//! Run-time home of a `balance: maglev` backend's lookup table: one table,
//! read by every event loop without a lock, replaced when the servers in
//! rotation change.
//!
//! Owns: the current table (`Arc`, swapped whole), its generation counter,
//! the per-loop (thread-local) cache of it, and the rebuild, which runs on
//! a short-lived helper thread so no event loop spends the milliseconds a
//! 65,537-slot table takes. Until the new table is in, the old one keeps
//! serving: a client whose server left walks on to another server for that
//! connection; everybody else stays where they were.
//!
//! Does not own: the algorithm (`balancer::maglev`), health
//! (`health::state`), connection counts and caps (`backend_rt`).
//!
//! The per-connection path reads one atomic (the generation) and, in the
//! loop's own cache, the table; it takes a lock only in the first pick
//! after a swap, to fetch the new `Arc`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::balancer::maglev::{key_hash, Wanted, TABLE_SIZE};
use crate::balancer::{Candidate, MaglevTable, Member, ServerId, Tried};
use crate::config::{HashKey, ServerPlan};

/// Tables of backends a loop has used recently. More than that many live
/// maglev backends cost a lock per pick for the least recent; old backends
/// (after reloads) drop out of the cache here.
const CACHED_TABLES: usize = 16;

struct Cached {
    uid: u64,
    generation: u64,
    table: Arc<MaglevTable>,
}

thread_local! {
    static CACHE: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
}

struct Shared {
    /// The backend's name, for the log line of a rebuild.
    backend: String,
    servers: Vec<Member>,
    size: usize,
    current: Mutex<Arc<MaglevTable>>,
    /// Bumped after each swap of `current`.
    generation: AtomicU64,
    /// A rebuild is under way; others wait for it and then compare again.
    rebuilding: AtomicBool,
}

impl Shared {
    /// Swaps `table` (built over `members`) in, and says so in the log: a
    /// rebuild follows a change of the servers in rotation, so it is rare.
    fn install(&self, table: MaglevTable, members: &[u32]) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        self.generation.fetch_add(1, Ordering::Release);
        log::info!(
            "backend {}: maglev table rebuilt over {} of {} servers",
            self.backend,
            members.iter().filter(|&&w| w > 0).count(),
            self.servers.len()
        );
    }
}

pub struct MaglevRt {
    /// Tells this backend's table apart in the loops' caches (a reload
    /// builds new backends with new ids).
    uid: u64,
    key: HashKey,
    shared: Arc<Shared>,
}

impl MaglevRt {
    /// Builds the first table of backend `name` with every primary server
    /// in rotation (the servers start up), here, at load or reload time.
    pub fn new(name: &str, servers: &[ServerPlan], key: HashKey) -> MaglevRt {
        static NEXT_UID: AtomicU64 = AtomicU64::new(0);
        let members: Vec<Member> = servers
            .iter()
            .map(|s| Member {
                label: s.label.clone(),
                weight: s.weight,
            })
            .collect();
        let view: Vec<Candidate> = servers
            .iter()
            .map(|s| Candidate {
                weight: s.weight,
                backup: s.backup,
                usable: true,
                active: 0,
            })
            .collect();
        let all = vec![true; servers.len()];
        let table =
            MaglevTable::build(&members, &Wanted::new(&view, &all).to_members(), TABLE_SIZE);
        MaglevRt {
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            key,
            shared: Arc::new(Shared {
                backend: name.to_string(),
                servers: members,
                size: TABLE_SIZE,
                current: Mutex::new(Arc::new(table)),
                generation: AtomicU64::new(0),
                rebuilding: AtomicBool::new(false),
            }),
        }
    }

    /// Picks for `client` from the current table. `in_rotation[i]`: server
    /// i is healthy (see `Health::in_rotation`); `view[i].usable` also
    /// folds in caps and trials. Starts a rebuild when the table no longer
    /// matches the servers in rotation.
    pub fn pick(
        &self,
        view: &[Candidate],
        in_rotation: &[bool],
        client: SocketAddr,
        tried: &Tried,
    ) -> Option<ServerId> {
        let wanted = Wanted::new(view, in_rotation);
        let key = key_hash(client, self.key);
        self.with_table(|table| {
            if !wanted.matches(table) {
                self.rebuild(wanted.to_members());
            }
            table.pick(view, key, tried)
        })
    }

    /// Whether the current table holds exactly these servers (tests and
    /// tools wait on this after a health change).
    pub fn is_current(&self, view: &[Candidate], in_rotation: &[bool]) -> bool {
        let wanted = Wanted::new(view, in_rotation);
        self.with_table(|table| wanted.matches(table))
    }

    fn with_table<R>(&self, f: impl FnOnce(&MaglevTable) -> R) -> R {
        let generation = self.shared.generation.load(Ordering::Acquire);
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let at = match cache.iter().position(|c| c.uid == self.uid) {
                Some(at) => at,
                None => {
                    if cache.len() >= CACHED_TABLES {
                        cache.remove(0);
                    }
                    cache.push(Cached {
                        uid: self.uid,
                        generation: generation.wrapping_sub(1),
                        table: Arc::new(MaglevTable::build(&[], &[], 0)),
                    });
                    cache.len() - 1
                }
            };
            let entry = &mut cache[at];
            if entry.generation != generation {
                // Read after the generation: the table is at least as new.
                entry.table = Arc::clone(
                    &self
                        .shared
                        .current
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()),
                );
                entry.generation = generation;
            }
            f(&entry.table)
        })
    }

    /// Builds a table over `members` off the event loop, unless a rebuild
    /// is already running (the next pick after it compares again).
    fn rebuild(&self, members: Vec<u32>) {
        if self.shared.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let fallback = members.clone();
        let job = move || {
            let table = MaglevTable::build(&shared.servers, &members, shared.size);
            shared.install(table, &members);
            shared.rebuilding.store(false, Ordering::Release);
        };
        let spawned = std::thread::Builder::new()
            .name("nvelox-maglev".into())
            .spawn(job);
        if let Err(e) = spawned {
            // Better a few milliseconds on this loop, once, than routing on
            // a stale table until a thread can be had.
            log::warn!("maglev table rebuild thread: {e}; rebuilding on the event loop");
            let s = &self.shared;
            s.install(MaglevTable::build(&s.servers, &fallback, s.size), &fallback);
            s.rebuilding.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::maglev::TABLE_SIZE;
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    fn plans(n: usize) -> Vec<ServerPlan> {
        (0..n)
            .map(|i| ServerPlan {
                label: format!("127.0.0.{}:80", i + 1),
                ip: IpAddr::from([127, 0, 0, 1 + i as u8]),
                host: None,
                port: Some(80),
                weight: 1,
                backup: false,
                max_connections: None,
            })
            .collect()
    }

    fn view(n: usize) -> Vec<Candidate> {
        vec![
            Candidate {
                weight: 1,
                backup: false,
                usable: true,
                active: 0,
            };
            n
        ]
    }

    fn client(n: u32) -> SocketAddr {
        SocketAddr::new(
            IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 | n)),
            4000,
        )
    }

    fn wait_current(m: &MaglevRt, view: &[Candidate], rot: &[bool]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !m.is_current(view, rot) {
            assert!(Instant::now() < deadline, "no rebuild");
            // Trigger (again) in case the rebuild was for an older set.
            m.pick(view, rot, client(0), &Tried::new());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_server_leaving_rotation_is_rebuilt_out_and_the_old_table_serves_meanwhile() {
        let m = MaglevRt::new("b", &plans(5), HashKey::Ip);
        let mut v = view(5);
        let mut rot = vec![true; 5];
        let before: Vec<usize> = (0..2000)
            .map(|n| m.pick(&v, &rot, client(n), &Tried::new()).unwrap().0)
            .collect();
        v[3].usable = false;
        rot[3] = false;
        // Stale or fresh (the rebuild may land at any point of this loop),
        // no pick lands on the server out of rotation and hardly anybody
        // else's client moves (none with the old table, under 1 % with the
        // new one).
        let mut others_moved = 0;
        for (n, &was) in before.iter().enumerate() {
            let now = m.pick(&v, &rot, client(n as u32), &Tried::new()).unwrap().0;
            assert_ne!(now, 3);
            if was != 3 && now != was {
                others_moved += 1;
            }
        }
        assert!(others_moved <= before.len() / 100, "{others_moved} moved");
        wait_current(&m, &v, &rot);
        let expected = MaglevTable::build(&m.shared.servers, &[1, 1, 1, 0, 1], TABLE_SIZE);
        let key = |n: u32| key_hash(client(n), HashKey::Ip);
        for n in 0..2000 {
            assert_eq!(
                m.pick(&v, &rot, client(n), &Tried::new()).map(|s| s.0),
                expected.lookup(key(n))
            );
        }
        // Back in rotation: every client is where it started.
        v[3].usable = true;
        rot[3] = true;
        wait_current(&m, &v, &rot);
        for (n, &was) in before.iter().enumerate() {
            assert_eq!(
                m.pick(&v, &rot, client(n as u32), &Tried::new()).unwrap().0,
                was
            );
        }
    }

    #[test]
    fn loops_see_a_swap_through_their_caches() {
        let m = Arc::new(MaglevRt::new("b", &plans(3), HashKey::Ip));
        let v = view(3);
        let rot = [true, false, true];
        wait_current(&m, &v, &rot);
        let other = Arc::clone(&m);
        let seen = std::thread::spawn(move || other.is_current(&view(3), &[true, false, true]));
        assert!(seen.join().unwrap());
    }

    #[test]
    fn hash_key_ip_port_spreads_one_client() {
        let m = MaglevRt::new("b", &plans(4), HashKey::IpPort);
        let v = view(4);
        let rot = [true; 4];
        let ip = IpAddr::from([10, 1, 2, 3]);
        let mut seen = [false; 4];
        for port in 1000..1100 {
            let s = m
                .pick(&v, &rot, SocketAddr::new(ip, port), &Tried::new())
                .unwrap();
            seen[s.0] = true;
        }
        assert_eq!(seen, [true; 4]);
        let ip_only = MaglevRt::new("b", &plans(4), HashKey::Ip);
        let first = ip_only.pick(&v, &rot, SocketAddr::new(ip, 1000), &Tried::new());
        for port in 1001..1100 {
            assert_eq!(
                ip_only.pick(&v, &rot, SocketAddr::new(ip, port), &Tried::new()),
                first
            );
        }
    }
}
