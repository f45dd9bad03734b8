//! The outcome of one non-blocking I/O step ([`IoStatus`]).
//!
//! Owns only the vocabulary shared by every socket helper in this crate
//! (`udp.rs`, `splice.rs`, the event loop's read/write helpers): how much was
//! done, or why nothing more can be done right now. It does no I/O itself.

use std::io;

/// What one non-blocking read/write/splice/recvmmsg step achieved.
#[derive(Debug)]
pub enum IoStatus {
    /// This many bytes (or datagrams, for batch calls) were moved.
    Progress(usize),
    /// The kernel has nothing more for us now; wait for the next readiness event.
    WouldBlock,
    /// The peer closed its side (a read returned 0 on a stream).
    Closed,
    /// A real error; the `io::Error` keeps its kind (e.g. `ConnectionRefused`).
    Error(io::Error),
}
