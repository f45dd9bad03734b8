//! TCP load balancing through the real binary, on loopback.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use common::*;

fn config(
    port: u16,
    balance: &str,
    servers: &[String],
    extra_listener: &str,
    extra_backend: &str,
) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("      - {s}")).collect();
    format!(
        "server:\n  workers: 2\n  shutdown_timeout: 5s\nlogging:\n  level: debug\n  access_log: {{dir}}/access.log\n\
listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    default_backend: pool\n{extra_listener}\
backends:\n  - name: pool\n    balance: {balance}\n    connect_timeout: 2s\n{extra_backend}    servers:\n{}\n",
        list.join("\n")
    )
}

fn quoted(addr: SocketAddr) -> String {
    format!("\"{addr}\"")
}

fn lb(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn round_robin_cycles_in_order_and_skips_a_down_server() {
    let (s1, s2, s3) = (
        Backend::start(Mode::NamedEcho("s1")),
        Backend::start(Mode::NamedEcho("s2")),
        Backend::start(Mode::NamedEcho("s3")),
    );
    let port = free_port();
    let servers: Vec<String> = [&s1, &s2, &s3].iter().map(|b| quoted(b.addr)).collect();
    let _n = Nvelox::start(&config(port, "roundrobin", &servers, "", ""));
    let got: Vec<String> = (0..6).map(|_| first_line(lb(port))).collect();
    assert_eq!(got, ["s1", "s2", "s3", "s1", "s2", "s3"]);
    s2.stop();
    let got: Vec<String> = (0..4).map(|_| first_line(lb(port))).collect();
    assert!(!got.contains(&"s2".to_string()), "{got:?}");
    assert!(
        got.contains(&"s1".to_string()) && got.contains(&"s3".to_string()),
        "{got:?}"
    );
}

#[test]
fn weights_one_to_three_give_exactly_100_to_300() {
    let (a, b) = (
        Backend::start(Mode::NamedEcho("a")),
        Backend::start(Mode::NamedEcho("b")),
    );
    let port = free_port();
    let servers = vec![
        format!("{{ address: \"{}\", weight: 1 }}", a.addr),
        format!("{{ address: \"{}\", weight: 3 }}", b.addr),
    ];
    let _n = Nvelox::start(&config(port, "roundrobin", &servers, "", ""));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..400 {
        *counts.entry(first_line(lb(port))).or_default() += 1;
    }
    assert_eq!(counts.get("a"), Some(&100), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&300), "{counts:?}");
}

#[test]
fn leastconn_sends_the_next_connection_to_the_idlest_server() {
    let (a, b) = (
        Backend::start(Mode::NamedEcho("a")),
        Backend::start(Mode::NamedEcho("b")),
    );
    let port = free_port();
    let servers = vec![quoted(a.addr), quoted(b.addr)];
    let n = Nvelox::start(&config(port, "leastconn", &servers, "", ""));
    let open = || {
        let s = connect(port);
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        (line.trim().to_string(), s)
    };
    let (first, c1) = open();
    let (second, c2) = open();
    assert_ne!(first, second, "the busy server got the second connection");
    // Close the first; once nvelox has logged it, its server is the idlest.
    drop(c1);
    let access = n.dir.path("access.log");
    assert!(eventually(WAIT, || std::fs::read_to_string(&access)
        .is_ok_and(|s| s.lines().count() == 1)));
    let (third, c3) = open();
    assert_eq!(
        third, first,
        "leastconn must pick the server with no connection"
    );
    // Two servers with one connection each, then one more each.
    let (fourth, _c4) = open();
    let (fifth, _c5) = open();
    assert_ne!(fourth, fifth);
    drop((c2, c3));
}

#[test]
fn source_hash_is_sticky_and_moves_only_the_dead_servers_clients() {
    let backends = [
        Backend::start(Mode::NamedEcho("s1")),
        Backend::start(Mode::NamedEcho("s2")),
        Backend::start(Mode::NamedEcho("s3")),
    ];
    let port = free_port();
    let servers: Vec<String> = backends.iter().map(|b| quoted(b.addr)).collect();
    let _n = Nvelox::start(&config(port, "source_hash", &servers, "", ""));
    let from = |ip: u8| {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from(([127, 0, 1, ip], 0)).into())
            .unwrap();
        sock.connect_timeout(&lb(port).into(), WAIT).unwrap();
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line.trim().to_string()
    };
    let before: Vec<String> = (1..=60).map(from).collect();
    let again: Vec<String> = (1..=60).map(from).collect();
    assert_eq!(before, again, "same client IP, same server");
    let used: std::collections::HashSet<_> = before.iter().collect();
    assert_eq!(
        used.len(),
        3,
        "60 clients spread over all servers: {before:?}"
    );
    let [s1, s2, s3] = backends;
    s2.stop();
    let after: Vec<String> = (1..=60).map(from).collect();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if b != "s2" {
            assert_eq!(b, a, "client {i} moved from a live server");
        } else {
            assert_ne!(a, "s2");
        }
    }
    drop((s1, s3));
}

#[test]
fn port_range_preserves_the_destination_port_on_1000_ports() {
    let base = free_port_range(1000);
    let mut backends = Vec::new();
    for p in base..base + 1000 {
        backends.push(Backend::on(
            TcpListener::bind(("127.0.0.2", p)).unwrap(),
            Mode::Port,
        ));
    }
    let yaml = format!(
        "server:\n  workers: 2\nlisteners:\n  - name: range\n    bind: \"127.0.0.1:{base}-{}\"\n    default_backend: b\n\
backends:\n  - name: b\n    servers: [\"127.0.0.2\"]\n",
        base + 999
    );
    let _n = Nvelox::start(&yaml);
    for p in (base..base + 1000).step_by(37).chain([base, base + 999]) {
        assert_eq!(first_line(lb(p)), format!("port:{p}"));
    }
    drop(backends);
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(&lb(port), WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

#[test]
fn half_close_client_side_still_gets_the_whole_reply() {
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let _n = Nvelox::start(&config(port, "roundrobin", &[quoted(b.addr)], "", ""));
    let mut s = connect(port);
    let data = payload(200_000, 7);
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data);
}

#[test]
fn half_close_server_side_client_can_still_send() {
    // The backend sends a greeting and shuts its write side, then reads
    // everything the client sends and reports the count on a side channel.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"bye\n").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        tx.send(got).unwrap();
    });
    let port = free_port();
    let _n = Nvelox::start(&config(port, "roundrobin", &[quoted(addr)], "", ""));
    let mut s = connect(port);
    let mut greeting = Vec::new();
    s.read_to_end(&mut greeting).unwrap(); // EOF passed on as FIN
    assert_eq!(greeting, b"bye\n");
    let data = payload(100_000, 3);
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let got = rx.recv_timeout(WAIT).unwrap();
    assert!(got == data, "server got {} bytes", got.len());
}

#[test]
fn backend_closing_first_closes_the_client() {
    let b = Backend::start(Mode::Port);
    let port = free_port();
    let _n = Nvelox::start(&config(port, "roundrobin", &[quoted(b.addr)], "", ""));
    let mut s = connect(port);
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all, format!("port:{}\n", b.port()));
}

#[test]
fn refused_first_server_falls_over_to_the_next() {
    let dead = free_port();
    let b = Backend::start(Mode::NamedEcho("alive"));
    let port = free_port();
    let servers = vec![format!("\"127.0.0.1:{dead}\""), quoted(b.addr)];
    let _n = Nvelox::start(&config(port, "roundrobin", &servers, "", ""));
    for _ in 0..4 {
        assert_eq!(first_line(lb(port)), "alive");
    }
}

#[test]
fn all_servers_down_closes_the_client_promptly_and_logs_it() {
    let (d1, d2) = (free_port(), free_port());
    let port = free_port();
    let servers = vec![format!("\"127.0.0.1:{d1}\""), format!("\"127.0.0.1:{d2}\"")];
    // A connect timeout far beyond the client's patience: the client is
    // closed because the connects were refused, not because one timed out.
    let yaml = config(port, "roundrobin", &servers, "", "")
        .replace("connect_timeout: 2s", "connect_timeout: 1h");
    let n = Nvelox::start(&yaml);
    let mut s = connect(port);
    let mut buf = Vec::new();
    // Closed, not left waiting (a read timeout would be an error too):
    // an orderly EOF, or a reset.
    match s.read_to_end(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(buf.is_empty());
    let access = n.dir.path("access.log");
    assert!(eventually(WAIT, || std::fs::read_to_string(&access)
        .is_ok_and(|s| s.contains("connect failed"))));
}

#[test]
fn max_connections_per_listener_is_enforced() {
    let b = Backend::start(Mode::NamedEcho("s"));
    let port = free_port();
    let _n = Nvelox::start(&config(
        port,
        "roundrobin",
        &[quoted(b.addr)],
        "    max_connections: 2\n",
        "",
    ));
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let s = connect(port);
            let mut line = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "s\n");
            s
        })
        .collect();
    // The third connects (kernel backlog) but is not served while two are open.
    let third = connect(port);
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 8];
    let r = (&third).read(&mut buf);
    assert!(
        r.is_err(),
        "third connection served beyond max_connections: {r:?}"
    );
    assert_eq!(b.count(), 2);
    drop(held.remove(0));
    third.set_read_timeout(Some(WAIT)).unwrap();
    let mut line = String::new();
    BufReader::new(third).read_line(&mut line).unwrap();
    assert_eq!(line, "s\n", "served once a slot was free");
}

#[test]
fn one_megabyte_random_payload_is_byte_exact_both_ways() {
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let _n = Nvelox::start(&config(port, "roundrobin", &[quoted(b.addr)], "", ""));
    let data = payload(1 << 20, 99);
    let s = connect(port);
    let mut w = s.try_clone().unwrap();
    let d2 = data.clone();
    let writer = thread::spawn(move || {
        w.write_all(&d2).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    (&s).read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "payload corrupted");
}

#[test]
fn sigterm_lets_an_open_connection_finish() {
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let mut n = Nvelox::start(&config(port, "roundrobin", &[quoted(b.addr)], "", ""));
    let mut s = connect(port);
    s.write_all(b"before ").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    n.signal(libc::SIGTERM);
    n.wait_for_line("shutting down", WAIT);
    // New connections are refused once listeners are closed.
    assert!(eventually(WAIT, || TcpStream::connect(lb(port)).is_err()));
    s.write_all(b"after").unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"after");
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(n.wait_exit(WAIT), Some(0));
}

#[test]
fn a_taken_port_exits_2_with_a_clear_message() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let b = Backend::start(Mode::Echo);
    let mut n = Nvelox::spawn(&config(port, "roundrobin", &[quoted(b.addr)], "", ""));
    assert_eq!(n.wait_exit(WAIT), Some(2));
    // The stderr reader thread may still be catching up with the exit.
    let line = n.wait_for_line("in use", WAIT);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
}

#[test]
fn backend_reset_mid_stream_resets_the_client() {
    let addr = resetting_backend(b"partial".to_vec());
    let port = free_port();
    let _n = Nvelox::start(&config(port, "roundrobin", &[quoted(addr)], "", ""));
    expect_reset_after(connect(port), b"partial");
}

#[test]
fn access_log_has_one_line_per_connection() {
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let n = Nvelox::start(&config(port, "roundrobin", &[quoted(b.addr)], "", ""));
    let mut s = connect(port);
    s.write_all(b"12345").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    let access = n.dir.path("access.log");
    assert!(eventually(WAIT, || std::fs::read_to_string(&access)
        .is_ok_and(|s| s.contains("bytes_in=5"))));
    let text = std::fs::read_to_string(&access).unwrap();
    let line = text.lines().find(|l| l.contains("bytes_in=5")).unwrap();
    for field in [
        "listener=web",
        "client=127.0.0.1:",
        &format!("server={}", b.addr),
        "bytes_out=5",
        "duration_ms=",
        "reason=\"done\"",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory() {
    // The backend pushes as fast as it can; the client never reads.
    let (addr, rx) = firehose_backend();
    let port = free_port();
    let n = Nvelox::start(&config(port, "roundrobin", &[quoted(addr)], "", ""));
    let before = status_kib(n.pid(), "VmRSS:");
    let _idle_reader = connect(port);
    let sent = rx.recv_timeout(WAIT).unwrap();
    let grown = status_kib(n.pid(), "VmRSS:").saturating_sub(before);
    assert!(
        sent < (64 << 20),
        "the backend was never slowed down: {sent} bytes accepted"
    );
    assert!(
        grown < 4096,
        "RSS grew by {grown} KiB for one stalled connection"
    );
}

#[test]
fn global_max_connections_caps_all_listeners_together() {
    let b = Backend::start(Mode::NamedEcho("s"));
    let (p1, p2) = (free_port(), free_port());
    let yaml = format!(
        "server:\n  workers: 1\n  max_connections: 2\nlisteners:\n  - name: one\n    bind: \"127.0.0.1:{p1}\"\n    default_backend: pool\n  - name: two\n    bind: \"127.0.0.1:{p2}\"\n    default_backend: pool\nbackends:\n  - name: pool\n    servers: [\"{}\"]\n",
        b.addr
    );
    let _n = Nvelox::start(&yaml);
    let greet = |s: &TcpStream| {
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        line
    };
    let a = connect(p1);
    assert_eq!(greet(&a), "s\n");
    let c = connect(p2);
    assert_eq!(greet(&c), "s\n");
    let third = connect(p2);
    third
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    assert!(
        (&third).read(&mut [0u8; 4]).is_err(),
        "a third connection was served over the global cap"
    );
    drop(a);
    third.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(greet(&third), "s\n");
}
