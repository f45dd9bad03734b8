//! `timeouts.write` of `protocol: http` listeners through the binary: a
//! peer that takes none of the bytes waiting for it is given up on, while
//! nvelox buffers no more than its bounded buffers meanwhile; and the
//! keep-alive idle time (`timeouts.idle`) counted from the last request.

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use origin::*;

const BIG: usize = 64 << 20;

/// nvelox's peak resident size may grow by less than this while a 64 MiB
/// body is stuck behind a peer that reads nothing (a few bounded buffers
/// and socket memory, never the body).
const PEAK_GROWTH_KIB: u64 = 16 << 10;

/// nvelox with an access log in `dir`, in front of `servers`.
fn start_logged(dir: &TempDir, servers: &[&Origin], listener: &str) -> (Nvelox, u16) {
    let port = free_port();
    let yaml = format!(
        "logging:\n  access_log: {}\n{}",
        dir.path("access.log").display(),
        http_config(port, servers, listener, "")
    );
    (Nvelox::start(&yaml), port)
}

fn wait_logged(dir: &TempDir, needle: &str) {
    let path = dir.path("access.log");
    assert!(
        eventually(WAIT, || std::fs::read_to_string(&path)
            .is_ok_and(|s| s.contains(needle))),
        "no access-log line with {needle:?}: {:?}",
        std::fs::read_to_string(&path)
    );
}

#[test]
fn a_client_that_never_reads_its_response_is_closed_after_the_write_timeout() {
    let body = Arc::new(ok(&payload(BIG, 5)));
    let o = Origin::start(Arc::new(move |_| Answer::Raw(body.to_vec())));
    let dir = TempDir::new("http-write-timeout");
    // `idle` (the stall rule inside bodies) is far longer: only the write
    // timeout can end this.
    let (n, port) = start_logged(&dir, &[&o], "    timeouts: { write: 1s, idle: 120s }\n");
    let peak = status_kib(n.pid(), "VmHWM:");
    let mut c = Client::connect(port);
    c.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_logged(&dir, "reason=\"client write timeout\"");
    let grown = status_kib(n.pid(), "VmHWM:").saturating_sub(peak);
    assert!(grown < PEAK_GROWTH_KIB, "peak memory grew by {grown} KiB");
    // What was in flight arrives, then the close; never the whole body.
    let mut got = Vec::new();
    match c.r.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("still open: {e}"),
    }
    assert!(got.len() < BIG, "{} bytes", got.len());
}

#[test]
fn a_server_that_never_reads_the_request_body_gets_504() {
    // A server that reads the request head, then nothing more.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let mut r = BufReader::new(s);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
            line.clear();
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let port = free_port();
    let yaml = format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\n    timeouts: {{ write: 1s, idle: 120s }}\nbackends:\n  - name: app\n    timeouts: {{ read: 120s }}\n    servers: [\"{addr}\"]\n"
    );
    let n = Nvelox::start(&yaml);
    let peak = status_kib(n.pid(), "VmHWM:");
    let mut c = Client::connect(port);
    let mut w = c.w.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = w.write_all(
            format!("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {BIG}\r\n\r\n").as_bytes(),
        );
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..BIG >> 20 {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let r = c.response();
    assert_eq!(r.status, 504);
    let grown = status_kib(n.pid(), "VmHWM:").saturating_sub(peak);
    assert!(grown < PEAK_GROWTH_KIB, "peak memory grew by {grown} KiB");
    // The body was not all read: the connection cannot go on.
    assert_eq!(r.header("Connection"), Some("close"));
}

#[test]
fn a_keep_alive_client_busy_past_its_idle_time_stays_and_is_closed_once_idle() {
    let o = Origin::start(Arc::new(|_| Answer::Raw(ok(b"hi"))));
    let dir = TempDir::new("http-idle");
    let (_n, port) = start_logged(&dir, &[&o], "    timeouts: { idle: 1s }\n");
    const IDLE: Duration = Duration::from_secs(1);
    // 2.4 s of requests 300 ms apart: the timer set for an earlier
    // deadline fires while the connection is busy and must not close it.
    // A close seen IDLE or more after the previous request was sent proves
    // nothing (this thread was not scheduled for that long under load, and
    // the connection was rightly idle): such a round starts again on a new
    // connection. A close sooner than that fails.
    let mut kept = None;
    for _round in 0..10 {
        let mut c = Client::connect(port);
        let mut previous_send = Instant::now();
        let mut conclusive = true;
        for i in 0..8 {
            let send = Instant::now();
            let got =
                c.w.write_all(format!("GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                    .ok()
                    .and_then(|()| read_response(&mut c.r, false));
            let Some(got) = got else {
                assert!(
                    i > 0 && previous_send.elapsed() >= IDLE,
                    "request {i}: closed {:?} after the previous request",
                    previous_send.elapsed()
                );
                conclusive = false;
                break;
            };
            assert_eq!(
                (got.status, &got.body[..]),
                (200, &b"hi"[..]),
                "request {i}"
            );
            previous_send = send;
            std::thread::sleep(Duration::from_millis(300));
        }
        if conclusive {
            kept = Some(c);
            break;
        }
    }
    let mut c = kept.expect("10 rounds in a row disturbed by scheduling delays");
    // Idle now: closed silently (no bytes, then EOF) after about 1 s.
    let mut rest = Vec::new();
    c.r.read_to_end(&mut rest).expect("closed, not timed out");
    assert!(rest.is_empty(), "{rest:?}");
}
