//! Access control and abuse limits through the real binary: allow and deny
//! lists (IPv4, IPv6, IPv4-mapped), the PROXY header's client, per-client
//! limits under a flood while another client keeps being served, UDP
//! sessions per client, the listener rate limit, and counters kept across
//! a reload. Distinct clients are loopback addresses 127.0.0.2, .3, ...

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use nvelox::proxy_protocol::{Header, Transport};
use socket2::{Domain, Socket, Type};

/// A TCP connection to `to` from the address `from` (any port).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let from: IpAddr = from.parse().unwrap();
    let domain = if from.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(from, 0).into()).unwrap();
    s.connect_timeout(&to.into(), WAIT).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Whether an echo through `s` works (false: closed by nvelox).
fn echoes(s: &mut TcpStream) -> bool {
    if s.write_all(b"ping").is_err() {
        return false;
    }
    let mut got = [0u8; 4];
    s.read_exact(&mut got).is_ok() && &got == b"ping"
}

fn served(from: &str, to: SocketAddr) -> bool {
    echoes(&mut connect_from(from, to))
}

fn config(bind: &str, server: SocketAddr, extra: &str) -> String {
    format!(
        "server:\n  workers: 2\nlisteners:\n  - name: guarded\n    bind: \"{bind}\"\n    backend: echo\n{extra}backends:\n  - name: echo\n    servers: [\"{server}\"]\n"
    )
}

#[test]
fn deny_and_allow_lists_for_v4_v6_and_mapped_clients() {
    let echo = Backend::start(Mode::Echo);
    // IPv4 listener: the deny list wins over the allow list.
    let port = free_port();
    let metrics = free_port();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let n = Nvelox::start(&format!(
        "metrics: {{ enabled: true, bind: \"127.0.0.1:{metrics}\" }}\n{}",
        config(
            &format!("127.0.0.1:{port}"),
            echo.addr,
            "    ip_allowlist: [\"127.0.0.0/8\"]\n    ip_denylist: [\"127.0.0.2/32\", \"10.0.0.0/8\"]\n",
        )
    ));
    assert!(served("127.0.0.3", to));
    let before = echo.count();
    assert!(!served("127.0.0.2", to), "127.0.0.2 is denied");
    assert!(served("127.0.0.4", to));
    // The denied client never reached the server.
    assert_eq!(echo.count(), before + 1);
    n.wait_for_line("in ip_denylist", WAIT);
    let mut m = TcpStream::connect(("127.0.0.1", metrics)).unwrap();
    m.set_read_timeout(Some(WAIT)).unwrap();
    m.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    m.read_to_string(&mut text).unwrap();
    assert!(
        text.contains(
            "nvelox_listener_denied_total{listener=\"guarded\",reason=\"ip_denylist\"} 1\n"
        ),
        "{text}"
    );
    assert!(text.contains(
        "nvelox_listener_denied_total{listener=\"guarded\",reason=\"ip_allowlist\"} 0\n"
    ));
    drop(n);

    // Dual-stack listener: IPv4 clients arrive as ::ffff:a.b.c.d and match
    // IPv4 entries; IPv6 entries match IPv6 clients.
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!(":{port}"),
        echo.addr,
        "    ip_allowlist: [\"127.0.0.3\", \"::1/128\"]\n",
    ));
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    assert!(
        served("127.0.0.3", v4),
        "mapped 127.0.0.3 matches the IPv4 entry"
    );
    assert!(!served("127.0.0.2", v4), "not in the allow list");
    assert!(served("::1", v6));
    n.wait_for_line("not in ip_allowlist", WAIT);
    drop(n);

    // An IPv6 deny entry.
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!("[::1]:{port}"),
        echo.addr,
        "    ip_denylist: [\"::1\"]\n",
    ));
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    assert!(!served("::1", v6));
    drop(n);
}

#[test]
fn with_accept_proxy_the_headers_client_is_checked() {
    let echo = Backend::start(Mode::Echo);
    let port = free_port();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        echo.addr,
        "    accept_proxy: v2\n    ip_denylist: [\"192.0.2.0/24\", \"2001:db8::/32\"]\n",
    ));
    let through = |src: &str| {
        let src: SocketAddr = src.parse().unwrap();
        let dst: SocketAddr = if src.is_ipv4() {
            "198.51.100.1:80".parse().unwrap()
        } else {
            "[2001:db8:1::1]:80".parse().unwrap()
        };
        let mut header = Vec::new();
        Header::proxy(
            nvelox::proxy_protocol::Version::V2,
            Transport::Stream,
            src,
            dst,
        )
        .emit(&mut header)
        .unwrap();
        let mut s = connect_from("127.0.0.1", to);
        s.write_all(&header).unwrap();
        echoes(&mut s)
    };
    let before = echo.count();
    assert!(!through("192.0.2.9:5000"), "denied by the header's client");
    assert!(!through("[2001:db8::7]:5000"));
    assert_eq!(
        echo.count(),
        before,
        "no server contacted for a denied client"
    );
    // The socket peer (127.0.0.1) is not what is judged.
    assert!(through("203.0.113.5:5000"));
    assert!(through("[2001:db9::1]:5000"));
}

#[test]
fn a_flood_from_one_client_does_not_starve_another() {
    let echo = Backend::start(Mode::Echo);
    let port = free_port();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        echo.addr,
        "    max_connections_per_ip: 5\n    ip_rate_limit: { connections_per_second: 20, burst: 20 }\n",
    ));
    // 127.0.0.2 opens 40 connections and holds them.
    let mut flood: Vec<TcpStream> = (0..40).map(|_| connect_from("127.0.0.2", to)).collect();
    let admitted = flood.iter_mut().map(echoes).filter(|ok| *ok).count();
    assert_eq!(admitted, 5, "max_connections_per_ip");
    // 127.0.0.3 is served every time, one connection after another.
    let ok = (0..15).filter(|_| served("127.0.0.3", to)).count();
    assert_eq!(ok, 15, "the other client's success rate is 100 %");
    n.wait_for_line("max_connections_per_ip reached", WAIT);
    // Closing the flood frees its slots; the rate limit then bounds it:
    // 60 more attempts at once get at most the bucket's 20 (minus what the
    // first 40 attempts took) plus what refilled meanwhile.
    drop(flood);
    assert!(eventually(WAIT, || served("127.0.0.2", to)));
    let burst: Vec<TcpStream> = (0..60).map(|_| connect_from("127.0.0.2", to)).collect();
    let mut burst = burst;
    let got = burst.iter_mut().map(echoes).filter(|ok| *ok).count();
    assert!(got <= 5, "{got} admitted beyond max_connections_per_ip");
    assert!(
        n.stderr_text().contains("suppressed"),
        "{}",
        n.stderr_text()
    );
    // Refusals are logged at most once per interval and reason.
    let lines = n.count_lines("max_connections_per_ip reached");
    assert!(lines <= 2, "{lines} log lines for ~90 refusals");
}

#[test]
fn udp_sessions_are_limited_per_client_while_established_ones_flow() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    server.set_read_timeout(Some(WAIT)).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = server.recv_from(&mut buf) {
            let _ = server.send_to(&buf[..len], from);
        }
    });
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let n = Nvelox::start(&format!(
        "server:\n  workers: 2\nlisteners:\n  - name: dns\n    bind: \"127.0.0.1:{port}\"\n    protocol: udp\n    backend: echo\n    max_connections_per_ip: 2\n    ip_denylist: [\"127.0.0.9\"]\nbackends:\n  - name: echo\n    servers: [\"{server_addr}\"]\n"
    ));
    let client = |from: &str| UdpSocket::bind((from, 0)).unwrap();
    // An answer that should come is waited for generously (a loaded machine
    // may take seconds); one that should not, for 500 ms (a late one would
    // still show up in the next question on that socket).
    let ask = |s: &UdpSocket, msg: &[u8], wait: Duration| {
        s.set_read_timeout(Some(wait)).unwrap();
        s.send_to(msg, to).unwrap();
        let mut buf = [0u8; 64];
        matches!(s.recv_from(&mut buf), Ok((len, _)) if &buf[..len] == msg)
    };
    let answered = |s: &UdpSocket, msg: &[u8]| ask(s, msg, WAIT);
    let refused = |s: &UdpSocket, msg: &[u8]| !ask(s, msg, Duration::from_millis(500));
    let a = client("127.0.0.2");
    let b = client("127.0.0.2");
    let c = client("127.0.0.2");
    assert!(answered(&a, b"a1"));
    assert!(answered(&b, b"b1"));
    assert!(refused(&c, b"c1"), "a third session from 127.0.0.2");
    // Established sessions keep flowing; another client is served.
    for i in 0..5 {
        assert!(answered(&a, format!("a{i}").as_bytes()));
        assert!(answered(&b, format!("b{i}").as_bytes()));
    }
    assert!(answered(&client("127.0.0.3"), b"other"));
    assert!(refused(&client("127.0.0.9"), b"denied"));
    n.wait_for_line("max_connections_per_ip reached", WAIT);
    n.wait_for_line("in ip_denylist", WAIT);
}

#[test]
fn the_listener_rate_limit_delays_accepts_without_dropping() {
    let echo = Backend::start(Mode::Echo);
    let port = free_port();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        echo.addr,
        "    rate_limit: { connections_per_second: 20, burst: 5 }\n",
    ));
    let start = Instant::now();
    let mut conns: Vec<TcpStream> = (0..25).map(|_| connect_from("127.0.0.2", to)).collect();
    // Every client waits in the backlog and is served in the end.
    let ok = conns.iter_mut().map(echoes).filter(|ok| *ok).count();
    assert_eq!(ok, 25);
    // 5 at once, then 20 at 20 a second: at least ~1 s (a lower bound only).
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_reload_keeps_the_per_client_counts() {
    let echo = Backend::start(Mode::Echo);
    let port = free_port();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let yaml = config(
        &format!("127.0.0.1:{port}"),
        echo.addr,
        "    max_connections_per_ip: 2\n",
    );
    let n = Nvelox::start(&yaml);
    let mut held: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.2", to)).collect();
    assert!(held.iter_mut().all(echoes));
    std::fs::write(
        n.dir.path("nvelox.yaml"),
        yaml.replace(
            "max_connections_per_ip: 2\n",
            "max_connections_per_ip: 2\n    ip_denylist: [\"10.0.0.0/8\"]\n",
        ),
    )
    .unwrap();
    n.signal(libc::SIGHUP);
    n.wait_for_line("configuration reloaded", WAIT);
    assert!(
        !served("127.0.0.2", to),
        "the two held connections still count"
    );
    assert!(served("127.0.0.3", to));
    drop(held.pop());
    assert!(eventually(WAIT, || served("127.0.0.2", to)));
}

#[test]
fn http_ip_rate_limit_counts_requests_and_answers_429() {
    let app = origin::Origin::named("app");
    let port = free_port();
    let n = Nvelox::start(&format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\n    ip_rate_limit: {{ requests_per_second: 0.1, burst: 3 }}\n    max_connections_per_ip: 50\nbackends:\n  - name: app\n    servers: [\"{}\"]\n",
        app.addr
    ));
    // Three requests on one keep-alive connection pass, the fourth is
    // refused with 429 and never reaches the server.
    let mut c = origin::Client::connect(port);
    for _ in 0..3 {
        assert_eq!(c.get("/x").status, 200);
    }
    assert_eq!(c.get("/x").status, 429);
    assert_eq!(app.requests().len(), 3);
    // New connections are not what is counted: one more connection still
    // opens, and its request is refused too.
    let r = origin::exchange(port, b"GET /y HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 429);
    assert_eq!(app.requests().len(), 3);
    drop(n);
}
