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

fn config(port: u16, workers: usize, servers: &[Server]) -> String {
    // The same list in the two instances, but written in different orders:
    // the table depends on the addresses, not on their order in the file.
    let mut list: Vec<String> = servers
        .iter()
        .map(|s| format!("      - \"{}\"", s.addr))
        .collect();
    if workers % 2 == 0 {
        list.reverse();
    }
    format!(
        "server:\n  workers: {workers}\nlisteners:\n  - name: u\n    bind: \"127.0.0.1:{port}\"\n    protocol: udp\n    backend: pool\n    idle_timeout: 1s\n\
backends:\n  - name: pool\n    balance: maglev\n    health_check:\n      active: {{ type: udp, send: \"probe\", expect: \"s\", interval: 100ms, timeout: 200ms, rise: 1, fall: 1 }}\n    servers:\n{}\n",
        list.join("\n")
    )
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

/// Which server answers client `n` through each instance.
fn ask_all(instances: &[SocketAddr]) -> Vec<Vec<u8>> {
    let mut seen = vec![Vec::with_capacity(CLIENTS as usize); instances.len()];
    let mut buf = [0u8; 64];
    for n in 0..CLIENTS {
        let c = UdpSocket::bind((source(n), 0)).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        for (i, &to) in instances.iter().enumerate() {
            let mut answer = None;
            for _ in 0..6 {
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
    let a = Nvelox::start(&config(pa, 1, &servers));
    let b = Nvelox::start(&config(pb, 2, &servers));
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
    // Let every phase-1 session expire (idle_timeout 1s), and the first
    // picks start the table rebuilds.
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        let c = UdpSocket::bind((source(CLIENTS + 1), 0)).unwrap();
        for t in targets {
            let _ = c.send_to(b"warm", t);
        }
        thread::sleep(Duration::from_millis(100));
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
