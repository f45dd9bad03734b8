//! Listening sockets: binding one port or a whole [`BindSpec`] range, and
//! draining a TCP accept queue in bounded batches.
//!
//! Owns the socket options a listener is born with (non-blocking, CLOEXEC,
//! `SO_REUSEADDR`, `TCP_NODELAY` for its connections, optional
//! `SO_REUSEPORT`, an explicit `IPV6_V6ONLY`, UDP PKTINFO) and the
//! classification of `accept(2)` errors into "try again later"
//! ([`AcceptStop::FdExhausted`]) versus "skip this one". It does not own
//! registration with a poller nor the pause/resume policy: that is the event
//! loop's job, driven by what [`accept_batch`] reports.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::bind::{BindHost, BindSpec};

/// Options applied to every socket a listener binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindOptions {
    /// Set `SO_REUSEPORT`, so several sockets (one per loop) can share a port.
    pub reuseport: bool,
    /// TCP `listen(2)` backlog.
    pub backlog: i32,
    /// UDP only: ask for `IP_PKTINFO` / `IPV6_RECVPKTINFO`, so each datagram
    /// says which local address it was sent to (needed to reply from it on a
    /// wildcard bind).
    pub recv_pktinfo: bool,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            reuseport: false,
            backlog: 1024,
            recv_pktinfo: false,
        }
    }
}

/// A bind that the kernel refused, naming the address.
#[derive(Debug)]
pub struct BindFailure {
    pub addr: SocketAddr,
    pub error: io::Error,
}

impl fmt::Display for BindFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot bind {}: {}", self.addr, self.error)
    }
}

impl std::error::Error for BindFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Creates a non-blocking, close-on-exec socket for `addr` with the family
/// rules of `host`: a dual-stack bind is an IPv6 socket with `IPV6_V6ONLY`
/// off; any literal IPv6 address (`[::]` included) gets `IPV6_V6ONLY` on so
/// that it never silently claims the IPv4 side too.
fn new_socket(addr: SocketAddr, host: BindHost, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let ty = ty.nonblocking().cloexec();
    let sock = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        sock.set_only_v6(host != BindHost::DualStack)?;
    }
    Ok(sock)
}

/// The address a dual-stack bind falls back to on a host without IPv6.
fn v4_fallback(addr: SocketAddr, host: BindHost) -> Option<SocketAddr> {
    match (host, addr.ip()) {
        (BindHost::DualStack, IpAddr::V6(ip)) if ip == Ipv6Addr::UNSPECIFIED => Some(
            SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), addr.port()),
        ),
        _ => None,
    }
}

fn is_no_ipv6(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

/// Binds one TCP listening socket. `host` only decides `IPV6_V6ONLY` (see
/// [`BindHost`]); `addr` is where it binds. `SO_REUSEADDR` is always on so a
/// restart does not wait for TIME_WAIT sockets. `TCP_NODELAY` is set on the
/// listener: Linux copies it to every accepted socket, which saves a
/// `setsockopt` per connection (see [`accept_batch`]).
pub fn bind_tcp(
    addr: SocketAddr,
    host: BindHost,
    opts: &BindOptions,
) -> io::Result<mio::net::TcpListener> {
    let sock = match new_socket(addr, host, Type::STREAM, Protocol::TCP) {
        Err(e) if is_no_ipv6(&e) && v4_fallback(addr, host).is_some() => {
            return bind_tcp(
                v4_fallback(addr, host).unwrap_or(addr),
                BindHost::Ip(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                opts,
            );
        }
        r => r?,
    };
    sock.set_reuse_address(true)?;
    if opts.reuseport {
        sock.set_reuse_port(true)?;
    }
    // Nagle only delays a relay's small writes. Failing to set it is
    // harmless (connections work, a little slower), so it is not an error.
    let _ = sock.set_nodelay(true);
    sock.bind(&SockAddr::from(addr))?;
    sock.listen(opts.backlog)?;
    Ok(mio::net::TcpListener::from_std(sock.into()))
}

/// Binds one UDP socket. With `opts.recv_pktinfo` every received datagram
/// carries its destination address (see `udp::RecvBatch`). No
/// `SO_REUSEADDR` for UDP: on Linux it would let a second process share the
/// port and steal datagrams.
pub fn bind_udp(
    addr: SocketAddr,
    host: BindHost,
    opts: &BindOptions,
) -> io::Result<mio::net::UdpSocket> {
    let sock = match new_socket(addr, host, Type::DGRAM, Protocol::UDP) {
        Err(e) if is_no_ipv6(&e) && v4_fallback(addr, host).is_some() => {
            return bind_udp(
                v4_fallback(addr, host).unwrap_or(addr),
                BindHost::Ip(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                opts,
            );
        }
        r => r?,
    };
    if opts.reuseport {
        sock.set_reuse_port(true)?;
    }
    if opts.recv_pktinfo {
        enable_pktinfo(&sock, addr.is_ipv6(), host == BindHost::DualStack)?;
    }
    sock.bind(&SockAddr::from(addr))?;
    Ok(mio::net::UdpSocket::from_std(sock.into()))
}

fn set_int_opt(
    sock: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `sock` is an open socket for the duration of the call, and the
    // option value points at a live c_int whose size we pass exactly.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// IPv4 sockets get `IP_PKTINFO`; IPv6 sockets `IPV6_RECVPKTINFO`; a
/// dual-stack socket also `IP_PKTINFO`, because Linux reports the
/// destination of IPv4 datagrams arriving on it that way.
fn enable_pktinfo(sock: &Socket, v6: bool, dual: bool) -> io::Result<()> {
    if v6 {
        set_int_opt(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
    }
    if !v6 || dual {
        set_int_opt(sock, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
    }
    Ok(())
}

fn bind_spec_with<T>(
    spec: &BindSpec,
    opts: &BindOptions,
    bind_one: fn(SocketAddr, BindHost, &BindOptions) -> io::Result<T>,
) -> Result<Vec<(u16, T)>, BindFailure> {
    let mut out = Vec::with_capacity(spec.port_count());
    for port in spec.ports() {
        let addr = spec.addr(port);
        // On failure the sockets already bound are dropped (closed) with `out`.
        let sock = bind_one(addr, spec.host, opts).map_err(|error| BindFailure { addr, error })?;
        out.push((port, sock));
    }
    Ok(out)
}

/// Binds one TCP listener per port of `spec`, in port order. All or nothing:
/// if one port fails, the ones already bound are closed.
pub fn bind_spec_tcp(
    spec: &BindSpec,
    opts: &BindOptions,
) -> Result<Vec<(u16, mio::net::TcpListener)>, BindFailure> {
    bind_spec_with(spec, opts, bind_tcp)
}

/// Binds one UDP socket per port of `spec`, in port order. All or nothing.
pub fn bind_spec_udp(
    spec: &BindSpec,
    opts: &BindOptions,
) -> Result<Vec<(u16, mio::net::UdpSocket)>, BindFailure> {
    bind_spec_with(spec, opts, bind_udp)
}

/// Why [`accept_batch`] stopped.
#[derive(Debug)]
pub enum AcceptStop {
    /// The accept queue is empty: wait for the next readiness event.
    WouldBlock,
    /// The budget was spent with connections possibly still queued: the
    /// caller must come back (re-queue the listener) since no new edge will
    /// arrive for them.
    Budget,
    /// Out of file descriptors or kernel memory (EMFILE, ENFILE, ENOBUFS,
    /// ENOMEM). The connection stays queued; pause accepting and retry later
    /// (from a timer), or the loop would spin on a permanently readable socket.
    FdExhausted(io::Error),
    /// Something unexpected about the listener itself (EBADF, EINVAL, ...).
    Error(io::Error),
}

/// What to do about one failed `accept(2)`.
enum AcceptErrorKind {
    Retry,
    Empty,
    Exhausted,
    /// This connection died or was refused before we got it; the next one is fine.
    SkipConnection,
    Fatal,
}

fn classify_accept_error(e: &io::Error) -> AcceptErrorKind {
    if e.kind() == io::ErrorKind::WouldBlock {
        return AcceptErrorKind::Empty;
    }
    match e.raw_os_error() {
        Some(libc::EINTR) => AcceptErrorKind::Retry,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            AcceptErrorKind::Exhausted
        }
        // accept(2): "Linux accept() passes already-pending network errors on
        // the new socket as an error code ... should be treated like EAGAIN
        // by retrying"; ECONNABORTED/EPROTO are a peer that gave up, EPERM a
        // firewall rule refusing this one connection.
        Some(
            libc::ECONNABORTED
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ETIMEDOUT
            | libc::ECONNRESET,
        ) => AcceptErrorKind::SkipConnection,
        _ => AcceptErrorKind::Fatal,
    }
}

/// Accepts until `WouldBlock`, at most `budget` connections; each accepted
/// stream is non-blocking (mio uses `accept4` with `SOCK_NONBLOCK |
/// SOCK_CLOEXEC`) and, from a listener bound by [`bind_tcp`], has
/// `TCP_NODELAY` (inherited from the listener: no `setsockopt` here). Returns how many were handed to
/// `on_accept` and why it stopped. Per-connection failures (a peer that
/// reset before we accepted) are skipped but still count against the budget,
/// so a storm of them cannot monopolise the loop.
pub fn accept_batch(
    l: &mio::net::TcpListener,
    budget: usize,
    mut on_accept: impl FnMut(mio::net::TcpStream, SocketAddr),
) -> (usize, AcceptStop) {
    let mut accepted = 0;
    let mut attempts = 0;
    while attempts < budget {
        match l.accept() {
            Ok((stream, peer)) => {
                attempts += 1;
                accepted += 1;
                on_accept(stream, peer);
            }
            Err(e) => match classify_accept_error(&e) {
                AcceptErrorKind::Retry => continue,
                AcceptErrorKind::Empty => return (accepted, AcceptStop::WouldBlock),
                AcceptErrorKind::Exhausted => return (accepted, AcceptStop::FdExhausted(e)),
                AcceptErrorKind::SkipConnection => attempts += 1,
                AcceptErrorKind::Fatal => return (accepted, AcceptStop::Error(e)),
            },
        }
    }
    (accepted, AcceptStop::Budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    /// False (with a SKIP line) when there is no IPv6 loopback.
    fn v6_available() -> bool {
        let ok = std::net::TcpListener::bind("[::1]:0").is_ok();
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

    fn get_int_opt(fd: i32, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut val: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: fd is open for the call; val/len point at live locals of the right size.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                (&mut val as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        val
    }

    #[test]
    fn tcp_listener_has_the_promised_options() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let opts = BindOptions {
            reuseport: true,
            ..BindOptions::default()
        };
        let l = bind_tcp(addr, BindHost::Ip(addr.ip()), &opts).unwrap();
        let fd = l.as_raw_fd();
        assert_eq!(get_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR), 1);
        assert_eq!(get_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT), 1);
        assert_eq!(get_int_opt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN), 1);
        // Accepted sockets inherit it (see accept_batch's test).
        assert_eq!(get_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
        // SAFETY: fcntl F_GETFL/F_GETFD on an open fd has no memory effects.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFL),
                libc::fcntl(fd, libc::F_GETFD),
            )
        };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        assert_ne!(fdfl & libc::FD_CLOEXEC, 0);

        let plain = bind_tcp(addr, BindHost::Ip(addr.ip()), &BindOptions::default()).unwrap();
        assert_eq!(
            get_int_opt(plain.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT),
            0
        );
    }

    #[test]
    fn reuseport_lets_two_sockets_share_a_port_and_plain_does_not() {
        let opts = BindOptions {
            reuseport: true,
            ..BindOptions::default()
        };
        let host = BindHost::Ip("127.0.0.1".parse().unwrap());
        let a = bind_tcp("127.0.0.1:0".parse().unwrap(), host, &opts).unwrap();
        let addr = a.local_addr().unwrap();
        let _b = bind_tcp(addr, host, &opts).unwrap();
        let ua = bind_udp("127.0.0.1:0".parse().unwrap(), host, &opts).unwrap();
        let uaddr = ua.local_addr().unwrap();
        let _ub = bind_udp(uaddr, host, &opts).unwrap();

        let err = bind_tcp(addr, host, &BindOptions::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let err = bind_udp(uaddr, host, &BindOptions::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn v6only_follows_the_bind_host() {
        if !v6_available() {
            return;
        }
        let any6: SocketAddr = "[::]:0".parse().unwrap();
        let dual = bind_tcp(any6, BindHost::DualStack, &BindOptions::default()).unwrap();
        assert_eq!(
            get_int_opt(dual.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
            0
        );
        let only = bind_tcp(any6, BindHost::Ip(any6.ip()), &BindOptions::default()).unwrap();
        assert_eq!(
            get_int_opt(only.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
            1
        );
        let u = bind_udp(any6, BindHost::DualStack, &BindOptions::default()).unwrap();
        assert_eq!(
            get_int_opt(u.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
            0
        );

        // The dual-stack listener really accepts an IPv4 client.
        let port = dual.local_addr().unwrap().port();
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"x").unwrap();
        let mut got = None;
        for _ in 0..1000 {
            let (_, stop) = accept_batch(&dual, 8, |s, peer| got = Some((s, peer)));
            if got.is_some() || !matches!(stop, AcceptStop::WouldBlock) {
                break;
            }
            std::thread::yield_now();
        }
        let (_, peer) = got.expect("dual-stack listener accepted the IPv4 client");
        assert!(matches!(peer.ip(), IpAddr::V6(ip) if ip.to_ipv4_mapped().is_some()));
    }

    #[test]
    fn pktinfo_is_set_on_udp_when_asked() {
        let opts = BindOptions {
            recv_pktinfo: true,
            ..BindOptions::default()
        };
        let u = bind_udp(
            "0.0.0.0:0".parse().unwrap(),
            BindHost::Ip("0.0.0.0".parse().unwrap()),
            &opts,
        )
        .unwrap();
        assert_eq!(
            get_int_opt(u.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO),
            1
        );
        let u = bind_udp(
            "0.0.0.0:0".parse().unwrap(),
            BindHost::Ip("0.0.0.0".parse().unwrap()),
            &BindOptions::default(),
        )
        .unwrap();
        assert_eq!(
            get_int_opt(u.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO),
            0
        );
        if v6_available() {
            let u = bind_udp("[::]:0".parse().unwrap(), BindHost::DualStack, &opts).unwrap();
            assert_eq!(
                get_int_opt(u.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
                1
            );
            assert_eq!(
                get_int_opt(u.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO),
                1
            );
        }
    }

    /// A free range of `n` consecutive ports on 127.0.0.1 (probed, then
    /// released). Each call of this process starts after the range the
    /// previous call returned, so the tests of this module running in
    /// parallel never probe the same ports (they did: both started at the
    /// same per-process base, and one re-bound a port the other had taken).
    fn free_range(n: u16) -> u16 {
        const LOW: u16 = 20000;
        const HIGH: u16 = 32700;
        // A start that differs per process: test runs of other checkouts
        // on the same machine scan this range at the same time.
        static NEXT: std::sync::Mutex<u16> = std::sync::Mutex::new(0);
        let mut next = NEXT.lock().unwrap_or_else(|p| p.into_inner());
        if *next == 0 {
            *next = LOW + (std::process::id() % 10000) as u16;
        }
        let mut base = *next;
        let mut wrapped = false;
        loop {
            if base + n > HIGH {
                assert!(!wrapped, "no free port range of {n}");
                (base, wrapped) = (LOW, true);
            }
            let taken =
                (base..base + n).find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err());
            match taken {
                None => {
                    *next = base + n;
                    return base;
                }
                Some(p) => base = p + 1,
            }
        }
    }

    #[test]
    fn bind_spec_binds_every_port_in_order() {
        // fd accounting (one fd per port) is checked in tests/fd_accounting.rs,
        // a process of its own where no other test opens fds concurrently.
        // Another process (tests of other checkouts run beside this one) may
        // take a probed port before we bind it, or our last port between
        // its release and our re-bind: either means "again with fresh
        // ports", a bounded number of times. A port that is not released
        // fails every try.
        let mut last = String::new();
        for _ in 0..20 {
            let base = free_range(50);
            let spec = BindSpec::parse(&format!("127.0.0.1:{}-{}", base, base + 49)).unwrap();
            let ls = match bind_spec_tcp(&spec, &BindOptions::default()) {
                Ok(ls) => ls,
                Err(e) if e.error.kind() == io::ErrorKind::AddrInUse => {
                    last = format!("probed range taken: {e}");
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            let ports: Vec<u16> = ls.iter().map(|(p, _)| *p).collect();
            assert_eq!(ports, (base..base + 50).collect::<Vec<_>>());
            for (p, l) in &ls {
                assert_eq!(l.local_addr().unwrap().port(), *p);
            }
            drop(ls);
            match std::net::TcpListener::bind(("127.0.0.1", base + 49)) {
                Ok(_) => return,
                Err(e) => last = format!("127.0.0.1:{} not free after the drop: {e}", base + 49),
            }
        }
        panic!("20 tries: {last}");
    }

    #[test]
    fn bind_spec_failure_names_the_address_and_closes_the_rest() {
        // As above: another process may take a probed port before we bind
        // it (a failure on any port but our blocker's) or the base port
        // between its release and our re-bind: either means "again with
        // fresh ports", a bounded number of times. A port that is not
        // released fails every try.
        let mut last = String::new();
        for _ in 0..20 {
            let base = free_range(5);
            let Ok(blocker) = std::net::TcpListener::bind(("127.0.0.1", base + 3)) else {
                last = format!("blocker 127.0.0.1:{} taken", base + 3);
                continue;
            };
            let spec = BindSpec::parse(&format!("127.0.0.1:{}-{}", base, base + 4)).unwrap();
            let err = bind_spec_tcp(&spec, &BindOptions::default()).unwrap_err();
            if err.addr.port() != base + 3 {
                last = format!("failed before the blocker: {err}");
                continue;
            }
            assert_eq!(
                err.addr,
                SocketAddr::new("127.0.0.1".parse().unwrap(), base + 3)
            );
            assert_eq!(err.error.kind(), io::ErrorKind::AddrInUse);
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("cannot bind 127.0.0.1:{}: ", base + 3))
                    && msg.contains("os error 98"),
                "{msg}"
            );
            // The ports bound before the failure were released.
            match std::net::TcpListener::bind(("127.0.0.1", base)) {
                Ok(_) => return,
                Err(e) => last = format!("127.0.0.1:{base} not free after the failed bind: {e}"),
            }
            drop(blocker);
        }
        panic!("20 tries: {last}");
    }

    #[test]
    fn accept_batch_respects_budget_and_streams_inherit_nodelay() {
        let host = BindHost::Ip("127.0.0.1".parse().unwrap());
        let l = bind_tcp(
            "127.0.0.1:0".parse().unwrap(),
            host,
            &BindOptions::default(),
        )
        .unwrap();
        let addr = l.local_addr().unwrap();
        let clients: Vec<_> = (0..5)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut got = Vec::new();
        // Connections complete in the kernel before accept, so 3 are ready now.
        let (n, stop) = accept_batch(&l, 3, |s, p| got.push((s, p)));
        assert_eq!(n, 3);
        assert!(matches!(stop, AcceptStop::Budget), "{stop:?}");
        let (n, stop) = accept_batch(&l, 100, |s, p| got.push((s, p)));
        assert_eq!(n, 2);
        assert!(matches!(stop, AcceptStop::WouldBlock), "{stop:?}");
        for (s, peer) in &got {
            assert_eq!(
                get_int_opt(s.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY),
                1
            );
            // SAFETY: fcntl F_GETFL on an open fd has no memory effects.
            let fl = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
            assert_ne!(fl & libc::O_NONBLOCK, 0);
            assert!(clients.iter().any(|c| c.local_addr().unwrap() == *peer));
        }
        // Data flows on an accepted stream.
        let (mut s, peer) = got.pop().unwrap();
        let mut c = clients
            .into_iter()
            .find(|c| c.local_addr().unwrap() == peer)
            .unwrap();
        c.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        let mut read = 0;
        for _ in 0..100_000 {
            match s.read(&mut buf[read..]) {
                Ok(n) => read += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
            if read == 2 {
                break;
            }
        }
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn accept_errors_are_classified() {
        let k = |errno| classify_accept_error(&io::Error::from_raw_os_error(errno));
        assert!(matches!(k(libc::EMFILE), AcceptErrorKind::Exhausted));
        assert!(matches!(k(libc::ENFILE), AcceptErrorKind::Exhausted));
        assert!(matches!(
            k(libc::ECONNABORTED),
            AcceptErrorKind::SkipConnection
        ));
        assert!(matches!(k(libc::EPROTO), AcceptErrorKind::SkipConnection));
        assert!(matches!(k(libc::EPERM), AcceptErrorKind::SkipConnection));
        assert!(matches!(k(libc::EAGAIN), AcceptErrorKind::Empty));
        assert!(matches!(k(libc::EINTR), AcceptErrorKind::Retry));
        assert!(matches!(k(libc::EBADF), AcceptErrorKind::Fatal));
    }
}
