//! `backend_tls` behind `protocol: http` listeners, through the real
//! binary: nvelox as a TLS client to HTTP servers (verification against
//! `ca_cert`, `server_name` for SNI, ALPN http/1.1, client certificates,
//! `insecure`), per-request balancing and keep-alive reuse of the TLS
//! connections, failures as 502 with the server never seeing the request,
//! and the active probes of such backends (over TLS too).
//! Certificates are made per test with `openssl`; the servers are rustls
//! in this process, speaking HTTP/1.1 with keep-alive.
#![cfg(feature = "tls")]

#[path = "common/certs.rs"]
mod certs;
mod common;
#[path = "common/https_client.rs"]
mod https_client;
#[path = "common/origin.rs"]
mod origin;
#[path = "common/tls_origin.rs"]
mod tls_origin;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use certs::*;
use common::*;
use https_client::*;
use origin::*;
use tls_origin::*;

/// One http listener on `port` in front of `servers` with `backend_tls: TLS`.
fn yaml(port: u16, servers: &[SocketAddr], tls: &str, backend_extra: &str) -> String {
    let list: Vec<String> = servers.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"server: {{ workers: 1, shutdown_timeout: 1s }}
logging: {{ level: info, error_log: stderr }}
listeners:
  - name: web
    bind: "127.0.0.1:{port}"
    protocol: http
    backend: app
    backend_server_header: X-Backend-Server
backends:
  - name: app
    balance: roundrobin
{backend_extra}    backend_tls: {tls}
    servers: [{}]
"#,
        list.join(", ")
    )
}

fn start(servers: &[SocketAddr], tls: &str, extra: &str) -> (Nvelox, u16) {
    let port = free_port();
    (Nvelox::start(&yaml(port, servers, tls, extra)), port)
}

fn body(g: &Got) -> String {
    String::from_utf8_lossy(&g.body).to_string()
}

#[test]
fn http_requests_reach_tls_servers_balanced_over_kept_alive_connections() {
    let tmp = TempDir::new("btls-http");
    make_certs(&tmp.0);
    let a = TlsOrigin::start(&tmp.0, "a", "a", false);
    let b = TlsOrigin::start(&tmp.0, "a", "b", false);
    let ca = tmp.path("ca.pem");
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: a.test }}",
        ca.display()
    );
    let (n, port) = start(&[a.addr, b.addr], &tls, "");

    let mut c = Client::connect(port);
    let mut names = Vec::new();
    for i in 0..6 {
        let g = c.get(&format!("/get/{i}"));
        assert_eq!(g.status, 200, "{g:?}");
        let got = body(&g);
        assert!(got.ends_with(&format!(":/get/{i}")), "{got}");
        names.push(got[..1].to_string());
    }
    // Each request is balanced on its own.
    assert_eq!(names, ["a", "b", "a", "b", "a", "b"]);
    let post = b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world";
    c.send(post);
    let g = c.response();
    assert_eq!(g.status, 200, "{g:?}");
    let all: Vec<Seen> = a.requests().into_iter().chain(b.requests()).collect();
    let p = all.iter().find(|s| s.method == "POST").expect("the POST");
    assert_eq!(p.body, b"hello world");
    // The Host header is the client's; SNI is server_name; ALPN http/1.1.
    assert!(all.iter().all(|s| s.header("host") == Some("t")), "{all:?}");
    for o in [&a, &b] {
        let conns = o.conns();
        // One TLS connection per server carried all its requests.
        assert_eq!(conns.len(), 1, "{conns:?}");
        assert_eq!(conns[0].sni.as_deref(), Some("a.test"));
        assert_eq!(conns[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert!(!conns[0].client_cert);
        assert!(o.requests().len() >= 3);
    }
    drop(n);
}

#[test]
fn a_server_failing_verification_gets_no_request_and_the_client_a_502() {
    let tmp = TempDir::new("btls-verify");
    make_certs(&tmp.0);
    let other = TempDir::new("btls-other-ca");
    make_certs(&other.0);
    let a = TlsOrigin::start(&tmp.0, "a", "a", false);

    // Another CA: the certificate is not trusted.
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: a.test }}",
        other.path("ca.pem").display()
    );
    let (n, port) = start(&[a.addr], &tls, "");
    let g = Client::connect(port).get("/x");
    assert_eq!(g.status, 502, "{g:?}");
    n.wait_for_line("tls verify failed", WAIT);
    drop(n);

    // The right CA, the wrong name.
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: other.test }}",
        tmp.path("ca.pem").display()
    );
    let (n, port) = start(&[a.addr], &tls, "");
    let g = Client::connect(port).get("/y");
    assert_eq!(g.status, 502, "{g:?}");
    n.wait_for_line("tls verify failed", WAIT);
    drop(n);
    assert!(a.requests().is_empty(), "{:?}", a.requests());
    assert!(a.conns().iter().all(|c| !c.ok), "{:?}", a.conns());

    // A server whose certificate fails is a failed connect: the request
    // goes to the next server, and passive health counts it.
    let bad = TlsOrigin::start(&tmp.0, "b", "bad", false);
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: a.test }}",
        tmp.path("ca.pem").display()
    );
    let extra = "    health_check: { passive: { max_fails: 1, fail_timeout: 30s } }\n";
    let (_n, port) = start(&[bad.addr, a.addr], &tls, extra);
    let mut c = Client::connect(port);
    for i in 0..4 {
        let g = c.get(&format!("/r{i}"));
        assert_eq!(g.status, 200, "{g:?}");
        assert!(body(&g).starts_with("a:"), "{g:?}");
    }
    assert!(bad.requests().is_empty());
    // Taken out after its first failure: one handshake, not one per request.
    assert_eq!(bad.conns().len(), 1, "{:?}", bad.conns());
}

#[test]
fn insecure_takes_a_self_signed_server_and_an_ip_sends_no_sni() {
    let tmp = TempDir::new("btls-insecure");
    make_certs(&tmp.0);
    openssl(
        &tmp.0,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
            "-subj",
            "/CN=self",
            "-days",
            "2",
        ],
    );
    let s = TlsOrigin::start(&tmp.0, "self", "s", false);
    let ca = tmp.path("ca.pem");
    // Verified: refused.
    let tls = format!("{{ enabled: true, ca_cert: {} }}", ca.display());
    let (n, port) = start(&[s.addr], &tls, "");
    assert_eq!(Client::connect(port).get("/v").status, 502);
    drop(n);
    assert!(s.requests().is_empty());
    // insecure: true takes it.
    let (n, port) = start(&[s.addr], "{ enabled: true, insecure: true }", "");
    let g = Client::connect(port).get("/i");
    assert_eq!((g.status, body(&g).as_str()), (200, "s:/i"), "{g:?}");
    assert!(
        n.stderr_text().contains("not verified"),
        "{}",
        n.stderr_text()
    );
    // No server_name: the server's IP is verified (IP SAN), no SNI sent.
    leaf(&tmp.0, "ip", "IP:127.0.0.1", false);
    let ip = TlsOrigin::start(&tmp.0, "ip", "ip", false);
    let (_n, port) = start(&[ip.addr], &tls, "");
    let g = Client::connect(port).get("/ip");
    assert_eq!((g.status, body(&g).as_str()), (200, "ip:/ip"), "{g:?}");
    assert_eq!(ip.conns()[0].sni, None);
}

#[test]
fn a_client_certificate_is_presented_when_configured() {
    let tmp = TempDir::new("btls-client-cert");
    make_certs(&tmp.0);
    let a = TlsOrigin::start(&tmp.0, "a", "a", true);
    let d = tmp.0.display();
    let without = format!("{{ enabled: true, ca_cert: {d}/ca.pem, server_name: a.test }}");
    let (n, port) = start(&[a.addr], &without, "");
    assert_eq!(Client::connect(port).get("/no").status, 502);
    drop(n);
    assert!(a.requests().is_empty());
    let with = format!(
        "{{ enabled: true, ca_cert: {d}/ca.pem, server_name: a.test, client_cert: {d}/client.pem, client_key: {d}/client.key }}"
    );
    let (_n, port) = start(&[a.addr], &with, "");
    let g = Client::connect(port).get("/yes");
    assert_eq!((g.status, body(&g).as_str()), (200, "a:/yes"), "{g:?}");
    assert!(
        a.conns().iter().any(|c| c.ok && c.client_cert),
        "{:?}",
        a.conns()
    );
}

#[test]
fn a_pooled_connection_the_server_closed_with_close_notify_is_not_reused() {
    let tmp = TempDir::new("btls-pool-close");
    make_certs(&tmp.0);
    let a = TlsOrigin::start_idle(&tmp.0, "a", "a", false, Duration::from_millis(200));
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: a.test }}",
        tmp.path("ca.pem").display()
    );
    let (_n, port) = start(&[a.addr], &tls, "");
    let mut c = Client::connect(port);
    assert_eq!(c.get("/1").status, 200);
    // The server ends the idle pooled connection (close_notify, FIN): wait
    // until it did (a fixed 600 ms is not enough when the origin's thread
    // was not scheduled under load), then give nvelox a moment to read it.
    assert!(eventually(WAIT, || a.conns().len() == 1 && a.conns()[0].closed));
    thread::sleep(Duration::from_millis(500));
    let g = c.get("/2");
    assert_eq!((g.status, body(&g).as_str()), (200, "a:/2"), "{g:?}");
    assert_eq!(
        a.conns().len(),
        2,
        "a new connection for the second request"
    );
}

#[test]
fn http_probes_of_a_tls_backend_go_over_tls_and_verify_the_server() {
    let tmp = TempDir::new("btls-probe");
    make_certs(&tmp.0);
    let good = TlsOrigin::start(&tmp.0, "a", "good", false);
    // Certificate for b.test: not the server_name, refused.
    let bad = TlsOrigin::start(&tmp.0, "b", "bad", false);
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: a.test }}",
        tmp.path("ca.pem").display()
    );
    let extra = "    health_check: { active: { type: http, path: /health, interval: 100ms, timeout: 5s, fall: 2 } }\n";
    let (n, port) = start(&[good.addr, bad.addr], &tls, extra);
    n.wait_for_line("tls verify failed", WAIT);
    // The probe reached the good server through TLS (a plaintext probe
    // would have failed its handshake and taken it down).
    let probed =
        |r: &Seen| r.target == "/health" && r.header("user-agent") == Some("nvelox-health");
    assert!(eventually(WAIT, || good.requests().iter().any(probed)));
    assert!(bad.requests().is_empty());
    // Until the bad server is down (a fixed 500 ms wait was not always
    // enough under load); then every request goes to the good one.
    n.wait_for_line(&format!("server {}: up -> down", bad.addr), WAIT);
    let mut c = Client::connect(port);
    for i in 0..4 {
        let g = c.get(&format!("/p{i}"));
        assert_eq!(g.status, 200, "{g:?}");
        assert!(body(&g).starts_with("good:"), "{g:?}");
    }
}

#[test]
fn tls_on_both_sides_streams_big_bodies_and_the_admin_api_says_https() {
    let tmp = TempDir::new("btls-https");
    make_certs(&tmp.0);
    let a = TlsOrigin::start(&tmp.0, "a", "a", false);
    let (port, aport) = (free_port(), free_port());
    let d = tmp.0.display();
    let n = Nvelox::start(&format!(
        r#"server: {{ workers: 1, shutdown_timeout: 1s }}
admin: {{ enabled: true, bind: "127.0.0.1:{aport}" }}
listeners:
  - name: site
    bind: "127.0.0.1:{port}"
    protocol: https
    backend: app
    tls: {{ cert: {d}/a.pem, key: {d}/a.key }}
backends:
  - name: app
    backend_tls: {{ enabled: true, ca_cert: {d}/ca.pem, server_name: a.test }}
    servers: ["{}"]
"#,
        a.addr
    ));
    let mut c = Tls::connect(port, client_config(&tmp.0, false, &["http/1.1"]), "a.test").unwrap();
    // 3 MB each way: more than a socket buffer, so records wait in rustls.
    let up = payload(3 << 20, 9);
    c.send(
        format!(
            "POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n",
            up.len()
        )
        .as_bytes(),
    );
    c.send(&up);
    let g = c.response();
    assert_eq!((g.status, g.body.as_slice()), (200, &b"a:/up"[..]));
    assert!(a.requests()[0].body == up, "the request body arrived whole");
    let g = c.get(&format!("/big/{}", 3 << 20));
    assert_eq!(g.status, 200);
    assert!(
        g.body == payload(3 << 20, 7),
        "the response body arrived whole"
    );
    assert_eq!(a.conns().len(), 1, "{:?}", a.conns());
    let stats = exchange(aport, b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n\r\n");
    let stats = String::from_utf8_lossy(&stats.body).to_string();
    assert!(
        stats.contains("\"name\":\"site\",\"protocol\":\"https\""),
        "{stats}"
    );
    drop(n);
}

#[test]
fn a_server_that_never_completes_the_handshake_is_a_connect_timeout() {
    // Accepts TCP, never answers the ClientHello.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = l.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().take(4) {
            held.push(s);
        }
        thread::sleep(WAIT);
    });
    let tmp = TempDir::new("btls-silent");
    let log = tmp.path("access.log");
    let port = free_port();
    let tls = "{ enabled: true, insecure: true }";
    let yaml = yaml(port, &[silent], tls, "    connect_timeout: 300ms\n").replace(
        "error_log: stderr }",
        &format!("error_log: stderr, access_log: {} }}", log.display()),
    );
    let _n = Nvelox::start(&yaml);
    // Not the 504 of the response timeout (60s): the connect deadline
    // covers the handshake.
    let g = Client::connect(port).get("/slow");
    assert_eq!(g.status, 502, "{g:?}");
    assert!(
        eventually(WAIT, || std::fs::read_to_string(&log)
            .is_ok_and(|s| s.contains("reason=\"tls handshake timeout\""))),
        "{:?}",
        std::fs::read_to_string(&log)
    );
}

#[test]
fn a_tcp_probe_of_a_tls_backend_is_up_only_after_a_verified_handshake() {
    let tmp = TempDir::new("btls-tcp-probe");
    make_certs(&tmp.0);
    let good = TlsOrigin::start(&tmp.0, "a", "good", false);
    let bad = TlsOrigin::start(&tmp.0, "b", "bad", false);
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: a.test }}",
        tmp.path("ca.pem").display()
    );
    let extra =
        "    health_check: { active: { type: tcp, interval: 100ms, timeout: 5s, fall: 2 } }\n";
    let (n, port) = start(&[good.addr, bad.addr], &tls, extra);
    // A plain connect would pass for both; the handshake tells them apart.
    n.wait_for_line("tls verify failed", WAIT);
    assert!(eventually(WAIT, || good
        .conns()
        .iter()
        .filter(|c| c.ok)
        .count()
        >= 2));
    // Two failures take the bad server down; until then it is still
    // balanced to (the waits above do not imply it under load).
    n.wait_for_line(&format!("server {}: up -> down", bad.addr), WAIT);
    let mut c = Client::connect(port);
    for i in 0..4 {
        let g = c.get(&format!("/t{i}"));
        assert_eq!(g.status, 200, "{g:?}");
        assert!(body(&g).starts_with("good:"), "{g:?}");
    }
    assert!(bad.requests().is_empty());
}

#[test]
fn an_upgraded_connection_is_tunnelled_through_the_tls_session() {
    let tmp = TempDir::new("btls-tunnel");
    make_certs(&tmp.0);
    let a = TlsOrigin::start(&tmp.0, "a", "a", false);
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: a.test }}",
        tmp.path("ca.pem").display()
    );
    let (_n, port) = start(&[a.addr], &tls, "");
    let mut c = Client::connect(port);
    c.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
    let g = c.response();
    assert_eq!(g.status, 101, "{g:?}");
    let data = payload(200_000, 3);
    let mut w = c.w.try_clone().unwrap();
    let sent = data.clone();
    let writer = thread::spawn(move || w.write_all(&sent).unwrap());
    let mut back = vec![0u8; data.len()];
    std::io::Read::read_exact(&mut c.r, &mut back).unwrap();
    writer.join().unwrap();
    assert!(back == data, "the tunnel echoed every byte");
}
