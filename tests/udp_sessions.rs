//! The life of a UDP session through the real binary, on loopback: the
//! session cap, idle expiry, an unreachable server, sockets given back,
//! SIGTERM.

mod common;
#[path = "common/udp.rs"]
mod udp_support;

use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use udp_support::*;

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
        // No answer: the session expired before its server answered (see
        // ask_unless_expired), a disturbed round too.
        let Some(first) = ask_unless_expired(&n, &c, v4(port), b"1") else {
            disturbed.push(c);
            continue;
        };
        let opened = Instant::now();
        let server = first.strip_suffix(":1").unwrap().to_string();
        let mut sent = 1u64;
        let mut previous_send = Instant::now();
        let mut conclusive = true;
        // Until a datagram was sent well after the session's idle time.
        while previous_send.duration_since(opened) < IDLE + IDLE / 2 {
            thread::sleep(Duration::from_millis(100));
            let send = Instant::now();
            let Some(got) = ask_unless_expired(&n, &c, v4(port), b"k") else {
                conclusive = false;
                break;
            };
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
    let lines = wait_access_lines(&n, &format!("client={me} "), 1);
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
    match ask_unless_expired(&n, &c, v4(port), b"2") {
        Some(got) => assert_eq!(got, format!("{next}:2")),
        // That session expired before `next` answered: its access line
        // still names the server it was opened on.
        None => {
            let next_addr = if next == "a" { a.addr } else { b.addr };
            let lines = wait_access_lines(&n, &format!("client={me} "), 2);
            assert!(
                lines[1].contains(&format!("server={next_addr} ")),
                "{}",
                lines[1]
            );
        }
    }
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
    // Every session is open at once when a pass over the 50 clients, and
    // the count after it, took less than the idle time from the pass's
    // first datagram. A slower pass (a loaded machine; some sessions may
    // have expired) proves nothing and is made again: expired sessions
    // reopen, live ones are refreshed.
    // A session that expired before its server answered (see
    // ask_unless_expired) also makes a pass inconclusive.
    let mut counted = None;
    for _ in 0..10 {
        let pass = Instant::now();
        let mut answered = true;
        for c in &clients {
            match ask_unless_expired(&n, c, v4(port), b"x") {
                Some(got) => assert_eq!(got, "x"),
                None => {
                    answered = false;
                    break;
                }
            }
        }
        let open = open_fds(pid);
        if answered && pass.elapsed() < Duration::from_millis(1500) {
            counted = Some(open);
            break;
        }
    }
    let open = counted.expect("10 passes in a row slower than the idle time");
    assert!(
        open >= baseline + 50,
        "one upstream socket per session: {open} open, baseline {baseline}"
    );
    wait_access_lines(&n, "idle timeout", 50);
    assert!(
        eventually(WAIT, || open_fds(pid) <= baseline),
        "fds: {} open, baseline {baseline}",
        open_fds(pid)
    );
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
