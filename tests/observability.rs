//! Metrics and admin API against the real binary on 127.0.0.1: the
//! exposition passes prometheus_client's parser and counts exactly the
//! traffic sent; drain / enable / disable / weight end to end; auth and
//! routing answers; hostile requests; scrapes under proxied traffic.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// One HTTP/1.1 request; returns (status, head, body). `Connection: close`
/// on both sides, so the body is everything up to EOF.
fn http(
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

fn get(addr: SocketAddr, path: &str, key: Option<&str>) -> (u16, String) {
    let h: Vec<(&str, &str)> = key.map(|k| ("X-API-Key", k)).into_iter().collect();
    let (st, _, body) = http(addr, "GET", path, &h);
    (st, body)
}

fn post(addr: SocketAddr, path: &str, key: &str) -> (u16, String) {
    let (st, _, body) = http(addr, "POST", path, &[("X-API-Key", key)]);
    (st, body)
}

/// The exposition through prometheus_client's parser: `Some(samples)`
/// keyed `name{labels}` (labels sorted), `None` when the parser is not
/// installed. Panics when the text does not parse.
fn parse_with_prometheus_client(text: &str) -> Option<HashMap<String, f64>> {
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
fn samples(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse::<f64>().ok()? as u64))
        })
        .collect()
}

fn metric(m: &HashMap<String, u64>, key: &str) -> u64 {
    *m.get(key).unwrap_or_else(|| panic!("no sample {key}"))
}

fn udp_echo() -> SocketAddr {
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

fn refused_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn the_exposition_parses_and_counts_exactly_the_traffic_sent() {
    let echo = Backend::start(Mode::Echo);
    let uecho = udp_echo();
    let dead = refused_port();
    let (tcp, udp, bad, mport) = (free_port(), free_port(), free_port(), free_port());
    let n = Nvelox::start(&format!(
        r#"
server: {{ workers: 2 }}
metrics: {{ enabled: true, bind: "127.0.0.1:{mport}", path: /m }}
listeners:
  - {{ name: "web \"1\"", bind: "127.0.0.1:{tcp}", backend: app }}
  - {{ name: dns, bind: "127.0.0.1:{udp}", protocol: udp, backend: uapp }}
  - {{ name: bad, bind: "127.0.0.1:{bad}", backend: gone }}
backends:
  - {{ name: app, servers: ["127.0.0.1:{}"] }}
  - {{ name: uapp, servers: ["127.0.0.1:{}"] }}
  - {{ name: gone, servers: ["127.0.0.1:{dead}"] }}
"#,
        echo.port(),
        uecho.port()
    ));
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let (conns, size, datagrams, refused) = (7u64, 3000usize, 9u64, 2u64);
    for i in 0..conns {
        let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let data = payload(size, i + 1);
        s.write_all(&data).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    for i in 0..datagrams {
        let d = payload(100 + i as usize, i);
        c.send_to(&d, ("127.0.0.1", udp)).unwrap();
        let mut buf = [0u8; 2048];
        let (got, _) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..got], &d[..]);
    }
    for _ in 0..refused {
        let mut s = TcpStream::connect(("127.0.0.1", bad)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    // Closes are counted when nvelox sees them: wait for the gauges.
    let mut text = String::new();
    assert!(eventually(WAIT, || {
        let (st, body) = get(maddr, "/m", None);
        assert_eq!(st, 200);
        text = body;
        let m = samples(&text);
        m.get("nvelox_listener_current_connections{listener=\"web \\\"1\\\"\"}") == Some(&0)
            && m.get("nvelox_listener_current_connections{listener=\"bad\"}") == Some(&0)
    }));
    let m = samples(&text);
    let web = "listener=\"web \\\"1\\\"\"";
    let b = (conns as usize * size) as u64;
    assert_eq!(
        metric(&m, &format!("nvelox_listener_connections_total{{{web}}}")),
        conns
    );
    assert_eq!(
        metric(&m, &format!("nvelox_listener_bytes_in_total{{{web}}}")),
        b
    );
    assert_eq!(
        metric(&m, &format!("nvelox_listener_bytes_out_total{{{web}}}")),
        b
    );
    let srv = format!("backend=\"app\",server=\"127.0.0.1:{}\"", echo.port());
    assert_eq!(
        metric(&m, &format!("nvelox_server_connections_total{{{srv}}}")),
        conns
    );
    assert_eq!(
        metric(&m, &format!("nvelox_server_bytes_in_total{{{srv}}}")),
        b
    );
    assert_eq!(
        metric(&m, &format!("nvelox_server_bytes_out_total{{{srv}}}")),
        b
    );
    assert_eq!(
        metric(
            &m,
            &format!("nvelox_server_connection_errors_total{{{srv}}}")
        ),
        0
    );
    let ud = "listener=\"dns\"";
    let ubytes: u64 = (0..datagrams).map(|i| 100 + i).sum();
    assert_eq!(
        metric(
            &m,
            &format!("nvelox_listener_udp_datagrams_in_total{{{ud}}}")
        ),
        datagrams
    );
    assert_eq!(
        metric(
            &m,
            &format!("nvelox_listener_udp_datagrams_out_total{{{ud}}}")
        ),
        datagrams
    );
    assert_eq!(
        metric(&m, &format!("nvelox_listener_bytes_in_total{{{ud}}}")),
        ubytes
    );
    assert_eq!(
        metric(&m, &format!("nvelox_listener_bytes_out_total{{{ud}}}")),
        ubytes
    );
    assert_eq!(
        metric(&m, &format!("nvelox_listener_udp_sessions_total{{{ud}}}")),
        1
    );
    assert_eq!(
        metric(&m, &format!("nvelox_listener_udp_sessions_current{{{ud}}}")),
        1
    );
    let us = format!("backend=\"uapp\",server=\"127.0.0.1:{}\"", uecho.port());
    assert_eq!(
        metric(&m, &format!("nvelox_server_udp_datagrams_in_total{{{us}}}")),
        datagrams
    );
    let gone = format!("backend=\"gone\",server=\"127.0.0.1:{dead}\"");
    assert_eq!(
        metric(
            &m,
            &format!("nvelox_server_connection_errors_total{{{gone}}}")
        ),
        refused
    );
    assert_eq!(
        metric(
            &m,
            "nvelox_listener_connection_errors_total{listener=\"bad\"}"
        ),
        refused
    );
    assert_eq!(
        metric(
            &m,
            "nvelox_listener_connection_errors_total{listener=\"dns\"}"
        ),
        0
    );
    assert_eq!(
        metric(
            &m,
            &format!("nvelox_listener_connection_errors_total{{{web}}}")
        ),
        0
    );
    assert_eq!(metric(&m, &format!("nvelox_server_weight{{{srv}}}")), 1);
    assert_eq!(
        metric(&m, &format!("nvelox_server_state{{{srv},state=\"up\"}}")),
        1
    );
    assert_eq!(metric(&m, "nvelox_reloads_total{result=\"ok\"}"), 0);
    assert!(metric(&m, "process_resident_memory_bytes") > 0);
    assert!(metric(&m, "process_open_fds") > 0);
    assert!(text.contains("nvelox_build_info{version=\""));

    match parse_with_prometheus_client(&text) {
        None => skip(
            "the_exposition_parses_and_counts_exactly_the_traffic_sent (parser part)",
            "python3 prometheus_client is not installed (.ci/run installs it)",
        ),
        Some(parsed) => {
            let key = "nvelox_listener_bytes_in_total{listener=\"web \"1\"\"}";
            assert_eq!(parsed.get(key), Some(&(b as f64)), "{parsed:?}");
            assert_eq!(parsed.len(), m.len(), "every sample parsed");
        }
    }

    // A reload counts; a broken file counts as failed.
    std::fs::write(n.dir.path("nvelox.yaml"), "listeners: [").unwrap();
    n.signal(libc::SIGHUP);
    n.wait_for_line("reload refused", WAIT);
    assert!(eventually(WAIT, || {
        samples(&get(maddr, "/m", None).1).get("nvelox_reloads_total{result=\"failed\"}")
            == Some(&1)
    }));
}

fn read_line(s: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    s.read_line(&mut l).unwrap();
    l.trim().to_string()
}

/// Connects through nvelox and says which server answered.
fn which(port: u16) -> String {
    first_line(format!("127.0.0.1:{port}").parse().unwrap())
}

#[test]
fn drain_enable_disable_and_weight_work_end_to_end() {
    let a = Backend::start(Mode::NamedEcho("a"));
    let b = Backend::start(Mode::NamedEcho("b"));
    let (port, aport) = (free_port(), free_port());
    let _n = Nvelox::start(&format!(
        r#"
admin: {{ enabled: true, bind: "127.0.0.1:{aport}", api_key: k }}
listeners:
  - {{ name: l, bind: "127.0.0.1:{port}", backend: pair }}
backends:
  - name: pair
    health_check: {{ active: {{ type: tcp, interval: 100ms, timeout: 1s }} }}
    servers: ["127.0.0.1:{}", "127.0.0.1:{}"]
"#,
        a.port(),
        b.port()
    ));
    let admin: SocketAddr = format!("127.0.0.1:{aport}").parse().unwrap();
    let sa = format!("127.0.0.1:{}", a.port());
    // A long connection on A.
    let long = loop {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut r = BufReader::new(s);
        if read_line(&mut r) == "a" {
            break r;
        }
    };
    let (st, body) = post(
        admin,
        &format!("/api/v1/backends/pair/drain?server={sa}"),
        "k",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"state\":\"draining\""), "{body}");
    for _ in 0..8 {
        assert_eq!(which(port), "b", "a drained server takes no new connection");
    }
    // The open connection on A goes on and finishes.
    let mut long = long;
    long.get_mut().write_all(b"still here\n").unwrap();
    assert_eq!(read_line(&mut long), "still here");
    long.get_mut().shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = String::new();
    long.read_to_string(&mut rest).unwrap();
    let (_, backends) = get(admin, "/api/v1/backends", Some("k"));
    assert!(
        backends.contains(&format!("\"address\":\"{sa}\",\"state\":\"draining\"")),
        "{backends}"
    );
    // Enable: A serves again.
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/pair/enable?server={sa}"),
            "k"
        )
        .0,
        200
    );
    assert!(eventually(WAIT, || which(port) == "a"));
    // Weight: 3 to A, 1 to B: round robin gives A three of every four.
    let (st, body) = post(
        admin,
        &format!("/api/v1/backends/pair/weight?server={sa}&value=3"),
        "k",
    );
    assert_eq!(st, 200, "{body}");
    let picks: Vec<String> = (0..40).map(|_| which(port)).collect();
    let on_a = picks.iter().filter(|p| *p == "a").count();
    assert_eq!(on_a, 30, "{picks:?}");
    // Disable stops traffic and probes.
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/pair/disable?server={sa}"),
            "k"
        )
        .0,
        200
    );
    // A probe begun before the disable may still wait in A's accept queue:
    // once A has greeted a connection of ours made after the disable, it
    // has accepted (and counted) every connection queued before.
    let counted_all = || assert_eq!(first_line(a.addr), "a");
    counted_all();
    let before = a.count();
    for _ in 0..5 {
        assert_eq!(which(port), "b");
    }
    thread::sleep(Duration::from_millis(1000)); // ten probe intervals
    counted_all();
    assert_eq!(
        a.count(),
        before + 1,
        "a disabled server is neither used nor probed"
    );
    // And the probes come back with enable.
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/pair/enable?server={sa}"),
            "k"
        )
        .0,
        200
    );
    assert!(eventually(WAIT, || a.count() > before));
}

#[test]
fn admin_answers_401_404_405_400_and_basic_auth_opens_the_page() {
    let b = Backend::start(Mode::Echo);
    let (port, aport, hport) = (free_port(), free_port(), free_port());
    let n = Nvelox::start(&format!(
        r#"
metrics: {{ enabled: true, bind: "127.0.0.1:{aport}" }}
admin: {{ enabled: true, bind: "127.0.0.1:{aport}", api_key: "s3cret" }}
listeners:
  - {{ name: l, bind: "127.0.0.1:{port}", backend: x }}
  - {{ name: web, bind: "127.0.0.1:{hport}", protocol: http, backend: x }}
backends:
  - {{ name: x, servers: ["127.0.0.1:{}"] }}
"#,
        b.port()
    ));
    let admin: SocketAddr = format!("127.0.0.1:{aport}").parse().unwrap();
    let (st, head, body) = http(admin, "GET", "/api/v1/stats", &[]);
    assert_eq!(st, 401, "{body}");
    assert!(head.contains("WWW-Authenticate: Basic"), "{head}");
    assert!(body.starts_with("{\"error\":"), "{body}");
    assert_eq!(get(admin, "/api/v1/stats", Some("wrong")).0, 401);
    assert_eq!(get(admin, "/api/v1/stats", Some("s3cre")).0, 401);
    let (st, stats) = get(admin, "/api/v1/stats", Some("s3cret"));
    assert_eq!(st, 200);
    // Each listener's own protocol (http ones were reported as "tcp").
    assert!(
        stats.contains("\"name\":\"l\",\"protocol\":\"tcp\""),
        "{stats}"
    );
    assert!(
        stats.contains("\"name\":\"web\",\"protocol\":\"http\""),
        "{stats}"
    );
    // "any:s3cret" in base64: what a browser sends after the prompt.
    let (st, _, page) = http(
        admin,
        "GET",
        "/",
        &[("Authorization", "Basic YW55OnMzY3JldA==")],
    );
    assert_eq!(st, 200);
    assert!(page.contains("<title>nvelox status</title>"));
    assert_eq!(get(admin, "/nope", Some("s3cret")).0, 404);
    assert_eq!(get(admin, "/api/v2/stats", Some("s3cret")).0, 404);
    assert_eq!(
        post(
            admin,
            "/api/v1/backends/nope/drain?server=1.2.3.4:5",
            "s3cret"
        )
        .0,
        404
    );
    assert_eq!(
        post(admin, "/api/v1/backends/x/drain?server=1.2.3.4:5", "s3cret").0,
        404
    );
    assert_eq!(
        post(
            admin,
            "/api/v1/backends/x/explode?server=1.2.3.4:5",
            "s3cret"
        )
        .0,
        404
    );
    assert_eq!(post(admin, "/api/v1/backends/x/drain", "s3cret").0, 400);
    let srv = format!("127.0.0.1:{}", b.port());
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/x/weight?server={srv}&value=0"),
            "s3cret"
        )
        .0,
        400
    );
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/x/weight?server={srv}&value=x"),
            "s3cret"
        )
        .0,
        400
    );
    let (st, head, _) = http(
        admin,
        "GET",
        &format!("/api/v1/backends/x/drain?server={srv}"),
        &[("X-API-Key", "s3cret")],
    );
    assert_eq!(st, 405);
    assert!(head.contains("Allow: POST"), "{head}");
    assert_eq!(post(admin, "/api/v1/stats", "s3cret").0, 405);
    // The metrics path on the shared socket needs no key.
    assert_eq!(get(admin, "/metrics", None).0, 200);
    assert_eq!(
        n.count_lines("admin: backend x server"),
        0,
        "refused requests change nothing"
    );
    // The key arrives percent-encoded-safe and the change is logged.
    let enc = srv.replace(':', "%3A");
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/x/drain?server={enc}"),
            "s3cret"
        )
        .0,
        200
    );
    n.wait_for_line(&format!("admin: backend x server {srv}: drain"), WAIT);
}

/// Sends `bytes`, then reads until EOF (bounded): what came back.
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn garbage_oversized_and_slow_requests_are_closed_without_harm() {
    let b = Backend::start(Mode::Echo);
    let (port, mport) = (free_port(), free_port());
    let _n = Nvelox::start(&format!(
        r#"
metrics: {{ enabled: true, bind: "127.0.0.1:{mport}" }}
listeners:
  - {{ name: l, bind: "127.0.0.1:{port}", backend: x }}
backends:
  - {{ name: x, servers: ["127.0.0.1:{}"] }}
"#,
        b.port()
    ));
    let m: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    assert!(send_raw(
        m,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"
    )
    .starts_with("HTTP/1.1 400 "));
    assert!(
        send_raw(m, b"GET /metrics HTTP/1.1\r\nHost: x\r\nHost\r\n\r\n")
            .starts_with("HTTP/1.1 400 ")
    );
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Fill: ".to_vec();
    big.extend(std::iter::repeat(b'a').take(64 * 1024));
    let answer = send_raw(m, &big);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
        "{answer:?}"
    );
    // Admin paths are not served on a metrics-only socket.
    assert_eq!(get(m, "/", None).0, 404);
    assert_eq!(get(m, "/api/v1/stats", None).0, 404);
    // A client that never finishes its request is closed after 5 s.
    let mut slow = TcpStream::connect(m).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let r = slow.read_to_end(&mut out);
    assert!(
        r.is_ok() || started.elapsed() < Duration::from_secs(14),
        "still open after 15 s"
    );
    assert!(out.is_empty());
    // Through all of it the server and the proxy work.
    assert_eq!(get(m, "/metrics", None).0, 200);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"ping").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"ping");
}

#[test]
fn a_thousand_parallel_scrapes_do_not_disturb_proxied_traffic() {
    let b = Backend::start(Mode::Echo);
    let (port, mport) = (free_port(), free_port());
    let _n = Nvelox::start(&format!(
        r#"
server: {{ workers: 2 }}
metrics: {{ enabled: true, bind: "127.0.0.1:{mport}" }}
listeners:
  - {{ name: l, bind: "127.0.0.1:{port}", backend: x }}
backends:
  - {{ name: x, servers: ["127.0.0.1:{}"] }}
"#,
        b.port()
    ));
    let m: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    // Open 1,000 scrape connections at once, then send every request.
    let mut conns: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(m).unwrap()).collect();
    let traffic = thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        for i in 0..300u64 {
            let d = payload(512, i + 1);
            s.write_all(&d).unwrap();
            let mut back = vec![0u8; d.len()];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, d, "round {i}");
        }
    });
    for c in &mut conns {
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
    }
    let mut ok = 0;
    for mut c in conns {
        c.set_read_timeout(Some(WAIT)).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        if out.starts_with(b"HTTP/1.1 200 ") && out.ends_with(b"\n") {
            ok += 1;
        }
    }
    assert_eq!(ok, 1000);
    traffic.join().unwrap();
    let text = get(m, "/metrics", None).1;
    assert_eq!(
        samples(&text).get("nvelox_listener_bytes_in_total{listener=\"l\"}"),
        Some(&(300 * 512))
    );
    let _ = b.accepted.load(Ordering::Relaxed);
}

#[test]
fn operator_changes_survive_a_reload_for_servers_that_remain() {
    let (a, b, c) = (
        Backend::start(Mode::NamedEcho("a")),
        Backend::start(Mode::NamedEcho("b")),
        Backend::start(Mode::NamedEcho("c")),
    );
    let (port, aport) = (free_port(), free_port());
    let conf = |servers: &str| {
        format!(
            r#"
admin: {{ enabled: true, bind: "127.0.0.1:{aport}" }}
listeners:
  - {{ name: l, bind: "127.0.0.1:{port}", backend: pair }}
backends:
  - name: pair
    servers: [{servers}]
"#
        )
    };
    let (sa, sb, sc) = (
        format!("127.0.0.1:{}", a.port()),
        format!("127.0.0.1:{}", b.port()),
        format!("127.0.0.1:{}", c.port()),
    );
    let n = Nvelox::start(&conf(&format!("\"{sa}\", \"{sb}\"")));
    let admin: SocketAddr = format!("127.0.0.1:{aport}").parse().unwrap();
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/pair/drain?server={sa}"),
            ""
        )
        .0,
        200
    );
    assert_eq!(
        post(
            admin,
            &format!("/api/v1/backends/pair/weight?server={sb}&value=7"),
            ""
        )
        .0,
        200
    );
    // The backend changes (a server is added): a new running backend
    // takes over the remaining servers' state.
    std::fs::write(
        n.dir.path("nvelox.yaml"),
        conf(&format!("\"{sa}\", \"{sb}\", \"{sc}\"")),
    )
    .unwrap();
    n.signal(libc::SIGHUP);
    n.wait_for_line("configuration reloaded", WAIT);
    // The loops apply the new plan after the main thread logs the reload:
    // wait (bounded) until the admin view shows the added server.
    let deadline = std::time::Instant::now() + WAIT;
    let body = loop {
        let (_, body) = get(admin, "/api/v1/backends", None);
        if body.contains(&format!("\"address\":\"{sc}\"")) || std::time::Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        body.contains(&format!("\"address\":\"{sa}\",\"state\":\"draining\"")),
        "{body}"
    );
    assert!(body.contains(&format!("\"address\":\"{sb}\",\"state\":\"up\",\"health\":\"up\",\"admin\":\"ready\",\"weight\":7")), "{body}");
    assert!(
        body.contains(&format!("\"address\":\"{sc}\",\"state\":\"up\"")),
        "{body}"
    );
    for _ in 0..10 {
        assert_ne!(which(port), "a", "still drained after the reload");
    }
}
