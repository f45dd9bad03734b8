//! `protocol: http` with real peers: curl and Python's `http.client` as
//! clients, Python's `http.server` as origins (see tests/common/real.rs).
//! Each test prints SKIP and returns when curl or python3 is missing.

mod common;
#[path = "common/origin.rs"]
mod origin;
#[path = "common/real.rs"]
mod real;

use std::net::SocketAddr;

use common::*;
use origin::*;
use real::*;

const TEN_MB: usize = 10 << 20;

/// Two Python origins `a` and `b`, or None (after a SKIP line).
fn origins(test: &str) -> Option<(PyOrigin, PyOrigin)> {
    if !have("curl") {
        skip(test, "curl not installed");
        return None;
    }
    match (PyOrigin::start("a"), PyOrigin::start("b")) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            skip(test, "python3 not installed");
            None
        }
    }
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

fn text(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn curl_requests_on_one_connection_are_balanced_each_on_its_own() {
    let Some((a, b)) = origins("curl_requests_on_one_connection") else {
        return;
    };
    let (_n, port) = start_http_at(&[a.addr, b.addr], "", "");
    let u = url(port, "/x");
    // curl reuses its connection for the URLs of one command line.
    let out = text(&curl(&[
        "-w",
        "%{num_connects} %header{x-backend-server}\\n",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        &u,
        &u,
        &u,
        &u,
    ]));
    let lines: Vec<(&str, &str)> = out.lines().map(|l| l.split_once(' ').unwrap()).collect();
    let connects: Vec<&str> = lines.iter().map(|l| l.0).collect();
    assert_eq!(connects, ["1", "0", "0", "0"], "one connection: {out}");
    let servers: Vec<&str> = lines.iter().map(|l| l.1).collect();
    let (sa, sb) = (a.addr.to_string(), b.addr.to_string());
    assert!(
        servers == [&sa, &sb, &sa, &sb] || servers == [&sb, &sa, &sb, &sa],
        "{servers:?}"
    );
    assert_eq!(a.requests().len(), 2);
    assert_eq!(b.requests().len(), 2);
}

#[test]
fn curl_and_http_client_see_the_forwarding_and_server_headers() {
    let Some((a, _b)) = origins("curl_and_http_client_see_the_headers") else {
        return;
    };
    let (_n, port) = start_http_at(
        &[a.addr],
        "    headers:\n      response_add: { X-Forwarded-By: nvelox }\n",
        "",
    );
    let out = text(&curl(&["-i", &url(port, "/headers")]));
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("x-forwarded-by: nvelox\r\n"), "{out}");
    assert!(
        lower.contains(&format!("x-backend-server: {}\r\n", a.addr)),
        "{out}"
    );
    // The body is the request head the origin received.
    assert!(lower.contains("x-forwarded-for: 127.0.0.1\n"), "{out}");
    assert!(lower.contains("x-forwarded-proto: http\n"), "{out}");
    assert!(
        lower.contains(&format!("x-forwarded-port: {port}\n")),
        "{out}"
    );
    // http.client on a keep-alive connection: the same, twice.
    let mut c = PyClient::connect(port);
    for _ in 0..2 {
        let r = c.ask("get /headers");
        assert_eq!(r[0], "200");
        assert_eq!(r[1], a.addr.to_string());
        assert!(r[4].contains("X-Forwarded-For:|127.0.0.1|"), "{r:?}");
    }
}

#[test]
fn ten_megabyte_chunked_bodies_are_byte_exact_both_ways() {
    let Some((a, _b)) = origins("ten_megabyte_chunked_bodies") else {
        return;
    };
    let (_n, port) = start_http_at(&[a.addr], "", "");
    let dir = TempDir::new("http-real-body");
    let (sent, got) = (dir.path("sent"), dir.path("got"));
    let body = payload(TEN_MB, 11);
    std::fs::write(&sent, &body).unwrap();
    // curl streams the file chunked; the origin echoes it back chunked.
    let out = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", sent.display()),
        "-D",
        &dir.path("head").display().to_string(),
        "-o",
        &got.display().to_string(),
        &url(port, "/echo"),
    ]);
    text(&out);
    let head = std::fs::read_to_string(dir.path("head")).unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(std::fs::read(&got).unwrap() == body, "echoed body differs");
    // http.client: a generator body sent chunked, read back whole.
    let script = r#"
import http.client, random, sys
data = random.Random(7).randbytes(10 << 20)
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
pieces = (data[i:i + 100003] for i in range(0, len(data), 100003))
conn.request("POST", "/echo", body=pieces, encode_chunked=True)
r = conn.getresponse()
print(r.status, r.read() == data)
"#;
    let out = python(script, &[&port.to_string()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200 True");
}

#[test]
fn a_server_killed_mid_pool_is_retried_for_get_and_a_sent_post_is_502() {
    if !have("python3") {
        return skip("a_server_killed_mid_pool", "python3 not installed");
    }
    let (Some(mut mortal), Some(b)) = (PyOrigin::mortal("m"), PyOrigin::start("b")) else {
        return skip("a_server_killed_mid_pool", "python3 not installed");
    };
    let (_n, port) = start_http_at(
        &[mortal.addr, b.addr],
        "",
        "    keepalive: 8\n    retry: { attempts: 3, on: \"connect_failure,reset,502\" }\n",
    );
    let mut c = PyClient::connect(port);
    // Both servers get pooled connections first.
    let warm: Vec<String> = (0..2).map(|_| c.ask("get /warm")[1].clone()).collect();
    assert!(warm.contains(&mortal.addr.to_string()) && warm.contains(&b.addr.to_string()));
    // The next request goes to the mortal one (round robin), which dies
    // with it: the GET is made again on b.
    let r = c.ask("get /die");
    assert_eq!(
        (r[0].as_str(), r[1].as_str()),
        ("200", b.addr.to_string().as_str())
    );
    assert!(mortal.exited());
    assert!(mortal.requests().contains(&"GET /die".to_string()));
    // Its pooled connections are gone; connects are refused: b answers.
    for _ in 0..3 {
        assert_eq!(c.ask("get /after")[0], "200");
    }

    // A POST sent to a server that dies is not sent again: 502.
    let (Some(mortal), Some(b)) = (PyOrigin::mortal("m"), PyOrigin::start("b")) else {
        return;
    };
    let (_n2, port) = start_http_at(
        &[mortal.addr, b.addr],
        "",
        "    retry: { attempts: 3, on: \"connect_failure,reset,502\" }\n",
    );
    let statuses: Vec<String> = (0..2)
        .map(|_| {
            text(&curl(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--data",
                "x=1",
                &url(port, "/die"),
            ]))
        })
        .collect();
    assert!(statuses.contains(&"502".to_string()), "{statuses:?}");
    let oks = statuses.iter().filter(|s| *s == "200").count();
    let at_b = b.requests().iter().filter(|r| *r == "POST /die").count();
    assert_eq!(
        at_b, oks,
        "the POST that reached the dead server went on to b"
    );
}

#[test]
fn slow_server_504_slow_head_408_and_oversize_413_431() {
    let Some((a, _b)) = origins("slow_server_504_slow_head_408") else {
        return;
    };
    let (_n, port) = start_http_at(
        &[a.addr],
        "    timeouts: { read: 1s }\n    max_header_size: 2048\n    max_body_size: 1K\n",
        "    timeouts: { read: 1s }\n",
    );
    let code = |args: &[&str]| {
        let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        text(&curl(&all))
    };
    assert_eq!(code(&[&url(port, "/slow")]), "504");
    let big = format!("X-Big: {}", "a".repeat(4000));
    assert_eq!(code(&["-H", &big, &url(port, "/")]), "431");
    let dir = TempDir::new("http-real-413");
    std::fs::write(dir.path("2k"), payload(2048, 3)).unwrap();
    let file = format!("@{}", dir.path("2k").display());
    assert_eq!(code(&["--data-binary", &file, &url(port, "/")]), "413");
    // http.client reads the 408 for a head that never ends.
    let script = r#"
import http.client, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
r = http.client.HTTPResponse(s)
r.begin()
print(r.status, r.getheader("Connection"))
"#;
    let out = python(script, &[&port.to_string()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "408 close");
    assert!(a.requests().iter().all(|r| r == "GET /slow"));
}

#[test]
fn websocket_echo_through_the_tunnel() {
    let Some((a, _b)) = origins("websocket_echo_through_the_tunnel") else {
        return;
    };
    let (_n, port) = start_http_at(&[a.addr], "", "");
    // A WebSocket client: the handshake (accept key checked), then masked
    // text frames, each echoed back, then a close frame.
    let script = r#"
import base64, hashlib, os, socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
key = base64.b64encode(os.urandom(16))
s.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
f = s.makefile("rb")
status = f.readline()
headers = {}
while True:
    line = f.readline()
    if line in (b"\r\n", b""):
        break
    k, v = line.decode().split(":", 1)
    headers[k.strip().lower()] = v.strip()
want = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
assert status.startswith(b"HTTP/1.1 101"), status
assert headers["sec-websocket-accept"] == want
def frame(op, data):
    mask = os.urandom(4)
    n = len(data)
    head = bytes([0x80 | op]) + (bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + struct.pack(">H", n))
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(data))
def read_frame():
    b1, b2 = f.read(2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack(">H", f.read(2))[0]
    return b1 & 0x0F, f.read(n)
for msg in [b"hello", b"x" * 40000, b"through the tunnel"]:
    s.sendall(frame(1, msg))
    assert read_frame() == (1, msg)
s.sendall(frame(8, b""))
assert read_frame()[0] == 8
print("echoed")
"#;
    let out = python(script, &[&port.to_string()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "echoed",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sighup_and_sigterm_with_keep_alive_http_client_connections() {
    let Some((a, b)) = origins("sighup_and_sigterm_with_keep_alive") else {
        return;
    };
    let port = free_port();
    let yaml = |o: SocketAddr| {
        format!(
            "server:\n  shutdown_timeout: 20s\n{}",
            http_config_at(port, &[o], "", "")
        )
    };
    let mut n = Nvelox::start(&yaml(a.addr));
    let mut old = PyClient::connect(port);
    let first = old.ask("get /");
    assert_eq!(first[4], "a");
    std::fs::write(n.dir.path("nvelox.yaml"), yaml(b.addr)).unwrap();
    n.signal(libc::SIGHUP);
    n.wait_for_line("configuration reloaded", WAIT);
    // The open connection goes on under its configuration (same socket),
    // a new one gets the new backend.
    let again = old.ask("get /");
    assert_eq!((again[4].as_str(), &again[3]), ("a", &first[3]));
    assert!(eventually(WAIT, || text(&curl(&[&url(port, "/")])) == "b"));

    // SIGTERM: an idle keep-alive client is closed at once; a request in
    // flight finishes, answered with `Connection: close`.
    let mut idle = PyClient::connect(port);
    assert_eq!(idle.ask("get /")[0], "200");
    let mut busy = PyClient::connect(port);
    let slow = std::thread::spawn(move || busy.ask("get /slow"));
    assert!(eventually(WAIT, || b
        .requests()
        .iter()
        .any(|r| r == "GET /slow")));
    n.signal(libc::SIGTERM);
    assert_eq!(idle.ask("closed?"), ["closed"]);
    let r = slow.join().unwrap();
    assert_eq!(
        (r[0].as_str(), r[2].as_str(), r[4].as_str()),
        ("200", "close", "b")
    );
    assert_eq!(n.wait_exit(WAIT), Some(0));
}

#[test]
fn curl_requests_are_routed_by_host_and_path_prefix() {
    let Some((a, b)) = origins("curl_requests_are_routed") else {
        return;
    };
    let port = free_port();
    let _n = Nvelox::start(&format!(
        "listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    backend: app\n    routes:\n      - match: {{ host: api.example.com, path_prefix: /v1/ }}\n        backend: api\nbackends:\n  - name: app\n    servers: [\"{}\"]\n  - name: api\n    servers: [\"{}\"]\n",
        a.addr, b.addr
    ));
    let get =
        |host: &str, path: &str| text(&curl(&["-H", &format!("Host: {host}"), &url(port, path)]));
    assert_eq!(get("API.example.com:8000", "/v1/x"), "b");
    assert_eq!(get("api.example.com", "/v2/x"), "a");
    assert_eq!(get("www.example.com", "/v1/x"), "a");
    assert_eq!(b.requests(), ["GET /v1/x"]);
}
