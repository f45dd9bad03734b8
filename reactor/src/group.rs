//! `LoopGroup`: N event loops on N threads.
//!
//! The group does not bind anything itself: the caller builds one handler
//! per loop, giving each the sockets it should own. [`assign`] is the
//! spreading rule for plain listeners (listener `i` goes to loop
//! `i % loops`, so 10,000 ports cost 10,000 fds whatever the loop count);
//! a `reuseport` listener is bound once per loop by the caller instead.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::event_loop::EventLoop;
use crate::handler::Handler;
use crate::mailbox::Sender;
use crate::stats::LoopStats;

/// Which loop owns listener number `index`.
pub fn assign(index: usize, loops: usize) -> usize {
    index % loops.max(1)
}

pub struct LoopGroup<M> {
    senders: Vec<Sender<M>>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    stats: Vec<Arc<LoopStats>>,
}

impl<M: Send + 'static> LoopGroup<M> {
    /// Starts one loop per handler, on threads named `{name}-{i}`.
    /// `make(i)` builds handler `i` on the calling thread.
    pub fn start<H, F>(loops: usize, name: &str, make: F) -> io::Result<LoopGroup<M>>
    where
        H: Handler<Message = M> + Send + 'static,
        H::Tag: Send,
        H::Timer: Send,
        F: FnMut(usize) -> H,
    {
        Self::start_with_stats(loops, name, &[], make)
    }

    /// As [`start`](Self::start), loop `i` recording its wakeups into
    /// `stats[i]` (a fresh [`LoopStats`] where `stats` is shorter), so the
    /// caller can hand the figures to a handler before the loops exist.
    pub fn start_with_stats<H, F>(
        loops: usize,
        name: &str,
        stats: &[Arc<LoopStats>],
        mut make: F,
    ) -> io::Result<LoopGroup<M>>
    where
        H: Handler<Message = M> + Send + 'static,
        H::Tag: Send,
        H::Timer: Send,
        F: FnMut(usize) -> H,
    {
        let mut group = LoopGroup {
            senders: Vec::new(),
            threads: Vec::new(),
            stats: Vec::new(),
        };
        for i in 0..loops.max(1) {
            let s = stats
                .get(i)
                .map(Arc::clone)
                .unwrap_or_else(|| Arc::new(LoopStats::new()));
            group.stats.push(Arc::clone(&s));
            let event_loop = EventLoop::<H>::with_stats(i, s)?;
            let mut handler = make(i);
            group.senders.push(event_loop.sender());
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || event_loop.run(&mut handler));
            match spawned {
                Ok(t) => group.threads.push(t),
                Err(e) => {
                    group.stop_and_join();
                    return Err(e);
                }
            }
        }
        Ok(group)
    }

    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    pub fn sender(&self, i: usize) -> &Sender<M> {
        &self.senders[i]
    }

    pub fn senders(&self) -> &[Sender<M>] {
        &self.senders
    }

    /// Each loop's wakeup figures, by loop index.
    pub fn stats(&self) -> &[Arc<LoopStats>] {
        &self.stats
    }

    /// True once every loop has returned from `run`.
    pub fn all_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    /// Asks every loop to stop, then joins every thread.
    pub fn stop(mut self) -> Vec<io::Result<()>> {
        self.stop_and_join()
    }

    /// Waits for every loop to end on its own (after a message made it stop).
    pub fn join(mut self) -> Vec<io::Result<()>> {
        self.join_all()
    }

    fn stop_and_join(&mut self) -> Vec<io::Result<()>> {
        for s in &self.senders {
            s.stop();
        }
        self.join_all()
    }

    fn join_all(&mut self) -> Vec<io::Result<()>> {
        self.threads
            .drain(..)
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(io::Error::other("event loop thread panicked")))
            })
            .collect()
    }
}

impl<M: Send + 'static> LoopGroup<M> {
    /// Posts a copy of `msg` to every loop.
    pub fn broadcast(&self, msg: M)
    where
        M: Clone,
    {
        for s in &self.senders {
            let _ = s.send(msg.clone());
        }
    }
}

impl<M> Drop for LoopGroup<M> {
    fn drop(&mut self) {
        for s in &self.senders {
            s.stop();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
