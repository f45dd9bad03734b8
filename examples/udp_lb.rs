//! UDP load balancing in one command: two UDP echo backends on
//! 127.0.0.1:9053 and :9054, and the real `nvelox` binary balancing
//! `0.0.0.0:8053` over them.
//!
//! ```text
//! cargo run --example udp_lb
//! echo hi | nc -u -w1 127.0.0.1 8053
//! ```
//!
//! Each backend answers with its port in front of what it received, so
//! you can see which server a session landed on. A session is one client
//! address: the same `nc` socket keeps its server; a new one goes to the
//! next server (round-robin); a session ends after 10 s without traffic.
//! Ctrl-C stops everything.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread;

const BACKENDS: [u16; 2] = [9053, 9054];
const LISTEN: u16 = 8053;

fn echo_backend(port: u16) -> std::io::Result<()> {
    let sock = UdpSocket::bind(("127.0.0.1", port))?;
    thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let mut reply = format!("[backend {port}] ").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = sock.send_to(&reply, from);
        }
    });
    Ok(())
}

/// `target/<profile>/nvelox`, next to `target/<profile>/examples/udp_lb`.
fn binary_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("nvelox"))
}

/// `cargo run --example` does not build the binary: (re)build it, so the
/// demo never runs a stale one. Run directly (no `CARGO` in the
/// environment), an existing binary is used as is.
fn ensure_binary(bin: &Path) -> Result<(), String> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return if bin.exists() {
            Ok(())
        } else {
            Err(format!(
                "{} is missing; run `cargo build` first",
                bin.display()
            ))
        };
    };
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--bin", "nvelox"]);
    if bin.parent().and_then(Path::file_name) == Some("release".as_ref()) {
        cmd.arg("--release");
    }
    match cmd.status() {
        Ok(s) if s.success() && bin.exists() => Ok(()),
        Ok(s) => Err(format!("building nvelox failed: {s}")),
        Err(e) => Err(format!("cannot run cargo to build nvelox: {e}")),
    }
}

fn config(access_log: &Path) -> String {
    let servers: Vec<String> = BACKENDS
        .iter()
        .map(|p| format!("      - \"127.0.0.1:{p}\""))
        .collect();
    format!(
        "server:\n  workers: 2\nlogging:\n  level: info\n  access_log: {}\n\
listeners:\n  - name: udp_demo\n    bind: \"0.0.0.0:{LISTEN}\"\n    protocol: udp\n    default_backend: echo\n    idle_timeout: 10s\n\
backends:\n  - name: echo\n    balance: roundrobin\n    servers:\n{}\n",
        access_log.display(),
        servers.join("\n")
    )
}

fn main() -> ExitCode {
    let Some(bin) = binary_path() else {
        eprintln!("cannot locate the target directory");
        return ExitCode::FAILURE;
    };
    if let Err(e) = ensure_binary(&bin) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    for port in BACKENDS {
        if let Err(e) = echo_backend(port) {
            eprintln!("cannot start the echo backend on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let dir = std::env::temp_dir().join(format!("nvelox-udp-lb-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let cfg = dir.join("udp.yaml");
    let access = dir.join("access.log");
    if let Err(e) = std::fs::write(&cfg, config(&access)) {
        eprintln!("cannot write {}: {e}", cfg.display());
        return ExitCode::FAILURE;
    }
    let mut child = match Command::new(&bin).arg("-c").arg(&cfg).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {}: {e}", bin.display());
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C goes to the whole process group: nvelox shuts down on it and
    // this process waits for that, then cleans up. Ignoring it only after
    // the spawn keeps the default disposition in the child.
    // SAFETY: setting a signal disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    println!(
        "\nUDP echo backends on 127.0.0.1:{} and 127.0.0.1:{}; nvelox balances 0.0.0.0:{LISTEN} over them\n\
config: {}\naccess log (one line per ended session): {}\n\n\
try:\n  echo hi | nc -u -w1 127.0.0.1 {LISTEN}      # one session; run it again: the next server\n  \
nc -u 127.0.0.1 {LISTEN}                  # type lines: one session stays on one server\n  \
echo hi | nc -u -w1 127.0.0.2 {LISTEN}      # the reply comes from 127.0.0.2, the address you reached\n\n\
Ctrl-C stops everything.\n",
        BACKENDS[0],
        BACKENDS[1],
        cfg.display(),
        access.display()
    );
    let status = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("nvelox exited with {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("waiting for nvelox: {e}");
            ExitCode::FAILURE
        }
    }
}
