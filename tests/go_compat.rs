//! Go Nvelox compatibility through the real binary: the 32 files under
//! `tests/go_compat/`, each modelled on one of Go Nvelox's current examples
//! (same keys and shapes; loopback addresses, test certificate paths).
//!
//! Every file whose features nvelox implements passes `--check` and carries
//! traffic (its ports rewritten to free ones); every other file is refused,
//! each Go-only key with its own "not supported by nvelox" line.

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::thread;

use common::*;
use nvelox::proxy_protocol::{Accept, Command, Header, Parsed};
use origin::Origin;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn corpus() -> PathBuf {
    Path::new(ROOT).join("tests/go_compat")
}

fn modelled(name: &str) -> String {
    std::fs::read_to_string(corpus().join(format!("{name}.yaml"))).unwrap()
}

/// The files nvelox runs as they are.
const PASSING: &[&str] = &[
    "01-basic-tcp-proxy",
    "05-tls-termination",
    "25-port-range",
    "26-proxy-protocol",
    "27-udp-proxy",
];

/// HTTP-mode files: `--check` passes; start-up refuses them until the HTTP
/// event-loop side is built (then they get traffic tests like the above).
const PASSING_HTTP: &[&str] = &[
    "02-load-balancing",
    "03-health-checks",
    "04-rate-limiting",
    "06-https-http2",
    "08-host-routing",
    "09-path-routing",
    // Redirects answered without a server: tests/redirects.rs runs this file.
    "11-redirects",
    "12-header-manipulation",
    "14-retries-failover",
    // A backend-wide cap: tests/backend_cap.rs runs this file.
    "16-max-connections",
    "18-ip-allowlist-denylist",
    "19-body-size-limit",
    "21-metrics-prometheus",
    "22-admin-api",
    "23-timeouts",
    // A listener of redirects only, without a backend: smoke_31 below.
    "31-multisite-per-port",
    "32-hot-reload",
];

/// Every other file: each refused key, as `LINE: PATH: message` (the text
/// in parentheses after the key is left out).
const REFUSED: &[(&str, &[&str])] = &[
    (
        "07-http3-quic",
        &["10: listeners[0].http3: not supported by nvelox: http3"],
    ),
    (
        "10-regex-rewrite",
        &[
            "13: listeners[0].routes[0].match.path_regex: not supported by nvelox: path_regex",
            "14: listeners[0].routes[0].rewrite: not supported by nvelox: rewrite",
        ],
    ),
    (
        "13-compression",
        &["11: listeners[0].compression: not supported by nvelox: compression"],
    ),
    (
        "15-sticky-sessions",
        &["17: backends[0].sticky_session: not supported by nvelox: sticky_session"],
    ),
    (
        "17-acl-access-control",
        &["11: listeners[0].acl: not supported by nvelox: acl"],
    ),
    (
        "20-circuit-breaker",
        &["16: backends[0].circuit_breaker: not supported by nvelox: circuit_breaker"],
    ),
    (
        "24-caching",
        &["11: listeners[0].cache: not supported by nvelox: cache"],
    ),
    (
        "28-full-production",
        &[
            "44: listeners[1].compression: not supported by nvelox: compression",
            "82: backends[0].sticky_session: not supported by nvelox: sticky_session",
            "95: backends[1].circuit_breaker: not supported by nvelox: circuit_breaker",
        ],
    ),
    (
        "29-static-files",
        &[
            "14: listeners[0].routes[0].match.path_regex: not supported by nvelox: path_regex",
            "15: listeners[0].routes[0].static: not supported by nvelox: static",
            "17: listeners[0].routes[0].try_files: not supported by nvelox: try_files",
            "20: listeners[0].routes[0].expires: not supported by nvelox: expires",
            "23: listeners[0].routes[1].match.path_regex: not supported by nvelox: path_regex",
            "24: listeners[0].routes[1].static: not supported by nvelox: static",
            "26: listeners[0].routes[1].try_files: not supported by nvelox: try_files",
            "29: listeners[0].routes[1].expires: not supported by nvelox: expires",
            "33: listeners[0].routes[2].static: not supported by nvelox: static",
            "36: listeners[0].routes[2].try_files: not supported by nvelox: try_files",
        ],
    ),
    (
        "30-php-fpm-fastcgi",
        &[
            "10: listeners[0].root: not supported by nvelox: root",
            "13: listeners[0].routes[0].match.path_regex: not supported by nvelox: path_regex",
            "14: listeners[0].routes[0].static: not supported by nvelox: static",
            "16: listeners[0].routes[0].try_files: not supported by nvelox: try_files",
            "19: listeners[0].routes[0].expires: not supported by nvelox: expires",
            "22: listeners[0].routes[1].match.path_regex: not supported by nvelox: path_regex",
            "23: listeners[0].routes[1].fastcgi: not supported by nvelox: fastcgi",
            "32: listeners[0].routes[2].static: not supported by nvelox: static",
            "35: listeners[0].routes[2].try_files: not supported by nvelox: try_files",
            "38: listeners[0].routes[2].fastcgi: not supported by nvelox: fastcgi",
        ],
    ),
];

/// Files that also use the deprecated `default_backend` (warned).
const DEPRECATED: &[(&str, &[&str])] = &[
    ("29-static-files", &["11: listeners[0].default_backend"]),
    (
        "31-multisite-per-port",
        &[
            "29: listeners[1].default_backend",
            "43: listeners[2].default_backend",
            "52: listeners[3].default_backend",
        ],
    ),
];

#[test]
fn every_modelled_file_passes_check_or_names_each_refused_key() {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".yaml").map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names.len(), 32, "{names:?}");
    assert_eq!(PASSING.len() + PASSING_HTTP.len() + REFUSED.len(), 32);
    for name in &names {
        let path = corpus().join(format!("{name}.yaml"));
        let shown = path.to_str().unwrap();
        let (code, out, err) = run_bin(&["-c", shown, "--check"]);
        let deprecated: Vec<String> = DEPRECATED
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, w)| *w)
            .map(|w| format!("warning: {shown}:{w}: `default_backend` is deprecated"))
            .collect();
        if PASSING.contains(&name.as_str()) || PASSING_HTTP.contains(&name.as_str()) {
            assert_eq!((code, out.trim()), (0, "configuration OK"), "{name}: {err}");
            let lines: Vec<&str> = err.lines().collect();
            assert_eq!(
                lines.len(),
                deprecated.len(),
                "{name}: only {deprecated:?}: {err}"
            );
            for w in &deprecated {
                assert!(
                    lines.iter().any(|l| l.starts_with(w.as_str())),
                    "{name}: missing {w:?}: {err}"
                );
            }
            continue;
        }
        let expected = REFUSED
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is in neither list"))
            .1;
        assert_eq!(code, 1, "{name}: {out}{err}");
        let (warnings, errors): (Vec<&str>, Vec<&str>) = err
            .lines()
            .filter(|l| !l.starts_with("nvelox: configuration"))
            .partition(|l| l.starts_with("warning: "));
        // Go files still on the old key hear about it next to the errors.
        for line in &deprecated {
            assert!(
                warnings.iter().any(|l| l.starts_with(line.as_str())),
                "{name}: missing {line:?}; got:\n{err}"
            );
        }
        assert_eq!(warnings.len(), deprecated.len(), "{name}: {err}");
        for want in expected {
            let line = format!("{shown}:{want} (");
            assert!(
                errors.iter().any(|e| e.starts_with(&line)),
                "{name}: missing {line:?}; got:\n{err}"
            );
        }
        assert_eq!(
            errors.len(),
            expected.len(),
            "{name}: exactly the refused keys:\n{err}"
        );
        assert!(!err.contains("unknown field"), "{name}: {err}");
    }
}

#[test]
fn deprecated_default_backend_is_a_warning_at_check_and_both_keys_an_error() {
    let tmp = TempDir::new("go-alias");
    let old = tmp.path("old.yaml");
    let text = modelled("01-basic-tcp-proxy");
    std::fs::write(&old, text.replace("    backend:", "    default_backend:")).unwrap();
    let shown = old.to_str().unwrap();
    let (code, out, err) = run_bin(&["-c", shown, "--check"]);
    assert_eq!((code, out.trim()), (0, "configuration OK"), "{err}");
    assert!(
        err.contains(&format!(
            "warning: {shown}:10: listeners[0].default_backend: `default_backend` is deprecated"
        )),
        "{err}"
    );

    let both = tmp.path("both.yaml");
    std::fs::write(
        &both,
        text.replace(
            "    backend: \"echo-pool\"\n",
            "    backend: \"echo-pool\"\n    default_backend: \"echo-pool\"\n",
        ),
    )
    .unwrap();
    let shown = both.to_str().unwrap();
    let (code, _, err) = run_bin(&["-c", shown, "--check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{shown}:11: listeners[0].default_backend: `backend` and its deprecated alias `default_backend` are both set")),
        "{err}"
    );
}

#[test]
fn smoke_01_basic_tcp_proxy_echoes() {
    let echo = Backend::start(Mode::Echo);
    let port = free_port();
    let yaml = modelled("01-basic-tcp-proxy")
        .replace("127.0.0.1:19000", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:18081", &echo.addr.to_string());
    let n = Nvelox::start(&yaml);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"hello from a Go file").unwrap();
    let mut got = [0u8; 20];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello from a Go file");
    assert!(
        !n.stderr_text().contains("deprecated"),
        "{}",
        n.stderr_text()
    );
}

#[test]
fn smoke_25_port_range_keeps_each_port() {
    let base = free_port_range(10);
    let backends: Vec<Backend> = (base..base + 10)
        .map(|p| Backend::on(TcpListener::bind(("127.0.0.2", p)).unwrap(), Mode::Port))
        .collect();
    let yaml = modelled("25-port-range").replace(
        "127.0.0.1:19000-19009",
        &format!("127.0.0.1:{base}-{}", base + 9),
    );
    let _n = Nvelox::start(&yaml);
    for p in base..base + 10 {
        let lb: SocketAddr = format!("127.0.0.1:{p}").parse().unwrap();
        assert_eq!(first_line(lb), format!("port:{p}"));
    }
    drop(backends);
}

#[test]
fn smoke_26_proxy_protocol_v2_reaches_the_server() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = l.local_addr().unwrap();
    let reader = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before a whole PROXY header");
            buf.extend_from_slice(&chunk[..n]);
            match Header::parse(&buf, Accept::V2).unwrap() {
                Parsed::Complete { header, consumed } => {
                    return (header, buf[consumed..].to_vec());
                }
                Parsed::Incomplete { .. } => continue,
            }
        }
    });
    let port = free_port();
    let yaml = modelled("26-proxy-protocol")
        .replace("127.0.0.1:19000", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:18081", &server.to_string());
    let _n = Nvelox::start(&yaml);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"after the header").unwrap();
    let (header, rest) = reader.join().unwrap();
    assert_eq!(header.command, Command::Proxy);
    let (src, dst) = header.addresses.unwrap();
    assert_eq!(src, c.local_addr().unwrap());
    assert_eq!(dst.port(), port);
    assert!(b"after the header".starts_with(&rest), "{rest:?}");
}

#[test]
fn smoke_27_udp_proxy_answers_each_client() {
    let servers: Vec<UdpSocket> = (0..2)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.local_addr().unwrap()).collect();
    for s in servers {
        s.set_read_timeout(Some(WAIT)).unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        });
    }
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = modelled("27-udp-proxy")
        .replace("127.0.0.1:19000", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:18081", &addrs[0].to_string())
        .replace("127.0.0.1:18082", &addrs[1].to_string());
    let _n = Nvelox::start(&yaml);
    for i in 0..2 {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        let msg = format!("datagram {i}");
        c.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], msg.as_bytes());
        assert_eq!(from.port(), port);
    }
}

/// An HTTP file of Go Nvelox runs: requests balanced over its servers.
#[test]
fn smoke_02_load_balancing_runs_http() {
    let servers: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.local_addr().unwrap()).collect();
    for (i, l) in servers.into_iter().enumerate() {
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let body = format!("server {i}");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }
    let port = free_port();
    let yaml = modelled("02-load-balancing")
        .replace("127.0.0.1:19000", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:18081", &addrs[0].to_string())
        .replace("127.0.0.1:18082", &addrs[1].to_string())
        .replace("127.0.0.1:18083", &addrs[2].to_string());
    let _n = Nvelox::start(&yaml);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("server "), "{got}");
}

/// Go's HTTPS file runs: HTTP over TLS, ALPN http/1.1 (Go offers h2 too).
#[test]
fn smoke_06_https_serves_over_tls() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip("smoke_06_https_serves_over_tls", "curl is not installed");
    }
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    thread::spawn(move || {
        for s in server.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\napp");
        }
    });
    let port = free_port();
    let certs = corpus().join("certs");
    let yaml = modelled("06-https-http2")
        .replace("127.0.0.1:19443", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:18081", &addr.to_string())
        .replace("certs/", &format!("{}/", certs.display()));
    let _n = Nvelox::start(&yaml);
    let out = std::process::Command::new("curl")
        .args(["-sS", "-k", "--max-time", "20", "--resolve"])
        .arg(format!("test.localhost:{port}:127.0.0.1"))
        .arg(format!("https://test.localhost:{port}/"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "app",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `curl -k` for `url` with `host` resolved to 127.0.0.1 on `port`:
/// the body, and the response headers (`-i`).
fn curl_k(host: &str, port: u16, path: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-k", "-i", "--max-time", "20", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn have_curl(test: &str) -> bool {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        skip(test, "curl is not installed");
    }
    ok
}

/// Go's multi-site file: three https sites on one port, chosen by SNI,
/// and a listener of redirects only, without a backend.
#[test]
fn smoke_31_multisite_sites_share_one_port_by_sni() {
    if !have_curl("smoke_31_multisite_sites_share_one_port_by_sni") {
        return;
    }
    let origins: Vec<(u16, Origin)> = (1..=5)
        .map(|i| (18080 + i, Origin::named(&format!("s{i}"))))
        .collect();
    let (port, plain) = (free_port(), free_port());
    let mut yaml = modelled("31-multisite-per-port")
        .replace("127.0.0.1:19080", &format!("127.0.0.1:{plain}"))
        .replace("127.0.0.1:19443", &format!("127.0.0.1:{port}"))
        .replace("certs/", &format!("{}/", corpus().join("certs").display()));
    for (p, b) in &origins {
        yaml = yaml.replace(&format!("127.0.0.1:{p}"), &b.addr.to_string());
    }
    let _n = Nvelox::start(&yaml);
    let api = curl_k("api.test.localhost", port, "/");
    assert!(api.contains("s1") || api.contains("s2"), "{api}");
    assert!(
        api.contains("Strict-Transport-Security: max-age=600"),
        "{api}"
    );
    let agents = curl_k("x.zone.test.localhost", port, "/");
    assert!(agents.contains("s3") || agents.contains("s4"), "{agents}");
    assert!(!agents.contains("Strict-Transport-Security"), "{agents}");
    let other = curl_k("other.test.localhost", port, "/");
    assert!(other.contains("s5"), "{other}");
    let mut c = TcpStream::connect(("127.0.0.1", plain)).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"GET /a/b?c HTTP/1.1\r\nHost: api.test.localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert!(got.starts_with("HTTP/1.1 301 "), "{got}");
    assert!(
        got.contains("Location: https://api.test.localhost/a/b\r\n"),
        "{got}"
    );
    let reached = |o: &Origin| o.requests().iter().any(|r| r.target == "/a/b?c");
    assert!(
        !origins.iter().any(|(_, o)| reached(o)),
        "a redirect reached a server"
    );
}

/// Go's hot-reload file: an http and an https listener (TLS 1.3 only,
/// `server_names` on a listener alone on its port) over one pool.
#[test]
fn smoke_32_hot_reload_serves_http_and_https() {
    if !have_curl("smoke_32_hot_reload_serves_http_and_https") {
        return;
    }
    let (a, b) = (Origin::named("one"), Origin::named("two"));
    let (http, https, metrics) = (free_port(), free_port(), free_port());
    let yaml = modelled("32-hot-reload")
        .replace("127.0.0.1:19080", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:19443", &format!("127.0.0.1:{https}"))
        .replace("127.0.0.1:19100", &format!("127.0.0.1:{metrics}"))
        .replace("127.0.0.1:18081", &a.addr.to_string())
        .replace("127.0.0.1:18082", &b.addr.to_string())
        .replace("\"logs/access.log\"", "\"{dir}/access.log\"")
        .replace("\"logs/error.log\"", "stderr")
        .replace("certs/", &format!("{}/", corpus().join("certs").display()));
    let _n = Nvelox::start(&yaml);
    let got = curl_k("test.localhost", https, "/");
    assert!(got.contains("one") || got.contains("two"), "{got}");
    let mut c = TcpStream::connect(("127.0.0.1", http)).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut plain = String::new();
    c.read_to_string(&mut plain).unwrap();
    assert!(plain.contains("X-Served-By: nvelox-test"), "{plain}");
}
