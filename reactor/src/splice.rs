//! Zero-copy TCP relay through a kernel pipe: `splice(2)` from a socket into
//! a [`PipePair`] and from the pipe out to another socket, so payload bytes
//! never enter user space. Also [`PipePool`], a small free list so busy
//! relays do not pay two syscalls (`pipe2` + `fcntl`) per connection.
//!
//! Owns the pipe fds, the byte count in flight inside the pipe and the errno
//! mapping. Deciding when to splice (readiness, backpressure, half-close) is
//! the relay's job.
//!
//! Writing into a socket the peer has closed can raise SIGPIPE (splice has no
//! MSG_NOSIGNAL); Rust programs ignore SIGPIPE from start-up, so it surfaces
//! as `IoStatus::Error` with `BrokenPipe`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::io::IoStatus;

/// The pipe size asked for. Twice the Linux default of 64 KiB: each splice
/// then moves more, which measured ~15% less CPU per GB than 64 KiB
/// (docs/benchmarks.md), while 256 KiB gained nothing more and would double
/// the kernel memory a stalled bulk transfer holds. A host low on
/// `pipe-user-pages-soft` may hand out less; the pipe works with any size.
pub const PIPE_SIZE: usize = 128 * 1024;

const SPLICE_FLAGS: libc::c_uint = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;

/// A non-blocking pipe used as the in-kernel buffer of one relay direction.
#[derive(Debug)]
pub struct PipePair {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes spliced in and not yet spliced out.
    pending: usize,
    capacity: usize,
}

impl PipePair {
    /// Opens a pipe (O_NONBLOCK | O_CLOEXEC) and tries to size it to
    /// [`PIPE_SIZE`].
    pub fn new() -> io::Result<PipePair> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a writable array of two c_ints as pipe2 requires.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on an open fd with integer arguments touches no memory.
        let size = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                PIPE_SIZE as libc::c_int,
            );
            libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ)
        };
        // Growing is best-effort: a smaller pipe still works, only with more syscalls.
        let capacity = usize::try_from(size)
            .ok()
            .filter(|s| *s > 0)
            .unwrap_or(4096);
        Ok(PipePair {
            read,
            write,
            pending: 0,
            capacity,
        })
    }

    /// Bytes sitting in the pipe, waiting for [`PipePair::splice_out`].
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// How many bytes the pipe holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True when the pipe cannot take more until some is spliced out.
    pub fn is_full(&self) -> bool {
        self.pending >= self.capacity
    }

    /// Moves up to `max` bytes from socket `from` into the pipe.
    /// `Progress(n)`: n bytes moved; `Closed`: the socket reached EOF (peer
    /// FIN); `WouldBlock`: the socket has nothing now **or the pipe is full**
    /// (see [`PipePair::is_full`]: then splice out first, and come back
    /// without waiting for a new readiness edge).
    pub fn splice_in(&mut self, from: RawFd, max: usize) -> IoStatus {
        let room = self.capacity.saturating_sub(self.pending);
        let want = max.min(room);
        if want == 0 {
            return if max == 0 {
                IoStatus::Progress(0)
            } else {
                IoStatus::WouldBlock
            };
        }
        loop {
            // SAFETY: null offsets are required for sockets and pipes; the
            // fds are open (ours is owned by self, `from` by the caller for
            // the call's duration); splice touches no user memory.
            let rc = unsafe {
                libc::splice(
                    from,
                    std::ptr::null_mut(),
                    self.write.as_raw_fd(),
                    std::ptr::null_mut(),
                    want,
                    SPLICE_FLAGS,
                )
            };
            match rc {
                0 => return IoStatus::Closed,
                n if n > 0 => {
                    self.pending += n as usize;
                    return IoStatus::Progress(n as usize);
                }
                _ => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::Interrupted => continue,
                        io::ErrorKind::WouldBlock => return IoStatus::WouldBlock,
                        _ => return IoStatus::Error(e),
                    }
                }
            }
        }
    }

    /// Moves what the pipe holds into socket `to`. `Progress(n)`: n bytes
    /// moved (`Progress(0)` when the pipe was already empty); `WouldBlock`:
    /// the socket's send buffer is full.
    pub fn splice_out(&mut self, to: RawFd) -> IoStatus {
        if self.pending == 0 {
            return IoStatus::Progress(0);
        }
        loop {
            // SAFETY: as in splice_in: null offsets, open fds, no user memory.
            let rc = unsafe {
                libc::splice(
                    self.read.as_raw_fd(),
                    std::ptr::null_mut(),
                    to,
                    std::ptr::null_mut(),
                    self.pending,
                    SPLICE_FLAGS,
                )
            };
            if rc > 0 {
                let n = rc as usize;
                self.pending = self.pending.saturating_sub(n);
                return IoStatus::Progress(n);
            }
            if rc == 0 {
                // The pipe's write end is ours and open, so 0 means it was
                // empty after all: trust the kernel over our count.
                self.pending = 0;
                return IoStatus::Progress(0);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return IoStatus::WouldBlock,
                _ => return IoStatus::Error(e),
            }
        }
    }
}

/// A bounded free list of empty pipes.
#[derive(Debug)]
pub struct PipePool {
    free: Vec<PipePair>,
    max: usize,
}

impl PipePool {
    /// A pool that keeps at most `max` idle pipes (2 fds each).
    pub fn new(max: usize) -> PipePool {
        PipePool {
            free: Vec::new(),
            max,
        }
    }

    /// An empty pipe: a pooled one, or a new one.
    pub fn take(&mut self) -> io::Result<PipePair> {
        match self.free.pop() {
            Some(p) => Ok(p),
            None => PipePair::new(),
        }
    }

    /// Returns a pipe. Kept only if it is empty (leftover bytes would leak
    /// into the next connection) and the pool has room; otherwise closed.
    pub fn give(&mut self, pipe: PipePair) {
        if pipe.pending == 0 && self.free.len() < self.max {
            self.free.push(pipe);
        }
    }

    /// Idle pipes held.
    pub fn idle(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// A connected loopback pair: (client side, accepted side).
    fn tcp_pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    fn byte_at(i: usize) -> u8 {
        (i.wrapping_mul(2_654_435_761) >> 13) as u8
    }

    fn poll_one(fd: RawFd, events: libc::c_short) {
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut p, 1, 1000) };
        assert!(rc >= 0, "{}", io::Error::last_os_error());
    }

    #[test]
    fn relays_ten_megabytes_byte_exact_with_half_close() {
        const TOTAL: usize = 10 * 1024 * 1024;
        // writer -> a_in | relay | b_out -> reader
        let (mut writer, a_in) = tcp_pair();
        let (b_out, mut reader) = tcp_pair();
        a_in.set_nonblocking(true).unwrap();
        b_out.set_nonblocking(true).unwrap();
        reader
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();

        let w = std::thread::spawn(move || {
            let chunk: Vec<u8> = (0..TOTAL).map(byte_at).collect();
            writer.write_all(&chunk).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
            writer
        });
        let r = std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut seen = 0usize;
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    return seen;
                }
                for (k, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, byte_at(seen + k), "byte {} differs", seen + k);
                }
                seen += n;
            }
        });

        let mut pipe = PipePair::new().unwrap();
        assert!(pipe.capacity() >= 4096);
        let mut relayed = 0usize;
        let mut eof = false;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(eof && pipe.pending() == 0) {
            assert!(Instant::now() < deadline, "relay stalled at {relayed}");
            let mut idle = true;
            if !eof && !pipe.is_full() {
                match pipe.splice_in(a_in.as_raw_fd(), usize::MAX) {
                    IoStatus::Progress(_) => idle = false,
                    IoStatus::Closed => eof = true,
                    IoStatus::WouldBlock => {}
                    other => panic!("splice_in: {other:?}"),
                }
            }
            match pipe.splice_out(b_out.as_raw_fd()) {
                IoStatus::Progress(n) => {
                    relayed += n;
                    idle &= n == 0;
                }
                IoStatus::WouldBlock => {}
                other => panic!("splice_out: {other:?}"),
            }
            if idle {
                let (fd, ev) = if pipe.pending() > 0 {
                    (b_out.as_raw_fd(), libc::POLLOUT)
                } else {
                    (a_in.as_raw_fd(), libc::POLLIN)
                };
                poll_one(fd, ev);
            }
        }
        // Pass the FIN on, as the relay would.
        b_out.shutdown(Shutdown::Write).unwrap();
        assert_eq!(relayed, TOTAL);
        assert_eq!(r.join().unwrap(), TOTAL);
        drop(w.join().unwrap());
    }

    #[test]
    fn pool_keeps_only_empty_pipes_up_to_its_bound() {
        let mut pool = PipePool::new(2);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        let c = pool.take().unwrap();
        pool.give(a);
        pool.give(b);
        pool.give(c);
        assert_eq!(pool.idle(), 2);

        // A pipe holding bytes is closed, not pooled.
        let (mut w, s) = tcp_pair();
        s.set_nonblocking(true).unwrap();
        w.write_all(b"left over").unwrap();
        let mut p = pool.take().unwrap();
        assert_eq!(pool.idle(), 1);
        let mut moved = 0;
        for _ in 0..100 {
            poll_one(s.as_raw_fd(), libc::POLLIN);
            if let IoStatus::Progress(n) = p.splice_in(s.as_raw_fd(), 64) {
                moved += n;
                if moved == 9 {
                    break;
                }
            }
        }
        assert_eq!(p.pending(), 9);
        pool.give(p);
        assert_eq!(pool.idle(), 1);
    }

    #[test]
    fn splice_in_sees_eof_and_empty_pipe_splices_nothing() {
        let (w, s) = tcp_pair();
        s.set_nonblocking(true).unwrap();
        let mut p = PipePair::new().unwrap();
        assert!(matches!(
            p.splice_in(s.as_raw_fd(), 1024),
            IoStatus::WouldBlock
        ));
        assert!(matches!(p.splice_out(s.as_raw_fd()), IoStatus::Progress(0)));
        w.shutdown(Shutdown::Write).unwrap();
        poll_one(s.as_raw_fd(), libc::POLLIN);
        assert!(matches!(p.splice_in(s.as_raw_fd(), 1024), IoStatus::Closed));
    }
}
