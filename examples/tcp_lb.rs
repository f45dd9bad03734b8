//! Runs the real `nvelox` binary on the shipped default configuration
//! (`conf/nvelox.yaml`) against echo backends it starts itself:
//! TCP 127.0.0.1:9001 and :9002, UDP 127.0.0.1:9053 and :9054.
//!
//! ```text
//! cargo run --release --example tcp_lb [-- CONFIG]
//! ```
//!
//! Then try `nc 127.0.0.1 8080` (type a line: it comes back from backend
//! 9001, the next connection from 9002) or `echo hi | nc -u -w1 127.0.0.1 8053`.
//! Ctrl-C stops both.

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::thread;

fn tcp_echo(port: u16) -> std::io::Result<()> {
    let l = TcpListener::bind(("127.0.0.1", port))?;
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || {
                let mut s = s;
                let _ = s.write_all(format!("hello from backend {port}\n").as_bytes());
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(())
}

fn udp_echo(port: u16) -> std::io::Result<()> {
    let s = UdpSocket::bind(("127.0.0.1", port))?;
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
    Ok(())
}

/// The `nvelox` binary of the same profile, (re)built first.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target/<profile>");
    let bin = profile_dir.join("nvelox");
    let release = profile_dir.ends_with("release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--bin", "nvelox"]);
    if release {
        build.arg("--release");
    }
    match build.status() {
        Ok(st) if st.success() => {}
        _ if bin.exists() => {
            eprintln!("warning: could not rebuild nvelox; using {}", bin.display())
        }
        _ => {
            eprintln!("cannot build the nvelox binary");
            std::process::exit(2);
        }
    }
    bin
}

fn main() {
    let config = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "conf/nvelox.yaml".into());
    for port in [9001, 9002] {
        if let Err(e) = tcp_echo(port) {
            eprintln!("cannot start TCP echo backend on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    }
    for port in [9053, 9054] {
        if let Err(e) = udp_echo(port) {
            eprintln!("cannot start UDP echo backend on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    }
    let bin = binary();
    println!("echo backends: tcp 127.0.0.1:9001 :9002, udp 127.0.0.1:9053 :9054");
    println!("running: {} -c {config}", bin.display());
    println!(
        "try:     nc 127.0.0.1 8080            (each new connection greets from the next backend)"
    );
    println!("         echo hi | nc -u -w1 127.0.0.1 8053");
    println!("stop:    Ctrl-C");
    let mut cmd = Command::new(bin);
    cmd.args(["-c", &config]);
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl(2), which is async-signal-safe; it touches no memory of
    // the parent.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            // The balancer goes away with this demo, however it ends.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    match cmd.status() {
        Ok(st) => std::process::exit(st.code().unwrap_or(0)),
        Err(e) => {
            eprintln!("cannot run nvelox: {e}");
            std::process::exit(2);
        }
    }
}
