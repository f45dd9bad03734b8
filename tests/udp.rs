//! UDP load balancing through the real binary, on loopback.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use nvelox::proxy_protocol::{Accept, Header, Parsed, Transport};

/// How long a client waits for an answer that should come.
const ANSWER: Duration = Duration::from_secs(5);
/// How long a client waits to be sure an answer does NOT come.
const SILENCE: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------- backends

#[derive(Clone, Copy)]
enum Reply {
    /// The payload back, byte-exact.
    Echo,
    /// `name:` + payload.
    Named(&'static str),
    /// Three datagrams `name:1`, `name:2`, `name:3` per request.
    Three(&'static str),
    /// Parses a PROXY v2 header in front of the datagram and answers
    /// `src dst payload`, or `bad` when there is no valid header.
    ProxySource,
}

/// A UDP backend on its own thread; remembers every source address and
/// every datagram length it saw.
struct UdpBackend {
    addr: SocketAddr,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    lens: Arc<Mutex<Vec<usize>>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl UdpBackend {
    fn start(reply: Reply) -> UdpBackend {
        UdpBackend::on(UdpSocket::bind("127.0.0.1:0").unwrap(), reply)
    }

    fn on(sock: UdpSocket, reply: Reply) -> UdpBackend {
        let addr = sock.local_addr().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let lens = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p2, l2, s2) = (Arc::clone(&peers), Arc::clone(&lens), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            while !s2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                p2.lock().unwrap().push(from);
                l2.lock().unwrap().push(n);
                match reply {
                    Reply::Echo => {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                    Reply::Named(name) => {
                        let mut out = format!("{name}:").into_bytes();
                        out.extend_from_slice(&buf[..n]);
                        let _ = sock.send_to(&out, from);
                    }
                    Reply::Three(name) => {
                        for i in 1..=3 {
                            let _ = sock.send_to(format!("{name}:{i}").as_bytes(), from);
                        }
                    }
                    Reply::ProxySource => {
                        let out = match Header::parse(&buf[..n], Accept::V2) {
                            Ok(Parsed::Complete { header, consumed }) => match header.addresses {
                                Some((src, dst)) if header.transport == Transport::Dgram => {
                                    format!(
                                        "{src} {dst} {}",
                                        String::from_utf8_lossy(&buf[consumed..n])
                                    )
                                }
                                _ => "bad".into(),
                            },
                            _ => "bad".into(),
                        };
                        let _ = sock.send_to(out.as_bytes(), from);
                    }
                }
            }
        });
        UdpBackend {
            addr,
            peers,
            lens,
            stop,
            handle: Some(handle),
        }
    }

    fn distinct_peers(&self) -> usize {
        self.peers
            .lock()
            .unwrap()
            .iter()
            .collect::<HashSet<_>>()
            .len()
    }

    fn received(&self) -> usize {
        self.lens.lock().unwrap().len()
    }
}

impl Drop for UdpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------- helpers

fn config(bind: &str, servers: &[String], extra_listener: &str, workers: usize) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("      - {s}")).collect();
    format!(
        "server:\n  workers: {workers}\n  shutdown_timeout: 30s\nlogging:\n  level: debug\n  access_log: {{dir}}/access.log\n\
listeners:\n  - name: game\n    bind: \"{bind}\"\n    protocol: udp\n    default_backend: pool\n{extra_listener}\
backends:\n  - name: pool\n    balance: roundrobin\n    servers:\n{}\n",
        list.join("\n")
    )
}

fn quoted(addr: SocketAddr) -> String {
    format!("\"{addr}\"")
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn client() -> UdpSocket {
    client_on("127.0.0.1:0")
}

fn client_on(local: &str) -> UdpSocket {
    let s = UdpSocket::bind(local).unwrap();
    s.set_read_timeout(Some(ANSWER)).unwrap();
    s
}

/// Sends `msg` to `to` and returns the answer and who it came from.
fn ask_from(c: &UdpSocket, to: SocketAddr, msg: &[u8]) -> (Vec<u8>, SocketAddr) {
    c.send_to(msg, to).unwrap();
    recv(c).unwrap_or_else(|| panic!("no answer from {to} within {ANSWER:?}"))
}

/// Sends `msg` to `to` and returns the answer as text; it must come from `to`.
fn ask(c: &UdpSocket, to: SocketAddr, msg: &[u8]) -> String {
    let (data, from) = ask_from(c, to, msg);
    assert_eq!(from, to, "reply came from the wrong address");
    String::from_utf8(data).unwrap()
}

fn recv(c: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 70_000];
    match c.recv_from(&mut buf) {
        Ok((n, from)) => {
            buf.truncate(n);
            Some((buf, from))
        }
        Err(_) => None,
    }
}

/// True when nothing arrives within `SILENCE`.
fn silent(c: &UdpSocket) -> bool {
    c.set_read_timeout(Some(SILENCE)).unwrap();
    let quiet = recv(c).is_none();
    c.set_read_timeout(Some(ANSWER)).unwrap();
    quiet
}

fn access_log(n: &Nvelox) -> String {
    std::fs::read_to_string(n.dir.path("access.log")).unwrap_or_default()
}

/// Lines of the access log containing `needle`, waiting until there are `count`.
fn wait_access_lines(n: &Nvelox, needle: &str, count: usize) -> Vec<String> {
    let ok = eventually(WAIT, || {
        access_log(n).lines().filter(|l| l.contains(needle)).count() >= count
    });
    let log = access_log(n);
    assert!(
        ok,
        "fewer than {count} access lines with {needle:?}:\n{log}"
    );
    log.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" that closes the command name: state is field 3,
    // utime field 14, stime field 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

// ---------------------------------------------------------------- tests

#[test]
fn two_clients_get_independent_sessions_and_each_stays_on_its_server() {
    let (a, b) = (
        UdpBackend::start(Reply::Named("a")),
        UdpBackend::start(Reply::Named("b")),
    );
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(a.addr), quoted(b.addr)],
        "",
        2,
    ));
    let (c1, c2) = (client(), client());
    assert_eq!(ask(&c1, v4(port), b"x"), "a:x");
    assert_eq!(ask(&c2, v4(port), b"y"), "b:y");
    for i in 0..5 {
        let m = format!("m{i}");
        assert_eq!(ask(&c1, v4(port), m.as_bytes()), format!("a:{m}"));
        assert_eq!(ask(&c2, v4(port), m.as_bytes()), format!("b:{m}"));
    }
    // One upstream socket per session: each backend saw one source address.
    assert_eq!((a.received(), b.received()), (6, 6));
    assert_eq!((a.distinct_peers(), b.distinct_peers()), (1, 1));
}

#[test]
fn new_sessions_go_round_robin() {
    let bs = [
        UdpBackend::start(Reply::Named("s1")),
        UdpBackend::start(Reply::Named("s2")),
        UdpBackend::start(Reply::Named("s3")),
    ];
    let port = free_port();
    let servers: Vec<String> = bs.iter().map(|b| quoted(b.addr)).collect();
    let _n = Nvelox::start(&config(&format!("127.0.0.1:{port}"), &servers, "", 2));
    let got: Vec<String> = (0..6).map(|_| ask(&client(), v4(port), b"hi")).collect();
    assert_eq!(got, ["s1:hi", "s2:hi", "s3:hi", "s1:hi", "s2:hi", "s3:hi"]);
}

#[test]
fn a_backend_answering_three_datagrams_per_request_gets_all_three_to_the_client() {
    let b = UdpBackend::start(Reply::Three("r"));
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "",
        1,
    ));
    let c = client();
    for _ in 0..2 {
        c.send_to(b"go", v4(port)).unwrap();
        let got: Vec<String> = (0..3)
            .map(|_| {
                let (d, from) = recv(&c).expect("a reply");
                assert_eq!(from, v4(port));
                String::from_utf8(d).unwrap()
            })
            .collect();
        assert_eq!(got, ["r:1", "r:2", "r:3"]);
    }
    assert!(silent(&c), "more than three replies");
}

#[test]
fn an_empty_datagram_passes_both_ways() {
    let b = UdpBackend::start(Reply::Echo);
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "",
        1,
    ));
    let c = client();
    let (data, from) = ask_from(&c, v4(port), b"");
    assert!(data.is_empty());
    assert_eq!(from, v4(port));
    assert_eq!(*b.lens.lock().unwrap(), vec![0]);
}

#[test]
fn the_largest_datagram_arrives_intact_both_ways() {
    const MAX: usize = 65_507;
    let b = UdpBackend::start(Reply::Echo);
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "",
        1,
    ));
    let c = client();
    let data = payload(MAX, 7);
    let (got, from) = ask_from(&c, v4(port), &data);
    assert_eq!(from, v4(port));
    assert_eq!(got.len(), MAX);
    assert!(got == data, "payload changed on the way");
    assert_eq!(*b.lens.lock().unwrap(), vec![MAX]);
}

#[test]
fn idle_expiry_ends_the_session_and_the_next_datagram_opens_one_on_the_next_server() {
    const IDLE: Duration = Duration::from_secs(1);
    let (a, b) = (
        UdpBackend::start(Reply::Named("a")),
        UdpBackend::start(Reply::Named("b")),
    );
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(a.addr), quoted(b.addr)],
        "    idle_timeout: 1s\n",
        1,
    ));
    // Traffic within the idle time keeps the session (and its server) for
    // longer than the idle time. A reply that came more than IDLE after the
    // previous datagram was sent proves nothing (this thread or nvelox was
    // not scheduled for that long, and the session may rightly have
    // expired): such a round starts again with a new client.
    let mut kept = None;
    // Clients of earlier rounds stay open: no later one gets their port.
    let mut disturbed = Vec::new();
    for _round in 0..10 {
        let c = client();
        let first = ask(&c, v4(port), b"1");
        let opened = Instant::now();
        let server = first.strip_suffix(":1").unwrap().to_string();
        let mut sent = 1u64;
        let mut previous_send = Instant::now();
        let mut conclusive = true;
        // Until a datagram was sent well after the session's idle time.
        while previous_send.duration_since(opened) < IDLE + IDLE / 2 {
            thread::sleep(Duration::from_millis(100));
            let send = Instant::now();
            let got = ask(&c, v4(port), b"k");
            sent += 1;
            if got != format!("{server}:k") {
                // Expiry needs IDLE without a datagram at nvelox: it got
                // the previous one after `previous_send` and this one
                // before now.
                assert!(
                    previous_send.elapsed() >= IDLE,
                    "the session moved from {server} to {got:?} with traffic within the idle time"
                );
                conclusive = false;
                break;
            }
            previous_send = send;
        }
        if conclusive {
            kept = Some((c, server, sent));
            break;
        }
        disturbed.push(c);
    }
    let (c, server, sent) = kept.expect("10 rounds in a row disturbed by scheduling delays");
    let me = c.local_addr().unwrap();
    // Silence: the session ends (polled for, well past the idle time).
    let lines = wait_access_lines(&n, &format!("client={me}"), 1);
    let line = &lines[0];
    let server_addr = if server == "a" { a.addr } else { b.addr };
    for field in [
        "udp listener=game".to_string(),
        "idle timeout".into(),
        format!("server={server_addr}"),
        format!("bytes_in={sent} "),
        format!("bytes_out={} ", 3 * sent),
        format!("datagrams_in={sent} "),
        format!("datagrams_out={sent} "),
        "duration_ms=".into(),
    ] {
        assert!(line.contains(&field), "{field:?} missing in {line}");
    }
    let next = if server == "a" { "b" } else { "a" };
    assert_eq!(ask(&c, v4(port), b"2"), format!("{next}:2"));
}

#[test]
fn a_wildcard_listener_replies_from_the_address_the_client_reached() {
    let b = UdpBackend::start(Reply::Named("w"));
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("0.0.0.0:{port}"),
        &[quoted(b.addr)],
        "",
        1,
    ));
    for ip in [[127, 0, 0, 2], [127, 0, 0, 1], [127, 0, 0, 3]] {
        let to = SocketAddr::from((ip, port));
        let c = client();
        let (data, from) = ask_from(&c, to, b"q");
        assert_eq!(data, b"w:q");
        assert_eq!(
            from, to,
            "reply must come from the address the client reached"
        );
    }
}

#[test]
fn a_dual_stack_listener_replies_from_the_address_the_client_reached() {
    let b = UdpBackend::start(Reply::Named("d"));
    let port = free_port();
    let _n = Nvelox::start(&config(&format!(":{port}"), &[quoted(b.addr)], "", 1));
    let to = SocketAddr::from(([127, 0, 0, 2], port));
    let (data, from) = ask_from(&client(), to, b"q");
    assert_eq!(data, b"d:q");
    assert_eq!(from, to);
}

#[test]
fn a_thousand_port_range_to_a_portless_server_lands_on_the_same_port() {
    const N: u16 = 1000;
    let base = free_port_range(N);
    // Backends on 127.0.0.2, same ports, one thread polling all of them.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let mut socks = Vec::new();
    for p in base..base + N {
        let s = mio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 2], p))).unwrap();
        socks.push(s);
    }
    let backend = thread::spawn(move || {
        let mut poll = mio::Poll::new().unwrap();
        for (i, s) in socks.iter_mut().enumerate() {
            poll.registry()
                .register(s, mio::Token(i), mio::Interest::READABLE)
                .unwrap();
        }
        let mut events = mio::Events::with_capacity(256);
        let mut buf = [0u8; 512];
        while !s2.load(Ordering::Relaxed) {
            let _ = poll.poll(&mut events, Some(Duration::from_millis(50)));
            for e in events.iter() {
                let s = &socks[e.token().0];
                let port = s.local_addr().unwrap().port();
                while let Ok((_, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(format!("port:{port}").as_bytes(), from);
                }
            }
        }
    });
    let bind = format!("127.0.0.1:{base}-{}", base + N - 1);
    let n = Nvelox::start(&config(&bind, &["\"127.0.0.2\"".into()], "", 2));
    let c = client();
    for p in base..base + N {
        assert_eq!(ask(&c, v4(p), b"?"), format!("port:{p}"));
    }
    drop(n);
    stop.store(true, Ordering::Relaxed);
    backend.join().unwrap();
}

#[test]
fn the_session_cap_drops_new_clients_only() {
    let b = UdpBackend::start(Reply::Named("c"));
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "    max_connections: 2\n",
        2,
    ));
    let (c1, c2, c3) = (client(), client(), client());
    assert_eq!(ask(&c1, v4(port), b"1"), "c:1");
    assert_eq!(ask(&c2, v4(port), b"2"), "c:2");
    for _ in 0..3 {
        c3.send_to(b"3", v4(port)).unwrap();
        assert!(silent(&c3), "a third session was admitted");
    }
    // Existing sessions keep working.
    assert_eq!(ask(&c1, v4(port), b"1"), "c:1");
    assert_eq!(ask(&c2, v4(port), b"2"), "c:2");
    assert_eq!(b.received(), 4);
    // One warning for three drops (rate limited).
    n.wait_for_line("session limit", WAIT);
    let warnings = n
        .stderr_text()
        .lines()
        .filter(|l| l.contains("session limit"))
        .count();
    assert_eq!(warnings, 1, "{}", n.stderr_text());
}

#[test]
fn ipv6_loopback_sessions_work() {
    let Ok(bsock) = UdpSocket::bind("[::1]:0") else {
        skip("ipv6_loopback_sessions_work", "needs IPv6 loopback (::1)");
        return;
    };
    let b = UdpBackend::on(bsock, Reply::Named("six"));
    let port = free_port();
    let _n = Nvelox::start(&config(&format!("[::1]:{port}"), &[quoted(b.addr)], "", 1));
    let to: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let c = client_on("[::1]:0");
    assert_eq!(ask(&c, to, b"v6"), "six:v6");
    assert_eq!(ask(&c, to, b"again"), "six:again");
    let peers = b.peers.lock().unwrap().clone();
    assert!(peers
        .iter()
        .all(|p| p.ip() == IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])));
    assert_eq!(b.distinct_peers(), 1);
}

#[test]
fn a_down_backend_ends_sessions_without_a_busy_loop_or_a_leaked_socket() {
    // Nothing listens on this port: the kernel answers ICMP port unreachable.
    let dead = v4(free_port());
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(dead)],
        "    idle_timeout: 1s\n",
        2,
    ));
    let pid = n.pid();
    let baseline = open_fds(pid);
    let clients: Vec<UdpSocket> = (0..20).map(|_| client()).collect();
    for c in &clients {
        c.send_to(b"anyone?", v4(port)).unwrap();
    }
    // Each session ends on ECONNREFUSED, long before its idle timeout.
    let lines = wait_access_lines(&n, "server unreachable", 20);
    assert!(lines.iter().all(|l| l.contains("datagrams_out=0")));
    assert!(!access_log(&n).contains("idle timeout"));
    // Keep poking for about a second; the process must stay nearly idle.
    let t0 = cpu_ticks(pid);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        for c in &clients {
            let _ = c.send_to(b"still there?", v4(port));
        }
        thread::sleep(Duration::from_millis(50));
    }
    let used = cpu_ticks(pid) - t0;
    // 20 ticks = 0.2 s of CPU at the usual 100 Hz: a spin would take ~100.
    assert!(used < 20, "nvelox used {used} clock ticks in ~1 s");
    assert!(
        eventually(WAIT, || open_fds(pid) <= baseline),
        "fds: {} open, baseline {baseline}",
        open_fds(pid)
    );
}

#[test]
fn sessions_give_back_their_sockets_when_they_expire() {
    let b = UdpBackend::start(Reply::Echo);
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        // Long enough that all 50 sessions are open at once even on a
        // loaded machine, short enough to keep the test quick.
        "    idle_timeout: 1500ms\n",
        2,
    ));
    let pid = n.pid();
    // The lowest of a few samples: a loop may hold a transient fd (e.g.
    // while it reads /proc/self/fd to size its budget) at any one instant.
    let baseline = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            open_fds(pid)
        })
        .min()
        .unwrap();
    let clients: Vec<UdpSocket> = (0..50).map(|_| client()).collect();
    for c in &clients {
        assert_eq!(ask(c, v4(port), b"x"), "x");
    }
    assert!(
        open_fds(pid) >= baseline + 50,
        "one upstream socket per session: {} open, baseline {baseline}",
        open_fds(pid)
    );
    wait_access_lines(&n, "idle timeout", 50);
    assert!(
        eventually(WAIT, || open_fds(pid) <= baseline),
        "fds: {} open, baseline {baseline}",
        open_fds(pid)
    );
}

#[test]
fn reuseport_spreads_one_port_over_the_loops_and_sessions_still_work() {
    let b = UdpBackend::start(Reply::Named("r"));
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "    reuseport: true\n",
        2,
    ));
    n.wait_for_line("2 sockets", WAIT);
    let clients: Vec<UdpSocket> = (0..16).map(|_| client()).collect();
    let mut upstream_of: HashMap<SocketAddr, usize> = HashMap::new();
    for round in 0..3 {
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(ask(c, v4(port), b"z"), "r:z", "client {i} round {round}");
        }
    }
    // Every client kept one upstream socket across rounds.
    for p in b.peers.lock().unwrap().iter() {
        *upstream_of.entry(*p).or_default() += 1;
    }
    assert_eq!(upstream_of.len(), 16);
    assert!(upstream_of.values().all(|&k| k == 3));
}

#[test]
fn sigterm_ends_udp_sessions_at_once_and_exits_cleanly() {
    let b = UdpBackend::start(Reply::Echo);
    let port = free_port();
    let mut n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "",
        2,
    ));
    let c = client();
    assert_eq!(ask(&c, v4(port), b"x"), "x");
    n.signal(libc::SIGTERM);
    // shutdown_timeout is 30 s: UDP has nothing to drain, so no waiting.
    assert_eq!(n.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(access_log(&n).contains("reason=\"shutdown\""));
}

#[test]
fn send_proxy_v2_puts_a_header_with_the_real_client_in_front_of_every_datagram() {
    let b = UdpBackend::start(Reply::ProxySource);
    let port = free_port();
    let yaml = config(&format!("0.0.0.0:{port}"), &[quoted(b.addr)], "", 1).replace(
        "balance: roundrobin\n",
        "balance: roundrobin\n    send_proxy_v2: true\n",
    );
    let _n = Nvelox::start(&yaml);
    let to = SocketAddr::from(([127, 0, 0, 2], port));
    let c = client();
    let me = c.local_addr().unwrap();
    assert_eq!(ask(&c, to, b"one"), format!("{me} {to} one"));
    assert_eq!(ask(&c, to, b"two"), format!("{me} {to} two"));
    assert_eq!(ask(&c, to, b""), format!("{me} {to} "));
}

#[test]
fn two_chained_udp_balancers_preserve_the_original_client() {
    let b = UdpBackend::start(Reply::ProxySource);
    let (front, back) = (free_port(), free_port());
    let with_pp = |yaml: String| {
        yaml.replace(
            "balance: roundrobin\n",
            "balance: roundrobin\n    send_proxy_v2: true\n",
        )
    };
    let inner = config(
        &format!("127.0.0.1:{back}"),
        &[quoted(b.addr)],
        "    accept_proxy: v2\n",
        1,
    );
    let _b = Nvelox::start(&with_pp(inner));
    let outer = config(&format!("127.0.0.1:{front}"), &[quoted(v4(back))], "", 1);
    let _a = Nvelox::start(&with_pp(outer));
    let c = client_on("127.0.0.9:0");
    let me = c.local_addr().unwrap();
    let to = v4(front);
    assert_eq!(ask(&c, to, b"hop"), format!("{me} {to} hop"));
    assert_eq!(ask(&c, to, b"again"), format!("{me} {to} again"));
}

#[test]
fn accept_proxy_on_udp_drops_datagrams_without_a_header() {
    let b = UdpBackend::start(Reply::Echo);
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "    accept_proxy: v2\n",
        1,
    ));
    let c = client();
    c.send_to(b"no header", v4(port)).unwrap();
    assert!(silent(&c), "a datagram without a PROXY header was relayed");
    n.wait_for_line("bad PROXY header", WAIT);
    assert_eq!(b.received(), 0);
    // A valid header is stripped before the payload goes on.
    let mut dgram = Vec::new();
    Header::proxy(
        nvelox::proxy_protocol::Version::V2,
        Transport::Dgram,
        "192.0.2.1:5000".parse().unwrap(),
        "198.51.100.2:53".parse().unwrap(),
    )
    .emit(&mut dgram)
    .unwrap();
    dgram.extend_from_slice(b"payload");
    c.send_to(&dgram, v4(port)).unwrap();
    let (got, _) = recv(&c).expect("reply");
    assert_eq!(got, b"payload");
}
