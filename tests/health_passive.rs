//! Passive health checks through the real binary, on loopback: connect
//! failures take a server out for `fail_timeout`, during which it gets no
//! traffic even once it is back; then one trial connection decides.
//!
//! Two tests so that neither depends on how fast the machine runs them: a
//! quarantine far longer than the test (it is certainly on throughout), and
//! a short one whose end is waited for.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};

use common::*;

fn lb(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn served_by(port: u16) -> String {
    let s = TcpStream::connect_timeout(&lb(port), WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    line.trim().to_string()
}

fn down_line(label: impl std::fmt::Display) -> String {
    format!("server {label}: up -> down")
}

/// Lines where the TCP proxy (not a probe) tried `addr` and failed.
fn proxy_attempts(n: &Nvelox, addr: SocketAddr) -> usize {
    let a = addr.to_string();
    n.count_lines(&format!("connect to {a} failed")) + n.count_lines(&format!("-> {a}: connect"))
}

/// nvelox in front of `a` and a port nobody listens on, with passive checks
/// (2 failures within `fail_timeout`), once the dead server is marked down.
/// Returns nvelox, its port and the dead server's address.
fn dead_server_marked_down(a: &Backend, fail_timeout: &str) -> (Nvelox, u16, SocketAddr) {
    let dead_addr = lb(free_port());
    let port = free_port();
    let backend = format!(
        "  - name: pool\n    balance: roundrobin\n    connect_timeout: 5s\n    retries: 3\n    \
health_check:\n      passive:\n        max_fails: 2\n        fail_timeout: {fail_timeout}\n    \
servers:\n      - \"{}\"\n      - \"{dead_addr}\"\n",
        a.addr
    );
    let n = Nvelox::start(&format!(
        "server:\n  workers: 2\n  shutdown_timeout: 2s\nlogging:\n  level: debug\n\
listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    default_backend: pool\n\
backends:\n{backend}"
    ));
    // Clients never notice: the proxy retries on a. Until the two failures
    // fall within fail_timeout, however slowly this loop runs.
    let deadline = std::time::Instant::now() + 3 * WAIT;
    while n.count_lines(&down_line(dead_addr)) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never marked down:\n{}",
            n.stderr_text()
        );
        assert_eq!(served_by(port), "a");
    }
    let line = n.wait_for_line(&down_line(dead_addr), WAIT);
    assert!(
        line.contains(&format!("2 failures within {fail_timeout}")),
        "{line}"
    );
    (n, port, dead_addr)
}

#[test]
fn passive_check_keeps_a_dead_server_out_for_fail_timeout_even_once_it_is_back() {
    let a = Backend::start(Mode::NamedEcho("a"));
    let (n, port, dead_addr) = dead_server_marked_down(&a, "10m");
    // The server comes back, but its quarantine is not over: no traffic.
    let _d = Backend::on(TcpListener::bind(dead_addr).unwrap(), Mode::NamedEcho("d"));
    let before = proxy_attempts(&n, dead_addr);
    let got: Vec<String> = (0..6).map(|_| served_by(port)).collect();
    assert_eq!(got, ["a"; 6]);
    assert_eq!(proxy_attempts(&n, dead_addr), before);
    assert_eq!(n.count_lines("allowing one trial connection"), 0);
}

#[test]
fn passive_check_allows_one_trial_after_fail_timeout_and_a_good_one_brings_it_back() {
    let a = Backend::start(Mode::NamedEcho("a"));
    let (n, port, dead_addr) = dead_server_marked_down(&a, "1s");
    let _d = Backend::on(TcpListener::bind(dead_addr).unwrap(), Mode::NamedEcho("d"));
    // After fail_timeout one trial connection goes there and brings it back.
    assert!(
        eventually(3 * WAIT, || served_by(port) == "d"),
        "no client reached the server after its quarantine:\n{}",
        n.stderr_text()
    );
    n.wait_for_line("allowing one trial connection", WAIT);
    n.wait_for_line(
        &format!("server {dead_addr}: probing -> up: trial connection succeeded"),
        WAIT,
    );
}
