//! Operations through the real binary: pid file, privilege drop, log
//! reopening, IPv6 and dual-stack binds.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use common::*;

fn echo_yaml(bind: &str, server: SocketAddr, server_extra: &str, logging: &str) -> String {
    format!(
        "server:\n  workers: 1\n  shutdown_timeout: 2s\n{server_extra}logging:\n  level: info\n{logging}\
listeners:\n  - name: l\n    bind: \"{bind}\"\n    default_backend: b\nbackends:\n  - name: b\n    servers: [\"{server}\"]\n"
    )
}

fn roundtrip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(msg).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn pid_file_is_written_at_start_and_removed_at_exit() {
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let mut n = Nvelox::start(&echo_yaml(
        &format!("127.0.0.1:{port}"),
        b.addr,
        "  pid_file: {dir}/nvelox.pid\n",
        "",
    ));
    let pid_path = n.dir.path("nvelox.pid");
    let pid = std::fs::read_to_string(&pid_path).unwrap();
    assert_eq!(pid.trim(), n.pid().to_string());
    n.signal(libc::SIGTERM);
    assert_eq!(n.wait_exit(WAIT), Some(0));
    assert!(!pid_path.exists(), "pid file left behind");
}

#[test]
fn privileges_are_dropped_after_binding_when_root() {
    if !is_root() {
        skip(
            "privileges_are_dropped_after_binding_when_root",
            "needs root",
        );
        return;
    }
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let n = Nvelox::start(&echo_yaml(
        &format!("127.0.0.1:{port}"),
        b.addr,
        "  user: nobody\n  group: nogroup\n",
        "",
    ));
    let status = std::fs::read_to_string(format!("/proc/{}/status", n.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        !uid_line.split_whitespace().skip(1).any(|u| u == "0"),
        "still root: {uid_line}"
    );
    // And it still relays.
    assert_eq!(
        roundtrip(SocketAddr::from(([127, 0, 0, 1], port)), b"hi"),
        b"hi"
    );
}

fn wait_file_contains(path: &std::path::Path, needle: &str) -> String {
    assert!(
        eventually(WAIT, || std::fs::read_to_string(path)
            .is_ok_and(|s| s.contains(needle))),
        "{} never contained {needle:?}: {:?}",
        path.display(),
        std::fs::read_to_string(path)
    );
    std::fs::read_to_string(path).unwrap()
}

/// The standard root start: pid file and logs in folders only root may
/// write, `user: nobody`. Everything is opened before the drop.
#[test]
fn root_start_with_user_nobody_writes_pid_file_and_logs_into_root_only_folders() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        skip(
            "root_start_with_user_nobody_writes_pid_file_and_logs_into_root_only_folders",
            "needs root",
        );
        return;
    }
    if !std::fs::read_to_string("/etc/passwd")
        .is_ok_and(|p| p.lines().any(|l| l.starts_with("nobody:")))
    {
        skip(
            "root_start_with_user_nobody_writes_pid_file_and_logs_into_root_only_folders",
            "needs a user `nobody`",
        );
        return;
    }
    let root_only = TempDir::new("root-only");
    for d in ["run", "log"] {
        let p = root_only.path(d);
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let (pid_path, error_log, access_log) = (
        root_only.path("run/nvelox.pid"),
        root_only.path("log/error.log"),
        root_only.path("log/access.log"),
    );
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let mut n = Nvelox::spawn(&echo_yaml(
        &format!("127.0.0.1:{port}"),
        b.addr,
        &format!("  user: nobody\n  pid_file: {}\n", pid_path.display()),
        &format!(
            "  error_log: {}\n  access_log: {}\n",
            error_log.display(),
            access_log.display()
        ),
    ));
    wait_file_contains(&error_log, "started");
    assert_eq!(
        std::fs::read_to_string(&pid_path).unwrap().trim(),
        n.pid().to_string()
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", n.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        !uid_line.split_whitespace().skip(1).any(|u| u == "0"),
        "still root: {uid_line}"
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(roundtrip(addr, b"hi"), b"hi");
    wait_file_contains(&access_log, "bytes_in=2");

    // SIGUSR1 after rotation: `nobody` cannot create files there, so the
    // reopen fails with a warning and logging goes on into the old files.
    let rotated = root_only.path("log/access.log.1");
    std::fs::rename(&access_log, &rotated).unwrap();
    n.signal(libc::SIGUSR1);
    wait_file_contains(&error_log, "cannot reopen access log");
    wait_file_contains(&error_log, "cannot reopen error log");
    assert_eq!(roundtrip(addr, b"again"), b"again");
    wait_file_contains(&rotated, "bytes_in=5");
    assert!(!access_log.exists());

    n.signal(libc::SIGTERM);
    assert_eq!(n.wait_exit(WAIT), Some(0));
    // Documented: after the drop the pid file cannot be removed from a
    // folder only root may write; it stays and the error log says why.
    let errors = wait_file_contains(&error_log, "stopped");
    assert!(errors.contains("left in place"), "{errors}");
}

#[test]
fn sigusr1_reopens_the_access_log_after_rotation() {
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let n = Nvelox::start(&echo_yaml(
        &format!("127.0.0.1:{port}"),
        b.addr,
        "",
        "  access_log: {dir}/access.log\n",
    ));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = n.dir.path("access.log");
    roundtrip(addr, b"one");
    assert!(eventually(WAIT, || std::fs::read_to_string(&log)
        .is_ok_and(|s| s.contains("bytes_in=3"))));
    std::fs::rename(&log, n.dir.path("access.log.1")).unwrap();
    n.signal(libc::SIGUSR1);
    n.wait_for_line("access log reopened", WAIT);
    roundtrip(addr, b"second");
    assert!(eventually(WAIT, || std::fs::read_to_string(&log)
        .is_ok_and(|s| s.contains("bytes_in=6"))));
    let old = std::fs::read_to_string(n.dir.path("access.log.1")).unwrap();
    assert!(!old.contains("bytes_in=6"), "written to the rotated file");
}

#[test]
fn ipv6_listener_and_server() {
    let l = TcpListener::bind("[::1]:0").unwrap();
    let b = Backend::on(l, Mode::Echo);
    let port = free_port();
    let _n = Nvelox::start(&echo_yaml(&format!("[::1]:{port}"), b.addr, "", ""));
    let addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    assert_eq!(roundtrip(addr, b"over v6"), b"over v6");
}

#[test]
fn colon_port_bind_is_dual_stack() {
    let b = Backend::start(Mode::Echo);
    let port = free_port();
    let n = Nvelox::start(&echo_yaml(
        &format!(":{port}"),
        b.addr,
        "",
        "  access_log: {dir}/access.log\n",
    ));
    assert_eq!(
        roundtrip(SocketAddr::from(([127, 0, 0, 1], port)), b"v4"),
        b"v4"
    );
    assert_eq!(
        roundtrip(format!("[::1]:{port}").parse().unwrap(), b"v6"),
        b"v6"
    );
    // IPv4 clients of a dual-stack socket are logged as IPv4, not ::ffff:.
    let log = n.dir.path("access.log");
    assert!(eventually(WAIT, || std::fs::read_to_string(&log)
        .is_ok_and(|s| s.lines().count() == 2)));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("client=127.0.0.1:") && text.contains("client=[::1]:"),
        "{text}"
    );
}

#[test]
fn check_flag_and_run_agree_on_the_shipped_default() {
    let (code, out, _) = run_bin(&["-c", "conf/nvelox.yaml", "--check"]);
    assert_eq!(code, 0);
    assert_eq!(out, "configuration OK\n");
}

#[test]
fn a_range_beyond_the_fd_limit_exits_2_and_says_to_raise_it() {
    use std::os::unix::process::CommandExt;
    let base = free_port_range(200);
    let yaml = format!(
        "server:\n  workers: 1\nlisteners:\n  - name: big\n    bind: \"127.0.0.1:{base}-{}\"\n    default_backend: b\nbackends:\n  - name: b\n    servers: [\"127.0.0.1:9\"]\n",
        base + 199
    );
    let mut n = Nvelox::spawn_with(&yaml, |cmd| {
        // SAFETY: setrlimit is async-signal-safe and touches no memory of
        // the parent; the closure runs in the child between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 64,
                    rlim_max: 64,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    assert_eq!(n.wait_exit(WAIT), Some(2));
    // The stderr reader thread may still be catching up with the exit.
    n.wait_for_line("file-descriptor limit is 64", WAIT);
}

/// Issue 11, bug 1 from the running side: every duration at the largest
/// value `--check` accepts. Connections, a retry past a dead server (a
/// passive quarantine of the maximum), active probes, a UDP session and
/// the shutdown deadline all compute deadlines from them; none may panic.
#[test]
fn every_duration_at_its_maximum_runs_and_exits_cleanly() {
    let b = Backend::start(Mode::Echo);
    let dead = free_port();
    let (tcp_port, udp_port) = (free_port(), free_port());
    let echo = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let yaml = format!(
        "server:\n  workers: 2\n  shutdown_timeout: 24h\n\
listeners:\n  - {{ name: t, bind: \"127.0.0.1:{tcp_port}\", backend: pool, idle_timeout: 168h }}\n  \
- {{ name: u, bind: \"127.0.0.1:{udp_port}\", protocol: udp, backend: upool, idle_timeout: 168h }}\n\
backends:\n  - name: pool\n    connect_timeout: 24h\n    servers: [\"127.0.0.1:{dead}\", \"{}\"]\n    \
health_check:\n      active: {{ type: tcp, interval: 24h, timeout: 24h }}\n      passive: {{ max_fails: 1, fail_timeout: 24h }}\n  \
- name: upool\n    servers: [\"{echo_addr}\"]\n    health_check:\n      passive: {{ max_fails: 1, fail_timeout: 24h }}\n",
        b.addr
    );
    let (code, out, err) = {
        let dir = TempDir::new("max-check");
        let cfg = dir.path("n.yaml");
        std::fs::write(&cfg, &yaml).unwrap();
        run_bin(&["-c", cfg.to_str().unwrap(), "--check"])
    };
    assert_eq!((code, out.as_str()), (0, "configuration OK\n"), "{err}");
    let mut n = Nvelox::start(&yaml);
    let addr = SocketAddr::from(([127, 0, 0, 1], tcp_port));
    // Round robin meets the dead server too: refused, quarantined, retried.
    for i in 0..4u8 {
        assert_eq!(roundtrip(addr, &[b'a' + i]), [b'a' + i]);
    }
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.send_to(b"dgram", ("127.0.0.1", udp_port)).unwrap();
    let mut buf = [0u8; 64];
    let (len, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"dgram");
    n.signal(libc::SIGTERM);
    assert_eq!(n.wait_exit(WAIT), Some(0), "{}", n.stderr_text());
    assert!(!n.stderr_text().contains("panicked"), "{}", n.stderr_text());
}
