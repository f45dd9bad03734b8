//! Name-based virtual hosts through the real binary: several `https`
//! listeners on one bind chosen by SNI (each with its own certificate,
//! TLS settings, headers and backend), several `http` listeners on one bind
//! chosen per request by `Host`, `default_server` for the rest, and the
//! `--check` errors for groups that cannot share a bind.
#![cfg(feature = "tls")]

#[path = "common/certs.rs"]
mod certs;
mod common;
#[path = "common/https_client.rs"]
mod https_client;
#[path = "common/origin.rs"]
mod origin;

use std::path::Path;
use std::process::{Command, Stdio};

use certs::*;
use common::*;
use https_client::*;
use origin::*;

/// Three https virtual hosts on `port`: `site-a` (a.test, *.wild.test;
/// certificate `a`), `site-b` (b.test; certificate `b`, TLS 1.3 only) and
/// the default `fallback` (certificate `ip`), each with its own backend and
/// an `X-Site` response header.
fn https_yaml(dir: &Path, port: u16, a: &Origin, b: &Origin, f: &Origin) -> String {
    format!(
        r#"server: {{ workers: 1, shutdown_timeout: 1s }}
listeners:
  - name: site-a
    bind: "127.0.0.1:{port}"
    protocol: https
    server_names: [a.test, "*.wild.test"]
    tls: {{ cert: {d}/a.pem, key: {d}/a.key }}
    backend: a
    headers: {{ response_set: {{ X-Site: a }} }}
  - name: site-b
    bind: "127.0.0.1:{port}"
    protocol: https
    server_names: [b.test]
    tls: {{ cert: {d}/b.pem, key: {d}/b.key, min_version: "1.3" }}
    backend: b
    headers: {{ response_set: {{ X-Site: b }} }}
  - name: fallback
    bind: "127.0.0.1:{port}"
    protocol: https
    default_server: true
    tls: {{ cert: {d}/ip.pem, key: {d}/ip.key }}
    backend: f
    headers: {{ response_set: {{ X-Site: fallback }} }}
backends:
  - {{ name: a, servers: ["{}"] }}
  - {{ name: b, servers: ["{}"] }}
  - {{ name: f, servers: ["{}"] }}
"#,
        a.addr,
        b.addr,
        f.addr,
        d = dir.display()
    )
}

/// `openssl s_client` with `args`: its output (stdout and stderr).
fn s_client(port: u16, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn https_virtual_hosts_are_chosen_by_sni_with_their_own_certificate_and_settings() {
    let tmp = TempDir::new("vhosts-https");
    make_certs(&tmp.0);
    leaf(&tmp.0, "ip", "IP:127.0.0.1", false);
    let (a, b, f) = (Origin::named("A"), Origin::named("B"), Origin::named("F"));
    let port = free_port();
    let _n = Nvelox::start(&https_yaml(&tmp.0, port, &a, &b, &f));
    let cfg = client_config(&tmp.0, false, &["http/1.1"]);
    for (sni, cert, body, site) in [
        ("a.test", "a", "A", "a"),
        ("x.wild.test", "a", "A", "a"),
        ("b.test", "b", "B", "b"),
        ("127.0.0.1", "ip", "F", "fallback"),
    ] {
        let mut c = Tls::connect(port, cfg.clone(), sni).unwrap();
        assert_eq!(
            c.cert(),
            chain(&tmp.path(&format!("{cert}.pem")))[0],
            "{sni}"
        );
        for _ in 0..2 {
            // The Host header does not move an https client: SNI chose.
            let r = c.get_host("/", "b.test");
            assert_eq!(String::from_utf8_lossy(&r.body), body, "{sni}");
            assert_eq!(r.header("X-Site"), Some(site), "{sni}");
        }
    }
    // A name no listener has: the default server's certificate.
    let other = s_client(port, &["-servername", "c.test"]);
    assert!(
        other.contains("CN = ip") || other.contains("CN=ip"),
        "{other}"
    );
    // Each virtual host keeps its own TLS settings: b.test is TLS 1.3 only.
    let old = s_client(port, &["-servername", "b.test", "-tls1_2"]);
    assert!(!old.contains("CN = b") && !old.contains("CN=b"), "{old}");
    let ok = s_client(port, &["-servername", "a.test", "-tls1_2"]);
    assert!(ok.contains("CN = a") || ok.contains("CN=a"), "{ok}");
    assert_eq!(b.requests().len(), 2);
}

#[test]
fn http_virtual_hosts_are_chosen_per_request_by_host_and_survive_a_reload() {
    let (a, b, f, c) = (
        Origin::named("A"),
        Origin::named("B"),
        Origin::named("F"),
        Origin::named("C"),
    );
    let port = free_port();
    let site = |name: &str, names: &str, backend: &str| {
        format!(
            "  - name: {name}\n    bind: \"127.0.0.1:{port}\"\n    protocol: http\n    {names}\n    backend: {backend}\n    headers: {{ response_set: {{ X-Site: {name} }} }}\n"
        )
    };
    let backends = format!(
        "backends:\n  - {{ name: a, servers: [\"{}\"] }}\n  - {{ name: b, servers: [\"{}\"] }}\n  - {{ name: f, servers: [\"{}\"] }}\n  - {{ name: c, servers: [\"{}\"] }}\n",
        a.addr, b.addr, f.addr, c.addr
    );
    let two = format!(
        "server: {{ workers: 1, shutdown_timeout: 1s }}\nlisteners:\n{}{}{}",
        site("fallback", "default_server: true", "f"),
        site("site-a", "server_names: [a.test, \"*.a.test\"]", "a"),
        site("site-b", "server_names: [b.test]", "b"),
    );
    let n = Nvelox::start(&(two.clone() + &backends));
    let mut k = Client::connect(port);
    for (host, body, who) in [
        ("a.test", "A", "site-a"),
        ("B.TEST:80", "B", "site-b"),
        ("www.a.test", "A", "site-a"),
        ("other.test", "F", "fallback"),
        ("a.test", "A", "site-a"),
    ] {
        k.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        let r = k.response();
        assert_eq!(String::from_utf8_lossy(&r.body), body, "{host}");
        assert_eq!(r.header("X-Site"), Some(who), "{host}");
    }
    // SIGHUP with one more virtual host: the shared socket is kept, the
    // open connection goes on and the new name is served.
    let three = two + &site("site-c", "server_names: [c.test]", "c") + &backends;
    std::fs::write(n.dir.path("nvelox.yaml"), three).unwrap();
    n.signal(libc::SIGHUP);
    assert!(eventually(WAIT, || n.count_lines("configuration reloaded") > 0));
    assert_eq!(k.get("/").body, b"F", "Host: t is the default's");
    let mut fresh = Client::connect(port);
    fresh.send(b"GET / HTTP/1.1\r\nHost: c.test\r\n\r\n");
    assert_eq!(fresh.response().body, b"C");
}

#[test]
fn check_names_each_problem_of_a_shared_bind_with_its_line() {
    let tmp = TempDir::new("vhosts-check");
    let conf = tmp.path("n.yaml");
    let yaml = r#"listeners:
  - { name: one, bind: "127.0.0.1:1", protocol: http, backend: b, server_names: [a.test] }
  - { name: two, bind: "127.0.0.1:1", protocol: http, backend: b }
  - { name: three, bind: "127.0.0.1:1", protocol: http, backend: b, default_server: true, server_names: [a.test] }
  - { name: four, bind: "127.0.0.1:1", protocol: http, backend: b, default_server: true, reuseport: true }
  - { name: five, bind: "127.0.0.1:1", protocol: tcp, backend: b }
  - { name: six, bind: "127.0.0.1:2", protocol: tcp, backend: b, server_names: [x.test] }
backends:
  - { name: b, servers: ["127.0.0.1:3"] }
"#;
    std::fs::write(&conf, yaml).unwrap();
    let shown = conf.to_str().unwrap();
    let (code, _, err) = run_bin(&["-c", shown, "--check"]);
    assert_eq!(code, 1, "{err}");
    for want in [
        ":3: listeners[1].bind: this listener shares bind 127.0.0.1:1 with listener \"one\"",
        ":4: listeners[2].server_names[0]: server name \"a.test\" is already listener \"one\"'s",
        ":5: listeners[3].default_server: a second default_server on bind 127.0.0.1:1: listener \"three\"",
        ":5: listeners[3].reuseport: reuseport differs from listener \"one\"",
        ":6: listeners[4].bind: bind 127.0.0.1:1 overlaps http listener \"one\"",
        ":7: listeners[5].server_names: server_names is for http and https listeners",
    ] {
        let line = format!("{shown}{want}");
        assert!(err.lines().any(|l| l.starts_with(&line)), "missing {line:?}:\n{err}");
    }
}
