//! nvelox-reactor: a small, explicit event-loop reactor over `mio`.
//!
//! It knows sockets, readiness, timers and threads — nothing about load
//! balancing. The load balancer (and the examples: an echo server, a
//! 10,000-port listener) are just [`Handler`]s.
//!
//! # The contract
//!
//! * **One loop, one thread, one `mio::Poll`.** An [`EventLoop`] runs one
//!   [`Handler`] until it stops. A [`LoopGroup`] runs N of them on N threads;
//!   other threads talk to a loop only through its [`Sender`] (mailbox + waker).
//! * **Edge-triggered.** Readiness is reported once per edge. After an event,
//!   a handler must read or write until `WouldBlock` — the [`io`] helpers do
//!   that loop and return an [`IoStatus`] — or until its per-wakeup budget
//!   (see [`DEFAULT_BUDGET`]) is spent; in the latter case it calls
//!   [`Ctx::requeue`] so the token is served again after every other ready
//!   source had its turn. Forgetting either starves the source forever.
//! * **Who owns what.** The handler owns its sockets and per-source state.
//!   The loop owns the poller, the [`Tokens`] (token -> caller's tag), the
//!   [`TimerWheel`] and the mailbox. A token is created by [`Ctx::register`]
//!   and removed by [`Ctx::deregister`]/[`Ctx::forget`]; its slot is freed
//!   only at the end of the current iteration (events, re-queued tokens,
//!   messages, timers, `on_tick`), so a later event in the same iteration
//!   for a closed source finds no tag and is skipped rather than delivered
//!   to an unrelated new source; its pending re-queues are dropped before
//!   the slot is freed, so they never reach the slot's next owner either.
//! * **Time is read once per iteration** ([`Ctx::now`]) and passed down; the
//!   timer wheel never reads the clock.
//! * **The loop never exits on I/O errors** of individual sockets; only a
//!   failing `epoll_wait` ends `run` with an error.

pub mod bind;
pub mod event_loop;
pub mod group;
pub mod handler;
pub mod io;
pub mod listener;
pub mod mailbox;
pub mod splice;
pub mod stats;
pub mod sys;
pub mod timer;
pub mod token;
pub mod udp;

pub use bind::{BindError, BindHost, BindSpec};
pub use event_loop::{Ctx, EventLoop};
pub use group::LoopGroup;
pub use handler::{Action, Handler, Ready};
pub use io::IoStatus;
pub use mailbox::Sender;
pub use mio::Interest;
pub use stats::{LoopSnapshot, LoopStats};
pub use timer::{TimerKey, TimerWheel};
pub use token::{Token, Tokens};

/// A sensible per-wakeup budget: how many accepts, reads or datagrams one
/// source may consume before it is re-queued behind the others.
pub const DEFAULT_BUDGET: usize = 64;
