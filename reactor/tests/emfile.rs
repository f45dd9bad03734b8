//! Out of file descriptors: the echo server runs in a child process (this
//! test binary re-executed with an env var) under a low RLIMIT_NOFILE. The
//! parent opens connections until the child stops accepting, checks the
//! child neither exits nor spins (CPU time from /proc/PID/stat), closes
//! connections, and sees the queued and new ones accepted again.

#[path = "../examples/support/echo_server.rs"]
mod echo_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_server::{EchoServer, EchoStats};
use reactor::listener::{bind_tcp, BindOptions};
use reactor::{sys, BindHost, LoopGroup};

const CHILD_ENV: &str = "NVELOX_REACTOR_EMFILE_CHILD";
/// Connections the child can hold once its limit is lowered.
const CHILD_CONN_ROOM: u64 = 16;

/// The child's body; does nothing unless started by the parent test.
#[test]
#[ignore = "helper process for out_of_fds_pauses_accept_without_spinning_and_recovers"]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let host = BindHost::Ip("127.0.0.1".parse().unwrap());
    let l = bind_tcp(
        "127.0.0.1:0".parse().unwrap(),
        host,
        &BindOptions::default(),
    )
    .unwrap();
    let port = l.local_addr().unwrap().port();
    let mut l = Some(l);
    let stats = Arc::new(EchoStats::default());
    let group = LoopGroup::start(1, "emfile", |_| {
        EchoServer::new(
            l.take().into_iter().collect(),
            Vec::new(),
            Arc::clone(&stats),
        )
    })
    .unwrap();
    // Lowering the soft limit is always allowed; leave room for a few connections.
    let soft = sys::open_fds() as u64 + CHILD_CONN_ROOM;
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: sys::raise_fd_limit().unwrap().1,
    };
    // SAFETY: `lim` is a valid rlimit for the duration of the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    println!("PORT {port}");
    std::io::stdout().flush().unwrap();
    // Run until the parent closes our stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    assert!(group.stop().iter().all(|r| r.is_ok()));
    println!("STOPPED");
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Writes one byte and expects it back within `wait`.
fn echoes(c: &mut TcpStream, byte: u8, wait: Duration) -> bool {
    c.set_read_timeout(Some(wait)).unwrap();
    c.write_all(&[byte]).unwrap();
    let mut b = [0u8; 1];
    match c.read(&mut b) {
        Ok(1) => {
            assert_eq!(b[0], byte);
            true
        }
        _ => false,
    }
}

/// Reads back `byte` within `wait` (written before by [`echoes`]).
fn echoed_late(c: &mut TcpStream, byte: u8, wait: Duration) -> bool {
    c.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    matches!(c.read(&mut b), Ok(1) if b[0] == byte)
}

/// Whether `pid` holds as many descriptors as its soft RLIMIT_NOFILE.
fn at_fd_limit(pid: u32) -> bool {
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()) as u64;
    let soft = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse::<u64>()
                .ok()
        });
    soft.is_some_and(|soft| open >= soft)
}

/// Never leave the child behind when an assertion fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn out_of_fds_pauses_accept_without_spinning_and_recovers() {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "emfile_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut child = KillOnDrop(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        // The harness prints "test emfile_child ... " without a newline first.
        if let Some(at) = line.find("PORT ") {
            break line[at + 5..].trim().parse().unwrap();
        }
    };

    // Open connections until one is not served: the child ran out of fds.
    let mut served = Vec::new();
    let mut stalled = None;
    for i in 0..(CHILD_CONN_ROOM as usize * 4) {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Not served within 2 s: stalled if the child is out of fds; else
        // only slow (a loaded machine), so wait on.
        if echoes(&mut c, i as u8, Duration::from_secs(2))
            || (!at_fd_limit(pid) && echoed_late(&mut c, i as u8, Duration::from_secs(10)))
        {
            served.push(c);
        } else {
            stalled = Some(c);
            break;
        }
    }
    let mut stalled = stalled.expect("the child never ran out of fds");
    // Roughly the room the child left itself (the harness may hold an fd or two).
    assert!(
        served.len() >= CHILD_CONN_ROOM as usize / 2
            && served.len() <= CHILD_CONN_ROOM as usize + 2,
        "{}",
        served.len()
    );

    // Paused, not spinning, not dead: about 1 s of wall time, little CPU.
    let before = cpu_ticks(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(pid) - before;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let wall_ticks = t0.elapsed().as_millis() as u64 * hz / 1000;
    assert!(
        spent * 5 < wall_ticks,
        "child used {spent} of {wall_ticks} ticks: spinning"
    );
    assert!(child.0.try_wait().unwrap().is_none(), "child exited");

    // Free fds in the child: the queued connection is accepted on the next
    // retry, and new connections work again.
    drop(served);
    let mut b = [0u8; 1];
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stalled
        .read_exact(&mut b)
        .expect("queued connection served after fds freed");
    let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(echoes(&mut fresh, 42, Duration::from_secs(10)));
    drop(fresh);
    drop(stalled);

    // Clean shutdown when the parent lets go.
    drop(child.0.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            panic!("child did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    assert!(status.success(), "child failed: {status}");
    assert!(rest.contains("STOPPED"), "{rest}");
}
