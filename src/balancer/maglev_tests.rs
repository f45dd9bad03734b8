use super::super::test_support::*;
use super::*;
use std::net::Ipv4Addr;

fn members(labels: &[&str], weights: &[u32]) -> Vec<Member> {
    labels
        .iter()
        .zip(weights)
        .map(|(l, &weight)| Member {
            label: l.to_string(),
            weight,
        })
        .collect()
}

fn ten() -> Vec<String> {
    (1..=10).map(|i| format!("10.0.0.{i}:8080")).collect()
}

fn table_of(labels: &[String], weights: &[u32]) -> MaglevTable {
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    MaglevTable::build(&members(&refs, weights), weights, TABLE_SIZE)
}

fn owner(t: &MaglevTable, slot: usize) -> usize {
    t.slots[slot] as usize
}

// ---- An independent, deliberately naive transcription of the recipe in the
// module header and of the paper's Pseudocode 1 (unweighted). ----

mod reference {
    pub fn fnv(bytes: &[u8]) -> u64 {
        let mut h: u64 = 14_695_981_039_346_656_037;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(1_099_511_628_211);
        }
        h
    }

    pub fn splitmix_finish(z: u64) -> u64 {
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    /// Pseudocode 1: `names` already in table order. Indexed loops, as in
    /// the paper.
    #[allow(clippy::needless_range_loop)]
    pub fn populate(names: &[&str], m: u64) -> Vec<usize> {
        let n = names.len();
        let mut offset = vec![0u64; n];
        let mut skip = vec![0u64; n];
        for (i, name) in names.iter().enumerate() {
            let h = fnv(name.as_bytes());
            offset[i] = splitmix_finish(h) % m;
            skip[i] = splitmix_finish(h ^ 0x6d61676c65765f73) % (m - 1) + 1;
        }
        let permutation = |i: usize, j: u64| ((offset[i] + j * skip[i]) % m) as usize;
        let mut next = vec![0u64; n];
        let mut entry = vec![usize::MAX; m as usize];
        let mut filled = 0;
        loop {
            for i in 0..n {
                let mut c = permutation(i, next[i]);
                while entry[c] != usize::MAX {
                    next[i] += 1;
                    c = permutation(i, next[i]);
                }
                entry[c] = i;
                next[i] += 1;
                filled += 1;
                if filled == m as usize {
                    return entry;
                }
            }
        }
    }
}

#[test]
fn fnv_and_key_hashes_are_pinned() {
    // FNV-1a 64 test vectors from its specification.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    // Changing any of these moves every client of every deployment.
    assert_eq!(fnv1a64(b"10.0.0.1:80"), 0x529f_5a4b_643f_a605);
    let c = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 5353);
    assert_eq!(
        key_hash(c, HashKey::Ip),
        reference::splitmix_finish(reference::fnv(&[192, 0, 2, 7]))
    );
    assert_eq!(
        key_hash(c, HashKey::IpPort),
        reference::splitmix_finish(reference::fnv(&[192, 0, 2, 7, 0x14, 0xe9]))
    );
    let mapped = SocketAddr::new(
        IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped()),
        5353,
    );
    assert_eq!(key_hash(mapped, HashKey::Ip), key_hash(c, HashKey::Ip));
}

#[test]
fn the_papers_worked_example() {
    // NSDI 2016, Table 1: M = 7; B0 (offset 3, skip 4), B1 (0, 2),
    // B2 (3, 1) give B1 B0 B1 B0 B2 B2 B0. Without B1 (traced by hand
    // through Pseudocode 1): B0 takes 3, 0, 1, 2 and B2 takes 4, 5, 6.
    let perm = |server, offset, skip| Permutation {
        server,
        offset,
        skip,
        next: 0,
        weight: 1,
        turns: 0,
    };
    let mut all = [perm(0, 3, 4), perm(1, 0, 2), perm(2, 3, 1)];
    assert_eq!(populate(&mut all, 7), vec![1, 0, 1, 0, 2, 2, 0]);
    let mut without_b1 = [perm(0, 3, 4), perm(2, 3, 1)];
    assert_eq!(populate(&mut without_b1, 7), vec![0, 0, 0, 0, 2, 2, 2]);
}

#[test]
fn known_answers_match_the_reference_implementation() {
    let labels = ten();
    let table = table_of(&labels, &[1; 10]);
    let mut sorted: Vec<&str> = labels.iter().map(String::as_str).collect();
    sorted.sort();
    let reference = reference::populate(&sorted, TABLE_SIZE as u64);
    for (slot, &r) in reference.iter().enumerate() {
        let want = labels.iter().position(|l| l == sorted[r]).unwrap();
        assert_eq!(owner(&table, slot), want, "slot {slot}");
    }
    // Pinned from the reference above: a change here moves clients of
    // every deployment on upgrade; say so in the changelog if on purpose.
    let pinned: Vec<usize> = [0, 1, 2, 1000, 32768, 65536]
        .iter()
        .map(|&s| owner(&table, s))
        .collect();
    assert_eq!(pinned, PINNED);
}

const PINNED: [usize; 6] = [3, 2, 2, 8, 1, 8];

#[test]
fn order_in_the_file_does_not_matter() {
    let labels = ten();
    let weights = [1, 2, 1, 3, 1, 1, 2, 1, 1, 1];
    let a = table_of(&labels, &weights);
    let mut shuffled: Vec<(String, u32)> = labels.iter().cloned().zip(weights).collect();
    shuffled.reverse();
    shuffled.swap(2, 7);
    let (l2, w2): (Vec<String>, Vec<u32>) = shuffled.into_iter().unzip();
    let b = table_of(&l2, &w2);
    for slot in 0..TABLE_SIZE {
        assert_eq!(labels[owner(&a, slot)], l2[owner(&b, slot)], "slot {slot}");
    }
}

#[test]
fn removing_one_of_ten_moves_only_its_slots_and_at_most_one_percent_more() {
    let labels = ten();
    let before = table_of(&labels, &[1; 10]);
    let mut weights = [1; 10];
    weights[4] = 0;
    let after = table_of(&labels, &weights);
    let mut others_moved = 0;
    for slot in 0..TABLE_SIZE {
        let (was, now) = (owner(&before, slot), owner(&after, slot));
        assert_ne!(now, 4);
        if was != 4 && was != now {
            others_moved += 1;
        }
    }
    assert!(
        others_moved * 100 <= TABLE_SIZE,
        "{others_moved} slots of other servers moved"
    );
}

#[test]
fn adding_an_eleventh_moves_about_one_eleventh() {
    let mut labels = ten();
    let before = table_of(&labels, &[1; 10]);
    labels.push("10.0.0.11:8080".into());
    let after = table_of(&labels, &[1; 11]);
    let moved = (0..TABLE_SIZE)
        .filter(|&s| owner(&before, s) != owner(&after, s))
        .count();
    let to_new = (0..TABLE_SIZE).filter(|&s| owner(&after, s) == 10).count();
    let share = moved as f64 / TABLE_SIZE as f64;
    assert!(
        (1.0 / 11.0..=1.0 / 11.0 + 0.01).contains(&share),
        "{share} moved"
    );
    assert!(moved - to_new <= TABLE_SIZE / 100, "{moved} {to_new}");
}

#[test]
fn weights_two_to_one_within_two_percent() {
    let labels: Vec<String> = vec!["10.0.0.1:80".into(), "10.0.0.2:80".into()];
    for weights in [[2, 1], [1, 2], [200, 100]] {
        let t = table_of(&labels, &weights);
        let heavy = usize::from(weights[1] > weights[0]);
        let n_heavy = (0..TABLE_SIZE).filter(|&s| owner(&t, s) == heavy).count();
        let ratio = n_heavy as f64 / (TABLE_SIZE - n_heavy) as f64;
        assert!((1.96..=2.04).contains(&ratio), "{weights:?}: {ratio}");
    }
    // And over clients, as they arrive.
    let t = table_of(&labels, &[2, 1]);
    let heavy = (0..30_000u32)
        .filter(|&n| {
            let c = SocketAddr::new(client(n), 0);
            t.lookup(key_hash(c, HashKey::Ip)) == Some(0)
        })
        .count();
    let ratio = heavy as f64 / (30_000 - heavy) as f64;
    assert!((1.9..=2.1).contains(&ratio), "{ratio}");
}

#[test]
fn equal_servers_share_the_table_evenly() {
    let t = table_of(&ten(), &[1; 10]);
    let mut counts = [0usize; 10];
    for s in 0..TABLE_SIZE {
        counts[owner(&t, s)] += 1;
    }
    for &c in &counts {
        assert!(c.abs_diff(TABLE_SIZE / 10) <= 1, "{counts:?}");
    }
}

#[test]
fn a_server_unusable_for_one_connection_walks_to_another_deterministically() {
    let t = table_of(&ten(), &[1; 10]);
    let mut servers = vec![up(1); 10];
    let key = key_hash(SocketAddr::new(client(5), 0), HashKey::Ip);
    let first = t.pick(&servers, key, &Tried::new()).unwrap();
    assert_eq!(Some(first.0), t.lookup(key));
    let mut tried = Tried::new();
    tried.insert(first);
    let second = t.pick(&servers, key, &tried).unwrap();
    assert_ne!(second, first);
    assert_eq!(t.pick(&servers, key, &tried), Some(second));
    // At its cap (unusable, still in the table): same walk.
    servers[first.0].usable = false;
    assert_eq!(t.pick(&servers, key, &Tried::new()), Some(second));
}

#[test]
fn duplicated_addresses_both_get_slots() {
    let labels: Vec<String> = vec!["10.0.0.1:80".into(), "10.0.0.1:80".into()];
    let t = table_of(&labels, &[1, 1]);
    let first = (0..TABLE_SIZE).filter(|&s| owner(&t, s) == 0).count();
    assert!(first.abs_diff(TABLE_SIZE / 2) < TABLE_SIZE / 50, "{first}");
}

#[test]
fn degenerate_tables_never_hang_or_panic() {
    let labels = ten();
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let m = members(&refs, &[1; 10]);
    // Not prime: still full.
    let t = MaglevTable::build(&m, &[1; 10], 1000);
    assert!(t.slots.iter().all(|&s| s < 10));
    let t = MaglevTable::build(&m, &[1; 10], 1);
    assert_eq!(t.len(), 1);
    let empty = MaglevTable::build(&m, &[0; 10], TABLE_SIZE);
    assert!(empty.is_empty());
    assert_eq!(empty.lookup(7), None);
    // An empty table still serves from the caller's view.
    assert!(empty.pick(&[up(1); 10], 7, &Tried::new()).is_some());
    // Huge weights: the light server keeps a share in proportion (none).
    let t = MaglevTable::build(&m[..2], &[1_000_000, 1], TABLE_SIZE);
    assert!(t.slots.iter().filter(|&&s| s == 1).count() <= 1);
}
