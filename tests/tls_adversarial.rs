//! Adversarial TLS clients against the real binary, on a `tls:` offload
//! listener (`protocol: tcp`, to an echo server) and a `protocol: https`
//! listener: garbage after the handshake, records cut into 1-byte writes,
//! uploads from a client that never reads, a FIN in the middle of a
//! record, close_notify while still reading, key updates and a TLS 1.2
//! renegotiation. Each connection must end cleanly or carry the right
//! bytes, and the proxy must go on serving others. Clients are rustls (in
//! process) and `openssl s_client`.
#![cfg(feature = "tls")]

#[path = "common/certs.rs"]
mod certs;
mod common;
#[path = "common/origin.rs"]
mod origin;

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use certs::*;
use common::*;
use origin::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

struct Setup {
    tmp: TempDir,
    n: Nvelox,
    /// `tls:` offload to an echo server.
    tcp: u16,
    /// `protocol: https` to an origin answering `a`.
    https: u16,
    _echo: Backend,
    _origin: Origin,
}

fn setup(origin: Origin) -> Setup {
    let tmp = TempDir::new("tls-adversarial");
    make_certs(&tmp.0);
    let echo = Backend::start(Mode::Echo);
    let (tcp, https) = (free_port(), free_port());
    let yaml = format!(
        r#"server: {{ workers: 1, shutdown_timeout: 1s }}
logging: {{ level: info, error_log: stderr, access_log: "{{dir}}/access.log" }}
listeners:
  - name: offload
    bind: "127.0.0.1:{tcp}"
    protocol: tcp
    backend: echo
    tls: {{ cert: {d}/a.pem, key: {d}/a.key }}
  - name: web
    bind: "127.0.0.1:{https}"
    protocol: https
    backend: app
    tls: {{ cert: {d}/a.pem, key: {d}/a.key }}
backends:
  - {{ name: echo, servers: ["{echo}"] }}
  - {{ name: app, servers: ["{app}"] }}
"#,
        d = tmp.0.display(),
        echo = echo.addr,
        app = origin.addr,
    );
    let n = Nvelox::start(&yaml);
    Setup {
        tmp,
        n,
        tcp,
        https,
        _echo: echo,
        _origin: origin,
    }
}

fn config(dir: &Path, tls12: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in chain(&dir.join("ca.pem")) {
        roots.add(c).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// A TLS connection, handshake done; the socket is ours to abuse.
struct Conn {
    tls: ClientConnection,
    sock: TcpStream,
}

impl Conn {
    fn open(dir: &Path, port: u16, tls12: bool) -> Conn {
        let name = ServerName::try_from("a.test").unwrap();
        let mut tls = ClientConnection::new(config(dir, tls12), name).unwrap();
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        sock.set_nodelay(true).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut sock).unwrap();
        }
        Conn { tls, sock }
    }

    /// `plain` as the records rustls makes of it (not sent).
    fn records(&mut self, plain: &[u8]) -> Vec<u8> {
        self.tls.writer().write_all(plain).unwrap();
        let mut out = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut out).unwrap();
        }
        out
    }

    fn send(&mut self, plain: &[u8]) {
        let wire = self.records(plain);
        self.sock.write_all(&wire).unwrap();
    }

    /// Plaintext until `want` bytes came or the connection ended.
    fn read(&mut self, want: usize) -> (Vec<u8>, End) {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < want {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => return (got, End::CloseNotify),
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return (got, End::Error(e.to_string())),
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => return (got, End::Fin),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (got, End::Stuck),
                Err(e) => return (got, End::Error(e.to_string())),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // Plaintext that came before the error is still readable.
                let _ = self.tls.reader().read_to_end(&mut got);
                return (got, End::Error(e.to_string()));
            }
        }
        (got, End::Open)
    }

    /// Reads until the connection ends; how it ended.
    fn end(&mut self) -> (Vec<u8>, End) {
        self.read(usize::MAX)
    }
}

#[derive(Debug, PartialEq)]
enum End {
    Open,
    CloseNotify,
    Fin,
    Error(String),
    /// Nothing came for `WAIT`: neither data nor a close.
    Stuck,
}

/// The proxy still serves new clients on both listeners.
fn still_serves(s: &Setup) {
    let mut c = Conn::open(&s.tmp.0, s.tcp, false);
    c.send(b"ping\n");
    assert_eq!(c.read(5).0, b"ping\n");
    let mut h = Conn::open(&s.tmp.0, s.https, true);
    h.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let (got, _) = h.read(38);
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

/// The access-log line of the client connection from local `port`.
fn access_line(s: &Setup, port: u16) -> String {
    let path = s.n.dir.path("access.log");
    let needle = format!("client=127.0.0.1:{port} ");
    let mut line = String::new();
    assert!(
        eventually(WAIT, || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            line = text
                .lines()
                .find(|l| l.contains(&needle))
                .unwrap_or("")
                .to_string();
            !line.is_empty()
        }),
        "no access-log line for {needle}"
    );
    line
}

#[test]
fn garbage_after_the_handshake_closes_the_connection_and_others_go_on() {
    let s = setup(Origin::named("a"));
    for tls12 in [false, true] {
        // Offload: a good record first (echoed), then junk.
        let mut c = Conn::open(&s.tmp.0, s.tcp, tls12);
        c.send(b"hello\n");
        assert_eq!(c.read(6).0, b"hello\n");
        // A whole record's worth of junk (32 bytes, as its header says).
        c.sock
            .write_all(b"\x17\x03\x03\x00\x20 not a record, only junk .......")
            .unwrap();
        let (got, end) = c.end();
        assert!(got.is_empty(), "{got:?}");
        assert!(
            matches!(end, End::Error(_) | End::Fin),
            "tls12 {tls12}: {end:?}"
        );
        let port = c.sock.local_addr().unwrap().port();
        let line = access_line(&s, port);
        assert!(line.contains("reason=\"client error\""), "{line}");
        assert!(line.contains("bytes_in=6 "), "{line}");

        // https: a request in clear on the TLS connection.
        let mut h = Conn::open(&s.tmp.0, s.https, tls12);
        h.sock
            .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .unwrap();
        let (got, end) = h.end();
        assert!(got.is_empty());
        assert!(
            matches!(end, End::Error(_) | End::Fin),
            "tls12 {tls12}: {end:?}"
        );
        still_serves(&s);
    }
    assert!(
        s._origin.requests().len() == 2,
        "only the good requests arrived"
    );
}

#[test]
fn records_cut_into_one_byte_writes_arrive_whole() {
    let s = setup(Origin::named("a"));
    for tls12 in [false, true] {
        let mut c = Conn::open(&s.tmp.0, s.tcp, tls12);
        let line: Vec<u8> = (0..300)
            .map(|i| b'a' + (i % 26) as u8)
            .chain([b'\n'])
            .collect();
        let wire = c.records(&line);
        for b in &wire {
            c.sock.write_all(std::slice::from_ref(b)).unwrap();
            thread::sleep(Duration::from_micros(200));
        }
        assert_eq!(c.read(line.len()).0, line);

        let mut h = Conn::open(&s.tmp.0, s.https, tls12);
        let wire = h.records(b"GET /one HTTP/1.1\r\nHost: a.test\r\n\r\n");
        for b in &wire {
            h.sock.write_all(std::slice::from_ref(b)).unwrap();
            thread::sleep(Duration::from_micros(200));
        }
        let (got, _) = h.read(38);
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            got.ends_with(b"\r\n\r\na"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }
    still_serves(&s);
}

/// Writes `next()` to `c` until a write blocks for a second (the proxy
/// stopped reading) or `cap` bytes went; the bytes written.
fn push_until_blocked(c: &mut Conn, cap: usize, mut next: impl FnMut() -> Vec<u8>) -> usize {
    c.sock
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut sent = 0;
    while sent < cap {
        let wire = c.records(&next());
        if c.sock.write_all(&wire).is_err() {
            break;
        }
        sent += wire.len();
    }
    sent
}

#[test]
fn clients_that_upload_and_never_read_cost_bounded_memory() {
    // The origin answers each request with 64 KiB.
    let big = ok(&vec![b'z'; 64 * 1024]);
    let s = setup(Origin::start(Arc::new(move |_| Answer::Raw(big.clone()))));
    let before = status_kib(s.n.pid(), "VmRSS:");
    // Offload: the echo server's answers back up, then the upload stops.
    let mut c = Conn::open(&s.tmp.0, s.tcp, false);
    let cap = 256 << 20;
    let sent = push_until_blocked(&mut c, cap, || vec![b'u'; 16 * 1024]);
    assert!(sent < cap, "the upload was never slowed down: {sent} B");
    // https: pipelined requests whose 64 KiB answers are never read.
    let mut h = Conn::open(&s.tmp.0, s.https, true);
    let req = b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n".repeat(16);
    let sent = push_until_blocked(&mut h, cap, || req.clone());
    assert!(
        sent < cap,
        "pipelined requests were never slowed down: {sent} B"
    );
    let grown = status_kib(s.n.pid(), "VmRSS:").saturating_sub(before);
    assert!(
        grown < 8192,
        "RSS grew by {grown} KiB for two stalled clients"
    );
    still_serves(&s);
    drop((c, h));
}

#[test]
fn a_fin_in_the_middle_of_a_record_ends_the_connection_without_its_bytes() {
    let s = setup(Origin::named("a"));
    for tls12 in [false, true] {
        let mut c = Conn::open(&s.tmp.0, s.tcp, tls12);
        c.send(b"first\n");
        assert_eq!(c.read(6).0, b"first\n");
        let wire = c.records(b"second\n");
        c.sock.write_all(&wire[..wire.len() / 2]).unwrap();
        c.sock.shutdown(Shutdown::Write).unwrap();
        let (got, end) = c.end();
        assert!(got.is_empty(), "{got:?}");
        assert!(end != End::Stuck && end != End::Open, "{end:?}");
        let port = c.sock.local_addr().unwrap().port();
        let line = access_line(&s, port);
        assert!(line.contains("bytes_in=6 "), "{line}");

        let mut h = Conn::open(&s.tmp.0, s.https, tls12);
        let wire = h.records(b"GET /cut HTTP/1.1\r\nHost: a.test\r\n\r\n");
        h.sock.write_all(&wire[..wire.len() - 3]).unwrap();
        h.sock.shutdown(Shutdown::Write).unwrap();
        let (got, end) = h.end();
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert!(end != End::Stuck && end != End::Open, "{end:?}");
    }
    assert!(s._origin.requests().iter().all(|r| r.target != "/cut"));
    still_serves(&s);
}

#[test]
fn close_notify_then_the_client_still_reads_the_answer() {
    let s = setup(Origin::named("a"));
    for tls12 in [false, true] {
        let mut c = Conn::open(&s.tmp.0, s.tcp, tls12);
        let mut wire = c.records(b"last words\n");
        c.tls.send_close_notify();
        c.tls.write_tls(&mut wire).unwrap();
        c.sock.write_all(&wire).unwrap();
        let (got, end) = c.end();
        assert_eq!(got, b"last words\n");
        // Data and close_notify came in one read: the end was still seen.
        assert_eq!(
            end,
            End::CloseNotify,
            "the echo's FIN comes as close_notify"
        );

        let mut h = Conn::open(&s.tmp.0, s.https, tls12);
        let mut wire = h.records(b"GET /bye HTTP/1.1\r\nHost: a.test\r\n\r\n");
        h.tls.send_close_notify();
        h.tls.write_tls(&mut wire).unwrap();
        h.sock.write_all(&wire).unwrap();
        let (got, end) = h.end();
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            got.ends_with(b"\r\n\r\na"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(end != End::Stuck, "{end:?}");
    }
    still_serves(&s);
}

#[test]
fn key_updates_go_on_and_a_tls12_renegotiation_is_refused() {
    let s = setup(Origin::named("a"));
    // TLS 1.3: the client updates its keys and asks for ours, twice.
    let mut c = Conn::open(&s.tmp.0, s.tcp, false);
    for round in 0..3 {
        let msg = format!("round {round}\n");
        c.send(msg.as_bytes());
        assert_eq!(c.read(msg.len()).0, msg.as_bytes());
        c.tls.refresh_traffic_keys().unwrap();
    }
    c.send(b"after\n");
    assert_eq!(c.read(6).0, b"after\n");

    if !Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|st| st.success())
    {
        skip("tls12_renegotiation", "openssl is not installed");
        return;
    }
    // `R` on s_client's input renegotiates (TLS 1.2).
    let mut child = Command::new("openssl")
        .args(["s_client", "-tls1_2", "-connect"])
        .arg(format!("127.0.0.1:{}", s.tcp))
        .args(["-servername", "a.test", "-CAfile"])
        .arg(s.tmp.path("ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"hello\n").unwrap();
    let mut seen = String::new();
    let mut line = String::new();
    while !seen.contains("hello\n") {
        line.clear();
        if std::io::BufRead::read_line(&mut out, &mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
    }
    assert!(
        seen.contains("hello\n"),
        "no echo before renegotiating: {seen}"
    );
    stdin.write_all(b"R\n").unwrap();
    // The proxy refuses: s_client sees the connection end and exits
    // although its input stays open.
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let ended = eventually(WAIT, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    let _ = child.wait();
    drop(stdin);
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(err.contains("RENEGOTIATING"), "{err}");
    // The refusal ends the connection as the client's fault.
    let path = s.n.dir.path("access.log");
    assert!(
        eventually(WAIT, || std::fs::read_to_string(&path).is_ok_and(|t| t
            .lines()
            .any(
                |l| l.contains("bytes_in=6 bytes_out=6 ") && l.contains("reason=\"client error\"")
            ))),
        "{}",
        std::fs::read_to_string(&path).unwrap_or_default()
    );
    assert!(
        ended,
        "s_client still connected after renegotiating: {rest}"
    );
    still_serves(&s);
}
