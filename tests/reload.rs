//! SIGHUP configuration reload through the real binary.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;

fn tcp_listener(name: &str, port: u16, backend: &str) -> String {
    format!("  - name: {name}\n    bind: \"127.0.0.1:{port}\"\n    default_backend: {backend}\n")
}

fn backend(name: &str, server: SocketAddr) -> String {
    format!("  - name: {name}\n    servers: [\"{server}\"]\n")
}

fn yaml(listeners: &[String], backends: &[String]) -> String {
    format!(
        "server:\n  workers: 2\nlogging:\n  level: info\nlisteners:\n{}backends:\n{}",
        listeners.concat(),
        backends.concat()
    )
}

fn write_config(n: &Nvelox, text: &str) {
    std::fs::write(n.dir.path("nvelox.yaml"), text).unwrap();
}

fn greeting(port: u16) -> String {
    first_line(SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn reload_switches_backends_and_listeners_without_cutting_open_connections() {
    let (a, b) = (
        Backend::start(Mode::NamedEcho("a")),
        Backend::start(Mode::NamedEcho("b")),
    );
    let (kept, dropped, added) = (free_port(), free_port(), free_port());
    let n = Nvelox::start(&yaml(
        &[
            tcp_listener("web", kept, "pool"),
            tcp_listener("old", dropped, "pool"),
        ],
        &[backend("pool", a.addr)],
    ));
    assert_eq!(greeting(kept), "a");
    // An open connection through the listener that stays.
    let mut open = TcpStream::connect(("127.0.0.1", kept)).unwrap();
    open.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(open.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "a\n");

    write_config(
        &n,
        &yaml(
            &[
                tcp_listener("web", kept, "pool2"),
                tcp_listener("new", added, "pool2"),
            ],
            &[backend("pool2", b.addr)],
        ),
    );
    n.reload("configuration reloaded");
    assert_eq!(greeting(kept), "b", "new connections use the new backend");
    assert_eq!(greeting(added), "b", "the added listener serves");
    assert!(
        eventually(WAIT, || TcpStream::connect(("127.0.0.1", dropped)).is_err()),
        "the removed listener still accepts"
    );
    // The connection opened before the reload still relays to its server.
    open.write_all(b"still here\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "still here\n");
    open.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
}

#[test]
fn an_invalid_file_on_reload_keeps_the_running_configuration() {
    let a = Backend::start(Mode::NamedEcho("a"));
    let port = free_port();
    let n = Nvelox::start(&yaml(
        &[tcp_listener("web", port, "pool")],
        &[backend("pool", a.addr)],
    ));
    write_config(
        &n,
        "listeners:\n  - name: web\n    bind: \":0\"\n    default_backend: nowhere\n",
    );
    n.reload("reload refused");
    let err = n.stderr_text();
    assert!(err.contains("nowhere"), "the reason is logged: {err}");
    assert_eq!(greeting(port), "a", "still serving the old configuration");
}

/// A SIGHUP that catches the file while it is rewritten (truncated, not yet
/// written) reads valid YAML without listeners: refused, as an invalid file.
#[test]
fn a_file_without_listeners_on_reload_keeps_the_running_configuration() {
    let a = Backend::start(Mode::NamedEcho("a"));
    let port = free_port();
    let n = Nvelox::start(&yaml(
        &[tcp_listener("web", port, "pool")],
        &[backend("pool", a.addr)],
    ));
    for text in ["", "# being rewritten\n", "server:\n  workers: 2\n"] {
        write_config(&n, text);
        n.reload("has no listeners");
        assert_eq!(greeting(port), "a", "still serving after {text:?}");
    }
}

#[test]
fn a_udp_session_survives_a_reload() {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        // Answers with the port the datagram came from: the session's upstream socket.
        while let Ok((_, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(from.port().to_string().as_bytes(), from);
        }
    });
    let port = free_port();
    let udp = |idle: &str| {
        format!(
            "server:\n  workers: 1\nlogging:\n  level: info\nlisteners:\n  - name: u\n    bind: \"127.0.0.1:{port}\"\n    protocol: udp\n    default_backend: e\n    idle_timeout: {idle}\nbackends:\n  - name: e\n    servers: [\"{echo_addr}\"]\n"
        )
    };
    let n = Nvelox::start(&udp("30s"));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let ask = |msg: &[u8]| {
        c.send_to(msg, ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 64];
        let (len, _) = c.recv_from(&mut buf).unwrap();
        buf[..len].to_vec()
    };
    let before = ask(b"one");
    write_config(&n, &udp("20s"));
    n.reload("configuration reloaded");
    assert_eq!(
        ask(b"two"),
        before,
        "the session (its upstream socket) was replaced"
    );
    assert!(!n.stderr_text().contains("listener removed by reload"));
}

#[test]
fn reload_changes_the_log_level() {
    let a = Backend::start(Mode::NamedEcho("a"));
    let port = free_port();
    let text = |level: &str| {
        yaml(
            &[tcp_listener("web", port, "pool")],
            &[backend("pool", a.addr)],
        )
        .replace("level: info", &format!("level: {level}"))
    };
    let n = Nvelox::start(&text("info"));
    write_config(&n, &text("debug"));
    n.reload("configuration reloaded");
    // A refused server is logged at debug level only.
    let dead = free_port();
    write_config(
        &n,
        &yaml(
            &[tcp_listener("web", port, "pool")],
            &[backend(
                "pool",
                format!("127.0.0.1:{dead}").parse().unwrap(),
            )],
        )
        .replace("level: info", "level: debug"),
    );
    n.reload("configuration reloaded");
    let _ = TcpStream::connect(("127.0.0.1", port)).map(|mut s| {
        let _ = s.set_read_timeout(Some(WAIT));
        let mut b = Vec::new();
        let _ = s.read_to_end(&mut b);
    });
    n.wait_for_line("DEBUG", WAIT);
}

/// A UDP server answering every datagram with `name`.
fn named_udp_server(name: &'static str) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(name.as_bytes(), from);
        }
    });
    addr
}

#[test]
fn reloads_adding_and_removing_a_udp_listener_keep_each_port_on_its_backend() {
    // The removed listener's slot is reused by the next added one: the
    // datagrams of each port must still reach that port's own backend.
    let (k, x) = (named_udp_server("k"), named_udp_server("x"));
    let udp = |name: &str, port: u16, backend: &str| {
        format!("  - {{ name: {name}, bind: \"127.0.0.1:{port}\", protocol: udp, default_backend: {backend}, idle_timeout: 30s }}\n")
    };
    let backends = [backend("kb", k), backend("xb", x)];
    let kept = free_port();
    let n = Nvelox::start(&yaml(&[udp("kept", kept, "kb")], &backends));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let ask = |port: u16| {
        // Bounded retries: the first datagram may race the listener's registration.
        for _ in 0..5 {
            c.send_to(b"?", ("127.0.0.1", port)).unwrap();
            let mut buf = [0u8; 16];
            if let Ok((len, _)) = c.recv_from(&mut buf) {
                return String::from_utf8_lossy(&buf[..len]).into_owned();
            }
        }
        panic!("no answer through port {port}");
    };
    assert_eq!(ask(kept), "k");
    for round in 0..4 {
        let extra = free_port();
        // Listed first, so the kept listener's plan index moves too.
        write_config(
            &n,
            &yaml(
                &[udp("extra", extra, "xb"), udp("kept", kept, "kb")],
                &backends,
            ),
        );
        n.reload("configuration reloaded");
        assert_eq!(ask(extra), "x", "round {round}: the added listener");
        assert_eq!(ask(kept), "k", "round {round}: the kept listener");
        write_config(&n, &yaml(&[udp("kept", kept, "kb")], &backends));
        n.reload("configuration reloaded");
        assert_eq!(ask(kept), "k", "round {round}: after the removal");
    }
}
