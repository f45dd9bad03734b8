//! Receiving: [`RecvBatch`], one `recvmmsg(2)` call for up to 1,024
//! datagrams into reusable buffers, each with its sender, its destination
//! address (PKTINFO, decoded by `cmsg`) and a truncation flag. Does not own
//! sending (`send`) nor what the datagrams mean (the caller).

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockAddr;

use super::cmsg::{parse_pktinfo, CmsgBuf, CMSG_WORDS};
use super::{MAX_BATCH, UNKNOWN_PEER};
use crate::io::IoStatus;

/// Room for the largest UDP payload (65,507 bytes over IPv4, 65,527 over
/// IPv6 without jumbograms) plus a byte, so a `truncated` flag is exact.
const DATAGRAM_BUF: usize = 65_536;

/// Facts about one received datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta {
    /// Payload length in the buffer (at most 65,536).
    pub len: usize,
    /// Who sent it.
    pub peer: SocketAddr,
    /// The local address it was sent to, when pktinfo is enabled on the socket.
    pub local_ip: Option<IpAddr>,
    /// The datagram was larger than the buffer and was cut (MSG_TRUNC).
    pub truncated: bool,
}

/// A reusable set of `n` receive slots for `recvmmsg(2)`.
///
/// The 64 KiB buffers are allocated on the first [`RecvBatch::recv`], so an
/// idle batch costs almost nothing; after that the batch never allocates.
pub struct RecvBatch {
    n: usize,
    bufs: Vec<u8>,
    iovecs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<CmsgBuf>,
    hdrs: Vec<libc::mmsghdr>,
    metas: Vec<RecvMeta>,
}

// SAFETY: the raw pointers inside `iovecs`/`hdrs` only ever point into heap
// buffers owned by this same struct (`bufs`, `names`, `cmsgs`, `iovecs`);
// they are rewritten before every syscall and never shared, so moving the
// whole batch to another thread moves their targets with it.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// A batch of `n` slots (clamped to 1..=1024).
    pub fn new(n: usize) -> Self {
        RecvBatch {
            n: n.clamp(1, MAX_BATCH),
            bufs: Vec::new(),
            iovecs: Vec::new(),
            names: Vec::new(),
            cmsgs: Vec::new(),
            hdrs: Vec::new(),
            metas: Vec::new(),
        }
    }

    /// Slots in this batch.
    /// The buffers exist (after the first `recv`).
    #[cfg(test)]
    pub(super) fn is_allocated(&self) -> bool {
        !self.bufs.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.n
    }

    /// Datagrams held from the last successful [`RecvBatch::recv`].
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// True when the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    fn allocate(&mut self) {
        if !self.bufs.is_empty() {
            return;
        }
        let n = self.n;
        self.bufs = vec![0u8; n * DATAGRAM_BUF];
        // SAFETY: iovec, sockaddr_storage and mmsghdr are plain C structs for
        // which all-zero bytes (null pointers, zero lengths) are valid values.
        let (iov, name, hdr) = unsafe {
            (
                mem::zeroed::<libc::iovec>(),
                mem::zeroed::<libc::sockaddr_storage>(),
                mem::zeroed::<libc::mmsghdr>(),
            )
        };
        self.iovecs = vec![iov; n];
        self.names = vec![name; n];
        self.cmsgs = vec![[0u64; CMSG_WORDS]; n];
        self.hdrs = vec![hdr; n];
        self.metas = Vec::with_capacity(n);
    }

    /// Receives up to `capacity()` datagrams with one `recvmmsg(2)` without
    /// blocking. `Progress(count)` replaces what the batch held; read them
    /// with [`RecvBatch::get`]. `WouldBlock` means the socket is drained.
    /// `Error` keeps the errno, e.g. `ConnectionRefused` on a connected
    /// socket whose peer answered an earlier datagram with ICMP unreachable.
    pub fn recv(&mut self, sock: &mio::net::UdpSocket) -> IoStatus {
        self.allocate();
        self.metas.clear();
        let base = self.bufs.as_mut_ptr();
        for i in 0..self.n {
            // SAFETY: i < n and `bufs` holds n * DATAGRAM_BUF bytes, so the
            // offset stays inside the allocation.
            self.iovecs[i].iov_base = unsafe { base.add(i * DATAGRAM_BUF) }.cast();
            self.iovecs[i].iov_len = DATAGRAM_BUF;
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            h.msg_controllen = mem::size_of::<CmsgBuf>() as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        let fd = sock.as_raw_fd();
        let got = loop {
            // SAFETY: every header points at live buffers owned by `self`
            // with the lengths set just above; `n` headers exist; a null
            // timeout is allowed. The kernel writes only within those lengths.
            let rc = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    self.n as libc::c_uint,
                    libc::MSG_DONTWAIT as _, // c_int on glibc, c_uint on musl
                    std::ptr::null_mut(),
                )
            };
            if rc >= 0 {
                break rc as usize;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return IoStatus::WouldBlock,
                _ => return IoStatus::Error(e),
            }
        };
        for i in 0..got {
            let hdr = &self.hdrs[i];
            let truncated = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let len = (hdr.msg_len as usize).min(DATAGRAM_BUF);
            // SAFETY: the kernel initialised `names[i]` up to msg_namelen
            // bytes, and its ss_family says which sockaddr type it holds.
            let peer = unsafe { SockAddr::new(self.names[i], hdr.msg_hdr.msg_namelen) }
                .as_socket()
                .unwrap_or(UNKNOWN_PEER);
            let local_ip = parse_pktinfo(&hdr.msg_hdr);
            self.metas.push(RecvMeta {
                len,
                peer,
                local_ip,
                truncated,
            });
        }
        IoStatus::Progress(got)
    }

    /// Datagram `i` of the last receive: its bytes and facts.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing: that is a caller bug.
    pub fn get(&self, i: usize) -> (&[u8], RecvMeta) {
        let meta = self.metas[i];
        let start = i * DATAGRAM_BUF;
        (&self.bufs[start..start + meta.len], meta)
    }

    /// Every datagram of the last receive, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], RecvMeta)> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}
