//! One direction of a TCP relay: bytes from a source socket to a sink
//! socket through at most one pooled buffer.
//!
//! The direction owns the buffer and the end-of-stream bookkeeping (FIN seen,
//! FIN passed on). It does not own the sockets or their readiness: the
//! caller passes them in with "may read" / "may write" flags that are set by
//! readiness events and cleared here on `WouldBlock` (edge-triggered).

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use reactor::io::{read, write};
use reactor::splice::{PipePair, PipePool};
use reactor::IoStatus;

use super::buffer::{Buf, BufPool};

/// Readiness flags of one socket, set by events, cleared on `WouldBlock`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    /// The peer's FIN or an error was reported: read until 0 / an error,
    /// never conclude "drained" from a short read.
    pub hangup: bool,
    /// The peer's FIN was reported without an error (`EPOLLRDHUP`, no
    /// `EPOLLERR`). A plain socket's short read then means the stream
    /// ended: no read for the 0 (see [`ShortRead`]).
    pub fin: bool,
}

#[derive(Default)]
pub struct Direction {
    buf: Option<Buf>,
    start: usize,
    end: usize,
    /// The source sent FIN (read returned 0).
    pub eof: bool,
    /// We shut down the sink's write side (passed the FIN on).
    pub shut: bool,
    /// Bytes written to the sink.
    pub bytes: u64,
    /// Bytes waiting to be written before any relayed byte (a PROXY header).
    preamble: Vec<u8>,
    /// Zero-copy: the pipe holding bytes in flight (only while there are some).
    pipe: Option<PipePair>,
    /// Zero-copy could not get a pipe (fd exhaustion): copy from now on.
    pub splice_failed: bool,
    /// Zero-copy: a read filled a whole buffer, so this direction carries
    /// bulk data and moves it with splice from now on. Until then small
    /// messages are copied: one recv + one send is cheaper than two splices
    /// through a pipe (HAProxy's "splice-auto").
    splicing: bool,
    /// The other direction is finished, so this FIN is the last event of
    /// the connection: the caller's `close()` sends it, `shutdown` would be
    /// a wasted syscall.
    pub fin_by_close: bool,
}

/// Largest single splice(2) request.
const SPLICE_CHUNK: usize = 1 << 20;

/// Why a pump stopped.
#[derive(Debug)]
pub enum Pump {
    /// Waiting for readiness (or done): nothing more to do now.
    Idle,
    /// The budget ran out with work left: re-queue.
    Budget,
    /// Reading the source failed (a reset, usually).
    SourceFailed(io::Error),
    /// Writing to the sink failed (reset / EPIPE).
    SinkFailed(io::Error),
}

impl Direction {
    pub fn is_done(&self) -> bool {
        self.shut
    }

    pub fn has_pending(&self) -> bool {
        self.end > self.start
            || !self.preamble.is_empty()
            || self.pipe.as_ref().is_some_and(|p| p.pending() > 0)
    }

    pub fn holds_buffer(&self) -> bool {
        self.buf.is_some()
    }

    /// Gives the pipe back (connection closing, or drained and idle).
    pub fn release_pipe(&mut self, pipes: &mut PipePool) {
        if let Some(p) = self.pipe.take() {
            pipes.give(p);
        }
    }

    /// Writes the preamble; `Some` when the caller must stop.
    fn write_preamble<D: Write>(&mut self, dst: &mut D, dst_ready: &mut Readiness) -> Option<Pump> {
        while !self.preamble.is_empty() {
            if !dst_ready.writable {
                return Some(Pump::Idle);
            }
            match write(dst, &self.preamble) {
                IoStatus::Progress(n) => {
                    self.preamble.drain(..n);
                }
                IoStatus::WouldBlock => {
                    dst_ready.writable = false;
                    return Some(Pump::Idle);
                }
                IoStatus::Closed => return Some(Pump::SinkFailed(io::ErrorKind::WriteZero.into())),
                IoStatus::Error(e) => return Some(Pump::SinkFailed(e)),
            }
        }
        None
    }

    /// Like [`pump`](Self::pump), but moves bytes socket -> pipe -> socket
    /// with splice(2), never through user space. A pipe is taken from
    /// `pipes` only while bytes are in flight. If no pipe can be had (out of
    /// fds), this direction falls back to copying for good.
    #[allow(clippy::too_many_arguments)]
    pub fn pump_zero_copy<S: Read + ShortRead + AsRawFd, D: Write + ShutdownWrite + AsRawFd>(
        &mut self,
        src: &mut S,
        src_ready: &mut Readiness,
        dst: &mut D,
        dst_ready: &mut Readiness,
        pool: &mut BufPool,
        pipes: &mut PipePool,
        mut budget: usize,
    ) -> Pump {
        if self.splice_failed || !self.splicing || self.end > self.start {
            return self.pump(src, src_ready, dst, dst_ready, pool, budget);
        }
        if let Some(stop) = self.write_preamble(dst, dst_ready) {
            return stop;
        }
        loop {
            if let Some(pipe) = self.pipe.as_mut().filter(|p| p.pending() > 0) {
                if !dst_ready.writable {
                    return Pump::Idle;
                }
                let status = pipe.splice_out(dst.as_raw_fd());
                match self.sent(status, dst_ready) {
                    Some(stop) => return stop,
                    None => continue,
                }
            }
            if let Some(stop) = self.drained(dst, src_ready, &mut budget) {
                if !matches!(stop, Pump::Budget) {
                    self.release_pipe(pipes);
                }
                return stop;
            }
            if self.pipe.is_none() {
                match pipes.take() {
                    Ok(p) => self.pipe = Some(p),
                    Err(e) => {
                        log::warn!("zero_copy: cannot create a pipe ({e}); copying instead");
                        self.splice_failed = true;
                        return self.pump(src, src_ready, dst, dst_ready, pool, budget);
                    }
                }
            }
            let Some(pipe) = self.pipe.as_mut() else {
                return Pump::Idle;
            };
            match pipe.splice_in(src.as_raw_fd(), SPLICE_CHUNK) {
                IoStatus::Progress(_) => {}
                IoStatus::Closed => self.eof = true,
                IoStatus::WouldBlock if pipe.is_full() => {}
                IoStatus::WouldBlock => {
                    src_ready.readable = false;
                    if pipe.pending() == 0 {
                        self.release_pipe(pipes);
                    }
                    return Pump::Idle;
                }
                IoStatus::Error(e) => return Pump::SourceFailed(e),
            }
        }
    }

    /// Accounts for one write to the sink; `Some` when the pump must stop.
    fn sent(&mut self, status: IoStatus, dst_ready: &mut Readiness) -> Option<Pump> {
        match status {
            IoStatus::Progress(n) => {
                self.bytes += n as u64;
                None
            }
            IoStatus::WouldBlock => {
                dst_ready.writable = false;
                Some(Pump::Idle)
            }
            IoStatus::Closed => Some(Pump::SinkFailed(io::ErrorKind::WriteZero.into())),
            IoStatus::Error(e) => Some(Pump::SinkFailed(e)),
        }
    }

    /// Nothing is in flight: pass a FIN on once the source ended (the sink
    /// may already be gone; the other direction will see that), stop when
    /// the source has nothing, or spend one unit of budget on a read.
    fn drained<D: ShutdownWrite>(
        &mut self,
        dst: &mut D,
        src_ready: &Readiness,
        budget: &mut usize,
    ) -> Option<Pump> {
        if self.eof {
            if !self.shut {
                if !self.fin_by_close {
                    // A TLS sink has records to send before its FIN:
                    // `WouldBlock` until they are out, then try again.
                    if let Err(e) = dst.shutdown_write() {
                        if e.kind() == io::ErrorKind::WouldBlock {
                            return Some(Pump::Idle);
                        }
                    }
                }
                self.shut = true;
            }
            return Some(Pump::Idle);
        }
        if !src_ready.readable {
            return Some(Pump::Idle);
        }
        if *budget == 0 {
            return Some(Pump::Budget);
        }
        *budget -= 1;
        None
    }

    /// Queues bytes to be sent before anything relayed (e.g. a PROXY header).
    pub fn set_preamble(&mut self, bytes: Vec<u8>) {
        self.preamble = bytes;
    }

    /// Gives the buffer back (connection closing).
    pub fn release(&mut self, pool: &mut BufPool) {
        if let Some(b) = self.buf.take() {
            pool.give(b);
        }
        self.start = 0;
        self.end = 0;
    }

    /// Moves bytes until both sides would block, the stream ended, or
    /// `budget` reads were done. On EOF with nothing pending, shuts down
    /// the sink's write side (FIN passed on as FIN).
    pub fn pump<S: Read + ShortRead, D: Write + ShutdownWrite>(
        &mut self,
        src: &mut S,
        src_ready: &mut Readiness,
        dst: &mut D,
        dst_ready: &mut Readiness,
        pool: &mut BufPool,
        mut budget: usize,
    ) -> Pump {
        loop {
            // 1. Preamble, then buffered bytes, out to the sink.
            if let Some(stop) = self.write_preamble(dst, dst_ready) {
                return stop;
            }
            if self.end > self.start {
                if !dst_ready.writable {
                    return Pump::Idle;
                }
                let buf = match &self.buf {
                    Some(b) => b,
                    None => return Pump::Idle,
                };
                let want = self.end - self.start;
                let status = write(dst, &buf[self.start..self.end]);
                if let IoStatus::Progress(n) = status {
                    // A short write filled the send buffer: wait for the edge.
                    if n < want {
                        dst_ready.writable = false;
                    }
                    self.start += n;
                    if self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                    }
                }
                match self.sent(status, dst_ready) {
                    Some(stop) => return stop,
                    None => continue,
                }
            }
            // 2. Buffer empty.
            if let Some(stop) = self.drained(dst, src_ready, &mut budget) {
                if !matches!(stop, Pump::Budget) {
                    self.release(pool);
                }
                return stop;
            }
            let buf = self.buf.get_or_insert_with(|| pool.take());
            let room = buf.len() - self.end;
            match read(src, &mut buf[self.end..]) {
                IoStatus::Progress(n) => {
                    self.end += n;
                    self.splicing |= n == buf.len();
                    if n < room {
                        match src.short_read(src_ready) {
                            // The next read would return 0. Skip it: the
                            // FIN is passed on right behind these bytes.
                            ShortReadMeans::Ended => {
                                self.eof = true;
                                src_ready.readable = false;
                            }
                            // New data will raise a new edge: skip the read
                            // that would only say EAGAIN (one syscall less
                            // per message).
                            ShortReadMeans::Drained => src_ready.readable = false,
                            ShortReadMeans::ReadOn => {}
                        }
                    }
                }
                IoStatus::WouldBlock => {
                    src_ready.readable = false;
                    self.release(pool);
                    return Pump::Idle;
                }
                IoStatus::Closed => self.eof = true,
                IoStatus::Error(e) => {
                    self.release(pool);
                    return Pump::SourceFailed(e);
                }
            }
        }
    }
}

/// `shutdown(SHUT_WR)`, abstracted so the relay can be tested without sockets.
pub trait ShutdownWrite {
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl ShutdownWrite for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// What a read that returned less than asked says about its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShortReadMeans {
    /// Everything the source had was taken: new bytes raise a new edge,
    /// so the read that would only say `WouldBlock` is skipped.
    Drained,
    /// Everything before the end of the stream was taken: the next read
    /// would return 0, and no new edge will say so.
    Ended,
    /// A hang-up (perhaps an error) was reported and the end not seen yet:
    /// read on until 0 or the error.
    ReadOn,
}

impl ShortReadMeans {
    /// The rule all sources share, given whether the source knows that
    /// its stream ended.
    pub fn of(ready: &Readiness, ended: bool) -> ShortReadMeans {
        if ended {
            ShortReadMeans::Ended
        } else if ready.hangup {
            ShortReadMeans::ReadOn
        } else {
            ShortReadMeans::Drained
        }
    }
}

/// The question the TCP relay's pump and the HTTP shell's reads ask a
/// source after a short read; each stream type answers it (a plain
/// socket here, a TLS session in `tls::session`).
pub trait ShortRead {
    fn short_read(&self, ready: &Readiness) -> ShortReadMeans;
}

/// A plain TCP socket knows its end from the event: after the peer's FIN
/// was reported, a read that returned less than asked took everything
/// before it, so the next read returns 0 (Linux takes a FIN only in
/// sequence, after all the data before it is queued, and a read empties
/// the queue up to the buffer's size; HAProxy's `raw_sock` concludes the
/// same). The exception is a read that stops at a TCP urgent mark: the
/// relay does not carry out-of-band data, and the rule for short reads
/// without a FIN assumes none already.
impl ShortRead for mio::net::TcpStream {
    fn short_read(&self, ready: &Readiness) -> ShortReadMeans {
        ShortReadMeans::of(ready, ready.fin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that yields scripted chunks, then WouldBlock or EOF.
    struct Src {
        chunks: Vec<Vec<u8>>,
        eof: bool,
    }
    impl Read for Src {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.chunks.is_empty() {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let c = &mut self.chunks[0];
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            c.drain(..n);
            if c.is_empty() {
                self.chunks.remove(0);
            }
            Ok(n)
        }
    }
    /// Knows nothing of its end: short reads mean drained, unless a
    /// hang-up was reported.
    impl ShortRead for Src {
        fn short_read(&self, ready: &Readiness) -> ShortReadMeans {
            ShortReadMeans::of(ready, false)
        }
    }

    /// A `Src` that counts its reads and may say it is a plain socket.
    struct Counted {
        src: Src,
        reads: usize,
        plain: bool,
    }
    impl Read for Counted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            self.src.read(buf)
        }
    }
    impl ShortRead for Counted {
        fn short_read(&self, ready: &Readiness) -> ShortReadMeans {
            ShortReadMeans::of(ready, self.plain && ready.fin)
        }
    }

    /// A sink that accepts `room` bytes, then WouldBlock.
    #[derive(Default)]
    struct Sink {
        data: Vec<u8>,
        room: usize,
        shut: bool,
    }
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl ShutdownWrite for Sink {
        fn shutdown_write(&mut self) -> io::Result<()> {
            self.shut = true;
            Ok(())
        }
    }

    /// As after an event that reported the peer's FIN and no error.
    const RW_FIN: Readiness = Readiness {
        readable: true,
        writable: true,
        hangup: true,
        fin: true,
    };

    fn counted(chunks: &[&[u8]], plain: bool) -> Counted {
        Counted {
            src: Src {
                chunks: chunks.iter().map(|c| c.to_vec()).collect(),
                eof: true,
            },
            reads: 0,
            plain,
        }
    }

    #[test]
    fn a_short_read_after_a_fin_ends_the_stream_without_reading_the_0() {
        let mut pool = BufPool::new(4);
        let mut d = Direction::default();
        let mut src = counted(&[b"response"], true);
        let mut sink = Sink {
            room: usize::MAX,
            ..Default::default()
        };
        let (mut sr, mut dr) = (RW_FIN, RW);
        let stop = d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64);
        assert!(matches!(stop, Pump::Idle), "{stop:?}");
        assert_eq!(
            src.reads, 1,
            "no read for the 0 after a short read past a FIN"
        );
        assert_eq!(sink.data, b"response");
        assert!(sink.shut && d.eof && d.is_done());
        assert!(!d.holds_buffer());
    }

    #[test]
    fn without_a_clean_fin_or_on_a_decoding_source_the_pump_reads_to_the_0() {
        // An error came with the hang-up (a reset): read until it shows.
        let mut pool = BufPool::new(4);
        let mut d = Direction::default();
        let mut src = counted(&[b"a"], true);
        let mut sink = Sink {
            room: usize::MAX,
            ..Default::default()
        };
        let (mut sr, mut dr) = (RW_HUP, RW);
        d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64);
        assert_eq!(src.reads, 2);
        assert_eq!(sink.data, b"a");
        assert!(sink.shut);
        // A clean FIN, but a source whose short reads prove nothing (TLS).
        let mut d = Direction::default();
        let mut src = counted(&[b"a", b"b"], false);
        let mut sink = Sink {
            room: usize::MAX,
            ..Default::default()
        };
        let (mut sr, mut dr) = (RW_FIN, RW);
        d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64);
        assert_eq!(src.reads, 3);
        assert_eq!(sink.data, b"ab");
        assert!(sink.shut);
    }

    #[test]
    fn a_full_sink_keeps_the_last_bytes_and_the_fin_for_the_next_edge_without_a_read() {
        let mut pool = BufPool::new(4);
        let mut d = Direction::default();
        let mut src = counted(&[b"0123456789"], true);
        let mut sink = Sink {
            room: 4,
            ..Default::default()
        };
        let (mut sr, mut dr) = (RW_FIN, RW);
        d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64);
        assert!(!sink.shut && !dr.writable && d.has_pending());
        sink.room = usize::MAX;
        dr.writable = true;
        d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64);
        assert_eq!(src.reads, 1);
        assert_eq!(sink.data, b"0123456789");
        assert!(sink.shut);
    }

    const RW: Readiness = Readiness {
        readable: true,
        writable: true,
        hangup: false,
        fin: false,
    };
    /// As after an event that reported the peer's FIN: read to the end.
    const RW_HUP: Readiness = Readiness {
        readable: true,
        writable: true,
        hangup: true,
        fin: false,
    };

    #[test]
    fn a_short_read_means_drained_unless_a_hangup_was_seen() {
        let mut pool = BufPool::new(4);
        let mut d = Direction::default();
        let mut src = Src {
            chunks: vec![b"req".to_vec(), b"more".to_vec()],
            eof: false,
        };
        let mut sink = Sink {
            room: usize::MAX,
            ..Default::default()
        };
        let (mut sr, mut dr) = (RW, RW);
        d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64);
        assert_eq!(sink.data, b"req", "no second read after a short one");
        assert!(!sr.readable);
        // With a hang-up pending, reading goes on to the end of the stream.
        let mut src = Src {
            chunks: vec![b"a".to_vec(), b"b".to_vec()],
            eof: true,
        };
        let mut d = Direction::default();
        let (mut sr, mut dr) = (RW_HUP, RW);
        let mut sink = Sink {
            room: usize::MAX,
            ..Default::default()
        };
        d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64);
        assert_eq!(sink.data, b"ab");
        assert!(sink.shut, "the FIN was passed on");
    }

    #[test]
    fn relays_bytes_then_passes_fin_and_returns_the_buffer() {
        let mut pool = BufPool::new(4);
        let mut d = Direction::default();
        d.set_preamble(b"HDR".to_vec());
        let mut src = Src {
            chunks: vec![b"hello ".to_vec(), b"world".to_vec()],
            eof: true,
        };
        let mut sink = Sink {
            room: usize::MAX,
            ..Default::default()
        };
        let (mut sr, mut dr) = (RW_HUP, RW);
        assert!(matches!(
            d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64),
            Pump::Idle
        ));
        assert_eq!(sink.data, b"HDRhello world");
        assert!(sink.shut && d.is_done());
        assert!(!d.holds_buffer());
        assert_eq!(d.bytes, 11);
    }

    #[test]
    fn full_sink_stops_reading_and_resumes_on_writable() {
        let mut pool = BufPool::new(4);
        let mut d = Direction::default();
        let big = vec![7u8; 100_000];
        let mut src = Src {
            chunks: vec![big.clone()],
            eof: false,
        };
        let mut sink = Sink {
            room: 10,
            ..Default::default()
        };
        let (mut sr, mut dr) = (RW, RW);
        d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64);
        assert!(!dr.writable, "sink full");
        assert!(sr.readable, "source not drained: backpressure");
        assert!(d.holds_buffer() && d.has_pending());
        // Only one buffer's worth was read from the source.
        assert_eq!(
            src.chunks[0].len(),
            100_000 - super::super::buffer::BUF_SIZE
        );
        sink.room = usize::MAX;
        dr.writable = true;
        d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 64);
        assert_eq!(sink.data, big);
        assert!(!sr.readable && !d.holds_buffer() && !sink.shut);
    }

    #[test]
    fn budget_stops_a_firehose() {
        let mut pool = BufPool::new(4);
        let mut d = Direction::default();
        let mut src = Src {
            chunks: (0..10).map(|_| vec![1u8; 100]).collect(),
            eof: false,
        };
        let mut sink = Sink {
            room: usize::MAX,
            ..Default::default()
        };
        let (mut sr, mut dr) = (RW_HUP, RW);
        assert!(matches!(
            d.pump(&mut src, &mut sr, &mut sink, &mut dr, &mut pool, 3),
            Pump::Budget
        ));
        assert_eq!(sink.data.len(), 300);
    }

    impl ShutdownWrite for std::os::unix::net::UnixStream {
        fn shutdown_write(&mut self) -> io::Result<()> {
            self.shutdown(std::net::Shutdown::Write)
        }
    }
    impl ShortRead for std::os::unix::net::UnixStream {
        fn short_read(&self, ready: &Readiness) -> ShortReadMeans {
            ShortReadMeans::of(ready, false)
        }
    }

    #[test]
    fn zero_copy_copies_small_messages_and_splices_bulk() {
        use std::os::unix::net::UnixStream;
        let (mut client, mut src) = UnixStream::pair().unwrap();
        let (mut dst, mut server) = UnixStream::pair().unwrap();
        for s in [&src, &dst, &server] {
            s.set_nonblocking(true).unwrap();
        }
        let mut pool = BufPool::new(4);
        let mut pipes = PipePool::new(4);
        let mut d = Direction::default();
        client.write_all(b"small request").unwrap();
        let (mut sr, mut dr) = (RW, RW);
        d.pump_zero_copy(
            &mut src, &mut sr, &mut dst, &mut dr, &mut pool, &mut pipes, 64,
        );
        let mut got = [0u8; 13];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"small request");
        assert_eq!(pipes.idle(), 0, "a small message was spliced");
        // A burst that fills a whole buffer switches the direction to splice.
        let big = vec![9u8; 4 * super::super::buffer::BUF_SIZE];
        client.write_all(&big).unwrap();
        let mut received = Vec::new();
        let mut chunk = vec![0u8; 65536];
        for _ in 0..100_000 {
            if received.len() >= big.len() {
                break;
            }
            sr.readable = true;
            dr.writable = true;
            d.pump_zero_copy(
                &mut src, &mut sr, &mut dst, &mut dr, &mut pool, &mut pipes, 64,
            );
            if let Ok(n) = server.read(&mut chunk) {
                received.extend_from_slice(&chunk[..n]);
            }
        }
        assert!(received == big);
        assert!(d.splicing, "bulk data did not switch to splice");
        assert_eq!(
            pipes.idle(),
            1,
            "the pipe went back to the pool once drained"
        );
    }
}
