//! A hierarchical timer wheel with millisecond resolution.
//!
//! Owns the pending timers of one loop and the order in which they fire. It
//! does not own the clock (time is always passed in; the wheel never reads
//! it) nor what a timer means (the payload `T`).
//!
//! Eleven levels of 64 slots: a slot of level L spans 64^L milliseconds, so
//! together they cover every `u64` millisecond tick and no deadline is ever
//! clamped (a timer set `Duration::MAX` ahead simply never fires). An entry
//! sits at the level of the highest 6-bit group in which its tick differs
//! from the wheel's current tick; when the wheel reaches the start of its
//! slot it moves ("cascades") to a lower level, so an entry is moved at most
//! ten times in its life, whatever the number of other timers.
//!
//! Costs: insert and cancel are O(1) (entries live in a `Slab`, chained into
//! their slot by intrusive doubly linked lists). Each level keeps a 64-bit
//! map of its occupied slots, so [`TimerWheel::next_deadline`] is eleven
//! `trailing_zeros`, never a walk over the entries, and
//! [`TimerWheel::expire`] touches only the entries that fire or cascade.
//! Deadlines are rounded up to the next millisecond: a timer never fires
//! early, and timers fire in deadline order.

use slab::Slab;
use std::time::{Duration, Instant};

const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
/// 11 * 6 = 66 bits >= every `u64` tick.
const LEVELS: usize = 11;
const NIL: usize = usize::MAX;
/// `next_deadline` never reports a wait longer than this: a timer further
/// away costs one harmless wake a day instead of an `Instant` that may not
/// be representable.
const MAX_WAIT_MS: u64 = 86_400_000;

/// Handle for cancelling a timer. Stale keys (fired or cancelled) are
/// recognised by their generation and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: usize,
    generation: u64,
}

#[derive(Debug)]
struct Entry<T> {
    /// Tick (ms since `origin`, rounded up) at which it fires.
    deadline: u64,
    generation: u64,
    level: u8,
    slot: u8,
    prev: usize,
    next: usize,
    value: T,
}

#[derive(Debug)]
pub struct TimerWheel<T> {
    origin: Instant,
    /// Every tick < `current` has been processed.
    current: u64,
    heads: Vec<[usize; SLOTS]>,
    /// Bit s of `occupied[L]`: slot s of level L holds at least one entry.
    occupied: [u64; LEVELS],
    entries: Slab<Entry<T>>,
    generation: u64,
    /// Entries fired or moved by `expire` (what the O(1) tests count).
    #[cfg(test)]
    visited: u64,
}

/// The level at which `tick` is kept while the wheel stands at `current`.
fn level_for(current: u64, tick: u64) -> usize {
    let masked = (current ^ tick) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / LEVEL_BITS) as usize
}

fn slot_for(level: usize, tick: u64) -> usize {
    ((tick >> (LEVEL_BITS * level as u32)) & (SLOTS as u64 - 1)) as usize
}

/// The first tick covered by `slot` of `level`, in the level's block that
/// contains `current`.
fn slot_start(level: usize, current: u64, slot: usize) -> u64 {
    let shift = LEVEL_BITS * level as u32;
    let block_bits = shift + LEVEL_BITS;
    let block = if block_bits >= 64 {
        0
    } else {
        current & !((1u64 << block_bits) - 1)
    };
    block + ((slot as u64) << shift)
}

fn millis_ceil(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if d.subsec_nanos() % 1_000_000 != 0 {
        ms.saturating_add(1)
    } else {
        ms
    }
}

impl<T> TimerWheel<T> {
    pub fn new(origin: Instant) -> Self {
        TimerWheel {
            origin,
            current: 0,
            heads: vec![[NIL; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            entries: Slab::new(),
            generation: 0,
            #[cfg(test)]
            visited: 0,
        }
    }

    fn tick_ceil(&self, at: Instant) -> u64 {
        millis_ceil(at.saturating_duration_since(self.origin))
    }

    fn tick_floor(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    /// Schedules `value` for `deadline` (a past deadline fires on the next `expire`).
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        let tick = self.tick_ceil(deadline);
        self.insert_tick(tick, value)
    }

    /// Schedules `value` for `now + after`. Never panics: a deadline past
    /// what `Instant` can hold is kept as "never" (the furthest tick).
    pub fn insert_after(&mut self, now: Instant, after: Duration, value: T) -> TimerKey {
        match now.checked_add(after) {
            Some(at) => self.insert(at, value),
            None => self.insert_tick(u64::MAX, value),
        }
    }

    fn insert_tick(&mut self, tick: u64, value: T) -> TimerKey {
        self.generation += 1;
        let index = self.entries.insert(Entry {
            deadline: tick.max(self.current),
            generation: self.generation,
            level: 0,
            slot: 0,
            prev: NIL,
            next: NIL,
            value,
        });
        self.link(index);
        TimerKey {
            index,
            generation: self.generation,
        }
    }

    /// Chains entry `index` into the slot its deadline maps to from `current`.
    fn link(&mut self, index: usize) {
        let level = level_for(self.current, self.entries[index].deadline);
        let slot = slot_for(level, self.entries[index].deadline);
        let head = self.heads[level][slot];
        let e = &mut self.entries[index];
        e.level = level as u8;
        e.slot = slot as u8;
        e.prev = NIL;
        e.next = head;
        if head != NIL {
            self.entries[head].prev = index;
        }
        self.heads[level][slot] = index;
        self.occupied[level] |= 1 << slot;
    }

    /// Takes entry `index` out of its slot's list (it stays in the slab).
    fn unlink(&mut self, index: usize) {
        let e = &self.entries[index];
        let (level, slot, prev, next) = (e.level as usize, e.slot as usize, e.prev, e.next);
        if prev != NIL {
            self.entries[prev].next = next;
        } else {
            self.heads[level][slot] = next;
            if next == NIL {
                self.occupied[level] &= !(1 << slot);
            }
        }
        if next != NIL {
            self.entries[next].prev = prev;
        }
    }

    /// Cancels a pending timer, returning its value; `None` if it already
    /// fired or was cancelled.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        match self.entries.get(key.index) {
            Some(e) if e.generation == key.generation => {
                self.unlink(key.index);
                Some(self.entries.remove(key.index).value)
            }
            _ => None,
        }
    }

    /// Entries fired or moved by `expire` so far.
    #[cfg(test)]
    fn visited(&self) -> u64 {
        self.visited
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The next slot to process and the tick at which it is due: the
    /// earliest occupied slot over all levels. For a level above 0 that tick
    /// is when its entries move down, never later than any of their deadlines.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        let mut best: Option<(usize, usize, u64)> = None;
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let ahead = occupied & (u64::MAX << slot_for(level, self.current));
            // Slots behind `current` are never occupied; should one be, it
            // is processed at once rather than lost.
            let bits = if ahead != 0 { ahead } else { occupied };
            let slot = bits.trailing_zeros() as usize;
            let due = slot_start(level, self.current, slot).max(self.current);
            if best.map_or(true, |(_, _, t)| due < t) {
                best = Some((level, slot, due));
            }
        }
        best
    }

    /// Moves every timer due at `now` into `out`, in deadline order
    /// (timers with the same deadline in unspecified order).
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        let target = self.tick_floor(now);
        if target < self.current {
            return;
        }
        while let Some((level, slot, due)) = self.next_expiration() {
            if due > target {
                break;
            }
            self.current = due;
            let mut i = std::mem::replace(&mut self.heads[level][slot], NIL);
            self.occupied[level] &= !(1 << slot);
            while i != NIL {
                #[cfg(test)]
                {
                    self.visited += 1;
                }
                let next = self.entries[i].next;
                if self.entries[i].deadline <= self.current {
                    out.push(self.entries.remove(i).value);
                } else {
                    self.link(i);
                }
                i = next;
            }
        }
        self.current = target.saturating_add(1);
    }

    /// The earliest instant at which `expire` may have something to do
    /// (fire timers or move them down a level), or `None` when the wheel is
    /// empty. O(1): it looks at the occupancy maps, not at the entries.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (_, _, due) = self.next_expiration()?;
        let tick = due.min(self.current.saturating_add(MAX_WAIT_MS));
        self.origin
            .checked_add(Duration::from_millis(tick))
            .or_else(|| self.origin.checked_add(Duration::from_millis(self.current)))
    }
}

#[cfg(test)]
#[path = "timer_tests.rs"]
mod tests;
