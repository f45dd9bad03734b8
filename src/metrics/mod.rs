//! Counters and the Prometheus text exposition (format 0.0.4).
//!
//! Owns: the per-loop counter cells ([`PerLoop`]) that the TCP and UDP
//! proxies and the health checker bump on the data path, the process-wide
//! counters written off the data path (reloads), and (in `expo.rs`,
//! `process.rs`) turning a [`Runtime`](crate::runtime::Runtime) into text.
//!
//! Does not own: serving the text over HTTP (`admin/`), or the shared
//! gauges that already exist for other reasons (open connections per
//! listener and per server, health state): a scrape reads those where they
//! live.
//!
//! # No shared writes on the data path
//!
//! Every counter has one cache-line-aligned cell per event loop, and only
//! that loop writes it (a connection stays on the loop that accepted it; the
//! health checker runs on loop 0). A single writer needs no read-modify-write:
//! the loop does a `Relaxed` load and a `Relaxed` store (two plain `mov`s on
//! x86-64, no `lock` prefix), and no other loop ever touches the line. A
//! scrape sums the cells with `Relaxed` loads: each cell is exact, the sum
//! is a snapshot that may be a few events behind, as Prometheus expects.

pub mod expo;
pub mod process;

use std::sync::atomic::{AtomicU64, Ordering};

/// One loop's counters of one object; 128-byte aligned so two loops'
/// cells never share a cache line (nor an adjacent-line prefetch pair).
#[repr(align(128))]
struct Cell<const N: usize>([AtomicU64; N]);

/// `N` counters of one object (a listener, a server), one cell per loop.
pub struct PerLoop<const N: usize> {
    cells: Box<[Cell<N>]>,
}

impl<const N: usize> PerLoop<N> {
    pub fn new(loops: usize) -> PerLoop<N> {
        PerLoop {
            cells: (0..loops.max(1))
                .map(|_| Cell(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }

    /// Adds `n` to counter `c` of loop `lp`. Only loop `lp` may call this
    /// for its cell: load + store is not atomic against a second writer.
    ///
    /// Built with `RUSTFLAGS="--cfg nvelox_no_counters"` this does nothing:
    /// the baseline of the counting-cost benchmark (`bench/metrics_cost.py`).
    #[inline]
    pub fn add(&self, lp: usize, c: usize, n: u64) {
        #[cfg(not(nvelox_no_counters))]
        {
            let cell = &self.cells[lp % self.cells.len()];
            if let Some(a) = cell.0.get(c) {
                a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
            }
        }
        #[cfg(nvelox_no_counters)]
        let _ = (lp, c, n);
    }

    /// Counter `c` of loop `lp` alone (0 for an unknown counter).
    pub fn of_loop(&self, lp: usize, c: usize) -> u64 {
        let cell = &self.cells[lp % self.cells.len()];
        cell.0.get(c).map_or(0, |a| a.load(Ordering::Relaxed))
    }

    /// Counter `c` summed over every loop.
    pub fn sum(&self, c: usize) -> u64 {
        self.cells
            .iter()
            .filter_map(|cell| cell.0.get(c))
            .fold(0u64, |acc, a| acc.wrapping_add(a.load(Ordering::Relaxed)))
    }
}

impl<const N: usize> std::fmt::Debug for PerLoop<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sums: Vec<u64> = (0..N).map(|c| self.sum(c)).collect();
        f.debug_struct("PerLoop")
            .field("loops", &self.cells.len())
            .field("sums", &sums)
            .finish()
    }
}

/// Counters of one listener (all its ports and sockets together).
pub mod listener {
    /// TCP connections accepted (UDP: sessions opened).
    pub const CONNECTIONS: usize = 0;
    /// Bytes from clients (TCP: relayed to servers; UDP: datagram payloads).
    pub const BYTES_IN: usize = 1;
    /// Bytes to clients.
    pub const BYTES_OUT: usize = 2;
    /// Connections that ended without reaching a server.
    pub const CONNECTION_ERRORS: usize = 3;
    pub const DATAGRAMS_IN: usize = 4;
    pub const DATAGRAMS_OUT: usize = 5;
    /// Datagrams dropped, by reason (`DROP_REASONS`), from this index on.
    pub const DROPS: usize = 6;
    /// HTTP responses sent to clients by status class (1xx..5xx), from
    /// this index on (5 counters).
    pub const HTTP_RESPONSES: usize = DROPS + super::DROP_REASONS.len();
    /// TLS clients refused before any request, by reason
    /// (`TLS_FAILURE_REASONS`), from this index on.
    pub const TLS_FAILURES: usize = HTTP_RESPONSES + 5;
    pub const COUNT: usize = TLS_FAILURES + super::TLS_FAILURE_REASONS.len();
}

/// Why a TLS client was refused (`tls:` listeners, https, and the
/// `sni_routes` ClientHello peeker): the `reason` label values of
/// `nvelox_tls_handshake_failures_total`, in counter order.
pub const TLS_FAILURE_REASONS: [&str; 5] = [
    "handshake_error",
    "peer_closed",
    "handshake_timeout",
    "bad_client_hello",
    "client_hello_timeout",
];

/// Index of a reason in [`TLS_FAILURE_REASONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// A protocol error, a refused certificate, no common ALPN protocol
    /// or version (an alert was sent when possible).
    HandshakeError = 0,
    /// The client closed (or reset) before the handshake ended.
    PeerClosed = 1,
    HandshakeTimeout = 2,
    /// `sni_routes`: not a TLS ClientHello (or the client closed first).
    BadClientHello = 3,
    ClientHelloTimeout = 4,
}

impl TlsFailure {
    /// The counter of this reason among a listener's counters.
    pub fn counter(self) -> usize {
        listener::TLS_FAILURES + self as usize
    }
}

/// Why a UDP datagram was dropped: the `reason` label values, in counter order.
pub const DROP_REASONS: [&str; 8] = [
    "truncated",
    "bad_proxy_header",
    "session_limit",
    "fd_limit",
    "no_server",
    "socket_error",
    "shutting_down",
    "send_error",
];

/// Index of a drop reason in [`DROP_REASONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    Truncated = 0,
    BadProxyHeader = 1,
    SessionLimit = 2,
    FdLimit = 3,
    NoServer = 4,
    SocketError = 5,
    ShuttingDown = 6,
    SendError = 7,
}

/// Counters of one server.
pub mod server {
    /// Connections (UDP: sessions) handed to the server.
    pub const CONNECTIONS: usize = 0;
    pub const BYTES_IN: usize = 1;
    pub const BYTES_OUT: usize = 2;
    /// Connect failures, connect timeouts, resets before any byte.
    pub const CONNECTION_ERRORS: usize = 3;
    /// Failed attempts on this server that were retried on another one.
    pub const RETRIES: usize = 4;
    pub const DATAGRAMS_IN: usize = 5;
    pub const DATAGRAMS_OUT: usize = 6;
    /// Active health checks by result (written by loop 0 only).
    pub const CHECKS_OK: usize = 7;
    pub const CHECKS_FAILED: usize = 8;
    /// `backend_tls` handshakes of traffic connections that failed, by
    /// reason (`BACKEND_TLS_FAILURE_REASONS`), from this index on.
    pub const TLS_FAILURES: usize = 9;
    pub const COUNT: usize = TLS_FAILURES + super::BACKEND_TLS_FAILURE_REASONS.len();
}

/// Why a `backend_tls` handshake with a server failed: the `reason` label
/// values of `nvelox_server_tls_handshake_failures_total`, in counter order.
pub const BACKEND_TLS_FAILURE_REASONS: [&str; 4] = [
    "verify_failed",
    "handshake_error",
    "peer_closed",
    "handshake_timeout",
];

/// Index of a reason in [`BACKEND_TLS_FAILURE_REASONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendTlsFailure {
    /// The server's certificate was refused (untrusted, wrong name, expired).
    VerifyFailed = 0,
    /// Any other TLS error (an alert from the server, no common version).
    HandshakeError = 1,
    /// The server closed or reset the connection during the handshake.
    PeerClosed = 2,
    /// The connect timeout ended during the handshake.
    HandshakeTimeout = 3,
}

impl BackendTlsFailure {
    /// The reason of a failed handshake step, from what the session saw.
    pub fn of(cert_rejected: bool, peer_gone: bool) -> BackendTlsFailure {
        match (cert_rejected, peer_gone) {
            (true, _) => BackendTlsFailure::VerifyFailed,
            (false, true) => BackendTlsFailure::PeerClosed,
            (false, false) => BackendTlsFailure::HandshakeError,
        }
    }

    /// The counter of this reason among a server's counters.
    pub fn counter(self) -> usize {
        server::TLS_FAILURES + self as usize
    }
}

pub type ListenerStats = PerLoop<{ listener::COUNT }>;
pub type ServerStats = PerLoop<{ server::COUNT }>;

/// Reloads by result: written by the main thread only (SIGHUP), never
/// on the data path.
pub static RELOADS_OK: AtomicU64 = AtomicU64::new(0);
pub static RELOADS_FAILED: AtomicU64 = AtomicU64::new(0);

pub fn count_reload(ok: bool) {
    let c = if ok { &RELOADS_OK } else { &RELOADS_FAILED };
    c.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loop_has_its_own_line_and_a_scrape_sums_them() {
        let s = ListenerStats::new(3);
        s.add(0, listener::BYTES_IN, 5);
        s.add(2, listener::BYTES_IN, 7);
        s.add(2, listener::DROPS + Drop::NoServer as usize, 1);
        assert_eq!(s.sum(listener::BYTES_IN), 12);
        assert_eq!(s.sum(listener::DROPS + Drop::NoServer as usize), 1);
        assert_eq!(s.sum(listener::CONNECTIONS), 0);
        assert_eq!(std::mem::align_of::<Cell<{ listener::COUNT }>>(), 128);
        let a = &s.cells[0] as *const _ as usize;
        let b = &s.cells[1] as *const _ as usize;
        assert!(b - a >= 128, "cells of two loops share a cache line");
    }

    #[test]
    fn a_loop_index_beyond_the_cells_and_a_bad_counter_are_harmless() {
        let s = ServerStats::new(2);
        s.add(5, server::CONNECTIONS, 1);
        s.add(0, 99, 1);
        assert_eq!(s.sum(server::CONNECTIONS), 1);
    }
}
