//! Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
//! Software Network Load Balancer", NSDI 2016, section 3.4).
//!
//! Owns: the lookup table (a prime number of slots, each naming a server),
//! its construction from the servers' addresses and weights, the client key
//! hash, and the pick from a table (with the walk past servers a connection
//! may not use). Pure: no clock, no socket, no thread.
//!
//! Does not own: when a table is rebuilt and how the event loops share it
//! (`crate::maglev_rt`), nor health.
//!
//! The recipe, fixed because two instances (and two versions) must build the
//! same table from the same backend list:
//!
//! - servers are ordered by their address *as written in the configuration*
//!   (then by position, which only matters for a duplicated address), so the
//!   order in the file does not matter; the k-th repeat (k >= 1) of an
//!   address hashes as `"ADDRESS#k"`;
//! - `h = FNV-1a 64(address text)`; `offset = mix64(h) mod M`,
//!   `skip = mix64(h ^ SKIP_SALT) mod (M - 1) + 1`, where `mix64` is the
//!   splitmix64 finaliser; server i prefers slots `(offset + j * skip) mod M`
//!   for j = 0, 1, ... (a permutation of all slots because M is prime);
//! - population as in the paper's Pseudocode 1, with weights as in Envoy:
//!   in iteration t (from 1) a server of weight w takes its k-th turn (k from
//!   0) when `t * w >= k * w_max`, so the heaviest servers take one slot per
//!   iteration and the others proportionally fewer; with equal weights this
//!   is exactly the paper's algorithm;
//! - a client's key is `mix64(FNV-1a 64(bytes))` over its IP address (4 bytes
//!   for IPv4 and IPv4-mapped IPv6, else 16), followed by the port in network
//!   order with `hash_key: ip_port`; its slot is `key mod M`.

use std::net::{IpAddr, SocketAddr};

use super::{mix64, Balancer, Candidate, ServerId, Tier, Tried};
use crate::config::HashKey;

/// The paper's table size for small deployments: a prime well above 100x
/// the number of servers (up to ~650), which keeps each server's share of
/// slots within about 1 % of its weight.
pub const TABLE_SIZE: usize = 65_537;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Makes `skip` independent of `offset`.
const SKIP_SALT: u64 = 0x6d61_676c_6576_5f73; // "maglev_s"
/// Marks an empty slot while the table is filled.
const EMPTY: u32 = u32::MAX;
/// Slots visited past the client's own before giving up on the table (a
/// connection retrying past failed servers, a stale table). Deterministic
/// either way: after the walk comes a fixed scan.
const MAX_WALK: usize = 1024;

/// FNV-1a, 64 bits: fixed by its specification, so the same on every
/// platform and in every version (unlike `std`'s `DefaultHasher`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The (offset, skip) of a server's permutation of a table of `size` slots.
pub fn offset_skip(label: &str, size: u64) -> (u64, u64) {
    let h = fnv1a64(label.as_bytes());
    let offset = mix64(h) % size.max(1);
    let skip = mix64(h ^ SKIP_SALT) % size.saturating_sub(1).max(1) + 1;
    (offset, skip)
}

/// The hash of a client that selects its slot.
pub fn key_hash(client: SocketAddr, key: HashKey) -> u64 {
    let mut buf = [0u8; 18];
    let mut len = match client.ip().to_canonical() {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            buf[..16].copy_from_slice(&v6.octets());
            16
        }
    };
    if key == HashKey::IpPort {
        buf[len..len + 2].copy_from_slice(&client.port().to_be_bytes());
        len += 2;
    }
    mix64(fnv1a64(&buf[..len]))
}

/// One configured server as the table sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The address as written in the configuration.
    pub label: String,
    pub weight: u32,
}

/// A built lookup table. `members[i]` is the weight server i was given in
/// this table (0: not in it), so a caller can tell whether the table still
/// matches the servers in rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Vec<u32>,
    members: Vec<u32>,
}

struct Permutation {
    server: u32,
    offset: u64,
    skip: u64,
    next: u64,
    weight: u64,
    turns: u64,
}

impl MaglevTable {
    /// Builds a table of `size` slots (a prime; other sizes still give a
    /// full table, without the paper's guarantees) over the servers whose
    /// entry in `members` is a weight >= 1. `servers` gives their addresses.
    pub fn build(servers: &[Member], members: &[u32], size: usize) -> MaglevTable {
        let members: Vec<u32> = (0..servers.len())
            .map(|i| members.get(i).copied().unwrap_or(0))
            .collect();
        let mut order: Vec<usize> = (0..servers.len()).filter(|&i| members[i] > 0).collect();
        order.sort_by(|&a, &b| servers[a].label.cmp(&servers[b].label).then(a.cmp(&b)));
        if order.is_empty() || size == 0 || servers.len() >= EMPTY as usize {
            return MaglevTable {
                slots: Vec::new(),
                members,
            };
        }
        let m = size as u64;
        let mut perms = Vec::with_capacity(order.len());
        let mut repeat = 0;
        for (pos, &i) in order.iter().enumerate() {
            let label = &servers[i].label;
            repeat = match pos.checked_sub(1).map(|p| &servers[order[p]].label) {
                Some(prev) if prev == label => repeat + 1,
                _ => 0,
            };
            let (offset, skip) = if repeat == 0 {
                offset_skip(label, m)
            } else {
                offset_skip(&format!("{label}#{repeat}"), m)
            };
            perms.push(Permutation {
                server: i as u32,
                offset,
                skip,
                next: 0,
                weight: u64::from(members[i]),
                turns: 0,
            });
        }
        let slots = populate(&mut perms, size);
        MaglevTable { slots, members }
    }

    /// Weight per server in this table; 0 for a server left out.
    pub fn members(&self) -> &[u32] {
        &self.members
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The server in slot `key mod size`, or `None` for an empty table.
    pub fn lookup(&self, key: u64) -> Option<usize> {
        let len = self.slots.len() as u64;
        (len > 0).then(|| self.slots[(key % len) as usize] as usize)
    }

    /// Picks for a client with hash `key`: its slot's server when the
    /// connection may use it; else the next slots along a fixed walk (step
    /// from the key, so clients of one server spread over the others); else
    /// a fixed scan of all servers. `None` only when nothing is eligible.
    pub fn pick(&self, servers: &[Candidate], key: u64, tried: &Tried) -> Option<ServerId> {
        let tier = Tier::select(servers, tried)?;
        let len = self.slots.len() as u64;
        if len > 0 {
            let mut pos = key % len;
            let step = mix64(key ^ SKIP_SALT) % len.saturating_sub(1).max(1) + 1;
            for _ in 0..(len as usize).min(MAX_WALK) {
                let s = self.slots[pos as usize] as usize;
                if tier.admits(servers, tried, s) {
                    return Some(ServerId(s));
                }
                pos = (pos + step) % len;
            }
        }
        let n = servers.len();
        let start = (key % n.max(1) as u64) as usize;
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| tier.admits(servers, tried, i))
            .map(ServerId)
    }
}

/// The paper's Pseudocode 1, weighted: fills every slot.
fn populate(perms: &mut [Permutation], size: usize) -> Vec<u32> {
    let w_max = perms.iter().map(|p| p.weight).max().unwrap_or(1);
    let mut slots = vec![EMPTY; size];
    let mut filled = 0;
    let mut iteration: u64 = 0;
    while filled < size && !perms.is_empty() {
        iteration += 1;
        for p in perms.iter_mut() {
            if iteration * p.weight < p.turns * w_max {
                continue;
            }
            p.turns += 1;
            let c = next_free(&slots, p);
            slots[c] = p.server;
            filled += 1;
            if filled == size {
                break;
            }
        }
    }
    slots
}

/// The next slot of `p`'s permutation that is still empty. At most `size`
/// tries: with a prime size that always finds one (the table is not full);
/// otherwise a linear scan ends the search.
fn next_free(slots: &[u32], p: &mut Permutation) -> usize {
    let m = slots.len() as u64;
    for _ in 0..m {
        let c = ((p.offset + p.next % m * p.skip) % m) as usize;
        p.next += 1;
        if slots[c] == EMPTY {
            return c;
        }
    }
    slots.iter().position(|&s| s == EMPTY).unwrap_or(0)
}

/// Which servers a table should hold now: those in rotation, of the
/// primary tier unless no primary is in rotation (then the backups), each
/// with its current weight. `in_rotation` is health only: a server at its
/// `max_connections`, or whose passive trial connection is out, stays in
/// the table (its clients walk on for that one connection) so tables are
/// not rebuilt on every connection.
pub struct Wanted<'a> {
    view: &'a [Candidate],
    in_rotation: &'a [bool],
    backups: bool,
}

impl<'a> Wanted<'a> {
    pub fn new(view: &'a [Candidate], in_rotation: &'a [bool]) -> Wanted<'a> {
        let primary = (0..view.len()).any(|i| !view[i].backup && in_rotation.get(i) == Some(&true));
        Wanted {
            view,
            in_rotation,
            backups: !primary,
        }
    }

    /// The table weight of server `i` (0: left out).
    pub fn weight(&self, i: usize) -> u32 {
        match (self.view.get(i), self.in_rotation.get(i)) {
            (Some(c), Some(true)) if c.backup == self.backups => c.weight.max(1),
            _ => 0,
        }
    }

    /// Whether `table` was built for exactly these servers and weights.
    pub fn matches(&self, table: &MaglevTable) -> bool {
        table.members.len() == self.view.len()
            && table
                .members
                .iter()
                .enumerate()
                .all(|(i, &w)| w == self.weight(i))
    }

    pub fn to_members(&self) -> Vec<u32> {
        (0..self.view.len()).map(|i| self.weight(i)).collect()
    }
}

/// Maglev as a plain [`Balancer`]: rebuilds its own table, on the caller's
/// thread, whenever the usable servers change. For a single owner (tests,
/// tools); the proxy shares one table between loops (`crate::maglev_rt`).
/// Keyed on the client IP only (the trait carries no port).
pub struct Maglev {
    servers: Vec<Member>,
    size: usize,
    table: MaglevTable,
}

impl Maglev {
    pub fn new(servers: &[Member]) -> Maglev {
        Maglev::with_size(servers, TABLE_SIZE)
    }

    /// A table of `size` slots (a prime): small ones keep tests fast.
    pub fn with_size(servers: &[Member], size: usize) -> Maglev {
        let all: Vec<u32> = servers.iter().map(|s| s.weight.max(1)).collect();
        Maglev {
            servers: servers.to_vec(),
            size,
            table: MaglevTable::build(servers, &all, size),
        }
    }
}

impl Balancer for Maglev {
    fn pick(&mut self, servers: &[Candidate], client: IpAddr, tried: &Tried) -> Option<ServerId> {
        let usable: Vec<bool> = servers.iter().map(|c| c.usable).collect();
        let wanted = Wanted::new(servers, &usable);
        if !wanted.matches(&self.table) {
            let mut known = self.servers.clone();
            // A caller with more servers than configured: name the extras
            // by position rather than leave them out.
            known.extend((self.servers.len()..servers.len()).map(|i| Member {
                label: format!("#{i}"),
                weight: 1,
            }));
            known.truncate(servers.len());
            self.table = MaglevTable::build(&known, &wanted.to_members(), self.size);
        }
        let key = key_hash(SocketAddr::new(client, 0), HashKey::Ip);
        self.table.pick(servers, key, tried)
    }
}

#[cfg(test)]
#[path = "maglev_tests.rs"]
mod tests;
