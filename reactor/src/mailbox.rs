//! Mailbox: a cross-thread queue plus a `mio::Waker`, to post messages to a
//! loop from any thread (reload, shutdown, hand-off of sockets).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) struct Shared<M> {
    queue: Mutex<VecDeque<M>>,
    stop: AtomicBool,
    closed: AtomicBool,
    waker: mio::Waker,
}

impl<M> Shared<M> {
    pub(crate) fn new(waker: mio::Waker) -> Self {
        Shared {
            queue: Mutex::new(VecDeque::new()),
            stop: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            waker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<M>> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn take_all(&self, out: &mut VecDeque<M>) {
        let mut q = self.lock();
        out.append(&mut q);
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock().clear();
    }
}

/// The sending half of a loop's mailbox. Cheap to clone, `Send + Sync`.
pub struct Sender<M> {
    pub(crate) shared: Arc<Shared<M>>,
}

impl<M> Clone for Sender<M> {
    fn clone(&self) -> Self {
        Sender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M> Sender<M> {
    /// Queues `msg` and wakes the loop. Gives the message back if the loop
    /// has already ended.
    pub fn send(&self, msg: M) -> Result<(), M> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(msg);
        }
        self.shared.lock().push_back(msg);
        let _ = self.wake();
        Ok(())
    }

    /// Asks the loop to stop after its current batch.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.wake();
    }

    fn wake(&self) -> io::Result<()> {
        self.shared.waker.wake()
    }

    /// True once the loop's `run` has returned.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}
