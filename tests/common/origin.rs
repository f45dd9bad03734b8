//! A tiny HTTP/1.1 origin server and client helpers for the HTTP tests:
//! keep-alive, Content-Length and chunked request bodies, every request
//! recorded, the answer chosen by a closure.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One request as the origin received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the origin does with a request.
pub enum Answer {
    /// Write these bytes, keep the connection.
    Raw(Vec<u8>),
    /// Write these bytes, then close.
    RawClose(Vec<u8>),
    /// Close at once without answering (a reset).
    Reset,
    /// Wait, then answer with these bytes.
    Slow(Duration, Vec<u8>),
}

pub type Handler = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// A 200 with `body` and Content-Length.
pub fn ok(body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

impl Origin {
    /// An origin answering every request with 200 and the body `name`.
    pub fn named(name: &str) -> Origin {
        let body = name.as_bytes().to_vec();
        Origin::start(Arc::new(move |_| Answer::Raw(ok(&body))))
    }

    pub fn start(handler: Handler) -> Origin {
        Origin::start_idle(handler, Duration::from_secs(20))
    }

    /// Like [`start`](Self::start); a connection idle for `idle` is closed.
    pub fn start_idle(handler: Handler, idle: Duration) -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        let conns = Arc::new(AtomicUsize::new(0));
        let conns2 = Arc::clone(&conns);
        thread::spawn(move || {
            for s in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = s else { continue };
                conns2.fetch_add(1, Ordering::SeqCst);
                let (h, seen) = (Arc::clone(&handler), Arc::clone(&seen2));
                thread::spawn(move || serve(s, h, seen, idle));
            }
        });
        Origin {
            addr,
            seen,
            conns,
            stop,
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(s: TcpStream, h: Handler, seen: Arc<Mutex<Vec<Seen>>>, idle: Duration) {
    let _ = s.set_read_timeout(Some(idle));
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    while let Some(req) = read_request(&mut r) {
        seen.lock().unwrap().push(req.clone());
        match h(&req) {
            Answer::Raw(b) => {
                if w.write_all(&b).is_err() {
                    return;
                }
            }
            Answer::RawClose(b) => {
                let _ = w.write_all(&b);
                return;
            }
            Answer::Reset => {
                let _ = socket2::SockRef::from(&w).set_linger(Some(Duration::ZERO));
                return;
            }
            Answer::Slow(d, b) => {
                thread::sleep(d);
                if w.write_all(&b).is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads a request head and body (Content-Length or chunked) from `r`.
pub fn read_request(r: &mut impl BufRead) -> Option<Seen> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let headers = read_headers(r)?;
    let body = read_body(r, &headers, false)?;
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

fn read_headers(r: &mut impl BufRead) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some(headers);
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
}

fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A body framed by `headers`; `to_eof`: read until EOF without framing.
fn read_body(r: &mut impl BufRead, headers: &[(String, String)], to_eof: bool) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    if get(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut l = String::new();
            r.read_line(&mut l).ok()?;
            let size = usize::from_str_radix(l.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers, then the empty line.
                read_headers(r)?;
                return Some(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).ok()?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).ok()?;
        }
    } else if let Some(n) = get(headers, "content-length") {
        body.resize(n.parse().ok()?, 0);
        r.read_exact(&mut body).ok()?;
    } else if to_eof {
        r.read_to_end(&mut body).ok()?;
    }
    Some(body)
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        get(&self.headers, name)
    }
}

/// Reads one response from `r` (`head`: the request was HEAD, no body).
/// A server that answers one `Upgrade: websocket` request with 101 and
/// then echoes lines until EOF; returns its address.
pub fn websocket_echo_origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let req = read_request(&mut r).unwrap();
        assert_eq!(req.header("Upgrade"), Some("websocket"));
        w.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .unwrap();
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            w.write_all(line.as_bytes()).unwrap();
            line.clear();
        }
    });
    addr
}

pub fn read_response(r: &mut impl BufRead, head: bool) -> Option<Got> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let headers = read_headers(r)?;
    let body = if head || status < 200 || status == 204 || status == 304 {
        Vec::new()
    } else {
        let close_delimited = get(&headers, "content-length").is_none()
            && get(&headers, "transfer-encoding").is_none();
        read_body(r, &headers, close_delimited)?
    };
    Some(Got {
        status,
        headers,
        body,
    })
}

/// A keep-alive client connection.
pub struct Client {
    pub w: TcpStream,
    pub r: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    pub fn get(&mut self, path: &str) -> Got {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.response()
    }

    pub fn response(&mut self) -> Got {
        read_response(&mut self.r, false).expect("a response")
    }
}

/// Sends `raw` on a fresh connection and reads one response.
pub fn exchange(port: u16, raw: &[u8]) -> Got {
    let mut c = Client::connect(port);
    c.send(raw);
    c.response()
}

/// A config with one HTTP listener on `port` in front of `servers`
/// (round robin, `X-Backend-Server`); `listener` and `backend` are extra
/// indented YAML lines.
pub fn http_config(port: u16, servers: &[&Origin], listener: &str, backend: &str) -> String {
    let addrs: Vec<SocketAddr> = servers.iter().map(|o| o.addr).collect();
    http_config_at(port, &addrs, listener, backend)
}

/// [`http_config`] for servers given by address.
pub fn http_config_at(port: u16, servers: &[SocketAddr], listener: &str, backend: &str) -> String {
    let list: Vec<String> = servers.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\n    backend_server_header: X-Backend-Server\n{listener}backends:\n  - name: app\n    balance: roundrobin\n{backend}    servers: [{}]\n",
        list.join(", ")
    )
}

/// nvelox started with [`http_config`] on a free port.
pub fn start_http(
    servers: &[&Origin],
    listener: &str,
    backend: &str,
) -> (crate::common::Nvelox, u16) {
    let addrs: Vec<SocketAddr> = servers.iter().map(|o| o.addr).collect();
    start_http_at(&addrs, listener, backend)
}

/// nvelox started with [`http_config_at`] on a free port.
pub fn start_http_at(
    servers: &[SocketAddr],
    listener: &str,
    backend: &str,
) -> (crate::common::Nvelox, u16) {
    let port = crate::common::free_port();
    let n = crate::common::Nvelox::start(&http_config_at(port, servers, listener, backend));
    (n, port)
}

impl Client {
    /// The server closed the connection (within the read timeout) and
    /// nothing more arrived.
    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match std::io::Read::read_to_end(&mut self.r, &mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the connection is still open: {e}"),
        }
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
}
