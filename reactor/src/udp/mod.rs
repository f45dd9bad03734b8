//! Batched UDP I/O that knows each datagram's destination address.
//!
//! Owns the `recvmmsg(2)` / `sendmmsg(2)` / `sendmsg(2)` plumbing and the
//! `IP_PKTINFO` / `IPV6_PKTINFO` control messages, so that a socket bound to
//! a wildcard (`0.0.0.0`, `[::]`, dual-stack) can learn which local address a
//! client wrote to ([`RecvMeta::local_ip`]) and answer from that same address
//! ([`send_from`], [`SendBatch`]); otherwise the kernel would pick the source
//! by routing and the client would drop the reply as coming from a stranger.
//! Receiving pktinfo must be switched on at bind time
//! (`listener::BindOptions::recv_pktinfo`). Sessions, flows and what the
//! datagrams mean belong to the callers.
//!
//! On a dual-stack socket IPv4 peers appear as IPv4-mapped IPv6 addresses
//! (`[::ffff:1.2.3.4]:p`), which is also the form to send back to; their
//! `local_ip` is reported as plain IPv4 and may be passed to the send
//! functions as is.
//!
//! Split by concept: `recv` (the `recvmmsg` batch, [`RecvBatch`]), `send`
//! ([`send_from`], the `sendmmsg` batch [`SendBatch`]) and `cmsg` (encoding
//! and decoding the PKTINFO control messages both of them carry).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

mod cmsg;
mod recv;
mod send;

pub use recv::{RecvBatch, RecvMeta};
pub use send::{send_from, SendBatch};

/// Linux caps one recvmmsg/sendmmsg call at UIO_MAXIOV messages.
const MAX_BATCH: usize = 1024;

/// Placeholder peer for a datagram whose source address the kernel did not
/// give in a family we know; cannot happen on AF_INET/AF_INET6 sockets.
const UNKNOWN_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

#[cfg(test)]
mod tests;
