//! Per-client state for `ip_rate_limit` and `max_connections_per_ip`: a
//! table bounded to `capacity` sources that evicts the least recently seen
//! one when full, so a flood of distinct addresses costs a fixed amount of
//! memory (see [`BYTES_PER_SOURCE`]).
//!
//! Each source has a token bucket (new connections / sessions / requests
//! per second) and its count of open connections and sessions. Eviction
//! forgets both: a source pushed out by 65,536 more recent ones starts
//! afresh (its open connections then no longer count against it). Owns the
//! table and its LRU order; not the limits (passed in) nor locking (the
//! caller, `access.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use super::bucket::{Rate, TokenBucket};

/// Default capacity: sources tracked per listener.
pub const DEFAULT_TRACKED_SOURCES: usize = 65_536;

/// Memory per tracked source at most: the 56-byte entry and its hash-map
/// slots (25 bytes each; a full table of 65,536 sources has 131,072 slots,
/// so two per source). A full default table: 6.6 MiB per listener.
/// Checked by a unit test against the type sizes; in docs/benchmarks.md.
pub const BYTES_PER_SOURCE: usize = 106;

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    bucket: Option<TokenBucket>,
    open: u32,
    /// Towards the most recently seen.
    newer: u32,
    /// Towards the least recently seen.
    older: u32,
}

/// Why a source was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerIpRefusal {
    /// `ip_rate_limit` spent.
    Rate,
    /// `max_connections_per_ip` reached.
    Connections,
}

#[derive(Debug)]
pub struct PerIpTable {
    capacity: usize,
    index: HashMap<IpAddr, u32>,
    entries: Vec<Entry>,
    newest: u32,
    oldest: u32,
}

impl PerIpTable {
    /// `capacity` >= 1 (smaller values are raised to 1).
    pub fn new(capacity: usize) -> PerIpTable {
        PerIpTable {
            capacity: capacity.clamp(1, NIL as usize - 1),
            index: HashMap::new(),
            entries: Vec::new(),
            newest: NIL,
            oldest: NIL,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A new connection or session from `ip`: checks the open count against
    /// `max_open` and takes a token from its bucket (`rate`); on success it
    /// counts as open until [`release`](Self::release). `ip` should be
    /// canonical (an IPv4-mapped address as IPv4).
    pub fn admit(
        &mut self,
        ip: IpAddr,
        now: Instant,
        rate: Option<Rate>,
        max_open: Option<u32>,
    ) -> Result<(), PerIpRefusal> {
        let i = self.touch(ip, now, rate);
        let e = &mut self.entries[i as usize];
        if max_open.is_some_and(|m| e.open >= m) {
            return Err(PerIpRefusal::Connections);
        }
        if let (Some(rate), Some(bucket)) = (rate, e.bucket.as_mut()) {
            if !bucket.try_take(rate, now) {
                return Err(PerIpRefusal::Rate);
            }
        }
        e.open = e.open.saturating_add(1);
        Ok(())
    }

    /// A request on an open connection (HTTP `ip_rate_limit`): takes a
    /// token without counting a connection.
    pub fn take_request(&mut self, ip: IpAddr, now: Instant, rate: Rate) -> bool {
        let i = self.touch(ip, now, Some(rate));
        match self.entries[i as usize].bucket.as_mut() {
            Some(b) => b.try_take(rate, now),
            None => true,
        }
    }

    /// A connection or session admitted by [`admit`](Self::admit) ended.
    /// Forgotten sources (evicted since) are ignored.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(&i) = self.index.get(&ip) {
            let e = &mut self.entries[i as usize];
            e.open = e.open.saturating_sub(1);
        }
    }

    /// Open connections and sessions counted for `ip`.
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.index
            .get(&ip)
            .map_or(0, |&i| self.entries[i as usize].open)
    }

    /// The entry of `ip`, made the most recent; created (evicting the
    /// least recent when full) if absent.
    fn touch(&mut self, ip: IpAddr, now: Instant, rate: Option<Rate>) -> u32 {
        if let Some(&i) = self.index.get(&ip) {
            self.unlink(i);
            self.push_newest(i);
            let e = &mut self.entries[i as usize];
            if e.bucket.is_none() {
                e.bucket = rate.map(|r| TokenBucket::new(r, now));
            }
            return i;
        }
        let fresh = Entry {
            ip,
            bucket: rate.map(|r| TokenBucket::new(r, now)),
            open: 0,
            newer: NIL,
            older: NIL,
        };
        let i = if self.entries.len() < self.capacity {
            self.entries.push(fresh);
            (self.entries.len() - 1) as u32
        } else {
            let victim = self.oldest;
            self.unlink(victim);
            let old_ip = self.entries[victim as usize].ip;
            self.index.remove(&old_ip);
            self.entries[victim as usize] = fresh;
            victim
        };
        self.index.insert(ip, i);
        self.push_newest(i);
        i
    }

    fn unlink(&mut self, i: u32) {
        let (newer, older) = {
            let e = &self.entries[i as usize];
            (e.newer, e.older)
        };
        match newer {
            NIL => self.newest = older,
            n => self.entries[n as usize].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.entries[o as usize].newer = newer,
        }
        let e = &mut self.entries[i as usize];
        e.newer = NIL;
        e.older = NIL;
    }

    fn push_newest(&mut self, i: u32) {
        let old_newest = self.newest;
        {
            let e = &mut self.entries[i as usize];
            e.older = old_newest;
            e.newer = NIL;
        }
        if old_newest != NIL {
            self.entries[old_newest as usize].newer = i;
        }
        self.newest = i;
        if self.oldest == NIL {
            self.oldest = i;
        }
    }

    /// Sources from least to most recently seen (tests and debugging).
    pub fn lru_order(&self) -> Vec<IpAddr> {
        let mut out = Vec::with_capacity(self.entries.len());
        let mut i = self.oldest;
        while i != NIL && out.len() <= self.entries.len() {
            out.push(self.entries[i as usize].ip);
            i = self.entries[i as usize].newer;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn counts_open_connections_per_source() {
        let now = Instant::now();
        let mut t = PerIpTable::new(16);
        let a = v4(1);
        let b = v4(2);
        for _ in 0..3 {
            assert_eq!(t.admit(a, now, None, Some(3)), Ok(()));
        }
        assert_eq!(
            t.admit(a, now, None, Some(3)),
            Err(PerIpRefusal::Connections)
        );
        assert_eq!(t.admit(b, now, None, Some(3)), Ok(()));
        t.release(a);
        assert_eq!(t.open(a), 2);
        assert_eq!(t.admit(a, now, None, Some(3)), Ok(()));
        // Releasing more than was admitted, or an unknown source, is harmless.
        for _ in 0..10 {
            t.release(b);
            t.release(v4(99));
        }
        assert_eq!(t.open(b), 0);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn rate_per_source_with_burst() {
        let t0 = Instant::now();
        let r = Rate {
            per_second: 2.0,
            burst: 3,
        };
        let mut t = PerIpTable::new(16);
        let a = v4(1);
        for _ in 0..3 {
            assert_eq!(t.admit(a, t0, Some(r), None), Ok(()));
        }
        assert_eq!(t.admit(a, t0, Some(r), None), Err(PerIpRefusal::Rate));
        // Another source has its own bucket.
        assert_eq!(t.admit(v4(2), t0, Some(r), None), Ok(()));
        assert_eq!(
            t.admit(a, t0 + Duration::from_millis(500), Some(r), None),
            Ok(())
        );
        assert!(!t.take_request(a, t0 + Duration::from_millis(500), r));
        assert!(t.take_request(a, t0 + Duration::from_secs(1), r));
        // A refused attempt does not count as open.
        assert_eq!(t.open(a), 4);
    }

    #[test]
    fn bounded_with_least_recently_seen_evicted() {
        let now = Instant::now();
        let mut t = PerIpTable::new(3);
        for n in 1..=3 {
            t.admit(v4(n), now, None, Some(1)).unwrap();
        }
        // 1 seen again: 2 is now the least recent.
        assert_eq!(
            t.admit(v4(1), now, None, Some(1)),
            Err(PerIpRefusal::Connections)
        );
        assert_eq!(t.lru_order(), vec![v4(2), v4(3), v4(1)]);
        t.admit(v4(4), now, None, Some(1)).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.lru_order(), vec![v4(3), v4(1), v4(4)]);
        // 2 was forgotten: it starts afresh.
        assert_eq!(t.open(v4(2)), 0);
        assert_eq!(t.admit(v4(2), now, None, Some(1)), Ok(()));
        assert_eq!(t.lru_order(), vec![v4(1), v4(4), v4(2)]);
    }

    #[test]
    fn two_hundred_thousand_sources_stay_within_capacity() {
        let now = Instant::now();
        let r = Rate {
            per_second: 1.0,
            burst: 1,
        };
        let mut t = PerIpTable::new(DEFAULT_TRACKED_SOURCES);
        for n in 0..200_000u32 {
            // Spread over 127.0.0.0/8.
            let ip = v4(0x7f00_0000 | (n.wrapping_mul(2_654_435_761) & 0x00ff_ffff));
            let _ = t.admit(ip, now, Some(r), Some(10));
            assert!(t.len() <= DEFAULT_TRACKED_SOURCES);
        }
        assert_eq!(t.len(), DEFAULT_TRACKED_SOURCES);
        assert_eq!(t.lru_order().len(), DEFAULT_TRACKED_SOURCES);
        assert!(t.index.len() == t.entries.len());
    }

    #[test]
    fn bytes_per_source_covers_the_entry_and_its_map_slot() {
        let entry = std::mem::size_of::<Entry>();
        // hashbrown: key + value + one control byte per bucket, at most 7/8
        // full, buckets a power of two: at most two buckets per entry.
        let slot = std::mem::size_of::<(IpAddr, u32)>() + 1;
        let worst = entry + 2 * slot;
        assert!(
            worst <= BYTES_PER_SOURCE,
            "entry {entry} + 2 x slot {slot}: {worst} > {BYTES_PER_SOURCE}"
        );
    }
}
