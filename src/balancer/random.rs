//! Weighted random: each eligible server is chosen with probability
//! `weight / sum(eligible weights)`.
//!
//! The PRNG is splitmix64 (Steele, Lea, Flood 2014): one add and a mixing
//! step per number, full 2^64 period, good enough statistics for spreading
//! load and, being seeded, reproducible in tests. A number in `0..total` is
//! taken from the high bits by multiply-and-shift, whose bias is at most
//! `total / 2^64`.

use std::net::IpAddr;

use super::{mix64, weight_of, Balancer, Candidate, ServerId, Tier, Tried};

/// splitmix64's increment (the golden ratio in 64-bit fixed point).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug)]
pub struct Random {
    state: u64,
}

impl Random {
    pub fn new(seed: u64) -> Random {
        Random { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Uniform-enough number in `0..bound` (`bound > 0`).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

impl Balancer for Random {
    fn pick(&mut self, servers: &[Candidate], _client: IpAddr, tried: &Tried) -> Option<ServerId> {
        let tier = Tier::select(servers, tried)?;
        let eligible = |i: &usize| tier.admits(servers, tried, *i);
        let total: u64 = (0..servers.len())
            .filter(eligible)
            .map(|i| u64::from(weight_of(&servers[i])))
            .sum();
        if total == 0 {
            return None;
        }
        let mut point = self.below(total);
        for i in (0..servers.len()).filter(eligible) {
            let w = u64::from(weight_of(&servers[i]));
            if point < w {
                return Some(ServerId(i));
            }
            point -= w;
        }
        // Unreachable while `point < total`; kept as a None instead of a panic.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn counts(b: &mut Random, servers: &[Candidate], n: usize) -> Vec<usize> {
        let mut counts = vec![0; servers.len()];
        for _ in 0..n {
            if let Some(ServerId(i)) = b.pick(servers, client(1), &Tried::new()) {
                counts[i] += 1;
            }
        }
        counts
    }

    #[test]
    fn distribution_follows_weights() {
        let mut b = Random::new(0x5eed);
        let servers = [up(1), up(2), up(7)];
        let n = 100_000;
        let got = counts(&mut b, &servers, n);
        assert_eq!(got.iter().sum::<usize>(), n);
        for (count, expected) in got.iter().zip([10_000usize, 20_000, 70_000]) {
            // Standard deviation is at most ~150 here; 1,000 is a wide margin
            // that still fails for a wrong weighting.
            assert!(count.abs_diff(expected) < 1_000, "{got:?}");
        }
    }

    #[test]
    fn equal_weights_spread_evenly() {
        let mut b = Random::new(7);
        let servers = [up(1); 4];
        let got = counts(&mut b, &servers, 40_000);
        for &c in &got {
            assert!(c.abs_diff(10_000) < 600, "{got:?}");
        }
    }

    #[test]
    fn same_seed_same_sequence_different_seed_different() {
        let servers = [up(1), up(1), up(1), up(1)];
        let seq = |seed| {
            let mut b = Random::new(seed);
            (0..64)
                .map(|_| b.pick(&servers, client(1), &Tried::new()))
                .collect::<Vec<_>>()
        };
        assert_eq!(seq(1), seq(1));
        assert_ne!(seq(1), seq(2));
    }

    #[test]
    fn ineligible_weight_is_redistributed() {
        let mut b = Random::new(99);
        let mut tried = Tried::new();
        tried.insert(ServerId(0));
        let servers = [up(100), up(1), down(50), up(1)];
        let mut got = [0usize; 4];
        for _ in 0..10_000 {
            if let Some(ServerId(i)) = b.pick(&servers, client(1), &tried) {
                got[i] += 1;
            }
        }
        assert_eq!(got[0] + got[2], 0);
        assert!(got[1].abs_diff(5_000) < 400, "{got:?}");
        assert_eq!(got[1] + got[3], 10_000);
    }

    #[test]
    fn below_stays_in_range() {
        let mut b = Random::new(3);
        for bound in [1u64, 2, 3, 1000, u64::from(u32::MAX) * 64] {
            for _ in 0..100 {
                assert!(b.below(bound) < bound);
            }
        }
    }
}
