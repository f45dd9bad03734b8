//! `protocol: https` through the real binary: HTTP mode over TLS.
//! Certificates are made per test with `openssl`; clients are curl, Python's
//! `ssl` + `http.client`, `openssl s_client` and rustls (in process);
//! servers are the small Rust origin of the HTTP tests.
#![cfg(feature = "tls")]

#[path = "common/certs.rs"]
mod certs;
mod common;
#[path = "common/https_client.rs"]
mod https_client;
#[path = "common/origin.rs"]
mod origin;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use certs::*;
use common::*;
use https_client::*;
use origin::*;

/// The test CA, `a` (a.test, *.wild.test), `b` (b.test, RSA), `client`,
/// and `ip` (127.0.0.1: the default certificate, for clients without SNI).
fn certs(tag: &str) -> TempDir {
    let tmp = TempDir::new(tag);
    make_certs(&tmp.0);
    leaf(&tmp.0, "ip", "IP:127.0.0.1", false);
    tmp
}

/// One https listener on `port` in front of `servers` (round robin), its
/// default certificate `ip`, then `a` and `b`; `tls_extra` and `top` are
/// more YAML lines (indented for the tls block / at the top level).
fn yaml(dir: &Path, port: u16, servers: &[&Origin], tls_extra: &str, top: &str) -> String {
    let list: Vec<String> = servers.iter().map(|o| format!("\"{}\"", o.addr)).collect();
    format!(
        r#"{top}server: {{ workers: 1, shutdown_timeout: 1s }}
listeners:
  - name: web
    bind: "127.0.0.1:{port}"
    protocol: https
    backend: app
    backend_server_header: X-Backend-Server
    tls:
      cert: {d}/ip.pem
      key: {d}/ip.key
      certificates:
        - {{ cert: {d}/a.pem, key: {d}/a.key }}
        - {{ cert: {d}/b.pem, key: {d}/b.key }}
{tls_extra}backends:
  - name: app
    balance: roundrobin
    servers: [{}]
"#,
        list.join(", "),
        d = dir.display()
    )
}

fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(test, &format!("{tool} is not installed"));
    }
    ok
}

fn scrape(mport: u16) -> String {
    let got = exchange(mport, b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n");
    String::from_utf8_lossy(&got.body).to_string()
}

#[test]
fn curl_gets_each_request_balanced_over_one_keep_alive_tls_connection() {
    if !have("curl", "curl_gets_each_request_balanced") {
        return;
    }
    let tmp = certs("https-curl");
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let port = free_port();
    let _n = Nvelox::start(&yaml(&tmp.0, port, &[&a, &b], "", ""));
    let url = format!("https://a.test:{port}/x");
    // Offers h2 and http/1.1 by ALPN: nvelox answers http/1.1.
    let out = Command::new("curl")
        .args(["-sS", "-v", "--http2", "--max-time", "20", "--cacert"])
        .arg(tmp.path("ca.pem"))
        .arg("--resolve")
        .arg(format!("a.test:{port}:127.0.0.1"))
        .args([&url, &url, &url, &url])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "abab", "{stderr}");
    assert!(
        stderr.contains("ALPN: server accepted http/1.1")
            || stderr.contains("ALPN, server accepted to use http/1.1"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Re-using existing connection").count(),
        3,
        "one TLS connection for the four requests:\n{stderr}"
    );
    let seen = a.requests();
    assert_eq!(seen[0].header("X-Forwarded-Proto"), Some("https"));
    assert_eq!(
        seen[0].header("X-Forwarded-Port"),
        Some(port.to_string().as_str())
    );
    assert_eq!(seen[0].header("X-Forwarded-For"), Some("127.0.0.1"));
}

#[test]
fn python_http_client_keeps_its_tls_connection_alive() {
    if !have(
        "python3",
        "python_http_client_keeps_its_tls_connection_alive",
    ) {
        return;
    }
    let tmp = certs("https-python");
    let (a, b) = (Origin::named("a"), Origin::named("b"));
    let port = free_port();
    let _n = Nvelox::start(&yaml(&tmp.0, port, &[&a, &b], "", ""));
    // No SNI for an IP address: the default certificate (127.0.0.1) serves.
    let script = format!(
        r#"
import http.client, ssl
ctx = ssl.create_default_context(cafile={ca:?})
c = http.client.HTTPSConnection("127.0.0.1", {port}, context=ctx, timeout=20)
out = []
for i in range(4):
    c.request("POST" if i == 3 else "GET", "/p%d" % i, body=b"x" * 1000 if i == 3 else None)
    r = c.getresponse()
    out.append("%d:%s:%s" % (r.status, r.read().decode(), r.getheader("X-Backend-Server")))
print(" ".join(out))
print(c.sock.version())
"#,
        ca = tmp.path("ca.pem").display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ea, eb) = (a.addr.to_string(), b.addr.to_string());
    assert_eq!(
        stdout.lines().next().unwrap(),
        format!("200:a:{ea} 200:b:{eb} 200:a:{ea} 200:b:{eb}")
    );
    assert!(stdout.contains("TLSv1.3"), "{stdout}");
    assert_eq!(b.requests()[1].body.len(), 1000);
}

#[test]
fn openssl_alpn_offers_http11_only_and_refused_handshakes_are_counted() {
    let tmp = certs("https-alpn");
    let a = Origin::named("a");
    let (port, mport) = (free_port(), free_port());
    let top = format!("metrics:\n  enabled: true\n  bind: \"127.0.0.1:{mport}\"\n");
    let _n = Nvelox::start(&yaml(&tmp.0, port, &[&a], "", &top));
    let s_client = |alpn: &str| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "a.test", "-alpn", alpn])
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let both = s_client("h2,http/1.1");
    assert!(both.contains("ALPN protocol: http/1.1"), "{both}");
    // A client that speaks h2 only is refused cleanly (an alert).
    let h2 = s_client("h2");
    assert!(h2.contains("no application protocol"), "{h2}");
    // Not TLS at all.
    let mut g = TcpStream::connect(("127.0.0.1", port)).unwrap();
    g.set_read_timeout(Some(WAIT)).unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = g.read_to_end(&mut rest);
    assert!(!rest.starts_with(b"HTTP/"), "no HTTP answer in clear");
    assert!(eventually(WAIT, || scrape(mport).contains(
        "nvelox_tls_handshake_failures_total{listener=\"web\",reason=\"handshake_error\"} 2"
    )));
    // A client that never starts its handshake is closed at the deadline.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(WAIT * 2)).unwrap();
    assert_eq!(idle.read(&mut [0u8; 16]).unwrap_or(0), 0);
    assert!(eventually(WAIT, || scrape(mport).contains(
        "nvelox_tls_handshake_failures_total{listener=\"web\",reason=\"handshake_timeout\"} 1"
    )));
    assert_eq!(a.requests().len(), 0, "no request reached the server");
}

#[test]
fn certificates_are_chosen_by_sni_and_client_auth_require_refuses_no_cert() {
    let tmp = certs("https-sni");
    let a = Origin::named("a");
    let port = free_port();
    let extra = format!(
        "      client_auth: require\n      client_ca: {}\n",
        tmp.path("ca.pem").display()
    );
    let _n = Nvelox::start(&yaml(&tmp.0, port, &[&a], &extra, ""));
    let cfg = client_config(&tmp.0, true, &["http/1.1"]);
    for (name, cert) in [("a.test", "a"), ("b.test", "b"), ("x.wild.test", "a")] {
        let mut c = Tls::connect(port, cfg.clone(), name).unwrap();
        assert_eq!(
            c.cert(),
            chain(&tmp.path(&format!("{cert}.pem")))[0],
            "{name}"
        );
        assert_eq!(c.get("/").body, b"a");
    }
    let c = Tls::connect(port, cfg, "127.0.0.1").unwrap();
    assert_eq!(c.cert(), chain(&tmp.path("ip.pem"))[0], "no SNI: default");
    let before = a.requests().len();
    let without = client_config(&tmp.0, false, &["http/1.1"]);
    let refused = Tls::connect(port, without, "a.test").and_then(|mut c| {
        // TLS 1.3: the client learns of the refusal on its first read.
        c.r.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .map_err(|e| e.to_string())?;
        read_response(&mut c.r, false).ok_or_else(|| "closed".to_string())
    });
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        a.requests().len(),
        before,
        "no request for a refused client"
    );
}

#[test]
fn pipelining_and_a_websocket_tunnel_work_over_tls() {
    let tmp = certs("https-ws");
    let origin = Origin::named("o");
    let ws_addr = websocket_echo_origin();
    let port = free_port();
    let mut text = yaml(&tmp.0, port, &[&origin], "", "");
    text = text.replace(
        "    backend_server_header: X-Backend-Server\n",
        "    routes:\n      - { match: { path_prefix: /ws }, backend: ws }\n",
    );
    text.push_str(&format!("  - name: ws\n    servers: [\"{ws_addr}\"]\n"));
    let _n = Nvelox::start(&text);
    let cfg = client_config(&tmp.0, false, &["http/1.1"]);
    let mut c = Tls::connect(port, cfg, "a.test").unwrap();
    let one = "GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n";
    c.send(one.repeat(3).as_bytes());
    for _ in 0..3 {
        assert_eq!(c.response().body, b"o");
    }
    c.send(
        b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    let mut status = String::new();
    c.r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    loop {
        let mut h = String::new();
        c.r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
    }
    for msg in ["hello\n", &format!("{}\n", "y".repeat(100_000))] {
        c.send(msg.as_bytes());
        let mut got = String::new();
        c.r.read_line(&mut got).unwrap();
        assert_eq!(got, msg);
    }
}

#[test]
fn sighup_reloads_https_certificates_and_open_connections_go_on() {
    let tmp = certs("https-reload");
    let a = Origin::named("a");
    let port = free_port();
    let n = Nvelox::start(&yaml(&tmp.0, port, &[&a], "", ""));
    let cfg = client_config(&tmp.0, false, &["http/1.1"]);
    let mut open = Tls::connect(port, cfg.clone(), "a.test").unwrap();
    assert_eq!(open.get("/").body, b"a");
    let old = open.cert();
    leaf(&tmp.0, "a", "DNS:a.test,DNS:*.wild.test", false);
    let new = chain(&tmp.path("a.pem"))[0].clone();
    assert_ne!(new, old);
    n.reload("configuration reloaded");
    assert!(eventually(WAIT, || Tls::connect(
        port,
        cfg.clone(),
        "a.test"
    )
    .is_ok_and(|c| c.cert() == new)));
    assert_eq!(open.get("/again").body, b"a", "the open connection goes on");
    assert_eq!(open.cert(), old);
}

#[test]
fn check_requires_tls_for_https_and_refuses_tls_on_http() {
    let tmp = TempDir::new("https-check");
    let conf = tmp.path("n.yaml");
    let base = "listeners:\n  - name: w\n    bind: \"127.0.0.1:1\"\n    protocol: https\n    backend: b\nbackends:\n  - { name: b, servers: [\"127.0.0.1:2\"] }\n";
    std::fs::write(&conf, base).unwrap();
    let shown = conf.to_str().unwrap();
    let (code, _, err) = run_bin(&["-c", shown, "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "{shown}:4: listeners[0].protocol: protocol: https needs a tls: block"
        )),
        "{err}"
    );
    let http = base.replace(
        "protocol: https\n",
        "protocol: http\n    tls: { cert: a.pem, key: a.key }\n",
    );
    std::fs::write(&conf, http).unwrap();
    let (code, _, err) = run_bin(&["-c", shown, "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("listeners[0].tls: tls: on an http listener: write protocol: https"),
        "{err}"
    );
}

#[test]
fn accept_proxy_on_http_and_https_takes_the_headers_client_and_judges_it() {
    let tmp = certs("https-proxy");
    let a = Origin::named("a");
    let (port, plain) = (free_port(), free_port());
    let mut text = yaml(&tmp.0, port, &[&a], "", "").replace(
        "    backend_server_header: X-Backend-Server\n",
        "    accept_proxy: v1\n    ip_denylist: [\"192.0.2.66\"]\n",
    );
    text = text.replace(
        "backends:\n",
        &format!("  - {{ name: plain, bind: \"127.0.0.1:{plain}\", protocol: http, backend: app, accept_proxy: any, ip_denylist: [\"192.0.2.66\"] }}\nbackends:\n"),
    );
    let _n = Nvelox::start(&text);
    let header = |ip: &str, to: u16| format!("PROXY TCP4 {ip} 127.0.0.1 40000 {to}\r\n");
    let cfg = client_config(&tmp.0, false, &["http/1.1"]);
    let mut c = Tls::connect_after(
        port,
        cfg.clone(),
        "a.test",
        header("192.0.2.7", port).as_bytes(),
    )
    .unwrap();
    assert_eq!(c.get("/").body, b"a");
    // Plain HTTP, the header and the request in one write.
    let mut p = Client::connect(plain);
    p.send(
        format!(
            "{}GET /p HTTP/1.1\r\nHost: t\r\n\r\n",
            header("192.0.2.8", plain)
        )
        .as_bytes(),
    );
    assert_eq!(p.response().body, b"a");
    let seen = a.requests();
    assert_eq!(seen[0].header("X-Forwarded-For"), Some("192.0.2.7"));
    assert_eq!(seen[1].header("X-Forwarded-For"), Some("192.0.2.8"));
    // The header's client is the one the access rules judge.
    assert!(
        Tls::connect_after(port, cfg, "a.test", header("192.0.2.66", port).as_bytes()).is_err()
    );
    let mut d = TcpStream::connect(("127.0.0.1", plain)).unwrap();
    d.set_read_timeout(Some(WAIT)).unwrap();
    d.write_all(
        format!(
            "{}GET / HTTP/1.1\r\nHost: t\r\n\r\n",
            header("192.0.2.66", plain)
        )
        .as_bytes(),
    )
    .unwrap();
    let mut rest = Vec::new();
    let _ = d.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // No header at all.
    let mut g = TcpStream::connect(("127.0.0.1", plain)).unwrap();
    g.set_read_timeout(Some(WAIT)).unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = g.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(a.requests().len(), 2, "refused clients reach no server");
}
