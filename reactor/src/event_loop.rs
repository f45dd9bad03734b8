//! `EventLoop`: one `mio::Poll` on one thread, driving one [`Handler`].
//!
//! Each iteration: poll (with a timeout from the timer wheel, zero when
//! tokens were re-queued), read the clock once, dispatch readiness events,
//! then re-queued tokens, then mailbox messages, then due timers, then
//! `on_tick`; finally token slots removed during the iteration are released.
//! Before the next poll the clock is read again (for the poll's timeout),
//! and the wakeup's duration and event count go into the loop's
//! [`LoopStats`].
//!
//! A removed token is never delivered again: within the iteration its slot
//! stays reserved (its tag reads `None`), and before the slot is released
//! every re-queued entry for it is dropped, so a source that reuses the slot
//! in a later iteration cannot receive the closed one's re-queued `Ready`.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Registry};

use crate::handler::{Action, Handler, Ready};
use crate::mailbox::{Sender, Shared};
use crate::stats::LoopStats;
use crate::timer::{TimerKey, TimerWheel};
use crate::token::{Token, Tokens};

const WAKER: mio::Token = mio::Token(usize::MAX);

/// What a handler can do to its loop from inside a callback.
pub struct Ctx<H: Handler> {
    registry: Registry,
    now: Instant,
    tokens: Tokens<H::Tag>,
    timers: TimerWheel<H::Timer>,
    requeued: Vec<(Token, Ready)>,
    stopping: bool,
    loop_index: usize,
    poller_ops: u64,
}

impl<H: Handler> Ctx<H> {
    /// The time read once at the start of this iteration.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Which loop of a `LoopGroup` this is (0 for a lone loop).
    pub fn loop_index(&self) -> usize {
        self.loop_index
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Reserves a token for `tag` and registers `source` under it.
    pub fn register<S: Source + ?Sized>(
        &mut self,
        source: &mut S,
        interest: Interest,
        tag: H::Tag,
    ) -> io::Result<Token> {
        let token = self.tokens.insert(tag);
        self.poller_ops += 1;
        if let Err(e) = self.registry.register(source, token.into(), interest) {
            self.tokens.remove(token);
            return Err(e);
        }
        Ok(token)
    }

    pub fn reregister<S: Source + ?Sized>(
        &mut self,
        source: &mut S,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.poller_ops += 1;
        self.registry.reregister(source, token.into(), interest)
    }

    /// Deregisters `source` and removes its token; returns the tag.
    pub fn deregister<S: Source + ?Sized>(
        &mut self,
        source: &mut S,
        token: Token,
    ) -> Option<H::Tag> {
        self.poller_ops += 1;
        let _ = self.registry.deregister(source);
        self.tokens.remove(token)
    }

    /// Removes a token whose source is already closed (dropping an fd
    /// removes it from epoll).
    pub fn forget(&mut self, token: Token) -> Option<H::Tag> {
        self.tokens.remove(token)
    }

    /// Deregisters `source` but keeps its token and tag (pause).
    pub fn pause<S: Source + ?Sized>(&mut self, source: &mut S) {
        self.poller_ops += 1;
        let _ = self.registry.deregister(source);
    }

    /// Registers a paused source again under its token. Edge-triggered epoll
    /// reports it at once if it became ready while paused.
    pub fn resume<S: Source + ?Sized>(
        &mut self,
        source: &mut S,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.poller_ops += 1;
        self.registry.register(source, token.into(), interest)
    }

    /// How many poller changes (`epoll_ctl`: register, reregister,
    /// deregister, pause, resume) went through this `Ctx` so far: lets tests
    /// and benchmarks check what a policy costs in system calls.
    pub fn poller_ops(&self) -> u64 {
        self.poller_ops
    }

    pub fn tag(&self, token: Token) -> Option<&H::Tag> {
        self.tokens.get(token)
    }

    pub fn tag_mut(&mut self, token: Token) -> Option<&mut H::Tag> {
        self.tokens.get_mut(token)
    }

    /// Live tokens.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    pub fn set_timer(&mut self, at: Instant, timer: H::Timer) -> TimerKey {
        self.timers.insert(at, timer)
    }

    /// Arms `timer` for `after` from [`now`](Self::now). Never panics: a
    /// delay too large for `Instant` (e.g. `Duration::MAX`) means "never".
    pub fn set_timer_after(&mut self, after: Duration, timer: H::Timer) -> TimerKey {
        self.timers.insert_after(self.now, after, timer)
    }

    pub fn cancel_timer(&mut self, key: TimerKey) -> Option<H::Timer> {
        self.timers.cancel(key)
    }

    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Delivers `ready` for `token` again at the end of this batch: use it
    /// when the per-wakeup budget ran out before `WouldBlock`, so other
    /// sources get their turn (edge-triggered epoll will not repeat it).
    /// Re-queuing a token that is already removed does nothing.
    pub fn requeue(&mut self, token: Token, ready: Ready) {
        if self.tokens.get(token).is_some() {
            self.requeued.push((token, ready));
        }
    }

    /// End of an iteration: forgets the re-queued entries of tokens removed
    /// during it, then frees their slots (in that order: once freed, a slot
    /// can belong to a new source that must not get the old one's `Ready`).
    fn release_removed_tokens(&mut self) {
        let tokens = &self.tokens;
        self.requeued.retain(|(t, _)| tokens.get(*t).is_some());
        self.tokens.release_removed();
    }

    /// Stop after this batch.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping
    }
}

/// One event loop. Create it, register sources through [`ctx`](Self::ctx)
/// or in `Handler::on_start`, then [`run`](Self::run) it on its thread.
pub struct EventLoop<H: Handler> {
    poll: Poll,
    events: Events,
    ctx: Ctx<H>,
    mailbox: Arc<Shared<H::Message>>,
    stats: Arc<LoopStats>,
}

impl<H: Handler> EventLoop<H> {
    pub fn new() -> io::Result<Self> {
        Self::with_index(0)
    }

    pub(crate) fn with_index(loop_index: usize) -> io::Result<Self> {
        Self::with_stats(loop_index, Arc::new(LoopStats::new()))
    }

    /// A loop that records its wakeups into `stats` (which the caller may
    /// read from any thread while the loop runs).
    pub fn with_stats(loop_index: usize, stats: Arc<LoopStats>) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        let registry = poll.registry().try_clone()?;
        let now = Instant::now();
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(1024),
            ctx: Ctx {
                registry,
                now,
                tokens: Tokens::new(),
                timers: TimerWheel::new(now),
                requeued: Vec::new(),
                stopping: false,
                loop_index,
                poller_ops: 0,
            },
            mailbox: Arc::new(Shared::new(waker)),
            stats,
        })
    }

    /// This loop's wakeup figures.
    pub fn stats(&self) -> Arc<LoopStats> {
        Arc::clone(&self.stats)
    }

    /// A sender for this loop's mailbox.
    pub fn sender(&self) -> Sender<H::Message> {
        Sender {
            shared: Arc::clone(&self.mailbox),
        }
    }

    pub fn ctx(&mut self) -> &mut Ctx<H> {
        &mut self.ctx
    }

    /// Runs until a callback returns `Action::Stop`, `ctx.stop()` is called,
    /// or a `Sender::stop` arrives. Only a failing `epoll_wait` (not EINTR)
    /// makes it return an error.
    pub fn run(mut self, handler: &mut H) -> io::Result<()> {
        let result = self.run_inner(handler);
        self.mailbox.close();
        result
    }

    fn run_inner(&mut self, handler: &mut H) -> io::Result<()> {
        let ctx = &mut self.ctx;
        ctx.now = Instant::now();
        if handler.on_start(ctx) == Action::Stop {
            ctx.stopping = true;
        }
        let mut messages = VecDeque::new();
        let mut due = Vec::new();
        let mut requeued = Vec::new();
        // When the last wakeup started and how many events it had.
        let mut awake: Option<(Instant, usize)> = None;
        while !ctx.stopping && !self.mailbox.stop_requested() {
            let before_poll = Instant::now();
            if let Some((since, events)) = awake.take() {
                self.stats
                    .record_wakeup(before_poll.saturating_duration_since(since), events);
            }
            let timeout = if !ctx.requeued.is_empty() {
                Some(Duration::ZERO)
            } else {
                ctx.timers.next_deadline().map(|d| {
                    // Round up so we never wake a hair early and spin.
                    let wait = d.saturating_duration_since(before_poll);
                    let ms = u64::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
                    Duration::from_millis(ms)
                })
            };
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            ctx.now = Instant::now();
            let mut stop = false;
            let mut events = 0;
            for event in self.events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                events += 1;
                let token = Token::from(event.token());
                if ctx.tokens.get(token).is_none() {
                    continue;
                }
                stop |= handler.on_ready(ctx, token, Ready::from_event(event)) == Action::Stop;
            }
            std::mem::swap(&mut requeued, &mut ctx.requeued);
            self.stats.record_requeues(requeued.len());
            for (token, ready) in requeued.drain(..) {
                if ctx.tokens.get(token).is_some() {
                    stop |= handler.on_ready(ctx, token, ready) == Action::Stop;
                }
            }
            self.mailbox.take_all(&mut messages);
            for msg in messages.drain(..) {
                stop |= handler.on_message(ctx, msg) == Action::Stop;
            }
            ctx.timers.expire(ctx.now, &mut due);
            for timer in due.drain(..) {
                stop |= handler.on_timer(ctx, timer) == Action::Stop;
            }
            stop |= handler.on_tick(ctx) == Action::Stop;
            ctx.release_removed_tokens();
            if stop {
                ctx.stopping = true;
            }
            awake = Some((ctx.now, events));
        }
        ctx.stopping = true;
        handler.on_stop(ctx);
        ctx.release_removed_tokens();
        Ok(())
    }
}
