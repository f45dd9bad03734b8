//! `balance: maglev` end to end: two nvelox processes with the same backend
//! list (different event-loop counts) send each of 10,000 clients, from
//! distinct source addresses in 127.0.0.0/8, to the same one of 10 servers;
//! when one server goes down (active UDP checks) only its clients move, and
//! both instances move them to the same place.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const CLIENTS: u32 = 10_000;
const SERVERS: usize = 10;

/// A UDP server that answers every datagram (probes included) with `s<index>`.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(index: usize) -> Server {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let reply = format!("s{index}");
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((_, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(reply.as_bytes(), from);
                }
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops answering and closes the socket: probes get ICMP unreachable.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config(port: u16, metrics: u16, workers: usize, servers: &[Server]) -> String {
    // The same list in the two instances, but written in different orders:
    // the table depends on the addresses, not on their order in the file.
    let mut list: Vec<String> = servers
        .iter()
        .map(|s| format!("      - \"{}\"", s.addr))
        .collect();
    if workers % 2 == 0 {
        list.reverse();
    }
    // A stopped server is refused at once (ICMP), so three failures take
    // it out within a few intervals; a live one is only marked down after
    // three probes of 2 s each went unanswered, which a loaded machine
    // does not reach (a flap would move clients and spoil the counts).
    format!(
        "server:\n  workers: {workers}\nmetrics: {{ enabled: true, bind: \"127.0.0.1:{metrics}\" }}\n\
listeners:\n  - name: u\n    bind: \"127.0.0.1:{port}\"\n    protocol: udp\n    backend: pool\n    idle_timeout: 1s\n\
backends:\n  - name: pool\n    balance: maglev\n    health_check:\n      active: {{ type: udp, send: \"probe\", expect: \"s\", interval: 100ms, timeout: 2s, rise: 1, fall: 3 }}\n    servers:\n{}\n",
        list.join("\n")
    )
}

/// A sample of the instance's metrics: `key` is the name with its labels.
fn metric(port: u16, key: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(WAIT)).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
}

/// The n-th client's source address: distinct for every n < 62,500.
fn source(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        (1 + (n * 37) % 200) as u8,
        ((n / 250) % 250 + 1) as u8,
        (n % 250 + 1) as u8,
    )
}

/// Which server answers client `n` through each instance. One socket per
/// instance: a late answer to a repeated question cannot be taken for the
/// other instance's.
fn ask_all(instances: &[SocketAddr]) -> Vec<Vec<u8>> {
    let mut seen = vec![Vec::with_capacity(CLIENTS as usize); instances.len()];
    let mut buf = [0u8; 64];
    for n in 0..CLIENTS {
        for (i, &to) in instances.iter().enumerate() {
            let c = UdpSocket::bind((source(n), 0)).unwrap();
            c.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut answer = None;
            for _ in 0..20 {
                c.send_to(b"hello", to).unwrap();
                if let Ok((len, from)) = c.recv_from(&mut buf) {
                    assert_eq!(from, to);
                    let text = std::str::from_utf8(&buf[..len]).unwrap();
                    answer = text.strip_prefix('s').and_then(|d| d.parse::<u8>().ok());
                    break;
                }
            }
            let s =
                answer.unwrap_or_else(|| panic!("client {} got no answer from {to}", source(n)));
            seen[i].push(s);
        }
    }
    seen
}

#[test]
fn two_instances_agree_and_a_server_going_down_moves_only_its_clients() {
    if UdpSocket::bind((source(1), 0)).is_err() {
        return skip(
            "two_instances_agree...",
            "cannot bind 127.x.y.z source addresses",
        );
    }
    let mut servers: Vec<Server> = (0..SERVERS).map(Server::start).collect();
    let (pa, pb) = (free_port(), free_port());
    let (ma, mb) = (free_port(), free_port());
    let a = Nvelox::start(&config(pa, ma, 1, &servers));
    let b = Nvelox::start(&config(pb, mb, 2, &servers));
    let targets = [
        SocketAddr::from(([127, 0, 0, 1], pa)),
        SocketAddr::from(([127, 0, 0, 1], pb)),
    ];

    let before = ask_all(&targets);
    let disagree = (0..CLIENTS as usize)
        .filter(|&n| before[0][n] != before[1][n])
        .count();
    assert_eq!(disagree, 0, "the instances disagree on {disagree} clients");
    let mut per_server = [0usize; SERVERS];
    for &s in &before[0] {
        per_server[s as usize] += 1;
    }
    for &count in &per_server {
        assert!((700..=1300).contains(&count), "{per_server:?}");
    }

    let down = 3;
    servers[down].stop();
    let line = format!("server {}: up -> down", servers[down].addr);
    for n in [&a, &b] {
        n.wait_for_line(&line, WAIT);
    }
    // The first picks after the change start the table rebuilds; until a
    // rebuild is in, an instance walks the old table (correct, but not
    // what the other instance may already say).
    let rebuilt = format!(
        "backend pool: maglev table rebuilt over {} of {SERVERS} servers",
        SERVERS - 1
    );
    let warm = UdpSocket::bind((source(CLIENTS + 1), 0)).unwrap();
    let deadline = Instant::now() + 3 * WAIT;
    while a.count_lines(&rebuilt) == 0 || b.count_lines(&rebuilt) == 0 {
        assert!(
            Instant::now() < deadline,
            "no table rebuild after the change:\n{}\n{}",
            a.stderr_text(),
            b.stderr_text()
        );
        for t in targets {
            let _ = warm.send_to(b"warm", t);
        }
        thread::sleep(Duration::from_millis(50));
    }
    // Then every session of phase 1 (and of the warm-up) must have expired
    // (idle_timeout 1s): a session kept would keep its old server.
    let open = "nvelox_listener_udp_sessions_current{listener=\"u\"}";
    for (name, m) in [("a", ma), ("b", mb)] {
        assert!(
            eventually(3 * WAIT, || metric(m, open) == Some(0)),
            "instance {name}: sessions still open: {:?}",
            metric(m, open)
        );
    }

    let after = ask_all(&targets);
    let mut others_moved = 0;
    for n in 0..CLIENTS as usize {
        assert_eq!(
            after[0][n],
            after[1][n],
            "client {} differs after the change",
            source(n as u32)
        );
        let (was, now) = (before[0][n], after[0][n]);
        assert_ne!(
            now as usize,
            down,
            "client {} still on the down server",
            source(n as u32)
        );
        if was as usize != down && was != now {
            others_moved += 1;
        }
    }
    assert!(
        others_moved <= CLIENTS as usize / 100,
        "{others_moved} clients of servers still up moved"
    );
}

#[test]
fn the_proxy_headers_client_is_the_key() {
    if std::net::TcpListener::bind((source(1), 0)).is_err() {
        return skip(
            "the_proxy_headers_client_is_the_key",
            "cannot bind 127.x.y.z source addresses",
        );
    }
    let names = ["a", "b", "c", "d", "e"];
    let backends: Vec<Backend> = names
        .iter()
        .map(|&n| Backend::start(Mode::NamedEcho(n)))
        .collect();
    let list: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.addr)).collect();
    let (direct, proxied) = (free_port(), free_port());
    let yaml = format!(
        "listeners:\n  - {{ name: direct, bind: \"127.0.0.1:{direct}\", backend: pool }}\n  - {{ name: proxied, bind: \"127.0.0.1:{proxied}\", backend: pool, accept_proxy: v1 }}\n\
backends:\n  - name: pool\n    balance: maglev\n    servers: [{}]\n",
        list.join(", ")
    );
    let _n = Nvelox::start(&yaml);
    let mut spread = std::collections::HashSet::new();
    for n in 0..100 {
        let src = source(n * 97);
        // Straight from the client's own address.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from((src, 0)).into()).unwrap();
        sock.connect(&SocketAddr::from(([127, 0, 0, 1], direct)).into())
            .unwrap();
        let own = read_name(sock.into());
        // From 127.0.0.1, naming the client in a PROXY header.
        let mut s = std::net::TcpStream::connect(("127.0.0.1", proxied)).unwrap();
        use std::io::Write;
        write!(s, "PROXY TCP4 {src} 127.0.0.1 40000 {proxied}\r\n").unwrap();
        let via_header = read_name(s);
        assert_eq!(own, via_header, "client {src}");
        spread.insert(own);
    }
    assert!(spread.len() >= 4, "{spread:?}");
}

fn read_name(s: std::net::TcpStream) -> String {
    use std::io::BufRead;
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).unwrap();
    line.trim().to_string()
}
