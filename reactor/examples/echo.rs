//! TCP and UDP echo on one port (or a range), on a reactor `LoopGroup`.
//!
//! ```text
//! cargo run -p nvelox-reactor --example echo                 # 127.0.0.1:7007
//! cargo run -p nvelox-reactor --example echo -- :7007        # all addresses, v4 + v6
//! cargo run -p nvelox-reactor --example echo -- 127.0.0.1:7000-7009 --loops 2
//! ```
//!
//! With `--loops N` (N > 1) every port gets one `SO_REUSEPORT` socket per
//! loop, so the kernel spreads clients over the loops. Stop it with Ctrl-C.

#[path = "support/args.rs"]
mod args;
#[path = "support/echo_server.rs"]
mod echo_server;

use std::process::ExitCode;
use std::sync::Arc;

use echo_server::{EchoServer, EchoStats};
use reactor::listener::{bind_spec_tcp, bind_spec_udp, BindOptions};
use reactor::{sys, LoopGroup};

fn parse_args() -> Result<args::Args, String> {
    args::parse(
        "usage: echo [ADDR[:PORT[-LAST]]] [--loops N]",
        "127.0.0.1:7007",
        1,
        &[],
    )
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = sys::raise_fd_limit() {
        eprintln!("warning: cannot raise the fd limit: {e}");
    }
    let opts = BindOptions {
        reuseport: args.loops > 1,
        recv_pktinfo: true,
        ..BindOptions::default()
    };
    // One set of sockets per loop (the same ports, shared through SO_REUSEPORT).
    let mut per_loop = Vec::new();
    for _ in 0..args.loops {
        let tcp = match bind_spec_tcp(&args.spec, &opts) {
            Ok(v) => v.into_iter().map(|(_, l)| l).collect(),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        let udp = match bind_spec_udp(&args.spec, &opts) {
            Ok(v) => v.into_iter().map(|(_, s)| s).collect(),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        per_loop.push(Some((tcp, udp)));
    }
    let stats = Arc::new(EchoStats::default());
    let group = LoopGroup::start(args.loops, "echo", |i| {
        let (tcp, udp) = per_loop[i].take().unwrap_or_default();
        EchoServer::new(tcp, udp, Arc::clone(&stats))
    });
    let group = match group {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cannot start event loops: {e}");
            return ExitCode::from(2);
        }
    };
    let host = args.spec.addr(args.spec.first_port).ip();
    let shown = if host.is_unspecified() {
        if host.is_ipv4() {
            "127.0.0.1".to_string()
        } else {
            "::1".to_string()
        }
    } else {
        host.to_string()
    };
    let port = args.spec.first_port;
    println!(
        "echo: TCP + UDP on {} with {} loop(s). Try:",
        args.spec, args.loops
    );
    println!("  nc {shown} {port}          # type a line, it comes back");
    println!("  nc -u {shown} {port}       # same over UDP");
    println!("Ctrl-C to stop.");
    for r in group.join() {
        if let Err(e) = r {
            eprintln!("event loop failed: {e}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
