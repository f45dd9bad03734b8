//! Sending: [`send_from`] (one `sendmsg(2)`) and [`SendBatch`] (queued
//! datagrams leaving in `sendmmsg(2)` calls of up to 1,024), each datagram
//! optionally from a chosen source address (a PKTINFO control message
//! written by `cmsg`). Does not own receiving (`recv`).

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockAddr;

use super::cmsg::{write_pktinfo, CmsgBuf, CMSG_WORDS};
use super::{MAX_BATCH, UNKNOWN_PEER};
use crate::io::IoStatus;

fn classify_send_error(e: io::Error) -> IoStatus {
    match e.kind() {
        io::ErrorKind::WouldBlock => IoStatus::WouldBlock,
        _ => IoStatus::Error(e),
    }
}

/// Sends one datagram to `to`, from source address `from` when given (an
/// IP_PKTINFO / IPV6_PKTINFO control message), otherwise from whatever the
/// kernel's routing picks. `Progress(bytes)` on success. Empty datagrams are
/// sent as empty datagrams.
pub fn send_from(
    sock: &mio::net::UdpSocket,
    buf: &[u8],
    to: SocketAddr,
    from: Option<IpAddr>,
) -> IoStatus {
    let dest = SockAddr::from(to);
    let mut cmsg: CmsgBuf = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut h: libc::msghdr = unsafe { mem::zeroed() };
    h.msg_name = dest.as_ptr() as *mut libc::c_void;
    h.msg_namelen = dest.len();
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    if let Some(from) = from {
        let len = write_pktinfo(&mut cmsg, from);
        h.msg_control = cmsg.as_mut_ptr().cast();
        h.msg_controllen = len as _;
    }
    loop {
        // SAFETY: `h` points at `dest`, `iov` (which points at `buf`, only
        // read by the kernel) and `cmsg`, all alive until the call returns.
        let rc = unsafe {
            libc::sendmsg(
                sock.as_raw_fd(),
                &h,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if rc >= 0 {
            return IoStatus::Progress(rc as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return classify_send_error(e);
        }
    }
}

/// One queued outgoing datagram: a byte range of `SendBatch::data`.
struct Pending {
    start: usize,
    len: usize,
    to: Option<SocketAddr>,
    from: Option<IpAddr>,
}

/// A queue of datagrams flushed with `sendmmsg(2)`: to a connected socket
/// (`to: None`) or each to its own address, each optionally from a chosen
/// source address. Payloads are copied in on [`SendBatch::push`], so the
/// caller's buffers are free at once; the queue keeps whatever the kernel did
/// not take (socket buffer full) for the next [`SendBatch::flush`].
#[derive(Default)]
pub struct SendBatch {
    data: Vec<u8>,
    queue: Vec<Pending>,
    /// Index of the first datagram not yet sent.
    head: usize,
    // Scratch space for one sendmmsg call, reused across flushes.
    iovecs: Vec<libc::iovec>,
    names: Vec<SockAddr>,
    /// Control buffer and its used length, per datagram.
    cmsgs: Vec<(CmsgBuf, usize)>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in the scratch vectors only point into buffers
// owned by this same struct; they are rebuilt before every syscall.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// An empty queue.
    pub fn new() -> Self {
        SendBatch::default()
    }

    /// Queues one datagram. `to: None` sends on a connected socket.
    pub fn push(&mut self, buf: &[u8], to: Option<SocketAddr>, from: Option<IpAddr>) {
        if self.head == self.queue.len() {
            self.clear();
        }
        let start = self.data.len();
        self.data.extend_from_slice(buf);
        self.queue.push(Pending {
            start,
            len: buf.len(),
            to,
            from,
        });
    }

    /// Datagrams queued and not yet sent.
    pub fn len(&self) -> usize {
        self.queue.len() - self.head
    }

    /// True when nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops everything queued.
    pub fn clear(&mut self) {
        self.data.clear();
        self.queue.clear();
        self.head = 0;
    }

    /// Sends as much of the queue as the socket takes. `Progress(n)`: `n`
    /// datagrams left (the rest, if any, stay queued because the socket
    /// buffer filled up, or the next one fails); `WouldBlock`: none could
    /// be sent now. `Error`: the datagram at the head of the queue failed
    /// (e.g. `ConnectionRefused` on a connected socket); it is dropped, as
    /// UDP would have lost it anyway, so one bad destination cannot wedge
    /// the queue; the ones after it stay queued for the next flush.
    pub fn flush(&mut self, sock: &mio::net::UdpSocket) -> IoStatus {
        let mut sent_total = 0;
        while self.head < self.queue.len() {
            match self.flush_chunk(sock) {
                Ok(sent) => {
                    self.head += sent;
                    sent_total += sent;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Report what went out first; the failing datagram is
                // still at the head and will fail alone on the next flush.
                Err(_) if sent_total > 0 => break,
                Err(e) => {
                    // sendmmsg reports an error only when the first message
                    // of the call failed.
                    self.head += 1;
                    if self.head == self.queue.len() {
                        self.clear();
                    }
                    return IoStatus::Error(e);
                }
            }
        }
        if self.head == self.queue.len() {
            self.clear();
        }
        if sent_total == 0 && !self.is_empty() {
            IoStatus::WouldBlock
        } else {
            IoStatus::Progress(sent_total)
        }
    }

    fn flush_chunk(&mut self, sock: &mio::net::UdpSocket) -> io::Result<usize> {
        let n = (self.queue.len() - self.head).min(MAX_BATCH);
        let batch = &self.queue[self.head..self.head + n];
        self.iovecs.clear();
        self.names.clear();
        self.cmsgs.clear();
        self.hdrs.clear();
        for p in batch {
            self.iovecs.push(libc::iovec {
                // The kernel only reads through this pointer.
                iov_base: self.data[p.start..].as_ptr() as *mut libc::c_void,
                iov_len: p.len,
            });
            let name =
                p.to.map(SockAddr::from)
                    .unwrap_or_else(|| SockAddr::from(UNKNOWN_PEER));
            self.names.push(name);
            let mut c = [0u64; CMSG_WORDS];
            let clen = p.from.map(|ip| write_pktinfo(&mut c, ip)).unwrap_or(0);
            self.cmsgs.push((c, clen));
        }
        for (i, p) in batch.iter().enumerate() {
            // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
            let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
            if p.to.is_some() {
                m.msg_hdr.msg_name = self.names[i].as_ptr() as *mut libc::c_void;
                m.msg_hdr.msg_namelen = self.names[i].len();
            }
            m.msg_hdr.msg_iov = &mut self.iovecs[i];
            m.msg_hdr.msg_iovlen = 1;
            let (ref mut ctl, ctl_len) = self.cmsgs[i];
            if ctl_len > 0 {
                m.msg_hdr.msg_control = ctl.as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = ctl_len as _;
            }
            self.hdrs.push(m);
        }
        // SAFETY: `hdrs` holds `n` headers whose pointers target `data`,
        // `iovecs`, `names` and `cmsgs`; none of those vectors is touched
        // until the call returns, so every pointer stays valid.
        let rc = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as _, // c_int on glibc, c_uint on musl
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc as usize)
    }
}
