//! `backend_tls` with servers written as host names, through the real
//! binary: without `server_name`, the name as written (`localhost:PORT`)
//! is sent as SNI and verified, on http and tcp listeners and by the
//! active probes; `server_name` still wins. The server's certificate
//! names `localhost` only (no IP SAN), so verifying the resolved address
//! instead would fail.
#![cfg(feature = "tls")]

#[path = "common/admin.rs"]
mod admin;
#[path = "common/certs.rs"]
mod certs;
mod common;
#[path = "common/origin.rs"]
mod origin;
#[path = "common/tls_origin.rs"]
mod tls_origin;

use std::net::SocketAddr;

use admin::*;
use certs::*;
use common::*;
use origin::*;
use tls_origin::*;

const PROBED: &str = "    health_check: { active: { type: http, path: /health, interval: 100ms, timeout: 5s, fall: 1, rise: 1 } }\n";

/// A `protocol` listener on `port` in front of `localhost:PORT` of each
/// origin, with `backend_tls: TLS` and `extra` backend lines, and the
/// metrics endpoint on `aport`.
fn yaml(
    protocol: &str,
    port: u16,
    aport: u16,
    servers: &[SocketAddr],
    tls: &str,
    extra: &str,
) -> String {
    let list: Vec<String> = servers
        .iter()
        .map(|a| format!("\"localhost:{}\"", a.port()))
        .collect();
    format!(
        r#"server: {{ workers: 1, shutdown_timeout: 1s }}
logging: {{ level: info, error_log: stderr }}
metrics: {{ enabled: true, bind: "127.0.0.1:{aport}", path: /metrics }}
listeners:
  - {{ name: web, bind: "127.0.0.1:{port}", protocol: {protocol}, backend: app }}
backends:
  - name: app
{extra}    backend_tls: {tls}
    servers: [{}]
"#,
        list.join(", ")
    )
}

/// The CA, `a` (a.test) and `local` (DNS:localhost only) in `tmp`.
fn certs(tmp: &TempDir) {
    make_certs(&tmp.0);
    leaf(&tmp.0, "local", "DNS:localhost", false);
}

fn scrape(aport: u16) -> std::collections::HashMap<String, u64> {
    let admin: SocketAddr = format!("127.0.0.1:{aport}").parse().unwrap();
    let (status, text) = get(admin, "/metrics", None);
    assert_eq!(status, 200, "{text}");
    samples(&text)
}

#[test]
fn a_server_written_as_a_name_is_verified_and_sent_that_name_on_http_and_tcp() {
    let tmp = TempDir::new("btls-names");
    certs(&tmp);
    let tls = format!(
        "{{ enabled: true, ca_cert: {} }}",
        tmp.path("ca.pem").display()
    );
    for protocol in ["http", "tcp"] {
        let o = TlsOrigin::start(&tmp.0, "local", "o", false);
        let (port, aport) = (free_port(), free_port());
        let n = Nvelox::start(&yaml(protocol, port, aport, &[o.addr], &tls, PROBED));
        let g = Client::connect(port).get("/x");
        assert_eq!(g.status, 200, "{protocol}: {g:?}\n{}", n.stderr_text());
        assert_eq!(g.body, b"o:/x", "{protocol}");
        let traffic = o.requests().iter().filter(|s| s.target == "/x").count();
        assert_eq!(traffic, 1, "{protocol}: {:?}", o.requests());
        // Every connection (traffic and probes) completed its handshake
        // with SNI `localhost`.
        let conns = o.conns();
        assert!(conns.iter().any(|c| c.ok), "{protocol}: {conns:?}");
        for c in conns.iter().filter(|c| c.ok) {
            assert_eq!(c.sni.as_deref(), Some("localhost"), "{protocol}: {conns:?}");
        }
        // The probes pass verification too: the server is up.
        let server = format!("localhost:{}", o.addr.port());
        let key = format!("nvelox_server_up{{backend=\"app\",server=\"{server}\"}}");
        assert!(
            eventually(WAIT, || {
                let m = scrape(aport);
                metric(&m, &key) == 1
                    && metric(
                        &m,
                        &format!("nvelox_server_check_results_total{{backend=\"app\",server=\"{server}\",result=\"ok\"}}"),
                    ) > 0
            }),
            "{protocol}: {}",
            n.stderr_text()
        );
        drop(n);
    }
}

#[test]
fn server_name_still_wins_over_the_host_name() {
    let tmp = TempDir::new("btls-names-sn");
    certs(&tmp);
    let o = TlsOrigin::start(&tmp.0, "a", "a", false);
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: a.test }}",
        tmp.path("ca.pem").display()
    );
    let (port, aport) = (free_port(), free_port());
    let _n = Nvelox::start(&yaml("http", port, aport, &[o.addr], &tls, PROBED));
    let g = Client::connect(port).get("/y");
    assert_eq!((g.status, g.body.as_slice()), (200, &b"a:/y"[..]), "{g:?}");
    let conns = o.conns();
    assert!(conns
        .iter()
        .filter(|c| c.ok)
        .all(|c| c.sni.as_deref() == Some("a.test")));
}

/// A server that accepts and then says nothing (its connections are kept
/// until the test process ends).
fn silent_server() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().take(8) {
            held.push(s);
        }
    });
    addr
}

/// A server that closes every connection at once.
fn closing_server() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(8) {
            drop(s);
        }
    });
    addr
}

#[test]
fn failed_backend_handshakes_are_counted_per_server_by_reason() {
    let tmp = TempDir::new("btls-names-metric");
    certs(&tmp);
    let tls = format!(
        "{{ enabled: true, ca_cert: {} }}",
        tmp.path("ca.pem").display()
    );
    for protocol in ["tcp", "http"] {
        // Certificate for a.test only: `localhost` is refused.
        let wrong = TlsOrigin::start(&tmp.0, "a", "w", false);
        let servers = [wrong.addr, closing_server(), silent_server()];
        let (port, aport) = (free_port(), free_port());
        let extra = "    retries: 0\n    connect_timeout: 300ms\n";
        let n = Nvelox::start(&yaml(protocol, port, aport, &servers, &tls, extra));
        let key = |s: &SocketAddr, reason: &str| {
            format!(
                "nvelox_server_tls_handshake_failures_total{{backend=\"app\",server=\"localhost:{}\",reason=\"{reason}\"}}",
                s.port()
            )
        };
        // Round robin: one connection (request) per server, each failing.
        for i in 0..3 {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_read_timeout(Some(WAIT)).unwrap();
            std::io::Write::write_all(
                &mut c,
                b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            let mut got = Vec::new();
            let _ = std::io::Read::read_to_end(&mut c, &mut got);
            let got = String::from_utf8_lossy(&got);
            if protocol == "http" {
                assert!(got.starts_with("HTTP/1.1 50"), "{i}: {got}");
            } else {
                assert_eq!(got, "", "{i}");
            }
        }
        let m = scrape(aport);
        let want = [
            (0, "verify_failed"),
            (1, "peer_closed"),
            (2, "handshake_timeout"),
        ];
        for (k, s) in servers.iter().enumerate() {
            for reason in [
                "verify_failed",
                "handshake_error",
                "peer_closed",
                "handshake_timeout",
            ] {
                let expect = u64::from(want.contains(&(k, reason)));
                assert_eq!(
                    metric(&m, &key(s, reason)),
                    expect,
                    "{protocol} server {k} {reason}\n{}",
                    n.stderr_text()
                );
            }
        }
        drop(n);
    }
}
