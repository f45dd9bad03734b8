//! Smooth weighted round robin, as nginx's `ngx_http_upstream_get_peer`.
//!
//! Every pick, each eligible server's `current` grows by its weight; the
//! server with the largest `current` (the first one on a tie) wins and gives
//! back the sum of the weights that took part. Over any window of
//! `sum(weights)` picks each server is chosen exactly `weight` times, spread
//! out rather than in bursts (weights 5:1:1 give a a b a c a a).
//!
//! A server that is not eligible for a pick neither gains nor gives back
//! anything, as in nginx, so the others keep their relative rhythm and the
//! skipped server resumes from where it was.
//!
//! nginx also lowers an `effective_weight` after failures; here failures are
//! the health state machine's business (`crate::health::state`), so the effective
//! weight is always the configured one.

use std::net::IpAddr;

use super::{weight_of, Balancer, Candidate, ServerId, Tier, Tried};

#[derive(Debug, Default)]
pub struct RoundRobin {
    /// nginx's `current_weight` per server, grown lazily to the slice length.
    current: Vec<i64>,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }
}

impl Balancer for RoundRobin {
    fn pick(&mut self, servers: &[Candidate], _client: IpAddr, tried: &Tried) -> Option<ServerId> {
        let tier = Tier::select(servers, tried)?;
        if self.current.len() != servers.len() {
            self.current.resize(servers.len(), 0);
        }
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for (i, c) in servers.iter().enumerate() {
            if !tier.admits(servers, tried, i) {
                continue;
            }
            let w = i64::from(weight_of(c));
            self.current[i] += w;
            total += w;
            if best.map_or(true, |b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.current[best] -= total;
        Some(ServerId(best))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn run(b: &mut RoundRobin, servers: &[Candidate], n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| match b.pick(servers, client(1), &Tried::new()) {
                Some(ServerId(i)) => i,
                None => panic!("no pick"),
            })
            .collect()
    }

    #[test]
    fn equal_weights_cycle_in_order() {
        let mut b = RoundRobin::new();
        let got = run(&mut b, &[up(1), up(1), up(1)], 7);
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn weights_one_to_three_follow_nginx_sequence() {
        // Worked by hand with nginx's algorithm: currents (a, b) start at
        // (0, 0); +(1, 3) -> b; +(1, 3) = (2, 2) tie -> a (first); then
        // (-1, 5) -> b; (0, 4) -> b; back to (0, 0). So b a b b repeats.
        let mut b = RoundRobin::new();
        let servers = [up(1), up(3)];
        let got = run(&mut b, &servers, 400);
        assert_eq!(&got[..8], &[1, 0, 1, 1, 1, 0, 1, 1]);
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 100);
        assert_eq!(got.iter().filter(|&&i| i == 1).count(), 300);
        // Interleaved: the light server comes back every 4 picks, never
        // more than 3 heavy picks in a row.
        let longest_b_run = got
            .split(|&i| i == 0)
            .map(<[usize]>::len)
            .max()
            .unwrap_or(0);
        assert_eq!(longest_b_run, 3);
        for window in got.chunks(4) {
            assert_eq!(window.iter().filter(|&&i| i == 0).count(), 1);
        }
    }

    #[test]
    fn weights_five_one_one_match_nginx_comment() {
        // The example in nginx's source: { a, a, b, a, c, a, a }.
        let mut b = RoundRobin::new();
        let got = run(&mut b, &[up(5), up(1), up(1)], 14);
        assert_eq!(got, vec![0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn every_window_of_total_weight_is_exact() {
        let mut b = RoundRobin::new();
        let weights = [3, 1, 4, 2];
        let servers: Vec<Candidate> = weights.iter().map(|&w| up(w)).collect();
        let got = run(&mut b, &servers, 10 * 50);
        for window in got.chunks(10) {
            for (i, &w) in weights.iter().enumerate() {
                let n = window.iter().filter(|&&s| s == i).count();
                assert_eq!(n, w as usize, "window {window:?}");
            }
        }
    }

    #[test]
    fn skipped_server_leaves_others_fair() {
        let mut b = RoundRobin::new();
        let mut servers = [up(1), up(1), up(2)];
        run(&mut b, &servers, 3);
        servers[0].usable = false;
        let got = run(&mut b, &servers, 300);
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 0);
        assert_eq!(got.iter().filter(|&&i| i == 1).count(), 100);
        assert_eq!(got.iter().filter(|&&i| i == 2).count(), 200);
        // Back in service, it gets its share again straight away.
        servers[0].usable = true;
        let got = run(&mut b, &servers, 400);
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 100);
        assert_eq!(got.iter().filter(|&&i| i == 1).count(), 100);
        assert_eq!(got.iter().filter(|&&i| i == 2).count(), 200);
    }

    #[test]
    fn tried_server_is_skipped_but_rotation_continues() {
        let mut b = RoundRobin::new();
        let servers = [up(1), up(1), up(1)];
        let mut tried = Tried::new();
        tried.insert(ServerId(0));
        assert_eq!(b.pick(&servers, client(1), &tried), Some(ServerId(1)));
        assert_eq!(b.pick(&servers, client(1), &tried), Some(ServerId(2)));
        assert_eq!(b.pick(&servers, client(1), &tried), Some(ServerId(1)));
    }

    #[test]
    fn backups_rotate_among_themselves() {
        let mut b = RoundRobin::new();
        let servers = [down(1), backup(1), backup(2)];
        let got = run(&mut b, &servers, 30);
        assert_eq!(got.iter().filter(|&&i| i == 1).count(), 10);
        assert_eq!(got.iter().filter(|&&i| i == 2).count(), 20);
    }
}
