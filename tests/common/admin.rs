//! Admin API and metrics helpers for the observability tests: raw HTTP
//! requests, exposition parsing (ours and prometheus_client's), a UDP echo
//! and a refused port.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::thread;

use super::common::*;

/// One HTTP/1.1 request; returns (status, head, body). `Connection: close`
/// on both sides, so the body is everything up to EOF.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, head.to_string(), body.to_string())
}

pub fn get(addr: SocketAddr, path: &str, key: Option<&str>) -> (u16, String) {
    let h: Vec<(&str, &str)> = key.map(|k| ("X-API-Key", k)).into_iter().collect();
    let (st, _, body) = http(addr, "GET", path, &h);
    (st, body)
}

pub fn post(addr: SocketAddr, path: &str, key: &str) -> (u16, String) {
    let (st, _, body) = http(addr, "POST", path, &[("X-API-Key", key)]);
    (st, body)
}

/// The exposition through prometheus_client's parser: `Some(samples)`
/// keyed `name{labels}` (labels sorted), `None` when the parser is not
/// installed. Panics when the text does not parse.
pub fn parse_with_prometheus_client(text: &str) -> Option<HashMap<String, f64>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/prom_parse.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.code() {
        Some(0) => {}
        Some(3) => return None,
        _ => panic!(
            "prometheus_client refused the exposition: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    Some(
        stdout
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').unwrap();
                (k.to_string(), v.parse::<f64>().unwrap())
            })
            .collect(),
    )
}

/// Our own reading of the exposition (exact integers), `name{labels}` as
/// written (labels in our order).
pub fn samples(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse::<f64>().ok()? as u64))
        })
        .collect()
}

pub fn metric(m: &HashMap<String, u64>, key: &str) -> u64 {
    *m.get(key).unwrap_or_else(|| panic!("no sample {key}"))
}

pub fn udp_echo() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
    addr
}

pub fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
