//! Least connections, weighted: the eligible server with the lowest
//! `active / weight` wins.
//!
//! The ratio is compared by cross-multiplication in `u64` (`a.active *
//! b.weight < b.active * a.weight`), so there are no floats and no rounding.
//! Ties are broken round robin: the scan starts just after the previous
//! winner, and only a strictly better load displaces the first candidate
//! found, so equally loaded servers take turns instead of the first one in
//! the list absorbing every burst that arrives between count updates.

use std::net::IpAddr;

use super::{weight_of, Balancer, Candidate, ServerId, Tier, Tried};

#[derive(Debug, Default)]
pub struct LeastConn {
    /// Where the next scan starts: one past the previous winner.
    next: usize,
}

impl LeastConn {
    pub fn new() -> LeastConn {
        LeastConn::default()
    }
}

/// True when `a` carries strictly less load per unit of weight than `b`.
fn lighter(a: &Candidate, b: &Candidate) -> bool {
    u64::from(a.active) * u64::from(weight_of(b)) < u64::from(b.active) * u64::from(weight_of(a))
}

impl Balancer for LeastConn {
    fn pick(&mut self, servers: &[Candidate], _client: IpAddr, tried: &Tried) -> Option<ServerId> {
        let tier = Tier::select(servers, tried)?;
        let n = servers.len();
        let start = self.next % n;
        let mut best: Option<usize> = None;
        for step in 0..n {
            let i = (start + step) % n;
            if !tier.admits(servers, tried, i) {
                continue;
            }
            if best.map_or(true, |b| lighter(&servers[i], &servers[b])) {
                best = Some(i);
            }
        }
        let best = best?;
        self.next = best + 1;
        Some(ServerId(best))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn with_active(mut c: Candidate, active: u32) -> Candidate {
        c.active = active;
        c
    }

    fn pick(b: &mut LeastConn, servers: &[Candidate]) -> Option<usize> {
        b.pick(servers, client(1), &Tried::new()).map(|s| s.0)
    }

    #[test]
    fn picks_fewest_active() {
        let mut b = LeastConn::new();
        let servers = [
            with_active(up(1), 5),
            with_active(up(1), 2),
            with_active(up(1), 9),
        ];
        for _ in 0..5 {
            assert_eq!(pick(&mut b, &servers), Some(1));
        }
    }

    #[test]
    fn weight_scales_load() {
        let mut b = LeastConn::new();
        // 6/3 = 2 per unit beats 3/1 = 3 per unit.
        let servers = [with_active(up(1), 3), with_active(up(3), 6)];
        assert_eq!(pick(&mut b, &servers), Some(1));
        // 9/3 = 3 against 2/1 = 2: the light server wins.
        let servers = [with_active(up(1), 2), with_active(up(3), 9)];
        assert_eq!(pick(&mut b, &servers), Some(0));
    }

    #[test]
    fn large_counts_do_not_overflow() {
        let mut b = LeastConn::new();
        let servers = [
            with_active(up(u32::MAX), u32::MAX),
            with_active(up(u32::MAX - 1), u32::MAX),
        ];
        // MAX/MAX = 1 is lighter than MAX/(MAX-1) > 1.
        assert_eq!(pick(&mut b, &servers), Some(0));
    }

    #[test]
    fn equal_servers_alternate() {
        let mut b = LeastConn::new();
        let servers = [up(1), up(1), up(1)];
        let got: Vec<_> = (0..6).filter_map(|_| pick(&mut b, &servers)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn ties_rotate_only_among_the_lightest() {
        let mut b = LeastConn::new();
        let servers = [
            with_active(up(1), 1),
            with_active(up(2), 4),
            with_active(up(1), 1),
            with_active(up(1), 0),
        ];
        assert_eq!(pick(&mut b, &servers), Some(3));
        let servers = [servers[0], servers[1], servers[2], with_active(up(1), 1)];
        let got: Vec<_> = (0..6).filter_map(|_| pick(&mut b, &servers)).collect();
        assert_eq!(got, vec![0, 2, 3, 0, 2, 3]);
    }

    #[test]
    fn simulated_load_follows_weights() {
        // The caller bumps `active` after each pick; open connections end up
        // shared in proportion to the weights.
        let mut b = LeastConn::new();
        let mut servers = [up(1), up(2), up(5)];
        for _ in 0..800 {
            let i = pick(&mut b, &servers).expect("a server is eligible");
            servers[i].active += 1;
        }
        assert_eq!(servers.map(|s| s.active), [100, 200, 500]);
    }

    #[test]
    fn zero_weight_counts_as_one() {
        let mut b = LeastConn::new();
        let servers = [with_active(up(0), 2), with_active(up(1), 1)];
        assert_eq!(pick(&mut b, &servers), Some(1));
    }
}
