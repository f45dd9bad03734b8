//! Storage of parsed heads, reused on the thread that parsed them.
//!
//! Every request and every response head is copied once ([`super::head`]:
//! the head bytes and the index of its header lines) and dropped as soon as
//! the edited head is written, two heads per exchange on an event loop's
//! thread. Their two vectors come back here when a head is dropped and are
//! taken again by the next head parsed on that thread, instead of two
//! allocations and two frees per head. The same for the box of an
//! exchange's state ([`super::session`]), one per request. Bounded: a few
//! heads per thread, none larger than a common head, and as many exchange
//! boxes as a loop has requests in flight in a busy moment.

use std::cell::RefCell;

use super::session::Exchange;

/// Sets of vectors kept per thread (a loop holds one or two heads at a time).
const KEEP: usize = 4;
/// Exchange boxes kept per thread: an exchange lives as long as its
/// request, so a loop has as many as requests in flight (~130 bytes each).
const KEEP_EXCHANGES: usize = 128;
/// Larger head copies go back to the allocator.
const MAX_RAW: usize = 4 * 1024;
/// Larger header indexes go back to the allocator.
const MAX_LINES: usize = 64;

struct Spare<S> {
    raw: Vec<Vec<u8>>,
    lines: Vec<Vec<S>>,
}

thread_local! {
    static SPARE: RefCell<Spare<super::head::Lines>> = const {
        RefCell::new(Spare { raw: Vec::new(), lines: Vec::new() })
    };
}

/// Empty vectors for a new head (with the capacity of an earlier one when
/// one was given back on this thread).
pub(super) fn take() -> (Vec<u8>, Vec<super::head::Lines>) {
    SPARE
        .try_with(|s| match s.try_borrow_mut() {
            Ok(mut s) => (
                s.raw.pop().unwrap_or_default(),
                s.lines.pop().unwrap_or_default(),
            ),
            Err(_) => Default::default(),
        })
        .unwrap_or_default()
}

/// Keeps a dropped head's vectors for the next head, within the bounds.
pub(super) fn give(mut raw: Vec<u8>, mut lines: Vec<super::head::Lines>) {
    // At thread exit the list may be gone already: the vectors are freed.
    let _ = SPARE.try_with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        if raw.capacity() > 0 && raw.capacity() <= MAX_RAW && s.raw.len() < KEEP {
            raw.clear();
            s.raw.push(raw);
        }
        if lines.capacity() > 0 && lines.capacity() <= MAX_LINES && s.lines.len() < KEEP {
            lines.clear();
            s.lines.push(lines);
        }
    });
}

thread_local! {
    // The boxes themselves are what is kept: a session holds its exchange
    // boxed (small idle connections), and taking one must not allocate.
    #[allow(clippy::vec_box)]
    static EXCHANGES: RefCell<Vec<Box<Exchange>>> = const { RefCell::new(Vec::new()) };
}

/// `x` in a box, the box of an ended exchange when this thread has one.
pub(super) fn boxed(x: Exchange) -> Box<Exchange> {
    let spare = EXCHANGES
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten();
    match spare {
        Some(mut b) => {
            *b = x;
            b
        }
        None => Box::new(x),
    }
}

/// Keeps an ended exchange's box for the next one (at most
/// [`KEEP_EXCHANGES`]).
pub(super) fn unboxed(x: Box<Exchange>) {
    let _ = EXCHANGES.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.len() < KEEP_EXCHANGES {
                s.push(x);
            }
        }
    });
}

/// Exchange boxes kept on this thread.
#[cfg(test)]
pub(super) fn kept_exchanges() -> usize {
    EXCHANGES.with(|s| s.borrow().len())
}

/// Sets kept on this thread (raw copies, header indexes).
#[cfg(test)]
pub(super) fn kept() -> (usize, usize) {
    SPARE.with(|s| {
        let s = s.borrow();
        (s.raw.len(), s.lines.len())
    })
}
