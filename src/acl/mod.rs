//! Access control and abuse limits of a listener, pure: CIDR allow/deny
//! lists ([`ipset`]), token buckets with the time passed in ([`bucket`]),
//! the bounded per-client table ([`per_ip`]), and the decision that
//! combines them with a listener's [`AccessPlan`] ([`access`]).
//!
//! Owns the rules and their state. Does not own sockets, logging, or when
//! a check is made: the TCP accept path, the PROXY header intake and UDP
//! session admission ask [`access::ListenerAccess`] and act on its answer.

pub mod access;
pub mod bucket;
pub mod ipset;
pub mod per_ip;

pub use access::{AccessPlan, Denied, ListenerAccess};
pub use bucket::{Rate, TokenBucket};
pub use ipset::{parse_cidr, CidrError, IpSet};
pub use per_ip::{PerIpTable, DEFAULT_TRACKED_SOURCES};
