//! In one wake-up, nvelox's HTTP mode reads every ready socket before it
//! sends anything (the order HAProxy uses): one wake-up of a peer then
//! serves several sends. Seen with strace on the real binary: two clients
//! send a request while nvelox is stopped, so that both arrive in one
//! `epoll_wait`.

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use origin::*;

/// Whether every thread of `pid` has a tracer.
fn traced(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let tracer = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map(|v| v.trim().to_string());
        if tracer.as_deref().unwrap_or("0") == "0" {
            return false;
        }
        any = true;
    }
    any
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn the_reads_of_a_wake_up_come_before_its_writes() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIP: strace not installed");
        return;
    }
    let a = Origin::named("a");
    let (n, port) = start_http(&[&a], "", "");
    let (mut c1, mut c2) = (Client::connect(port), Client::connect(port));
    // Both clients accepted and two server connections pooled.
    assert_eq!(c1.get("/").status, 200);
    assert_eq!(c2.get("/").status, 200);
    let pid = n.pid();
    signal(pid, "-STOP");
    let out = n.dir.path("strace.txt");
    let mut st = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=recvfrom,sendto", "-s", "8", "-o"])
        .arg(&out)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !traced(pid) && Instant::now() < deadline && st.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !traced(pid) {
        let _ = st.kill();
        let _ = st.wait();
        signal(pid, "-CONT");
        eprintln!("SKIP: strace cannot attach here");
        return;
    }
    c1.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
    c2.send(b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
    signal(pid, "-CONT");
    assert_eq!(c1.response().status, 200);
    assert_eq!(c2.response().status, 200);
    signal(st.id(), "-INT");
    let _ = st.wait();
    let text = std::fs::read_to_string(&out).unwrap();
    // The calls moving the two requests: reads from the clients, then
    // writes to the servers.
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"GET /"))
        .filter_map(|l| ["recvfrom(", "sendto("].into_iter().find(|c| l.contains(c)))
        .collect();
    assert_eq!(
        calls,
        ["recvfrom(", "recvfrom(", "sendto(", "sendto("],
        "{text}"
    );
}
