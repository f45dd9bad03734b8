//! PROXY protocol and zero-copy relay through the real binary.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use nvelox::proxy_protocol::{Accept, Command, Header, Parsed};

/// A backend that reads one PROXY header (any version) and answers
/// `src=<addr> dst=<addr>\n` (or `local\n`, or `error:<e>\n`), then echoes.
fn pp_backend() -> (SocketAddr, mpsc::Receiver<Header>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        while let Ok((mut s, _)) = l.accept() {
            let tx = tx.clone();
            thread::spawn(move || {
                s.set_read_timeout(Some(WAIT)).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (header, consumed) = loop {
                    let n = match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    match Header::parse(&buf, Accept::Any) {
                        Ok(Parsed::Complete { header, consumed }) => break (header, consumed),
                        Ok(Parsed::Incomplete { .. }) => continue,
                        Err(e) => {
                            let _ = s.write_all(format!("error:{e}\n").as_bytes());
                            return;
                        }
                    }
                };
                let line = match (header.command, header.addresses) {
                    (Command::Proxy, Some((src, dst))) => format!("src={src} dst={dst}\n"),
                    _ => "local\n".to_string(),
                };
                let _ = tx.send(header);
                let _ = s.write_all(line.as_bytes());
                let _ = s.write_all(&buf[consumed..]);
                let mut b = [0u8; 65536];
                loop {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&b[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn yaml(port: u16, server: SocketAddr, listener_extra: &str, backend_extra: &str) -> String {
    format!(
        "logging:\n  level: debug\nlisteners:\n  - name: l\n    bind: \"127.0.0.1:{port}\"\n    default_backend: b\n{listener_extra}\
backends:\n  - name: b\n{backend_extra}    servers: [\"{server}\"]\n"
    )
}

fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 {
        if b[0] == b'\n' {
            break;
        }
        out.push(b[0]);
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn send_proxy_v2_tells_the_backend_the_real_client_and_destination() {
    let (server, headers) = pp_backend();
    let port = free_port();
    let _n = Nvelox::start(&yaml(port, server, "", "    send_proxy_v2: true\n"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"payload").unwrap();
    let line = read_line(&mut s);
    assert_eq!(
        line,
        format!("src={} dst=127.0.0.1:{port}", s.local_addr().unwrap())
    );
    let mut echoed = [0u8; 7];
    s.read_exact(&mut echoed).unwrap();
    assert_eq!(
        &echoed, b"payload",
        "bytes after the header are relayed unchanged"
    );
    let h = headers.recv_timeout(WAIT).unwrap();
    assert_eq!(h.version, nvelox::proxy_protocol::Version::V2);
}

#[test]
fn send_proxy_v1_is_a_text_line() {
    let (server, headers) = pp_backend();
    let port = free_port();
    let _n = Nvelox::start(&yaml(port, server, "", "    send_proxy: v1\n"));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let line = read_line(&mut s);
    assert_eq!(
        line,
        format!("src={} dst=127.0.0.1:{port}", s.local_addr().unwrap())
    );
    assert_eq!(
        headers.recv_timeout(WAIT).unwrap().version,
        nvelox::proxy_protocol::Version::V1
    );
}

#[test]
fn two_chained_balancers_preserve_the_original_client() {
    let (server, _headers) = pp_backend();
    let (front, back) = (free_port(), free_port());
    let inner: SocketAddr = format!("127.0.0.1:{back}").parse().unwrap();
    let _b = Nvelox::start(&yaml(
        back,
        server,
        "    accept_proxy: v2\n",
        "    send_proxy: v1\n",
    ));
    let _a = Nvelox::start(&yaml(front, inner, "", "    send_proxy_v2: true\n"));
    // Connect from 127.0.0.9 so the original client is unmistakable.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 9], 0)).into())
        .unwrap();
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], front)).into())
        .unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"hello").unwrap();
    let line = read_line(&mut s);
    assert_eq!(
        line,
        format!("src={} dst=127.0.0.1:{front}", s.local_addr().unwrap())
    );
    let mut echoed = [0u8; 5];
    s.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"hello");
}

#[test]
fn accept_proxy_closes_garbage_with_a_log_line() {
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let n = Nvelox::start(&yaml(port, b.addr, "    accept_proxy: any\n", ""));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.is_empty());
    n.wait_for_line("PROXY", WAIT);
    assert_eq!(b.count(), 0, "garbage must not reach a server");
}

#[test]
fn accept_proxy_uses_the_header_client_for_the_next_hop() {
    let (server, _h) = pp_backend();
    let port = free_port();
    let _n = Nvelox::start(&yaml(
        port,
        server,
        "    accept_proxy: v1\n",
        "    send_proxy_v2: true\n",
    ));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\nrest")
        .unwrap();
    assert_eq!(
        read_line(&mut s),
        "src=192.0.2.7:40000 dst=198.51.100.1:443"
    );
    let mut rest = [0u8; 4];
    s.read_exact(&mut rest).unwrap();
    assert_eq!(&rest, b"rest");
}

fn transfer(port: u16, size: usize) {
    let data = payload(size, size as u64);
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let d2 = data.clone();
    let writer = thread::spawn(move || {
        w.write_all(&d2).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(size);
    (&s).read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "payload corrupted");
}

#[test]
fn hundred_megabytes_byte_exact_with_and_without_zero_copy() {
    let b = Backend::start(Mode::Echo);
    for zc in [false, true] {
        let port = free_port();
        let _n = Nvelox::start(&yaml(port, b.addr, &format!("    zero_copy: {zc}\n"), ""));
        transfer(port, 100 << 20);
    }
}

fn pipe_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("pipe:"))
        .count()
}

#[test]
fn zero_copy_half_close_and_no_pipes_held_by_idle_connections() {
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let n = Nvelox::start(&yaml(port, b.addr, "    zero_copy: true\n", ""));
    // Half-close: the client shuts its write side and still gets everything.
    transfer(port, 3 << 20);
    let baseline = pipe_fds(n.pid());
    assert!(
        baseline >= 2,
        "zero_copy relayed without a pipe: splice was not used"
    );
    for _ in 0..1000 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"ping").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"ping");
    }
    // 100 idle connections that have relayed bytes hold no pipe.
    let mut idle = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).unwrap();
        idle.push(s);
    }
    let held = pipe_fds(n.pid());
    // The pool keeps at most 16 idle pipes (32 fds); connections keep none.
    assert!(
        held <= baseline.max(32),
        "pipe fds: {held} (baseline {baseline})"
    );
    drop(idle);
}

#[test]
fn zero_copy_passes_a_backend_reset_on_as_a_reset() {
    let addr = resetting_backend(b"partial".to_vec());
    let port = free_port();
    let _n = Nvelox::start(&yaml(port, addr, "    zero_copy: true\n", ""));
    expect_reset_after(TcpStream::connect(("127.0.0.1", port)).unwrap(), b"partial");
}

#[test]
fn zero_copy_backpressure_bounds_memory_for_a_client_that_never_reads() {
    let (addr, rx) = firehose_backend();
    let port = free_port();
    let _n = Nvelox::start(&yaml(port, addr, "    zero_copy: true\n", ""));
    let _never_reads = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let sent = rx.recv_timeout(WAIT).unwrap();
    assert!(
        sent < (64 << 20),
        "the backend was never slowed down: {sent} bytes accepted"
    );
}
