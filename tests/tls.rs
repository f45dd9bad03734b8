//! TLS through the real binary: `sni_routes` passthrough (servers terminate
//! TLS themselves; nvelox routes by the ClientHello's name and relays the
//! bytes untouched) and `tls:` offload (certificates by SNI, wildcard,
//! default, ALPN, client certificates, `--check` errors). Certificates are
//! made per test with the `openssl` command; clients are rustls (in
//! process) and `openssl s_client`.
#![cfg(feature = "tls")]

#[path = "common/certs.rs"]
mod certs;
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use certs::*;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Connects, handshakes as `name` (verified against the test CA), sends
/// `line`, returns the first line back and the server's certificate.
fn tls_roundtrip(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    name: &str,
    line: &str,
) -> Result<(String, CertificateDer<'static>, Option<Vec<u8>>), String> {
    let conn = rustls::ClientConnection::new(cfg, ServerName::try_from(name.to_string()).unwrap())
        .map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    BufReader::new(&mut tls)
        .read_line(&mut reply)
        .map_err(|e| e.to_string())?;
    if reply.is_empty() {
        return Err("closed without a reply".into());
    }
    let cert = tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let alpn = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
    Ok((reply.trim_end().to_string(), cert, alpn))
}

/// A server that terminates TLS itself with `NAME.pem` and answers each
/// line with `NAME:line`.
fn tls_backend(dir: &Path, name: &'static str) -> SocketAddr {
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain(&dir.join(format!("{name}.pem"))), key)
        .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let cfg = Arc::clone(&cfg);
            thread::spawn(move || {
                s.set_read_timeout(Some(WAIT)).unwrap();
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                let mut r = BufReader::new(&mut tls);
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let reply = format!("{name}:{line}");
                    line.clear();
                    if r.get_mut().write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn passthrough_yaml(port: u16, a: SocketAddr, b: SocketAddr, other: SocketAddr) -> String {
    format!(
        r#"version: "2"
server: {{ workers: 1, shutdown_timeout: 1s }}
logging: {{ level: debug, error_log: stderr }}
listeners:
  - name: passthrough
    bind: "127.0.0.1:{port}"
    protocol: tcp
    sni_routes:
      - {{ server_name: a.test, backend: a }}
      - {{ server_name: "*.wild.test", backend: a }}
      - {{ server_name: B.Test, backend: b }}
    backend: other
backends:
  # A dead first server: the live one is server 1 of a backend whose
  # listener's own backend has a single server (counters must use the
  # routed backend).
  - {{ name: a, servers: ["127.0.0.1:1", "{a}"] }}
  - {{ name: b, servers: ["{b}"] }}
  - {{ name: other, servers: ["{other}"] }}
"#
    )
}

#[test]
fn sni_routes_choose_the_backend_and_pass_the_tls_bytes_untouched() {
    let tmp = TempDir::new("sni-routes");
    make_certs(&tmp.0);
    let (a, b) = (tls_backend(&tmp.0, "a"), tls_backend(&tmp.0, "b"));
    let other = Backend::start(Mode::NamedEcho("other"));
    let port = free_port();
    let n = Nvelox::start(&passthrough_yaml(port, a, b, other.addr));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let cfg = client_config(&tmp.0, false, &[]);
    // The client verifies the server's certificate for the name it asked:
    // only the real server, reached through untouched bytes, passes.
    assert_eq!(
        tls_roundtrip(addr, cfg.clone(), "a.test", "x").unwrap().0,
        "a:x"
    );
    assert_eq!(
        tls_roundtrip(addr, cfg.clone(), "b.test", "y").unwrap().0,
        "b:y"
    );
    assert_eq!(
        tls_roundtrip(addr, cfg.clone(), "deep.wild.test", "z")
            .unwrap()
            .0,
        "a:z"
    );
    // A real client: openssl s_client.
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(addr.to_string())
        .args([
            "-servername",
            "b.test",
            "-verify_hostname",
            "b.test",
            "-CAfile",
        ])
        .arg(tmp.path("ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    s_client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"from openssl\n")
        .unwrap();
    let mut out = String::new();
    BufReader::new(s_client.stdout.take().unwrap())
        .read_line(&mut out)
        .unwrap();
    let _ = s_client.kill();
    let _ = s_client.wait();
    assert_eq!(out.trim_end(), "b:from openssl");
    // No route for the name: the listener's backend gets the bytes.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let hello = client_hello("nomatch.test");
    s.write_all(&hello).unwrap();
    let mut got = vec![0u8; "other\n".len() + hello.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got[..6], b"other\n");
    assert_eq!(
        &got[6..],
        &hello[..],
        "the ClientHello reached the server as sent"
    );
    drop(n);
}

/// The first flight of a rustls client asking for `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let roots = rustls::RootCertStore::empty();
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut c = rustls::ClientConnection::new(
        Arc::new(cfg),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut out).unwrap();
    }
    out
}

#[test]
fn a_client_hello_split_over_many_segments_is_routed() {
    let tmp = TempDir::new("sni-split");
    make_certs(&tmp.0);
    let (a, b) = (tls_backend(&tmp.0, "a"), tls_backend(&tmp.0, "b"));
    let other = Backend::start(Mode::NamedEcho("other"));
    let port = free_port();
    let _n = Nvelox::start(&passthrough_yaml(port, a, b, other.addr));
    // The ClientHello goes out 7 bytes at a time, a pause between, then
    // the handshake goes on over the same socket.
    let cfg = client_config(&tmp.0, false, &[]);
    let mut conn =
        rustls::ClientConnection::new(cfg, ServerName::try_from("b.test").unwrap()).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    for piece in hello.chunks(7) {
        sock.write_all(piece).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"split\n").unwrap();
    let mut reply = String::new();
    BufReader::new(tls).read_line(&mut reply).unwrap();
    assert_eq!(reply, "b:split\n");
}

#[test]
fn garbage_instead_of_a_client_hello_is_closed_before_any_server() {
    let tmp = TempDir::new("sni-garbage");
    make_certs(&tmp.0);
    let (a, b) = (tls_backend(&tmp.0, "a"), tls_backend(&tmp.0, "b"));
    let other = Backend::start(Mode::NamedEcho("other"));
    let (port, mport) = (free_port(), free_port());
    let metrics = format!("metrics: {{ enabled: true, bind: \"127.0.0.1:{mport}\" }}\n");
    let n = Nvelox::start(&(metrics + &passthrough_yaml(port, a, b, other.addr)));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    n.wait_for_line("no TLS ClientHello", WAIT);
    assert_eq!(other.count(), 0, "no server was contacted");
    let want = "nvelox_tls_handshake_failures_total{listener=\"passthrough\",reason=\"bad_client_hello\"} 1";
    assert!(eventually(WAIT, || {
        let mut m = TcpStream::connect(("127.0.0.1", mport)).unwrap();
        m.set_read_timeout(Some(WAIT)).unwrap();
        m.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        let _ = m.read_to_string(&mut text);
        text.contains(want)
    }));
}

fn offload_yaml(dir: &Path, port: u16, echo: SocketAddr, extra: &str) -> String {
    format!(
        r#"version: "2"
server: {{ workers: 1, shutdown_timeout: 1s }}
logging: {{ level: info, error_log: stderr }}
listeners:
  - name: offload
    bind: "127.0.0.1:{port}"
    protocol: tcp
    backend: plain
    tls:
      cert: {dir}/a.pem
      key: {dir}/a.key
      certificates: [ {{ cert: {dir}/b.pem, key: {dir}/b.key }} ]
{extra}
backends:
  - {{ name: plain, servers: ["{echo}"] }}
"#,
        dir = dir.display()
    )
}

#[test]
fn tls_offload_chooses_certificates_by_name_and_relays_plaintext() {
    let tmp = TempDir::new("tls-offload");
    make_certs(&tmp.0);
    let echo = Backend::start(Mode::NamedEcho("plain"));
    let port = free_port();
    let _n = Nvelox::start(&offload_yaml(
        &tmp.0,
        port,
        echo.addr,
        "      alpn: [http/1.1]",
    ));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let a_cert = chain(&tmp.path("a.pem"))[0].clone();
    let b_cert = chain(&tmp.path("b.pem"))[0].clone();
    let cfg = client_config(&tmp.0, false, &["h2", "http/1.1"]);
    let (reply, cert, alpn) = tls_roundtrip(addr, cfg.clone(), "a.test", "one").unwrap();
    // The plain server greets first, then echoes.
    assert_eq!(reply, "plain");
    assert_eq!(cert, a_cert);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (_, cert, _) = tls_roundtrip(addr, cfg.clone(), "b.test", "two").unwrap();
    assert_eq!(cert, b_cert, "the RSA certificate for b.test");
    let (_, cert, _) = tls_roundtrip(addr, cfg.clone(), "x.wild.test", "three").unwrap();
    assert_eq!(cert, a_cert, "wildcard");
    // A name no certificate has: the default one (verification fails).
    assert!(tls_roundtrip(addr, cfg, "c.test", "four").is_err());

    // Plaintext both ways, many round trips, through openssl s_client
    // without SNI (default certificate).
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-quiet", "-noservername", "-connect"])
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let mut input = s_client.stdin.take().unwrap();
    let mut output = BufReader::new(s_client.stdout.take().unwrap());
    let mut line = String::new();
    output.read_line(&mut line).unwrap();
    assert_eq!(line, "plain\n");
    for i in 0..20 {
        let msg = format!("line {i} {}\n", "x".repeat(i * 500));
        input.write_all(msg.as_bytes()).unwrap();
        line.clear();
        output.read_line(&mut line).unwrap();
        assert_eq!(line, msg);
    }
    drop(input);
    let _ = s_client.kill();
    let _ = s_client.wait();
}

#[test]
fn client_auth_require_refuses_a_client_without_a_certificate() {
    let tmp = TempDir::new("tls-mtls");
    make_certs(&tmp.0);
    let echo = Backend::start(Mode::NamedEcho("plain"));
    let port = free_port();
    let extra = format!(
        "      client_auth: require\n      client_ca: {}",
        tmp.path("ca.pem").display()
    );
    let n = Nvelox::start(&offload_yaml(&tmp.0, port, echo.addr, &extra));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let with = client_config(&tmp.0, true, &[]);
    assert_eq!(
        tls_roundtrip(addr, with, "a.test", "hi").unwrap().0,
        "plain"
    );
    let before = echo.count();
    let without = client_config(&tmp.0, false, &[]);
    assert!(tls_roundtrip(addr, without, "a.test", "hi").is_err());
    n.wait_for_line("TLS handshake with", WAIT);
    assert_eq!(echo.count(), before, "no server for a refused client");
}

#[test]
fn check_names_a_missing_file_as_written_and_as_tried_and_a_wrong_key() {
    let tmp = TempDir::new("tls-check");
    make_certs(&tmp.0);
    let conf = tmp.path("nvelox.yaml");
    let yaml = "listeners:\n  - name: t\n    bind: \"127.0.0.1:1\"\n    backend: b\n    tls:\n      cert: certs/missing.pem\n      key: a.key\nbackends:\n  - { name: b, servers: [\"127.0.0.1:2\"] }\n";
    std::fs::write(&conf, yaml).unwrap();
    let (code, _, err) = run_bin(&["-c", conf.to_str().unwrap(), "--check"]);
    assert_eq!(code, 1, "{err}");
    let tried = tmp.path("certs/missing.pem");
    assert!(
        err.contains("listeners[0].tls.cert: cannot read certificate file \"certs/missing.pem\"")
            && err.contains(&format!("tried {}", tried.display())),
        "{err}"
    );
    std::fs::write(&conf, yaml.replace("certs/missing.pem", "b.pem")).unwrap();
    let (code, _, err) = run_bin(&["-c", conf.to_str().unwrap(), "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("listeners[0].tls.key: key \"a.key\" does not match certificate \"b.pem\""),
        "{err}"
    );
    std::fs::write(&conf, yaml.replace("certs/missing.pem", "a.pem")).unwrap();
    let (code, out, err) = run_bin(&["-c", conf.to_str().unwrap(), "--check"]);
    assert_eq!((code, out.trim()), (0, "configuration OK"), "{err}");
}

#[test]
fn sighup_reloads_certificates_for_new_handshakes_and_open_connections_go_on() {
    let tmp = TempDir::new("tls-reload");
    make_certs(&tmp.0);
    let echo = Backend::start(Mode::NamedEcho("plain"));
    let port = free_port();
    let n = Nvelox::start(&offload_yaml(&tmp.0, port, echo.addr, ""));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let cfg = client_config(&tmp.0, false, &[]);
    let old_cert = chain(&tmp.path("a.pem"))[0].clone();

    // An open connection, mid-conversation.
    let conn = rustls::ClientConnection::new(cfg.clone(), ServerName::try_from("a.test").unwrap())
        .unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut open = BufReader::new(rustls::StreamOwned::new(conn, sock));
    open.get_mut().write_all(b"before\n").unwrap();
    let mut line = String::new();
    open.read_line(&mut line).unwrap();
    assert_eq!(line, "plain\n");
    line.clear();
    open.read_line(&mut line).unwrap();
    assert_eq!(line, "before\n");

    // A new certificate (new key) for the same name, in the same files.
    leaf(&tmp.0, "a", "DNS:a.test,DNS:*.wild.test", false);
    let new_cert = chain(&tmp.path("a.pem"))[0].clone();
    assert_ne!(new_cert, old_cert);
    n.reload("configuration reloaded");

    let (_, cert, _) = tls_roundtrip(addr, cfg, "a.test", "after").unwrap();
    assert_eq!(cert, new_cert, "a new handshake uses the new certificate");
    open.get_mut().write_all(b"still here\n").unwrap();
    line.clear();
    open.read_line(&mut line).unwrap();
    assert_eq!(line, "still here\n", "the open connection goes on");
    assert_eq!(
        open.get_ref().conn.peer_certificates().unwrap()[0],
        old_cert
    );
}

fn backend_tls_yaml(port: u16, server: SocketAddr, tls: &str, listener_tls: &str) -> String {
    format!(
        r#"version: "2"
server: {{ workers: 1, shutdown_timeout: 1s }}
logging: {{ level: info, error_log: stderr }}
listeners:
  - name: front
    bind: "127.0.0.1:{port}"
    protocol: tcp
    backend: secure
{listener_tls}
backends:
  - name: secure
    retries: 0
    backend_tls: {tls}
    servers: ["{server}"]
"#
    )
}

fn plain_roundtrip(port: u16, line: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = BufReader::new(s).read_line(&mut reply);
    reply
}

#[test]
fn backend_tls_verifies_the_server_and_refuses_a_wrong_name() {
    let tmp = TempDir::new("backend-tls");
    make_certs(&tmp.0);
    let server = tls_backend(&tmp.0, "a");
    let ca = tmp.path("ca.pem");
    let ca = ca.display();

    // Verified against ca_cert for server_name a.test.
    let port = free_port();
    let good = format!("{{ enabled: true, ca_cert: {ca}, server_name: a.test }}");
    let n = Nvelox::start(&backend_tls_yaml(port, server, &good, ""));
    assert_eq!(plain_roundtrip(port, "secure"), "a:secure\n");
    drop(n);

    // The certificate is not for the name: the attempt fails, the client
    // is closed without a byte from the server.
    let port = free_port();
    let bad = format!("{{ enabled: true, ca_cert: {ca}, server_name: other.test }}");
    let n = Nvelox::start(&backend_tls_yaml(port, server, &bad, ""));
    assert_eq!(plain_roundtrip(port, "nope"), "");
    n.wait_for_line("TLS handshake with a server failed", WAIT);
    drop(n);

    // insecure: true takes it anyway, with a warning at start.
    let port = free_port();
    let insecure = "{ enabled: true, insecure: true, server_name: other.test }";
    let n = Nvelox::start(&backend_tls_yaml(port, server, insecure, ""));
    assert_eq!(plain_roundtrip(port, "anyway"), "a:anyway\n");
    assert!(
        n.stderr_text().contains("not verified"),
        "{}",
        n.stderr_text()
    );
}

#[test]
fn tls_on_both_sides_relays_plaintext_between_two_sessions() {
    let tmp = TempDir::new("tls-both");
    make_certs(&tmp.0);
    let server = tls_backend(&tmp.0, "b");
    let port = free_port();
    let tls = format!(
        "{{ enabled: true, ca_cert: {}, server_name: b.test }}",
        tmp.path("ca.pem").display()
    );
    let listener_tls = format!(
        "    tls: {{ cert: {d}/a.pem, key: {d}/a.key }}",
        d = tmp.0.display()
    );
    let _n = Nvelox::start(&backend_tls_yaml(port, server, &tls, &listener_tls));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let cfg = client_config(&tmp.0, false, &[]);
    let long = "y".repeat(40_000);
    let (reply, _, _) = tls_roundtrip(addr, cfg, "a.test", &long).unwrap();
    assert_eq!(reply, format!("b:{long}"));
}

#[test]
fn check_warns_about_an_expired_certificate_and_still_loads() {
    let tmp = TempDir::new("tls-expired");
    make_certs(&tmp.0);
    // `openssl ca` is the one subcommand of OpenSSL 3.0 that takes dates.
    std::fs::write(tmp.path("index.txt"), "").unwrap();
    std::fs::write(tmp.path("serial"), "01\n").unwrap();
    std::fs::write(
        tmp.path("ca.cnf"),
        "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n",
    )
    .unwrap();
    openssl(
        &tmp.0,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "a.csr",
            "-out",
            "old.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-notext",
            "-extfile",
            "a.ext",
        ],
    );
    let conf = tmp.path("nvelox.yaml");
    std::fs::write(
        &conf,
        "listeners:\n  - name: t\n    bind: \"127.0.0.1:1\"\n    backend: b\n    tls: { cert: old.pem, key: a.key }\nbackends:\n  - { name: b, servers: [\"127.0.0.1:2\"] }\n",
    )
    .unwrap();
    let (code, out, err) = run_bin(&["-c", conf.to_str().unwrap(), "--check"]);
    assert_eq!((code, out.trim()), (0, "configuration OK"), "{err}");
    assert!(
        err.contains("listeners[0].tls.cert: certificate \"old.pem\" has expired"),
        "{err}"
    );
}
