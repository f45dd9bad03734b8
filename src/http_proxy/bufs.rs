//! A per-loop free list of byte buffers for HTTP connections.
//!
//! A connection takes buffers (client in/out, server in/out, the held
//! request for a retry) only while a request is in flight and gives them
//! back when it ends, so an idle keep-alive connection holds none; the
//! free list saves the allocator a malloc, the growth reallocs and a free
//! per buffer and request. Bounded, like the TCP relay's pool
//! (`tcp/buffer.rs`): at most [`KEEP`] free buffers, none larger than
//! [`MAX_KEPT`], so a burst of big bodies leaves at most
//! `KEEP * MAX_KEPT` bytes behind.

/// Capacity of a new buffer: a whole request or response head of common
/// size, without growing.
pub(crate) const START: usize = 4 * 1024;

/// Free buffers kept per loop.
pub(crate) const KEEP: usize = 128;

/// Larger buffers (grown by a body) go back to the allocator.
pub(crate) const MAX_KEPT: usize = 32 * 1024;

#[derive(Default)]
pub(crate) struct Bufs {
    free: Vec<Vec<u8>>,
}

impl Bufs {
    /// An empty buffer, from the free list when one is there.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| Vec::with_capacity(START))
    }

    /// Gives `v` a buffer when it has none (capacity 0).
    pub(crate) fn fill(&mut self, v: &mut Vec<u8>) {
        if v.capacity() == 0 {
            *v = self.take();
        }
    }

    /// Takes `v`'s buffer back (its bytes are dropped); `v` is left with
    /// no memory.
    pub(crate) fn give(&mut self, v: &mut Vec<u8>) {
        let mut b = std::mem::take(v);
        if b.capacity() == 0 || b.capacity() > MAX_KEPT || self.free.len() >= KEEP {
            return;
        }
        b.clear();
        self.free.push(b);
    }

    /// Free buffers held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty() {
        let mut bufs = Bufs::default();
        let mut v = bufs.take();
        assert!(v.capacity() >= START);
        v.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let ptr = v.as_ptr();
        bufs.give(&mut v);
        assert_eq!(v.capacity(), 0, "the giver holds no memory after");
        assert_eq!(bufs.len(), 1);
        let mut w = Vec::new();
        bufs.fill(&mut w);
        assert_eq!(w.as_ptr(), ptr, "the same buffer came back");
        assert!(w.is_empty());
        assert_eq!(bufs.len(), 0);
    }

    #[test]
    fn fill_keeps_a_buffer_already_there() {
        let mut bufs = Bufs::default();
        let mut v = Vec::with_capacity(10);
        v.push(1u8);
        bufs.fill(&mut v);
        assert_eq!(v, [1]);
        assert_eq!(v.capacity(), 10);
    }

    #[test]
    fn the_free_list_is_bounded_in_count_and_size() {
        let mut bufs = Bufs::default();
        let mut held: Vec<Vec<u8>> = (0..KEEP + 10).map(|_| bufs.take()).collect();
        for v in &mut held {
            bufs.give(v);
        }
        assert_eq!(bufs.len(), KEEP);
        let mut big = Vec::with_capacity(MAX_KEPT + 1);
        let mut fresh = Bufs::default();
        fresh.give(&mut big);
        assert_eq!(fresh.len(), 0, "a grown buffer goes back to the allocator");
        assert_eq!(big.capacity(), 0);
        let mut none = Vec::new();
        fresh.give(&mut none);
        assert_eq!(fresh.len(), 0, "nothing to keep");
    }
}
