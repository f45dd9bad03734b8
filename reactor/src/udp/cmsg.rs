//! PKTINFO control messages: writing the one that picks a datagram's source
//! address (`IP_PKTINFO` / `IPV6_PKTINFO` on send) and reading the one that
//! tells where a received datagram was sent to. Owns the control buffer
//! type and its size; not the syscalls that carry it (`recv`, `send`).

use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ancillary-data room per message: IP_PKTINFO and IPV6_PKTINFO can both
/// arrive (a dual-stack socket sees both for IPv4 traffic), 32 + 40 bytes
/// on 64-bit Linux; u64 elements keep the buffer `cmsghdr`-aligned.
pub(super) const CMSG_WORDS: usize = 16;
pub(super) type CmsgBuf = [u64; CMSG_WORDS];

/// Reads the destination address out of a received message's control data.
/// IP_PKTINFO wins over IPV6_PKTINFO, and an IPv4-mapped IPv6 address is
/// reported as IPv4, so the result can be fed back to [`send_from`](super::send_from).
pub(super) fn parse_pktinfo(h: &libc::msghdr) -> Option<IpAddr> {
    let mut v6 = None;
    // SAFETY: `h` is a msghdr the kernel just filled: msg_control points at
    // our own cmsg buffer and msg_controllen says how much of it holds
    // well-formed cmsghdrs; the CMSG_* macros never step past that length.
    // Payloads are read with read_unaligned after checking cmsg_len covers them.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            let avail =
                ((*c).cmsg_len as usize).saturating_sub(data.offset_from(c.cast::<u8>()) as usize);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO)
                    if avail >= mem::size_of::<libc::in_pktinfo>() =>
                {
                    let info: libc::in_pktinfo = std::ptr::read_unaligned(data.cast());
                    return Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        info.ipi_addr.s_addr,
                    ))));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                    if avail >= mem::size_of::<libc::in6_pktinfo>() =>
                {
                    let info: libc::in6_pktinfo = std::ptr::read_unaligned(data.cast());
                    let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                    v6 = Some(match ip.to_ipv4_mapped() {
                        Some(v4) => IpAddr::V4(v4),
                        None => IpAddr::V6(ip),
                    });
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    v6
}

/// Writes a pktinfo control message choosing `from` as the source address
/// into `buf`; returns the control length to put in `msg_controllen`.
pub(super) fn write_pktinfo(buf: &mut CmsgBuf, from: IpAddr) -> usize {
    let (level, ty, payload_len) = match from {
        IpAddr::V4(_) => (
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            mem::size_of::<libc::in_pktinfo>(),
        ),
        IpAddr::V6(_) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_PKTINFO,
            mem::size_of::<libc::in6_pktinfo>(),
        ),
    };
    *buf = [0u64; CMSG_WORDS];
    // SAFETY: CMSG_SPACE of either pktinfo struct (32 or 40 bytes) fits in the
    // 128-byte, 8-aligned buffer, which a zeroed msghdr describes exactly so
    // CMSG_FIRSTHDR returns its start; the payload write stays inside
    // CMSG_SPACE and uses write_unaligned.
    unsafe {
        let space = libc::CMSG_SPACE(payload_len as libc::c_uint) as usize;
        debug_assert!(space <= mem::size_of::<CmsgBuf>());
        let mut h: libc::msghdr = mem::zeroed();
        h.msg_control = buf.as_mut_ptr().cast();
        h.msg_controllen = space as _;
        let c = libc::CMSG_FIRSTHDR(&h);
        (*c).cmsg_level = level;
        (*c).cmsg_type = ty;
        (*c).cmsg_len = libc::CMSG_LEN(payload_len as libc::c_uint) as _;
        let data = libc::CMSG_DATA(c);
        match from {
            IpAddr::V4(ip) => {
                let mut info: libc::in_pktinfo = mem::zeroed();
                // ipi_spec_dst is the source the kernel uses; ifindex 0
                // lets routing pick the interface.
                info.ipi_spec_dst.s_addr = u32::from(ip).to_be();
                std::ptr::write_unaligned(data.cast(), info);
            }
            IpAddr::V6(ip) => {
                let mut info: libc::in6_pktinfo = mem::zeroed();
                info.ipi6_addr.s6_addr = ip.octets();
                std::ptr::write_unaligned(data.cast(), info);
            }
        }
        space
    }
}
