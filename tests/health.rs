//! Health checks and resilience through the real binary, on loopback:
//! active tcp/http/udp probes, backup failover, prompt close when nothing
//! is up, fd exhaustion, leaks, resets mid-transfer.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;

fn lb(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One listener `web` on `port` in front of backend `pool`.
fn config(port: u16, workers: usize, servers: &[String], backend_extra: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("      - {s}")).collect();
    format!(
        "server:\n  workers: {workers}\n  shutdown_timeout: 2s\nlogging:\n  level: debug\n\
listeners:\n  - name: web\n    bind: \"127.0.0.1:{port}\"\n    default_backend: pool\n\
backends:\n  - name: pool\n    balance: roundrobin\n    connect_timeout: 5s\n    retries: 3\n{backend_extra}    servers:\n{}\n",
        list.join("\n")
    )
}

/// Active checks every 100 ms. A probe times out after 1 s, not less: a
/// live server on a loaded machine may take a few hundred milliseconds to
/// answer, and a flap would spoil the test.
fn active(kind: &str, fall: u32, rise: u32, extra: &str) -> String {
    format!(
        "    health_check:\n      active:\n        type: {kind}\n        interval: 100ms\n        timeout: 1s\n        fall: {fall}\n        rise: {rise}\n{extra}"
    )
}

fn quoted(addr: SocketAddr) -> String {
    format!("\"{addr}\"")
}

/// The first line of a connection through the balancer, or "" if closed.
fn served_by(port: u16) -> String {
    let s = TcpStream::connect_timeout(&lb(port), WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    line.trim().to_string()
}

fn down_line(label: impl std::fmt::Display) -> String {
    format!("server {label}: up -> down")
}

fn up_line(label: impl std::fmt::Display) -> String {
    format!("server {label}: down -> up")
}

/// Lines where the TCP proxy (not a probe) tried `addr` and failed.
fn proxy_attempts(n: &Nvelox, addr: SocketAddr) -> usize {
    let a = addr.to_string();
    n.count_lines(&format!("connect to {a} failed")) + n.count_lines(&format!("-> {a}: connect"))
}

#[test]
fn stopped_server_goes_down_after_fall_probes_gets_no_traffic_and_rises_again() {
    let a = Backend::start(Mode::NamedEcho("a"));
    let b = Backend::start(Mode::NamedEcho("b"));
    let b_addr = b.addr;
    let port = free_port();
    let n = Nvelox::start(&config(
        port,
        2,
        &[quoted(a.addr), quoted(b_addr)],
        &active("tcp", 3, 2, ""),
    ));
    let got: Vec<String> = (0..4).map(|_| served_by(port)).collect();
    assert!(got.contains(&"b".to_string()), "{got:?}");

    b.stop();
    let line = n.wait_for_line(&down_line(b_addr), WAIT);
    assert!(
        line.contains("3 consecutive failed probes (last probe: connection refused)"),
        "{line}"
    );
    assert!(line.contains("WARN"), "a state change is a warning: {line}");
    // Down means not even tried: every client goes to a, and the proxy
    // makes no connect attempt to b.
    let before = proxy_attempts(&n, b_addr);
    let got: Vec<String> = (0..6).map(|_| served_by(port)).collect();
    assert_eq!(got, ["a"; 6]);
    assert_eq!(proxy_attempts(&n, b_addr), before, "{}", n.stderr_text());

    let _b = Backend::on(TcpListener::bind(b_addr).unwrap(), Mode::NamedEcho("b"));
    let line = n.wait_for_line(&up_line(b_addr), WAIT);
    assert!(line.contains("2 consecutive successful probes"), "{line}");
    let got: Vec<String> = (0..4).map(|_| served_by(port)).collect();
    assert!(got.contains(&"b".to_string()), "{got:?}");
    assert_eq!(n.count_lines(&down_line(b_addr)), 1, "one line per change");
}

/// A backend that greets with its name and answers `ping` lines with
/// `pong` while healthy (`sick` and a close otherwise), echoing anything else: it keeps
/// accepting either way, so only the check can take it out of rotation.
struct Switch {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
}

impl Switch {
    fn start(name: &'static str) -> Switch {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let h = Arc::clone(&healthy);
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { break };
                let h = Arc::clone(&h);
                thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = s.write_all(format!("{name}\n").as_bytes());
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut line = String::new();
                    while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                        let reply = match line.trim() {
                            "ping" if h.load(Ordering::Relaxed) => "pong\n".to_string(),
                            "ping" => {
                                // Answer and hang up, as a failing health endpoint does.
                                let _ = s.write_all(b"sick\n");
                                break;
                            }
                            _ => line.clone(),
                        };
                        if s.write_all(reply.as_bytes()).is_err() {
                            break;
                        }
                        line.clear();
                    }
                });
            }
        });
        Switch { addr, healthy }
    }
}

#[test]
fn tcp_send_expect_takes_a_sick_but_accepting_server_out_of_rotation() {
    let a = Switch::start("a");
    let b = Switch::start("b");
    let port = free_port();
    let n = Nvelox::start(&config(
        port,
        2,
        &[quoted(a.addr), quoted(b.addr)],
        &active(
            "tcp",
            2,
            2,
            "        send: \"ping\\n\"\n        expect: \"pong\"\n",
        ),
    ));
    b.healthy.store(false, Ordering::Relaxed);
    let line = n.wait_for_line(&down_line(b.addr), WAIT);
    assert!(line.contains("closed before the expected reply"), "{line}");
    // b still accepts and greets, but gets no client.
    let got: Vec<String> = (0..6).map(|_| served_by(port)).collect();
    assert_eq!(got, ["a"; 6]);
    b.healthy.store(true, Ordering::Relaxed);
    n.wait_for_line(&up_line(b.addr), WAIT);
    let got: Vec<String> = (0..4).map(|_| served_by(port)).collect();
    assert_eq!(got.iter().filter(|g| *g == "b").count(), 2, "{got:?}");
}

/// An HTTP health endpoint: answers with `status`, or never answers when
/// it is 0. Records the first request it saw.
struct HttpHealth {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
    first_request: Arc<Mutex<String>>,
}

impl HttpHealth {
    fn start() -> HttpHealth {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let first_request = Arc::new(Mutex::new(String::new()));
        let (st, h, fr) = (
            Arc::clone(&status),
            Arc::clone(&hits),
            Arc::clone(&first_request),
        );
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { break };
                let (st, h, fr) = (Arc::clone(&st), Arc::clone(&h), Arc::clone(&fr));
                thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 512];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 4096 {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::Relaxed);
                    {
                        let mut f = fr.lock().unwrap();
                        if f.is_empty() {
                            *f = String::from_utf8_lossy(&req).into_owned();
                        }
                    }
                    match st.load(Ordering::Relaxed) {
                        // Hangs well past the probe timeout (1 s).
                        0 => thread::sleep(Duration::from_secs(5)),
                        code => {
                            let _ = s.write_all(
                                format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n")
                                    .as_bytes(),
                            );
                        }
                    }
                });
            }
        });
        HttpHealth {
            addr,
            status,
            hits,
            first_request,
        }
    }
}

#[test]
fn http_check_200_up_500_down_hang_down() {
    let web = HttpHealth::start();
    let port = free_port();
    let n = Nvelox::start(&config(
        port,
        1,
        &[quoted(web.addr)],
        &active("http", 2, 2, "        path: /healthz\n"),
    ));
    assert!(eventually(WAIT, || web.hits.load(Ordering::Relaxed) >= 4));
    assert_eq!(n.count_lines("-> down"), 0, "{}", n.stderr_text());
    let req = web.first_request.lock().unwrap().clone();
    assert_eq!(
        req,
        format!(
            "GET /healthz HTTP/1.0\r\nHost: {}\r\nUser-Agent: nvelox-health\r\nConnection: close\r\n\r\n",
            web.addr
        )
    );

    web.status.store(500, Ordering::Relaxed);
    let line = n.wait_for_line(&down_line(web.addr), WAIT);
    assert!(line.contains("(last probe: HTTP status 500)"), "{line}");

    web.status.store(302, Ordering::Relaxed);
    n.wait_for_line(&up_line(web.addr), WAIT);

    web.status.store(0, Ordering::Relaxed);
    let line = n.wait_for_line("(last probe: timed out)", WAIT);
    assert!(line.contains(&down_line(web.addr)), "{line}");
}

#[test]
fn udp_check_send_expect_wrong_reply_silence_and_refused() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let good = sock.local_addr().unwrap();
    // Nothing listens here: probes get ICMP port unreachable.
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // 0 = pong, 1 = wrong reply, 2 = silence.
    let mode = Arc::new(AtomicU8::new(0));
    let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let responder = {
        let (mode, seen, stop) = (Arc::clone(&mode), Arc::clone(&seen), Arc::clone(&stop));
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                seen.lock().unwrap().push(buf[..len].to_vec());
                let reply: &[u8] = match mode.load(Ordering::Relaxed) {
                    0 => b"+pong",
                    1 => b"-nope",
                    _ => continue,
                };
                let _ = sock.send_to(reply, from);
            }
        })
    };
    let port = free_port();
    let n = Nvelox::start(&config(
        port,
        1,
        &[quoted(good), quoted(dead)],
        &active(
            "udp",
            2,
            2,
            "        send: \"ping\"\n        expect: \"pong\"\n",
        ),
    ));
    let line = n.wait_for_line(&down_line(dead), WAIT);
    assert!(line.contains("connection refused"), "{line}");
    assert!(eventually(WAIT, || seen.lock().unwrap().len() >= 5));
    assert!(seen.lock().unwrap().iter().all(|d| d == b"ping"));
    assert_eq!(n.count_lines(&down_line(good)), 0, "{}", n.stderr_text());

    mode.store(1, Ordering::Relaxed);
    let line = n.wait_for_line(&down_line(good), WAIT);
    assert!(line.contains("reply did not contain"), "{line}");
    mode.store(0, Ordering::Relaxed);
    n.wait_for_line(&up_line(good), WAIT);
    mode.store(2, Ordering::Relaxed);
    assert!(
        eventually(WAIT, || n.count_lines(&down_line(good)) == 2),
        "{}",
        n.stderr_text()
    );
    assert!(n.stderr_text().contains(&format!(
        "{}: up -> down: 2 consecutive failed probes (last probe: timed out)",
        good
    )));
    stop.store(true, Ordering::Relaxed);
    let _ = responder.join();
}

#[test]
fn backup_takes_over_while_no_primary_is_up_and_hands_back() {
    let p = Backend::start(Mode::NamedEcho("p"));
    let k = Backend::start(Mode::NamedEcho("k"));
    let p_addr = p.addr;
    let port = free_port();
    let n = Nvelox::start(&config(
        port,
        2,
        &[
            quoted(p_addr),
            format!("{{ address: \"{}\", backup: true }}", k.addr),
        ],
        &active("tcp", 2, 2, ""),
    ));
    let got: Vec<String> = (0..4).map(|_| served_by(port)).collect();
    assert_eq!(
        got, ["p"; 4],
        "the backup serves only when no primary is up"
    );
    p.stop();
    n.wait_for_line(&down_line(p_addr), WAIT);
    let got: Vec<String> = (0..4).map(|_| served_by(port)).collect();
    assert_eq!(got, ["k"; 4]);
    let _p = Backend::on(TcpListener::bind(p_addr).unwrap(), Mode::NamedEcho("p"));
    n.wait_for_line(&up_line(p_addr), WAIT);
    let got: Vec<String> = (0..4).map(|_| served_by(port)).collect();
    assert_eq!(got, ["p"; 4]);
}

/// A listener whose accept queue is full: SYNs to it are dropped, so a
/// connect hangs (a wedged server) instead of being refused.
fn wedged_server() -> (socket2::Socket, Vec<socket2::Socket>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&lb(0).into()).unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        match s.connect_timeout(&addr.into(), Duration::from_millis(200)) {
            Ok(()) => fillers.push(s),
            Err(_) => break,
        }
    }
    (l, fillers, addr)
}

#[test]
fn all_servers_down_closes_clients_at_once_instead_of_waiting_connect_timeout() {
    let (_l, _fillers, addr) = wedged_server();
    let port = free_port();
    // connect_timeout 1h: without the check a client would wait for it,
    // far beyond its own read timeout.
    let yaml = config(port, 1, &[quoted(addr)], &active("tcp", 1, 1, ""))
        .replace("connect_timeout: 5s", "connect_timeout: 1h");
    let n = Nvelox::start(&yaml);
    let line = n.wait_for_line(&down_line(addr), WAIT);
    assert!(line.contains("timed out"), "{line}");
    let mut s = TcpStream::connect_timeout(&lb(port), WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(got.is_empty(), "closed without a byte: {got:?}");
    n.wait_for_line("no server available in backend pool", WAIT);
}

fn proc_stat_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" that closes the command name; utime and stime
    // are fields 14 and 15 of the whole line, 12 and 13 after it.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn fd_exhaustion_keeps_serving_without_spinning_and_recovers() {
    const LIMIT: u64 = 48;
    let a = Backend::start(Mode::NamedEcho("a"));
    let port = free_port();
    let yaml = config(port, 1, &[quoted(a.addr)], &active("tcp", 1, 1, ""));
    let n = Nvelox::spawn_with(&yaml, |cmd| {
        // SAFETY: setrlimit is async-signal-safe and touches no memory of
        // the parent; the closure runs in the child between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: LIMIT,
                    rlim_max: LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    n.wait_for_line("started", common::START_WAIT);
    assert_eq!(served_by(port), "a");
    let pid = n.pid();

    // Far more idle clients than descriptors: each served one costs two.
    let clients: Vec<TcpStream> = (0..LIMIT)
        .filter_map(|_| TcpStream::connect_timeout(&lb(port), WAIT).ok())
        .collect();
    n.wait_for_line("Too many open files", WAIT);
    // The table is full (an fd or two inherited above the limit may add to it).
    let fds = open_fds(pid) as u64;
    assert!(fds + 4 >= LIMIT, "only {fds} fds open, limit {LIMIT}");
    thread::sleep(Duration::from_millis(300));
    let cpu = proc_stat_cpu_ticks(pid);
    thread::sleep(Duration::from_secs(1));
    let used = proc_stat_cpu_ticks(pid) - cpu;
    // A spinning loop burns ~100 ticks a second; retries every 100 ms a few.
    assert!(used < 30, "{used} CPU ticks in 1s while out of fds");
    assert_eq!(n.child.id(), pid);
    // Probes have their own fd reserve: the healthy server stays up.
    assert_eq!(n.count_lines("-> down"), 0, "{}", n.stderr_text());
    assert_eq!(n.count_lines(" skipped: "), 0, "{}", n.stderr_text());

    drop(clients);
    let mut ok = false;
    for _ in 0..50 {
        if served_by(port) == "a" {
            ok = true;
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ok,
        "not serving after fds were released: {}",
        n.stderr_text()
    );
    let mut n = n;
    assert!(n.child.try_wait().unwrap().is_none(), "nvelox exited");
}

#[test]
fn ten_thousand_connections_leak_no_fds_and_little_memory() {
    let a = Backend::start(Mode::NamedEcho("a"));
    let port = free_port();
    let n = Nvelox::start(&config(port, 2, &[quoted(a.addr)], ""));
    let pid = n.pid();
    assert_eq!(served_by(port), "a");
    let baseline = open_fds(pid);
    let mut warm_rss = 0;
    const BATCH: usize = 100;
    for batch in 0..10_000 / BATCH {
        let conns: Vec<TcpStream> = (0..BATCH)
            .map(|_| TcpStream::connect_timeout(&lb(port), WAIT).unwrap())
            .collect();
        for c in &conns {
            c.set_read_timeout(Some(WAIT)).unwrap();
            let mut greeting = [0u8; 2];
            let mut r: &TcpStream = c;
            r.read_exact(&mut greeting).unwrap();
            assert_eq!(&greeting, b"a\n");
            if batch % 2 == 1 {
                // Half the batches end with a reset instead of a FIN.
                socket2::SockRef::from(c)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        drop(conns);
        if batch == 9 {
            assert!(eventually(WAIT, || open_fds(pid) <= baseline));
            warm_rss = status_kib(pid, "VmRSS:");
        }
    }
    assert!(
        eventually(WAIT, || open_fds(pid) <= baseline),
        "fds {} vs baseline {baseline}",
        open_fds(pid)
    );
    let rss = status_kib(pid, "VmRSS:");
    assert!(
        rss < warm_rss + 8 * 1024,
        "RSS grew from {warm_rss} KiB to {rss} KiB"
    );
}

#[test]
fn backend_reset_mid_transfer_resets_the_client() {
    let addr = resetting_backend(vec![7u8; 4 * 64 * 1024]);
    let port = free_port();
    let _n = Nvelox::start(&config(port, 1, &[quoted(addr)], ""));
    let mut c = TcpStream::connect_timeout(&lb(port), WAIT).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let err = loop {
        match c.read(&mut buf) {
            Ok(0) => panic!("clean EOF after {got} bytes; a reset must stay a reset"),
            Ok(k) => got += k,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(got > 0, "the reset came before any data was relayed");
}

#[test]
fn a_server_at_its_max_connections_is_skipped_until_one_closes() {
    let a = Backend::start(Mode::NamedEcho("a"));
    let b = Backend::start(Mode::NamedEcho("b"));
    let port = free_port();
    let n = Nvelox::start(&config(
        port,
        2,
        &[
            format!("{{ address: \"{}\", max_connections: 1 }}", a.addr),
            quoted(b.addr),
        ],
        "",
    ));
    let hold = |want: &str| {
        let s = TcpStream::connect_timeout(&lb(port), WAIT).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), want);
        s
    };
    let first = hold("a");
    // a is full: round robin would alternate, but every new client goes to b.
    let held: Vec<TcpStream> = (0..4).map(|_| hold("b")).collect();
    drop(first);
    // Once nvelox has seen the close, a takes clients again.
    assert!(
        eventually(WAIT, || served_by(port) == "a"),
        "{}",
        n.stderr_text()
    );
    drop(held);
}
