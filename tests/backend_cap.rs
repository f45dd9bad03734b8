//! A backend's own `max_connections` (Go Nvelox's, a cap across all its
//! servers) through the real binary: HTTP requests beyond it get 503 with
//! no server contacted (Go's answer), TCP connections beyond it are closed;
//! a freed slot is usable again; both are logged as `backend full`. Go's `16-max-connections` file is the
//! HTTP configuration (its cap lowered to 1).

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use origin::{ok, Answer, Client, Origin};

/// Polls `f` until it holds, at most `WAIT`.
fn wait_until(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The access-log line containing `needle`, once written (at most `WAIT`).
fn logged(n: &Nvelox, needle: &str) -> String {
    let path = n.dir.path("access.log");
    let mut line = None;
    eventually(WAIT, || {
        line = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.lines().find(|l| l.contains(needle)).map(str::to_string));
        line.is_some()
    });
    line.unwrap_or_else(|| panic!("no access-log line with {needle:?}"))
}

#[test]
fn http_requests_beyond_the_backend_cap_get_503_until_a_slot_frees() {
    // The origin holds `/hold` until `open` is set.
    let (entered, open) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (e2, o2) = (Arc::clone(&entered), Arc::clone(&open));
    let origin = Origin::start(Arc::new(move |seen| {
        if seen.target == "/hold" {
            e2.fetch_add(1, Ordering::SeqCst);
            let end = Instant::now() + WAIT;
            while !o2.load(Ordering::SeqCst) && Instant::now() < end {
                thread::sleep(Duration::from_millis(5));
            }
        }
        Answer::Raw(ok(b"app"))
    }));
    let port = free_port();
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go_compat/16-max-connections.yaml");
    let yaml = std::fs::read_to_string(file)
        .unwrap()
        .replace("127.0.0.1:19000", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:18081", &origin.addr.to_string())
        .replace("max_connections: 8", "max_connections: 1")
        .replace(
            "  level: \"debug\"",
            "  level: \"debug\"\n  access_log: {dir}/access.log",
        );
    assert!(yaml.contains("max_connections: 1") && yaml.contains("access_log"));
    let n = Nvelox::start(&yaml);

    let mut a = Client::connect(port);
    a.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_until("the first request at the server", || {
        entered.load(Ordering::SeqCst) == 1
    });
    // The one slot is taken: 503 at once, the server never sees it.
    let mut b = Client::connect(port);
    let got = b.get("/second");
    assert_eq!(got.status, 503, "{got:?}");
    assert_eq!(origin.requests().len(), 1);
    // Logged as the cap, not as a missing server.
    let line = logged(&n, "path=\"/second\"");
    assert!(line.contains("reason=\"backend full\""), "{line}");
    open.store(true, Ordering::SeqCst);
    let got = a.response();
    assert_eq!((got.status, got.body.as_slice()), (200, &b"app"[..]));
    // The slot is back: the same kept-alive client gets through.
    let got = b.get("/third");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"app"[..]));
}

#[test]
fn tcp_connections_beyond_the_backend_cap_are_closed_until_a_slot_frees() {
    let s1 = Backend::start(Mode::Echo);
    let s2 = Backend::start(Mode::Echo);
    let port = free_port();
    let yaml = format!(
        "logging:\n  access_log: {{dir}}/access.log\nlisteners:\n  - name: t\n    bind: \"127.0.0.1:{port}\"\n    protocol: tcp\n    backend: b\nbackends:\n  - name: b\n    balance: roundrobin\n    max_connections: 2\n    servers: [\"{}\", \"{}\"]\n",
        s1.addr, s2.addr
    );
    let n = Nvelox::start(&yaml);
    let echo = |c: &mut TcpStream, msg: &[u8]| -> bool {
        c.set_read_timeout(Some(WAIT)).unwrap();
        if c.write_all(msg).is_err() {
            return false;
        }
        let mut buf = vec![0u8; msg.len()];
        c.read_exact(&mut buf).is_ok() && buf == msg
    };
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for c in &mut held {
        assert!(echo(c, b"hello"), "within the cap");
    }
    // Both servers have a connection, yet the backend is full: closed.
    let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(
        !echo(&mut third, b"over"),
        "the third connection is relayed"
    );
    assert_eq!(
        s1.accepted.load(Ordering::SeqCst) + s2.accepted.load(Ordering::SeqCst),
        2
    );
    let line = logged(&n, "reason=\"backend full\"");
    assert!(
        line.contains("server=-") || !line.contains("server=127"),
        "{line}"
    );
    // One closes: its slot is released (asynchronously), a new one works.
    drop(held.pop());
    wait_until("a freed slot", || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        echo(&mut c, b"again")
    });
}
