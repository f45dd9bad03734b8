//! The timer wheel as it was before issue 11 (bug 3), kept only as the
//! baseline of the `timer_bench` example: a single 1,024-slot hashed wheel
//! whose `next_deadline` walks every entry beyond one turn. Not used by the
//! reactor.

#![allow(dead_code)]

use slab::Slab;
use std::time::{Duration, Instant};

const SLOTS: usize = 1024;
const NIL: usize = usize::MAX;

/// Handle for cancelling a timer. Stale keys (fired or cancelled) are
/// recognised by their generation and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OldTimerKey {
    index: usize,
    generation: u64,
}

#[derive(Debug)]
struct Entry<T> {
    deadline: u64,
    generation: u64,
    prev: usize,
    next: usize,
    value: T,
}

#[derive(Debug)]
pub struct OldTimerWheel<T> {
    origin: Instant,
    /// Every tick < `current` has been processed.
    current: u64,
    heads: Vec<usize>,
    entries: Slab<Entry<T>>,
    generation: u64,
}

impl<T> OldTimerWheel<T> {
    pub fn new(origin: Instant) -> Self {
        OldTimerWheel {
            origin,
            current: 0,
            heads: vec![NIL; SLOTS],
            entries: Slab::new(),
            generation: 0,
        }
    }

    fn tick_ceil(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.origin);
        let ms = d.as_millis() as u64;
        if d > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    fn tick_floor(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// Schedules `value` for `deadline` (a past deadline fires on the next `expire`).
    pub fn insert(&mut self, deadline: Instant, value: T) -> OldTimerKey {
        let tick = self.tick_ceil(deadline).max(self.current);
        self.generation += 1;
        let slot = (tick % SLOTS as u64) as usize;
        let head = self.heads[slot];
        let index = self.entries.insert(Entry {
            deadline: tick,
            generation: self.generation,
            prev: NIL,
            next: head,
            value,
        });
        if head != NIL {
            self.entries[head].prev = index;
        }
        self.heads[slot] = index;
        OldTimerKey {
            index,
            generation: self.generation,
        }
    }

    /// Cancels a pending timer, returning its value; `None` if it already
    /// fired or was cancelled.
    pub fn cancel(&mut self, key: OldTimerKey) -> Option<T> {
        match self.entries.get(key.index) {
            Some(e) if e.generation == key.generation => Some(self.unlink(key.index)),
            _ => None,
        }
    }

    fn unlink(&mut self, index: usize) -> T {
        let e = self.entries.remove(index);
        if e.prev != NIL {
            self.entries[e.prev].next = e.next;
        } else {
            self.heads[(e.deadline % SLOTS as u64) as usize] = e.next;
        }
        if e.next != NIL {
            self.entries[e.next].prev = e.prev;
        }
        e.value
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Moves every timer due at `now` into `out`, in deadline order
    /// (timers with the same deadline in unspecified order).
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        let target = self.tick_floor(now);
        if target < self.current {
            return;
        }
        // More than a full turn behind: every slot is visited once.
        let span = (target - self.current + 1).min(SLOTS as u64);
        let start = self.current;
        for step in 0..span {
            let tick = start + step;
            let slot = (tick % SLOTS as u64) as usize;
            let mut due: Vec<(u64, usize)> = Vec::new();
            let mut i = self.heads[slot];
            while i != NIL {
                let e = &self.entries[i];
                if e.deadline <= target {
                    due.push((e.deadline, i));
                }
                i = e.next;
            }
            if due.len() > 1 {
                due.sort_unstable();
            }
            // A catch-up pass over a whole turn can find later-deadline
            // entries in an earlier slot; sort those at the end per slot is
            // enough for the ms-ordering the loop relies on in practice.
            for (_, idx) in due {
                out.push(self.unlink(idx));
            }
        }
        self.current = target + 1;
    }

    /// The earliest instant at which `expire` may have something to do, or
    /// `None` when the wheel is empty. Looks at most one turn ahead; for
    /// timers beyond it, returns the end of the turn (a harmless early wake).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.entries.is_empty() {
            return None;
        }
        for step in 0..SLOTS as u64 {
            let tick = self.current + step;
            let mut i = self.heads[(tick % SLOTS as u64) as usize];
            while i != NIL {
                let e = &self.entries[i];
                if e.deadline <= tick {
                    return Some(self.origin + Duration::from_millis(tick));
                }
                i = e.next;
            }
        }
        Some(self.origin + Duration::from_millis(self.current + SLOTS as u64))
    }
}
