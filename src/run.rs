//! Run mode: bind every listener, drop privileges, start the event loops,
//! and turn signals into actions until shutdown. Returns the exit code.
//!
//! Signals are blocked in every thread and taken synchronously by the main
//! thread with `sigtimedwait`, so no handler runs in an async-signal context
//! and the loops only ever hear about them through their mailboxes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use reactor::group::assign;
use reactor::listener::{bind_spec_tcp, bind_spec_udp, BindOptions};
use reactor::LoopGroup;

use crate::config::{Plan, Protocol};
use crate::logging;
use crate::runtime::Runtime;
use crate::tcp::TcpListenerSock;
use crate::udp::UdpListenerSock;
use crate::worker::{Msg, Worker};

pub const EXIT_OK: i32 = 0;
pub const EXIT_STARTUP: i32 = 2;

/// Runs the balancer until SIGTERM/SIGINT. `config_path` is kept for reload.
pub fn run(plan: Plan, config_path: &Path) -> i32 {
    // Before any thread exists (the access-log writer is the first): every
    // thread inherits the mask, so these signals only ever reach sigtimedwait.
    if let Err(e) = handled_signals().thread_block() {
        eprintln!("nvelox: cannot block signals: {e}");
        return EXIT_STARTUP;
    }
    let logs = match logging::init(&plan.logging) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("nvelox: {e}");
            return EXIT_STARTUP;
        }
    };
    let code = run_with_logs(plan, config_path, &logs);
    logs.finish();
    code
}

fn startup_error(msg: String) -> i32 {
    log::error!("{msg}");
    EXIT_STARTUP
}

fn run_with_logs(plan: Plan, config_path: &Path, logs: &logging::Logs) -> i32 {
    for w in &plan.warnings {
        log::warn!("{w}");
    }
    match reactor::sys::raise_fd_limit() {
        Ok((soft, hard)) => log::debug!("file descriptor limit {soft} (hard {hard})"),
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }
    let signals = handled_signals();

    let workers = plan.server.workers.max(1);
    let mut tcp: Vec<Vec<TcpListenerSock>> = (0..workers).map(|_| Vec::new()).collect();
    let mut udp: Vec<Vec<UdpListenerSock>> = (0..workers).map(|_| Vec::new()).collect();
    let mut next = 0usize;
    let mut sockets = 0usize;
    for (li, l) in plan.listeners.iter().enumerate() {
        if l.protocol == Protocol::Udp {
            if let Err(f) = bind_udp_listener(li, l, workers, &mut next, &mut sockets, &mut udp) {
                return startup_error(f);
            }
            continue;
        }
        let opts = BindOptions {
            reuseport: l.reuseport,
            ..BindOptions::default()
        };
        let copies = if l.reuseport { workers } else { 1 };
        for copy in 0..copies {
            let bound = match bind_spec_tcp(&l.bind, &opts) {
                Ok(b) => b,
                Err(f) => return startup_error(format!("listener {} ({}): {f}", l.name, l.bind)),
            };
            for (port, sock) in bound {
                let w = if l.reuseport {
                    copy
                } else {
                    assign(next, workers)
                };
                next += usize::from(!l.reuseport);
                sockets += 1;
                tcp[w].push(TcpListenerSock {
                    plan: li,
                    port,
                    sock,
                });
            }
        }
    }

    if let Err(e) = drop_privileges(plan.server.user.as_deref(), plan.server.group.as_deref()) {
        return startup_error(e);
    }
    let pid_file = plan.server.pid_file.clone();
    if let Some(p) = &pid_file {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            return startup_error(format!("cannot write pid_file {}: {e}", p.display()));
        }
    }
    let code = serve(plan, config_path, logs, tcp, udp, sockets, &signals);
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    code
}

fn serve(
    plan: Plan,
    _config_path: &Path,
    logs: &logging::Logs,
    mut tcp: Vec<Vec<TcpListenerSock>>,
    mut udp: Vec<Vec<UdpListenerSock>>,
    sockets: usize,
    signals: &SigSet,
) -> i32 {
    let workers = tcp.len();
    let shutdown_timeout = plan.server.shutdown_timeout;
    let listeners = plan.listeners.len();
    let rt = Arc::new(Runtime::new(plan));
    let access = logs.access.clone();
    let group = match LoopGroup::start(workers, "nvelox", |i| {
        Worker::new(
            Arc::clone(&rt),
            access.clone(),
            std::mem::take(&mut tcp[i]),
            std::mem::take(&mut udp[i]),
        )
    }) {
        Ok(g) => g,
        Err(e) => return startup_error(format!("cannot start event loops: {e}")),
    };
    log::info!(
        "nvelox {} started: {listeners} listeners, {sockets} sockets, {workers} event loops",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        match wait_signal(signals, Duration::from_millis(500)) {
            Some(Signal::SIGTERM) | Some(Signal::SIGINT) => break,
            Some(Signal::SIGHUP) => {
                log::warn!("SIGHUP: configuration reload is not supported yet; keeping the running configuration")
            }
            Some(Signal::SIGUSR1) => logs.reopen(),
            _ => {}
        }
        if group.all_finished() {
            log::error!("every event loop stopped unexpectedly");
            let _ = group.join();
            return EXIT_STARTUP;
        }
    }
    let open = rt.active.load(std::sync::atomic::Ordering::Acquire);
    log::info!(
        "shutting down: no new connections; waiting up to {}s for {open} open connections",
        shutdown_timeout.as_secs_f64()
    );
    group.broadcast(Msg::Shutdown {
        deadline: Instant::now() + shutdown_timeout,
    });
    let results = group.join();
    let mut code = EXIT_OK;
    for r in results {
        if let Err(e) = r {
            log::error!("event loop failed: {e}");
            code = EXIT_STARTUP;
        }
    }
    log::info!("stopped");
    code
}

/// Binds a UDP listener with PKTINFO (replies leave from the address the
/// client reached): one socket per port spread over the loops, or with
/// `reuseport` one socket per port per loop.
fn bind_udp_listener(
    li: usize,
    l: &crate::config::ListenerPlan,
    workers: usize,
    next: &mut usize,
    sockets: &mut usize,
    udp: &mut [Vec<UdpListenerSock>],
) -> Result<(), String> {
    let opts = BindOptions {
        reuseport: l.reuseport,
        recv_pktinfo: true,
        ..BindOptions::default()
    };
    let copies = if l.reuseport { workers } else { 1 };
    for copy in 0..copies {
        let bound = bind_spec_udp(&l.bind, &opts)
            .map_err(|f| format!("listener {} ({}): {f}", l.name, l.bind))?;
        for (port, sock) in bound {
            let w = if l.reuseport {
                copy
            } else {
                assign(*next, workers)
            };
            *next += usize::from(!l.reuseport);
            *sockets += 1;
            udp[w].push(UdpListenerSock {
                plan: li,
                port,
                sock,
            });
        }
    }
    Ok(())
}

fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        s.add(sig);
    }
    s
}

fn wait_signal(set: &SigSet, timeout: Duration) -> Option<Signal> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` is a valid, initialised sigset_t borrowed for the call;
    // a null siginfo pointer is allowed; `ts` lives across the call.
    let n = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    if n <= 0 {
        return None;
    }
    Signal::try_from(n).ok()
}

/// setgid/setgroups/setuid to the configured user and group, when root.
fn drop_privileges(user: Option<&str>, group: Option<&str>) -> Result<(), String> {
    use nix::unistd::{setgid, setgroups, setuid, Group, Uid, User};
    if user.is_none() && group.is_none() {
        return Ok(());
    }
    if !Uid::effective().is_root() {
        log::warn!(
            "server.user/server.group set but not started as root; keeping the current user"
        );
        return Ok(());
    }
    let u = match user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(|e| format!("server.user {name:?}: {e}"))?
                .ok_or_else(|| format!("server.user {name:?}: no such user"))?,
        ),
        None => None,
    };
    let gid = match group {
        Some(name) => Some(
            Group::from_name(name)
                .map_err(|e| format!("server.group {name:?}: {e}"))?
                .ok_or_else(|| format!("server.group {name:?}: no such group"))?
                .gid,
        ),
        None => u.as_ref().map(|u| u.gid),
    };
    if let Some(gid) = gid {
        setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
        setgid(gid).map_err(|e| format!("setgid({gid}): {e}"))?;
    }
    if let Some(u) = &u {
        setuid(u.uid).map_err(|e| format!("setuid({}): {e}", u.uid))?;
    }
    log::info!(
        "dropped privileges to user {:?} group {:?}",
        user.unwrap_or("-"),
        group.unwrap_or("-")
    );
    Ok(())
}

/// For `--check`-style callers that only need the path type.
pub fn default_config_path() -> PathBuf {
    PathBuf::from("conf/nvelox.yaml")
}
