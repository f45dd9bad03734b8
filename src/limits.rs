//! Running short of resources: the process-wide file-descriptor budget for
//! UDP sessions, telling "out of descriptors / kernel memory" apart from a
//! server's fault, and rate-limiting the warnings about either.
//!
//! Owns [`FdBudget`] (and the one shared instance, [`fd_budget`]),
//! [`is_fd_exhaustion`], [`is_resource_exhaustion`] and [`LogLimiter`].
//! Does not own what to do when a limit is hit: accept pauses (`tcp/`),
//! datagram drops (`udp/`) and skipped probes (`health/`) are decided there.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// File descriptors kept out of the session budget for listeners, accepted
/// TCP connections' first moments, health checks and log files.
pub const FD_RESERVE: usize = 64;

/// How many upstream sockets the whole process may hold: the fd table is a
/// process resource, so this is one shared counter, sized once (after the
/// listeners are bound) as the limit minus a reserve minus what is open.
pub struct FdBudget {
    limit: usize,
    used: AtomicUsize,
}

impl FdBudget {
    pub fn new(limit: usize) -> FdBudget {
        FdBudget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes one descriptor from the budget; false when it is spent.
    pub fn take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u < self.limit).then_some(u + 1)
            })
            .is_ok()
    }

    pub fn give_back(&self) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1));
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

static FD_BUDGET: OnceLock<FdBudget> = OnceLock::new();

/// The process's budget, sized on first use (after the listeners are
/// bound) as `RLIMIT_NOFILE` minus [`FD_RESERVE`] minus what is open.
pub fn fd_budget() -> &'static FdBudget {
    FD_BUDGET.get_or_init(|| {
        let limit = usize::try_from(reactor::sys::fd_limit()).unwrap_or(usize::MAX);
        FdBudget::new(
            limit
                .saturating_sub(FD_RESERVE)
                .saturating_sub(reactor::sys::open_fds()),
        )
    })
}

/// Out of file descriptors (per process or system-wide).
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Out of descriptors or kernel memory: not the server's fault.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Rate limit for repetitive warnings: at most one line per interval, with
/// the number of suppressed occurrences.
pub struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
    interval: Duration,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            last: None,
            suppressed: 0,
            interval,
        }
    }

    /// `Some(suppressed_since_last)` when a line may be logged now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fd_budget_stops_at_its_limit_and_refills() {
        let b = FdBudget::new(2);
        assert!(b.take());
        assert!(b.take());
        assert!(!b.take());
        assert_eq!(b.used(), 2);
        b.give_back();
        assert!(b.take());
        b.give_back();
        b.give_back();
        b.give_back();
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn limiter_counts_suppressed_lines() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(11)), Some(2));
    }

    #[test]
    fn exhaustion_is_told_apart_from_a_server_failure() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert!(is_fd_exhaustion(&e(libc::EMFILE)));
        assert!(is_fd_exhaustion(&e(libc::ENFILE)));
        assert!(!is_fd_exhaustion(&e(libc::ENOBUFS)));
        assert!(is_resource_exhaustion(&e(libc::ENOBUFS)));
        assert!(is_resource_exhaustion(&e(libc::ENOMEM)));
        assert!(!is_resource_exhaustion(&e(libc::ECONNREFUSED)));
    }
}
