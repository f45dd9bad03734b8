//! Relay buffers, taken from a per-loop pool only while bytes are in flight.
//!
//! An idle connection holds no buffer: a direction takes one when its source
//! becomes readable and gives it back as soon as it is drained. The pool
//! keeps a bounded number of free buffers so a burst does not leave the
//! process holding its peak forever.

pub const BUF_SIZE: usize = 32 * 1024;

pub type Buf = Box<[u8]>;

pub struct BufPool {
    free: Vec<Buf>,
    keep: usize,
}

impl BufPool {
    pub fn new(keep: usize) -> BufPool {
        BufPool {
            free: Vec::new(),
            keep,
        }
    }

    pub fn take(&mut self) -> Buf {
        self.free
            .pop()
            .unwrap_or_else(|| vec![0u8; BUF_SIZE].into_boxed_slice())
    }

    pub fn give(&mut self, buf: Buf) {
        if self.free.len() < self.keep {
            self.free.push(buf);
        }
    }
}
