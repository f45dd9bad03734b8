//! Loopback tests of `udp/`: PKTINFO on wildcard, IPv6 and dual-stack
//! sockets, batch limits, error reporting.

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use super::cmsg::{parse_pktinfo, write_pktinfo, CMSG_WORDS};
use super::*;
use crate::bind::BindHost;
use crate::io::IoStatus;
use crate::listener::{bind_udp, BindOptions};
use std::net::UdpSocket as StdUdp;
use std::time::Duration;

const PKTINFO: BindOptions = BindOptions {
    reuseport: false,
    backlog: 1024,
    recv_pktinfo: true,
};

/// False (with a SKIP line) when there is no IPv6 loopback.
fn v6_available() -> bool {
    let ok = StdUdp::bind("[::1]:0").is_ok();
    if !ok {
        // Straight to stderr: the harness swallows `eprintln!` of a
        // passing test, and this one did not check what it promises.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {}: needs IPv6 loopback (::1)",
            std::thread::current().name().unwrap_or("?")
        );
    }
    ok
}

/// Waits (bounded) until `fd` is readable or has an error pending.
fn wait_readable(fd: RawFdLike) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut p, 1, 5000) };
    assert!(rc >= 0, "{}", io::Error::last_os_error());
}
type RawFdLike = std::os::fd::RawFd;

/// Receives until at least `want` datagrams were collected (bounded).
fn recv_n(
    batch: &mut RecvBatch,
    sock: &mio::net::UdpSocket,
    want: usize,
) -> Vec<(Vec<u8>, RecvMeta)> {
    let mut out = Vec::new();
    for _ in 0..50 {
        if out.len() >= want {
            break;
        }
        wait_readable(sock.as_raw_fd());
        match batch.recv(sock) {
            IoStatus::Progress(n) => {
                assert_eq!(n, batch.len());
                out.extend(batch.iter().map(|(b, m)| (b.to_vec(), m)));
            }
            IoStatus::WouldBlock => {}
            other => panic!("recv: {other:?}"),
        }
    }
    out
}

/// A plain (no PKTINFO) socket on 127.0.0.1, ephemeral port.
fn loopback_v4() -> mio::net::UdpSocket {
    bind_udp(
        "127.0.0.1:0".parse().unwrap(),
        BindHost::Ip("127.0.0.1".parse().unwrap()),
        &BindOptions::default(),
    )
    .unwrap()
}

fn client(addr: &str) -> StdUdp {
    let c = StdUdp::bind(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

#[test]
fn wildcard_v4_reports_destination_and_replies_from_it() {
    let s = bind_udp(
        "0.0.0.0:0".parse().unwrap(),
        BindHost::Ip("0.0.0.0".parse().unwrap()),
        &PKTINFO,
    )
    .unwrap();
    let port = s.local_addr().unwrap().port();
    let c = client("127.0.0.1:0");
    let mut batch = RecvBatch::new(8);

    c.send_to(b"one", ("127.0.0.1", port)).unwrap();
    let got = recv_n(&mut batch, &s, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, b"one");
    assert_eq!(got[0].1.local_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(got[0].1.peer, c.local_addr().unwrap());
    assert!(!got[0].1.truncated);

    // Linux routes all of 127/8 to lo: a second local address.
    c.send_to(b"two", ("127.0.0.2", port)).unwrap();
    let got = recv_n(&mut batch, &s, 1);
    let meta = got[0].1;
    assert_eq!(meta.local_ip, Some("127.0.0.2".parse().unwrap()));

    let st = send_from(&s, b"reply", meta.peer, meta.local_ip);
    assert!(matches!(st, IoStatus::Progress(5)), "{st:?}");
    let mut buf = [0u8; 16];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"reply");
    assert_eq!(from, SocketAddr::new("127.0.0.2".parse().unwrap(), port));

    // Control: without a source address the kernel picks 127.0.0.1,
    // which is why send_from exists.
    send_from(&s, b"plain", meta.peer, None);
    let (_, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!(from.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
}

#[test]
fn without_pktinfo_local_ip_is_none() {
    let s = loopback_v4();
    let c = client("127.0.0.1:0");
    c.send_to(b"x", s.local_addr().unwrap()).unwrap();
    let got = recv_n(&mut RecvBatch::new(1), &s, 1);
    assert_eq!(got[0].1.local_ip, None);
}

#[test]
fn wildcard_v6_reports_destination_and_replies_from_it() {
    if !v6_available() {
        return;
    }
    let any6: SocketAddr = "[::]:0".parse().unwrap();
    let s = bind_udp(any6, BindHost::Ip(any6.ip()), &PKTINFO).unwrap();
    let port = s.local_addr().unwrap().port();
    let c = client("[::1]:0");
    c.send_to(b"six", ("::1", port)).unwrap();
    let got = recv_n(&mut RecvBatch::new(4), &s, 1);
    let meta = got[0].1;
    assert_eq!(got[0].0, b"six");
    assert_eq!(meta.local_ip, Some("::1".parse().unwrap()));
    assert_eq!(meta.peer, c.local_addr().unwrap());
    assert!(matches!(
        send_from(&s, b"back", meta.peer, meta.local_ip),
        IoStatus::Progress(4)
    ));
    let mut buf = [0u8; 8];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"back");
    assert_eq!(from, SocketAddr::new("::1".parse().unwrap(), port));
}

#[test]
fn dual_stack_v4_client_gets_reply_from_the_address_it_used() {
    if !v6_available() {
        return;
    }
    let s = bind_udp("[::]:0".parse().unwrap(), BindHost::DualStack, &PKTINFO).unwrap();
    let port = s.local_addr().unwrap().port();
    let c = client("127.0.0.1:0");
    c.send_to(b"v4", ("127.0.0.2", port)).unwrap();
    let got = recv_n(&mut RecvBatch::new(4), &s, 1);
    let meta = got[0].1;
    assert_eq!(meta.local_ip, Some("127.0.0.2".parse().unwrap()));
    assert!(
        matches!(meta.peer.ip(), IpAddr::V6(ip) if ip.to_ipv4_mapped() == Some("127.0.0.1".parse().unwrap()))
    );
    let st = send_from(&s, b"ok", meta.peer, meta.local_ip);
    assert!(matches!(st, IoStatus::Progress(2)), "{st:?}");
    let mut buf = [0u8; 8];
    let (n, from) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ok");
    assert_eq!(from, SocketAddr::new("127.0.0.2".parse().unwrap(), port));
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn empty_and_largest_datagrams_pass_whole_both_ways() {
    let host = BindHost::Ip("127.0.0.1".parse().unwrap());
    let s = bind_udp("127.0.0.1:0".parse().unwrap(), host, &PKTINFO).unwrap();
    let peer_sock = loopback_v4();
    let big = pattern(65_507, 7);
    let to = s.local_addr().unwrap();
    assert!(matches!(
        send_from(&peer_sock, &[], to, None),
        IoStatus::Progress(0)
    ));
    assert!(matches!(
        send_from(&peer_sock, &big, to, None),
        IoStatus::Progress(65_507)
    ));
    let mut batch = RecvBatch::new(4);
    let got = recv_n(&mut batch, &s, 2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.len(), 0);
    assert_eq!(got[0].1.len, 0);
    assert_eq!(got[1].0, big);
    assert!(!got[1].1.truncated);

    // And back through SendBatch, from the address it arrived on.
    let mut out = SendBatch::new();
    out.push(&[], Some(got[0].1.peer), got[0].1.local_ip);
    out.push(&big, Some(got[1].1.peer), got[1].1.local_ip);
    assert!(matches!(out.flush(&s), IoStatus::Progress(2)));
    assert!(out.is_empty());
    let back = recv_n(&mut batch, &peer_sock, 2);
    assert_eq!(back.len(), 2);
    assert!(back[0].0.is_empty());
    assert_eq!(back[1].0, big);
    assert_eq!(back[1].1.peer, to);
}

#[test]
fn largest_v6_datagram_passes_whole() {
    if !v6_available() {
        return;
    }
    let host = BindHost::Ip("::1".parse().unwrap());
    let s = bind_udp("[::1]:0".parse().unwrap(), host, &PKTINFO).unwrap();
    let big = pattern(65_527, 3);
    let c = client("[::1]:0");
    c.send_to(&big, s.local_addr().unwrap()).unwrap();
    let got = recv_n(&mut RecvBatch::new(1), &s, 1);
    assert_eq!(got[0].0, big);
    assert!(!got[0].1.truncated);
}

#[test]
fn batches_many_datagrams_in_order_and_drains_to_would_block() {
    let s = loopback_v4();
    let sender = loopback_v4();
    sender.connect(s.local_addr().unwrap()).unwrap();
    let mut out = SendBatch::new();
    for i in 0..100u32 {
        out.push(&i.to_be_bytes(), None, None);
    }
    assert_eq!(out.len(), 100);
    assert!(matches!(out.flush(&sender), IoStatus::Progress(100)));
    let mut batch = RecvBatch::new(16);
    let got = recv_n(&mut batch, &s, 100);
    let seq: Vec<u32> = got
        .iter()
        .map(|(b, _)| u32::from_be_bytes(b[..4].try_into().unwrap()))
        .collect();
    assert_eq!(seq, (0..100).collect::<Vec<_>>());
    assert!(matches!(batch.recv(&s), IoStatus::WouldBlock));
    assert!(batch.is_empty());
}

#[test]
fn send_batch_error_drops_only_the_failing_datagram() {
    let s = loopback_v4();
    let sender = loopback_v4();
    let to = Some(s.local_addr().unwrap());
    // An IPv6 destination on an IPv4 socket: the kernel refuses it.
    let bad = Some("[::1]:9".parse().unwrap());
    let mut out = SendBatch::new();
    out.push(b"first", to, None);
    out.push(b"bad", bad, None);
    out.push(b"third", to, None);
    // The good datagram before the bad one is reported as progress...
    assert!(matches!(out.flush(&sender), IoStatus::Progress(1)));
    assert_eq!(out.len(), 2);
    // ...then the bad one alone is reported and dropped...
    assert!(matches!(out.flush(&sender), IoStatus::Error(_)));
    assert_eq!(out.len(), 1);
    // ...and the queue carries on.
    assert!(matches!(out.flush(&sender), IoStatus::Progress(1)));
    assert!(out.is_empty());
    let got = recv_n(&mut RecvBatch::new(4), &s, 2);
    let bodies: Vec<&[u8]> = got.iter().map(|(b, _)| b.as_slice()).collect();
    assert_eq!(bodies, [&b"first"[..], &b"third"[..]]);
}

#[test]
fn connection_refused_is_reported_with_its_kind() {
    let gone = StdUdp::bind("127.0.0.1:0").unwrap();
    let dead = gone.local_addr().unwrap();
    drop(gone);
    let s = loopback_v4();
    s.connect(dead).unwrap();
    let mut out = SendBatch::new();
    out.push(b"anyone?", None, None);
    assert!(matches!(out.flush(&s), IoStatus::Progress(1)));
    // The ICMP port-unreachable arrives as a pending socket error.
    let mut batch = RecvBatch::new(4);
    let mut refused = false;
    for _ in 0..50 {
        wait_readable(s.as_raw_fd());
        match batch.recv(&s) {
            IoStatus::Error(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                refused = true;
                break;
            }
            IoStatus::WouldBlock => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(refused);
    // The error was consumed; the socket is usable and empty again.
    assert!(matches!(batch.recv(&s), IoStatus::WouldBlock));
}

#[test]
fn pktinfo_control_message_roundtrips() {
    for ip in ["10.1.2.3", "::1", "fe80::1"] {
        let ip: IpAddr = ip.parse().unwrap();
        let mut buf = [0u64; CMSG_WORDS];
        let len = write_pktinfo(&mut buf, ip);
        // SAFETY: all-zero is a valid msghdr.
        let mut h: libc::msghdr = unsafe { mem::zeroed() };
        h.msg_control = buf.as_mut_ptr().cast();
        h.msg_controllen = len as _;
        // Sending puts the source in ipi_spec_dst, receiving reads
        // ipi_addr, so only the IPv6 form reads back the same field.
        if ip.is_ipv6() {
            assert_eq!(parse_pktinfo(&h), Some(ip));
        } else {
            assert_eq!(parse_pktinfo(&h), Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        }
    }
}

#[test]
fn recv_batch_is_lazy_and_clamped() {
    let b = RecvBatch::new(0);
    assert_eq!(b.capacity(), 1);
    assert!(!b.is_allocated());
    assert_eq!(RecvBatch::new(5000).capacity(), MAX_BATCH);
    fn is_send<T: Send>() {}
    is_send::<RecvBatch>();
    is_send::<SendBatch>();
}
