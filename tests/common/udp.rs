//! UDP test support shared by `tests/udp.rs` and `tests/udp_sessions.rs`:
//! backends on their own threads, clients with bounded waits, access-log
//! and /proc helpers. Included with `#[path]` next to `mod common`.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::common::{eventually, Nvelox, WAIT};
use nvelox::proxy_protocol::{Accept, Header, Parsed, Transport};

/// How long a client waits for an answer that should come.
pub const ANSWER: Duration = Duration::from_secs(5);
/// How long a client waits to be sure an answer does NOT come.
pub const SILENCE: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------- backends

#[derive(Clone, Copy)]
pub enum Reply {
    /// The payload back, byte-exact.
    Echo,
    /// `name:` + payload.
    Named(&'static str),
    /// Three datagrams `name:1`, `name:2`, `name:3` per request.
    Three(&'static str),
    /// Parses a PROXY v2 header in front of the datagram and answers
    /// `src dst payload`, or `bad` when there is no valid header.
    ProxySource,
}

/// A UDP backend on its own thread; remembers every source address and
/// every datagram length it saw.
pub struct UdpBackend {
    pub addr: SocketAddr,
    pub peers: Arc<Mutex<Vec<SocketAddr>>>,
    pub lens: Arc<Mutex<Vec<usize>>>,
    pub stop: Arc<AtomicBool>,
    pub handle: Option<thread::JoinHandle<()>>,
}

impl UdpBackend {
    pub fn start(reply: Reply) -> UdpBackend {
        UdpBackend::on(UdpSocket::bind("127.0.0.1:0").unwrap(), reply)
    }

    pub fn on(sock: UdpSocket, reply: Reply) -> UdpBackend {
        let addr = sock.local_addr().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let lens = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p2, l2, s2) = (Arc::clone(&peers), Arc::clone(&lens), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            while !s2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                p2.lock().unwrap().push(from);
                l2.lock().unwrap().push(n);
                match reply {
                    Reply::Echo => {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                    Reply::Named(name) => {
                        let mut out = format!("{name}:").into_bytes();
                        out.extend_from_slice(&buf[..n]);
                        let _ = sock.send_to(&out, from);
                    }
                    Reply::Three(name) => {
                        for i in 1..=3 {
                            let _ = sock.send_to(format!("{name}:{i}").as_bytes(), from);
                        }
                    }
                    Reply::ProxySource => {
                        let out = match Header::parse(&buf[..n], Accept::V2) {
                            Ok(Parsed::Complete { header, consumed }) => match header.addresses {
                                Some((src, dst)) if header.transport == Transport::Dgram => {
                                    format!(
                                        "{src} {dst} {}",
                                        String::from_utf8_lossy(&buf[consumed..n])
                                    )
                                }
                                _ => "bad".into(),
                            },
                            _ => "bad".into(),
                        };
                        let _ = sock.send_to(out.as_bytes(), from);
                    }
                }
            }
        });
        UdpBackend {
            addr,
            peers,
            lens,
            stop,
            handle: Some(handle),
        }
    }

    pub fn distinct_peers(&self) -> usize {
        self.peers
            .lock()
            .unwrap()
            .iter()
            .collect::<HashSet<_>>()
            .len()
    }

    pub fn received(&self) -> usize {
        self.lens.lock().unwrap().len()
    }
}

impl Drop for UdpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------- helpers

pub fn config(bind: &str, servers: &[String], extra_listener: &str, workers: usize) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("      - {s}")).collect();
    format!(
        "server:\n  workers: {workers}\n  shutdown_timeout: 30s\nlogging:\n  level: debug\n  access_log: {{dir}}/access.log\n\
listeners:\n  - name: game\n    bind: \"{bind}\"\n    protocol: udp\n    default_backend: pool\n{extra_listener}\
backends:\n  - name: pool\n    balance: roundrobin\n    servers:\n{}\n",
        list.join("\n")
    )
}

pub fn quoted(addr: SocketAddr) -> String {
    format!("\"{addr}\"")
}

pub fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn client() -> UdpSocket {
    client_on("127.0.0.1:0")
}

pub fn client_on(local: &str) -> UdpSocket {
    let s = UdpSocket::bind(local).unwrap();
    s.set_read_timeout(Some(ANSWER)).unwrap();
    s
}

/// Sends `msg` to `to` and returns the answer and who it came from.
pub fn ask_from(c: &UdpSocket, to: SocketAddr, msg: &[u8]) -> (Vec<u8>, SocketAddr) {
    c.send_to(msg, to).unwrap();
    recv(c).unwrap_or_else(|| panic!("no answer from {to} within {ANSWER:?}"))
}

/// Sends `msg` to `to` and returns the answer as text; it must come from `to`.
pub fn ask(c: &UdpSocket, to: SocketAddr, msg: &[u8]) -> String {
    let (data, from) = ask_from(c, to, msg);
    assert_eq!(from, to, "reply came from the wrong address");
    String::from_utf8(data).unwrap()
}

/// Like [`ask`], for sessions with a short idle timeout: `None` when no
/// answer came because the client's session ended by idle timeout before
/// its server's answer got back to nvelox. Under load (test processes run
/// at nice 10 beside benchmarks at nice -10) nvelox or the backend thread
/// can go unscheduled for longer than a 1 s idle time; the answer then
/// reaches a closed upstream socket, as it should. Any other missing answer
/// still fails: the session must have ended by idle timeout with fewer
/// datagrams out than in.
pub fn ask_unless_expired(n: &Nvelox, c: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Option<String> {
    let needle = format!("client={} ", c.local_addr().unwrap());
    let ended_before = access_log(n)
        .lines()
        .filter(|l| l.contains(&needle))
        .count();
    c.send_to(msg, to).unwrap();
    if let Some((data, from)) = recv(c) {
        assert_eq!(from, to, "reply came from the wrong address");
        return Some(String::from_utf8(data).unwrap());
    }
    let lines = wait_access_lines(n, &needle, ended_before + 1);
    let line = &lines[ended_before];
    let count = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    assert!(
        line.contains("reason=\"idle timeout\"") && count("datagrams_out") < count("datagrams_in"),
        "no answer from {to} within {ANSWER:?}, and the session did not expire before answering: {line}"
    );
    None
}

pub fn recv(c: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 70_000];
    match c.recv_from(&mut buf) {
        Ok((n, from)) => {
            buf.truncate(n);
            Some((buf, from))
        }
        Err(_) => None,
    }
}

/// True when nothing arrives within `SILENCE`.
pub fn silent(c: &UdpSocket) -> bool {
    c.set_read_timeout(Some(SILENCE)).unwrap();
    let quiet = recv(c).is_none();
    c.set_read_timeout(Some(ANSWER)).unwrap();
    quiet
}

pub fn access_log(n: &Nvelox) -> String {
    std::fs::read_to_string(n.dir.path("access.log")).unwrap_or_default()
}

/// Lines of the access log containing `needle`, waiting until there are `count`.
pub fn wait_access_lines(n: &Nvelox, needle: &str, count: usize) -> Vec<String> {
    let ok = eventually(WAIT, || {
        access_log(n).lines().filter(|l| l.contains(needle)).count() >= count
    });
    let log = access_log(n);
    assert!(
        ok,
        "fewer than {count} access lines with {needle:?}:\n{log}"
    );
    log.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" that closes the command name: state is field 3,
    // utime field 14, stime field 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}
