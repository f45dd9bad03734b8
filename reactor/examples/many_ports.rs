//! Binds a range of TCP ports (default `127.0.0.1:20000-29999`, 10,000
//! ports), spreads the listeners over the loops of a `LoopGroup` (one socket
//! per port whatever the loop count), echoes on every port, and prints how
//! long it took to be ready, how many fds it holds and its RSS.
//!
//! ```text
//! cargo run -p nvelox-reactor --example many_ports
//! cargo run -p nvelox-reactor --example many_ports -- 127.0.0.1:30000-30099 --loops 4
//! cargo run -p nvelox-reactor --example many_ports -- --exit-after-ready   # for benchmarks
//! ```

#[path = "support/args.rs"]
mod args;
#[path = "support/echo_server.rs"]
mod echo_server;

use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use echo_server::{EchoServer, EchoStats};
use reactor::group::assign;
use reactor::listener::{bind_spec_tcp, BindOptions};
use reactor::{sys, LoopGroup};

const EXIT_AFTER_READY: &str = "--exit-after-ready";

fn parse_args() -> Result<args::Args, String> {
    args::parse(
        "usage: many_ports [ADDR:FIRST-LAST] [--loops N] [--exit-after-ready]",
        "127.0.0.1:20000-29999",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        &[EXIT_AFTER_READY],
    )
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("unknown".into(), |b| {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let t0 = Instant::now();
    let fds_before = sys::open_fds();
    let rss_before = sys::rss_bytes();
    let limit = match sys::raise_fd_limit() {
        Ok((soft, _)) => soft,
        Err(_) => sys::fd_limit(),
    };
    let need = args.spec.port_count() as u64 + 64;
    if limit < need {
        eprintln!(
            "fd limit {limit} is too low for {} ports (need about {need}); raise it with ulimit -n",
            args.spec.port_count()
        );
        return ExitCode::from(2);
    }
    let listeners = match bind_spec_tcp(&args.spec, &BindOptions::default()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let bound = t0.elapsed();
    let mut per_loop: Vec<Vec<_>> = (0..args.loops).map(|_| Vec::new()).collect();
    for (i, (_, l)) in listeners.into_iter().enumerate() {
        per_loop[assign(i, args.loops)].push(l);
    }
    let stats = Arc::new(EchoStats::default());
    let (tx, rx) = mpsc::channel();
    let group = LoopGroup::start(args.loops, "ports", |i| {
        let ls = std::mem::take(&mut per_loop[i]);
        EchoServer::new(ls, Vec::new(), Arc::clone(&stats)).with_started_signal(tx.clone())
    });
    let group = match group {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cannot start event loops: {e}");
            return ExitCode::from(2);
        }
    };
    for _ in 0..args.loops {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            eprintln!("event loops did not start");
            return ExitCode::from(2);
        }
    }
    let ready = t0.elapsed();
    let fds = sys::open_fds();
    println!(
        "ready: {} TCP ports {} on {} loop(s): bound in {:.1} ms, ready in {:.1} ms",
        args.spec.port_count(),
        args.spec,
        args.loops,
        bound.as_secs_f64() * 1e3,
        ready.as_secs_f64() * 1e3
    );
    println!(
        "fds open: {fds} ({} for listeners and loops; fd limit {limit})",
        fds.saturating_sub(fds_before)
    );
    println!(
        "RSS: {} (was {} before binding)",
        mib(sys::rss_bytes()),
        mib(rss_before)
    );
    if args.flags.contains(&EXIT_AFTER_READY) {
        let failed = group.stop().into_iter().any(|r| r.is_err());
        return if failed {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let host = args.spec.addr(args.spec.first_port).ip();
    println!(
        "every port echoes, try: nc {} {}   (Ctrl-C to stop)",
        if host.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            host.to_string()
        },
        args.spec.last_port
    );
    for r in group.join() {
        if let Err(e) = r {
            eprintln!("event loop failed: {e}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
