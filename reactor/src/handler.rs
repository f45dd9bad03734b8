//! The `Handler` trait: what an event loop calls, gnet-style.
//!
//! Every callback gets the loop's [`Ctx`] and returns an [`Action`]. The
//! handler owns its sockets and state; the loop owns the poller, the tokens,
//! the timers and the mailbox.

use crate::event_loop::Ctx;
use crate::token::Token;

/// What the loop does after a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Finish the current batch, call `on_stop`, and return from `run`.
    Stop,
}

/// Readiness of one source, copied out of a `mio::event::Event`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// The peer shut down its write side (FIN) or the socket is closed.
    pub read_closed: bool,
    /// Our write side can no longer be used (peer reset / shut down reading).
    pub write_closed: bool,
    pub error: bool,
}

impl Ready {
    pub const READABLE: Ready = Ready {
        readable: true,
        writable: false,
        read_closed: false,
        write_closed: false,
        error: false,
    };
    pub const WRITABLE: Ready = Ready {
        readable: false,
        writable: true,
        read_closed: false,
        write_closed: false,
        error: false,
    };

    pub fn from_event(e: &mio::event::Event) -> Ready {
        Ready {
            readable: e.is_readable(),
            writable: e.is_writable(),
            read_closed: e.is_read_closed(),
            write_closed: e.is_write_closed(),
            error: e.is_error(),
        }
    }

    /// Both readiness sets combined (used when a token is re-queued twice).
    pub fn merge(self, o: Ready) -> Ready {
        Ready {
            readable: self.readable || o.readable,
            writable: self.writable || o.writable,
            read_closed: self.read_closed || o.read_closed,
            write_closed: self.write_closed || o.write_closed,
            error: self.error || o.error,
        }
    }
}

/// The callbacks of one event loop.
///
/// * `Tag`: what a [`Token`] stands for (look it up with `ctx.tag(token)`).
/// * `Timer`: the payload of a timer; returned to `on_timer` when it fires.
/// * `Message`: what other threads post through the loop's mailbox.
pub trait Handler: Sized {
    type Tag;
    type Timer;
    type Message: Send + 'static;

    /// Once, before the first poll: register listeners, arm timers.
    fn on_start(&mut self, _ctx: &mut Ctx<Self>) -> Action {
        Action::Continue
    }

    /// A registered source is ready. Edge-triggered: read/write until
    /// `WouldBlock` or until the budget is spent, then `ctx.requeue`.
    /// A closed source's token is never delivered, not even a re-queue of
    /// it (slots are freed at the end of the iteration, after its re-queues
    /// are dropped).
    fn on_ready(&mut self, ctx: &mut Ctx<Self>, token: Token, ready: Ready) -> Action;

    /// A timer set with `ctx.set_timer` is due.
    fn on_timer(&mut self, _ctx: &mut Ctx<Self>, _timer: Self::Timer) -> Action {
        Action::Continue
    }

    /// A message arrived through the mailbox.
    fn on_message(&mut self, _ctx: &mut Ctx<Self>, _msg: Self::Message) -> Action {
        Action::Continue
    }

    /// After every batch of events, messages and timers.
    fn on_tick(&mut self, _ctx: &mut Ctx<Self>) -> Action {
        Action::Continue
    }

    /// Once, after the loop decided to stop (by `Action::Stop` or a
    /// `Sender::stop`), before `run` returns.
    fn on_stop(&mut self, _ctx: &mut Ctx<Self>) {}
}
