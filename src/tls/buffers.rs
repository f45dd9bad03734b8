//! The byte buffers of a TLS session, owned by nvelox rather than rustls
//! (rustls's unbuffered API), so that an idle connection holds none.
//!
//! Owns: [`Buf`], a queue of bytes over initialized storage that takes its
//! storage from a small per-thread (so per-loop) pool when bytes arrive and
//! gives it back as soon as the last byte is consumed. Storage is never
//! zeroed again once taken, so a 32 KiB read costs no 32 KiB memset. The
//! pool keeps at most [`POOL_MAX`] buffers of at most [`POOL_MAX_BYTES`]
//! each, so what an idle loop keeps is bounded. A connection left waiting
//! on a partial record keeps only those bytes ([`Buf::shrink`]: at most
//! [`SMALL`] in an allocation of their own), not the storage. Does not own
//! rustls or sockets (`session`).

use std::cell::RefCell;
use std::io::{self, Read};

/// The storage a buffer starts with (two full TLS records).
pub const STORAGE: usize = 32 * 1024;
/// At most this many waiting bytes are moved out of the storage into an
/// allocation of their own while the connection waits for more.
pub const SMALL: usize = 4096;
/// Buffers kept per thread for reuse.
const POOL_MAX: usize = 4;
/// Larger storage (grown for a big handshake message or write) is freed.
const POOL_MAX_BYTES: usize = 128 * 1024;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_storage() -> Vec<u8> {
    POOL.with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()))
        .unwrap_or_else(|| vec![0; STORAGE])
}

fn give_storage(v: Vec<u8>) {
    // Small allocations (from `shrink`) are not worth keeping.
    if v.len() < STORAGE || v.len() > POOL_MAX_BYTES {
        return;
    }
    POOL.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if p.len() < POOL_MAX {
                p.push(v);
            }
        }
    });
}

/// Bytes waiting in `data[start..end]`; `data` is initialized storage
/// (empty: none held).
#[derive(Default)]
pub struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// The storage held (0 when the buffer gave it back).
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn filled_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..self.end]
    }

    /// At least `min` bytes of room after the waiting bytes (moved to the
    /// front of the storage first when that makes room).
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.data.is_empty() {
            self.data = take_storage();
        } else if self.data.len() < STORAGE && self.data.len() - self.end < min {
            // Bytes kept small by `shrink`: back into full storage.
            let mut big = take_storage();
            let n = self.len();
            if big.len() < n {
                big.resize(n, 0);
            }
            big[..n].copy_from_slice(self.filled());
            self.data = big;
            self.start = 0;
            self.end = n;
        }
        if self.data.len() - self.end < min && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < min {
            self.data.resize(self.end + min, 0);
        }
        &mut self.data[self.end..]
    }

    /// A few waiting bytes (at most [`SMALL`]: a record's start, when the
    /// peer stopped mid-record) move to an allocation of their own and the
    /// storage goes back to the pool, so a connection waiting on a partial
    /// record holds about what it was sent, not the whole storage.
    pub fn shrink(&mut self) {
        let n = self.len();
        if n == 0 || n > SMALL || self.data.len() <= SMALL {
            return;
        }
        let small = self.filled().to_vec();
        give_storage(std::mem::replace(&mut self.data, small));
        self.start = 0;
        self.end = n;
    }

    /// `n` bytes were written into [`Buf::spare`].
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
        self.release_if_empty();
    }

    /// The first `n` waiting bytes are done with.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        self.release_if_empty();
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        let room = self.spare(bytes.len());
        room[..bytes.len()].copy_from_slice(bytes);
        self.commit(bytes.len());
    }

    /// Reads once from `src` into room for at least `min` bytes.
    pub fn read_from<R: Read>(&mut self, src: &mut R, min: usize) -> io::Result<usize> {
        let res = src.read(self.spare(min));
        self.commit(*res.as_ref().unwrap_or(&0));
        res
    }

    /// Copies waiting bytes into `out`; the count copied.
    pub fn take_into(&mut self, out: &mut [u8]) -> usize {
        let n = self.len().min(out.len());
        out[..n].copy_from_slice(&self.data[self.start..self.start + n]);
        self.consume(n);
        n
    }

    fn release_if_empty(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            give_storage(std::mem::take(&mut self.data));
        }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        give_storage(std::mem::take(&mut self.data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_held_only_while_bytes_wait() {
        let mut b = Buf::default();
        assert_eq!(b.capacity(), 0);
        b.extend(b"hello");
        assert!(b.capacity() >= 5);
        assert_eq!(b.filled(), b"hello");
        b.consume(2);
        assert_eq!(b.filled(), b"llo");
        let mut out = [0u8; 8];
        assert_eq!(b.take_into(&mut out), 3);
        assert_eq!(&out[..3], b"llo");
        assert_eq!(b.capacity(), 0, "an empty buffer holds no storage");
    }

    #[test]
    fn a_few_waiting_bytes_hold_a_small_allocation_until_more_arrive() {
        let mut b = Buf::default();
        b.extend(&[5u8; 100]);
        assert!(b.capacity() >= STORAGE);
        b.shrink();
        assert_eq!(b.capacity(), 100);
        assert_eq!(b.filled(), &[5u8; 100]);
        let room = b.spare(1000);
        assert!(room.len() >= 1000);
        room[0] = 6;
        b.commit(1);
        assert!(b.capacity() >= STORAGE);
        assert_eq!(b.len(), 101);
        assert_eq!(b.filled()[100], 6);
        // Many waiting bytes keep their storage.
        b.extend(&[1u8; SMALL]);
        b.shrink();
        assert!(b.capacity() >= STORAGE);
    }

    #[test]
    fn grows_and_compacts() {
        let mut b = Buf::default();
        b.extend(&[1u8; 100]);
        b.consume(90);
        let room = b.spare(STORAGE - 5).len();
        assert!(room >= STORAGE - 5);
        assert_eq!(b.filled(), &[1u8; 10]);
        b.extend(&vec![2u8; 3 * STORAGE]);
        assert_eq!(b.len(), 10 + 3 * STORAGE);
        b.consume(usize::MAX);
        assert_eq!(b.capacity(), 0);
    }
}
