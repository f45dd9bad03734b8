//! The UDP session table of one event loop, sans-IO.
//!
//! A session ("flow") is keyed by (listener socket, client address). The
//! table owns the key -> [`FlowId`] map, each flow's `last_seen` time,
//! datagram/byte counters, and the idle-expiry decision. It does not own
//! sockets, timers, servers or caps: the shell (`udp/mod.rs`) stores those
//! in the flow's `io` payload and decides admission.
//!
//! Idle expiry is lazy: the shell arms ONE timer per flow when it creates it,
//! at [`Flow::deadline`]. When that timer fires, [`FlowTable::check_idle`]
//! says either "expired" or "re-arm at `last_seen + idle`" — a busy flow costs
//! one timer re-arm per idle period, not one per datagram.
//!
//! [`FlowId`]s carry a generation, so a timer or token that outlived its flow
//! can never act on a newer flow that reused the same slab slot.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use slab::Slab;

/// Handle of one flow in a [`FlowTable`]: slab slot plus generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId {
    slot: usize,
    generation: u64,
}

/// A UDP listening socket of one loop: its slot in the shell's listener
/// table (not a plan's `ListenerId`: one plan listener has a socket per
/// port, and per loop with `reuseport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpSlot(pub usize);

/// What identifies a session: the listener socket and the client's address
/// exactly as the socket reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub listener: UdpSlot,
    pub client: SocketAddr,
}

/// One session.
#[derive(Debug)]
pub struct Flow<S> {
    pub key: FlowKey,
    /// The local address the client's latest datagram was sent to; replies
    /// leave from it (wildcard binds). `None` when pktinfo was unavailable.
    pub local_ip: Option<IpAddr>,
    pub created: Instant,
    /// Last datagram in either direction.
    pub last_seen: Instant,
    pub idle: Duration,
    /// Client -> upstream.
    pub datagrams_in: u64,
    pub bytes_in: u64,
    /// Upstream -> client.
    pub datagrams_out: u64,
    pub bytes_out: u64,
    /// The shell's per-session state (upstream socket, token, server, timer).
    pub io: S,
    generation: u64,
}

impl<S> Flow<S> {
    /// When this flow expires if nothing else happens.
    pub fn deadline(&self) -> Instant {
        crate::clock::after(self.last_seen, self.idle)
    }
}

/// Verdict of [`FlowTable::check_idle`] when a flow's idle timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleCheck {
    /// Idle for `idle` or longer: end it (the caller then calls `remove`).
    Expired,
    /// It was active since the timer was armed: arm one timer for this time.
    RearmAt(Instant),
    /// No such flow any more (the timer outlived it): do nothing.
    Stale,
}

/// Totals since the table was created, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    pub created: u64,
    pub expired: u64,
    pub removed: u64,
    /// Datagrams from new clients dropped because no session could be made
    /// (caps, fd budget, no server).
    pub dropped: u64,
}

/// The sessions of one event loop.
#[derive(Debug)]
pub struct FlowTable<S> {
    flows: Slab<Flow<S>>,
    by_key: HashMap<FlowKey, FlowId>,
    next_generation: u64,
    counters: FlowCounters,
}

impl<S> Default for FlowTable<S> {
    fn default() -> Self {
        FlowTable {
            flows: Slab::new(),
            by_key: HashMap::new(),
            next_generation: 0,
            counters: FlowCounters::default(),
        }
    }
}

impl<S> FlowTable<S> {
    pub fn new() -> Self {
        FlowTable::default()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn counters(&self) -> FlowCounters {
        self.counters
    }

    /// The flow of this (listener, client), if one is open.
    pub fn find(&self, key: &FlowKey) -> Option<FlowId> {
        self.by_key.get(key).copied()
    }

    /// Opens a flow for `key` that has just received its first datagram
    /// (counted as activity, not as traffic: call [`datagram_in`] for it).
    /// A key that is already open is refused and `io` handed back, so a
    /// caller bug cannot orphan a session.
    ///
    /// [`datagram_in`]: Self::datagram_in
    pub fn insert(
        &mut self,
        key: FlowKey,
        local_ip: Option<IpAddr>,
        now: Instant,
        idle: Duration,
        io: S,
    ) -> Result<FlowId, S> {
        if self.by_key.contains_key(&key) {
            return Err(io);
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let slot = self.flows.insert(Flow {
            key,
            local_ip,
            created: now,
            last_seen: now,
            idle,
            datagrams_in: 0,
            bytes_in: 0,
            datagrams_out: 0,
            bytes_out: 0,
            io,
            generation,
        });
        let id = FlowId { slot, generation };
        self.by_key.insert(key, id);
        self.counters.created += 1;
        Ok(id)
    }

    pub fn get(&self, id: FlowId) -> Option<&Flow<S>> {
        self.flows
            .get(id.slot)
            .filter(|f| f.generation == id.generation)
    }

    pub fn get_mut(&mut self, id: FlowId) -> Option<&mut Flow<S>> {
        self.flows
            .get_mut(id.slot)
            .filter(|f| f.generation == id.generation)
    }

    /// A datagram of `len` bytes from the client, sent to `local_ip`.
    pub fn datagram_in(&mut self, id: FlowId, now: Instant, len: usize, local_ip: Option<IpAddr>) {
        if let Some(f) = self.get_mut(id) {
            f.last_seen = f.last_seen.max(now);
            f.datagrams_in += 1;
            f.bytes_in += len as u64;
            if local_ip.is_some() {
                f.local_ip = local_ip;
            }
        }
    }

    /// A datagram of `len` bytes from the upstream, passed to the client.
    pub fn datagram_out(&mut self, id: FlowId, now: Instant, len: usize) {
        if let Some(f) = self.get_mut(id) {
            f.last_seen = f.last_seen.max(now);
            f.datagrams_out += 1;
            f.bytes_out += len as u64;
        }
    }

    /// The flow's idle timer fired at `now`.
    pub fn check_idle(&mut self, id: FlowId, now: Instant) -> IdleCheck {
        let Some(f) = self.get(id) else {
            return IdleCheck::Stale;
        };
        let due = f.deadline();
        if now >= due {
            self.counters.expired += 1;
            IdleCheck::Expired
        } else {
            IdleCheck::RearmAt(due)
        }
    }

    /// Ends a flow and hands back its state. `None` for a stale id.
    pub fn remove(&mut self, id: FlowId) -> Option<Flow<S>> {
        self.get(id)?;
        let f = self.flows.remove(id.slot);
        self.by_key.remove(&f.key);
        self.counters.removed += 1;
        Some(f)
    }

    /// A datagram from a new client was dropped: no session could be made.
    pub fn note_dropped(&mut self) {
        self.counters.dropped += 1;
    }

    /// Every open flow (for shutdown).
    pub fn ids(&self) -> Vec<FlowId> {
        self.flows
            .iter()
            .map(|(slot, f)| FlowId {
                slot,
                generation: f.generation,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(30);

    fn key(listener: usize, port: u16) -> FlowKey {
        FlowKey {
            listener: UdpSlot(listener),
            client: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn secs(base: Instant, s: u64) -> Instant {
        base + Duration::from_secs(s)
    }

    #[test]
    fn sessions_are_keyed_by_listener_and_client() {
        let t0 = Instant::now();
        let mut t = FlowTable::new();
        let a = t.insert(key(0, 1000), None, t0, IDLE, "a").unwrap();
        let b = t.insert(key(0, 1001), None, t0, IDLE, "b").unwrap();
        let c = t.insert(key(1, 1000), None, t0, IDLE, "c").unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(t.find(&key(0, 1000)), Some(a));
        assert_eq!(t.find(&key(0, 1001)), Some(b));
        assert_eq!(t.find(&key(1, 1000)), Some(c));
        assert_eq!(t.find(&key(1, 1001)), None);
        assert_eq!(t.get(c).map(|f| f.io), Some("c"));
        assert_eq!(t.len(), 3);
        assert_eq!(t.counters().created, 3);
    }

    #[test]
    fn the_largest_idle_timeout_never_expires_and_never_panics() {
        let t0 = Instant::now();
        let mut t = FlowTable::new();
        let id = t.insert(key(0, 1), None, t0, Duration::MAX, ()).unwrap();
        let later = secs(t0, 10 * 365 * 24 * 3600);
        t.datagram_in(id, later, 10, None);
        let due = t.get(id).map(|f| f.deadline()).unwrap();
        assert!(due > later);
        assert_eq!(t.check_idle(id, later), IdleCheck::RearmAt(due));
    }

    #[test]
    fn a_duplicate_key_is_refused_and_the_payload_returned() {
        let t0 = Instant::now();
        let mut t = FlowTable::new();
        let a = t.insert(key(0, 1), None, t0, IDLE, 1).unwrap();
        assert_eq!(t.insert(key(0, 1), None, t0, IDLE, 2), Err(2));
        assert_eq!(t.find(&key(0, 1)), Some(a));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn an_idle_flow_expires_at_its_deadline_not_before() {
        let t0 = Instant::now();
        let mut t = FlowTable::new();
        let id = t.insert(key(0, 1), None, t0, IDLE, ()).unwrap();
        assert_eq!(t.get(id).map(|f| f.deadline()), Some(secs(t0, 30)));
        assert_eq!(
            t.check_idle(id, secs(t0, 29)),
            IdleCheck::RearmAt(secs(t0, 30))
        );
        assert_eq!(t.check_idle(id, secs(t0, 30)), IdleCheck::Expired);
        assert_eq!(t.counters().expired, 1);
        assert!(t.remove(id).is_some());
        assert!(t.find(&key(0, 1)).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn traffic_either_way_postpones_expiry_and_is_counted() {
        let t0 = Instant::now();
        let mut t = FlowTable::new();
        let id = t.insert(key(0, 1), None, t0, IDLE, ()).unwrap();
        t.datagram_in(id, t0, 100, None);
        t.datagram_in(id, secs(t0, 10), 0, None);
        // The timer armed at creation fires at t0+30: it was active at 10.
        assert_eq!(
            t.check_idle(id, secs(t0, 30)),
            IdleCheck::RearmAt(secs(t0, 40))
        );
        t.datagram_out(id, secs(t0, 35), 7);
        assert_eq!(
            t.check_idle(id, secs(t0, 40)),
            IdleCheck::RearmAt(secs(t0, 65))
        );
        assert_eq!(t.check_idle(id, secs(t0, 65)), IdleCheck::Expired);
        let f = t.remove(id).unwrap();
        assert_eq!((f.datagrams_in, f.bytes_in), (2, 100));
        assert_eq!((f.datagrams_out, f.bytes_out), (1, 7));
        assert_eq!(f.created, t0);
    }

    #[test]
    fn last_seen_never_goes_backwards() {
        let t0 = Instant::now();
        let mut t = FlowTable::new();
        let id = t.insert(key(0, 1), None, secs(t0, 5), IDLE, ()).unwrap();
        t.datagram_in(id, t0, 1, None);
        assert_eq!(t.get(id).map(|f| f.last_seen), Some(secs(t0, 5)));
    }

    #[test]
    fn a_stale_id_does_not_touch_a_flow_that_reused_its_slot() {
        let t0 = Instant::now();
        let mut t = FlowTable::new();
        let old = t.insert(key(0, 1), None, t0, IDLE, "old").unwrap();
        assert!(t.remove(old).is_some());
        let new = t.insert(key(0, 2), None, secs(t0, 1), IDLE, "new").unwrap();
        assert_ne!(old, new);
        // The old flow's timer fires after its slot was reused.
        assert_eq!(t.check_idle(old, secs(t0, 60)), IdleCheck::Stale);
        t.datagram_in(old, secs(t0, 60), 1, None);
        assert!(t.get(old).is_none());
        assert!(t.remove(old).is_none());
        assert_eq!(t.get(new).map(|f| (f.io, f.datagrams_in)), Some(("new", 0)));
        assert_eq!(t.counters().expired, 0);
        assert_eq!(t.counters().removed, 1);
    }

    #[test]
    fn the_reply_source_follows_the_latest_destination() {
        let t0 = Instant::now();
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let mut t = FlowTable::new();
        let id = t.insert(key(0, 1), Some(a), t0, IDLE, ()).unwrap();
        t.datagram_in(id, t0, 1, None);
        assert_eq!(t.get(id).and_then(|f| f.local_ip), Some(a));
        t.datagram_in(id, t0, 1, Some(b));
        assert_eq!(t.get(id).and_then(|f| f.local_ip), Some(b));
    }

    #[test]
    fn drops_are_counted_and_ids_list_every_open_flow() {
        let t0 = Instant::now();
        let mut t = FlowTable::new();
        let ids: Vec<FlowId> = (0..5)
            .map(|p| t.insert(key(0, p), None, t0, IDLE, p).unwrap())
            .collect();
        t.note_dropped();
        t.note_dropped();
        assert_eq!(t.counters().dropped, 2);
        let mut listed = t.ids();
        listed.sort_by_key(|i| i.slot);
        assert_eq!(listed, ids);
        for id in listed {
            assert!(t.remove(id).is_some());
        }
        assert!(t.is_empty());
        assert_eq!(t.counters().removed, 5);
    }

    #[test]
    fn each_flow_has_its_own_idle_timeout() {
        let t0 = Instant::now();
        let mut t = FlowTable::new();
        let short = t
            .insert(key(0, 1), None, t0, Duration::from_secs(1), ())
            .unwrap();
        let long = t.insert(key(1, 1), None, t0, IDLE, ()).unwrap();
        assert_eq!(t.check_idle(short, secs(t0, 1)), IdleCheck::Expired);
        assert_eq!(
            t.check_idle(long, secs(t0, 1)),
            IdleCheck::RearmAt(secs(t0, 30))
        );
    }
}
