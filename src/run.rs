//! Run mode: bind every listener, drop privileges, start the event loops,
//! and turn signals into actions until shutdown. Returns the exit code.
//!
//! Signals are blocked in every thread and taken synchronously by the main
//! thread with `sigtimedwait`, so no handler runs in an async-signal context
//! and the loops only ever hear about them through their mailboxes.

mod privileges;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use reactor::group::assign;
use reactor::listener::{bind_spec_tcp, bind_spec_udp, BindFailure, BindOptions};
use reactor::LoopGroup;

use crate::admin::api::Roles;
use crate::admin::AdminSock;
use crate::config::{ListenerId, Plan, Protocol};
use crate::logging;
use crate::reload;
use crate::runtime::Runtime;
use crate::tcp::TcpListenerSock;
use crate::udp::UdpListenerSock;
use crate::worker::{Msg, Worker};
use privileges::{drop_privileges, PidFile, PidFileError, PrivilegeError};

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

/// Why the balancer could not start (exit code 2).
#[derive(Debug)]
enum StartError {
    Bind(BindError),
    PidFile(PidFileError),
    Privileges(PrivilegeError),
    EventLoops(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind(e) => e.fmt(f),
            StartError::PidFile(e) => e.fmt(f),
            StartError::Privileges(e) => e.fmt(f),
            StartError::EventLoops(e) => write!(f, "cannot start event loops: {e}"),
        }
    }
}

/// A listener could not be bound; says what to do about the usual causes.
#[derive(Debug)]
struct BindError {
    listener: String,
    bind: String,
    failure: BindFailure,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "listener {} ({}): {}",
            self.listener, self.bind, self.failure
        )?;
        match self.failure.error.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => write!(
                f,
                " (the file-descriptor limit is {}; a port range needs one per port: raise it with `ulimit -n` or LimitNOFILE)",
                reactor::sys::fd_limit()
            ),
            Some(libc::EACCES) => {
                f.write_str(" (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
            }
            Some(libc::EADDRINUSE) => {
                f.write_str(" (another process, or another listener of this file, holds it)")
            }
            _ => Ok(()),
        }
    }
}

fn startup_error(e: StartError) -> i32 {
    log::error!("{e}");
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
    let all: Vec<ListenerId> = plan.listener_ids().map(|(id, _)| id).collect();
    let mut next = 0usize;
    let Bound { tcp, udp, sockets } = match bind_listeners(&plan, &all, workers, &mut next) {
        Ok(b) => b,
        Err(e) => return startup_error(StartError::Bind(e)),
    };
    let admin = match bind_admin(&plan) {
        Ok(a) => a,
        Err(e) => return startup_error(StartError::Bind(e)),
    };

    // While still root (the logs are already open): the pid file's folder
    // is usually root's (/run).
    let pid_file = match plan.server.pid_file.as_deref().map(PidFile::write) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => return startup_error(StartError::PidFile(e)),
    };
    if let Err(e) = drop_privileges(plan.server.user.as_deref(), plan.server.group.as_deref()) {
        if let Some(p) = pid_file {
            p.remove();
        }
        return startup_error(StartError::Privileges(e));
    }
    let code = serve(
        plan,
        config_path,
        logs,
        Bound { tcp, udp, sockets },
        admin,
        next,
        &signals,
    );
    if let Some(p) = pid_file {
        p.remove();
    }
    code
}

fn serve(
    plan: Plan,
    config_path: &Path,
    logs: &logging::Logs,
    bound: Bound,
    admin: Vec<AdminSock>,
    mut next: usize,
    signals: &SigSet,
) -> i32 {
    let mut admin = Some(admin);
    let Bound {
        mut tcp,
        mut udp,
        sockets,
    } = bound;
    let workers = tcp.len();
    let shutdown_timeout = plan.server.shutdown_timeout;
    let listeners = plan.listeners.len();
    let mut rt = Arc::new(Runtime::new(plan));
    let access = logs.access.clone();
    let loop_stats = Arc::clone(&rt.loop_stats);
    let group = match LoopGroup::start_with_stats(workers, "nvelox", &loop_stats, |i| {
        Worker::new(
            Arc::clone(&rt),
            access.clone(),
            std::mem::take(&mut tcp[i]),
            std::mem::take(&mut udp[i]),
            // The admin/metrics server runs on loop 0.
            if i == 0 {
                admin.take().unwrap_or_default()
            } else {
                Vec::new()
            },
        )
    }) {
        Ok(g) => g,
        Err(e) => return startup_error(StartError::EventLoops(e)),
    };
    log::info!(
        "nvelox {} started: {listeners} listeners, {sockets} sockets, {workers} event loops",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        match wait_signal(signals, Duration::from_millis(500)) {
            Some(Signal::SIGTERM) | Some(Signal::SIGINT) => break,
            Some(Signal::SIGHUP) => {
                let reloaded = reload(&rt, config_path, &group, &mut next);
                crate::metrics::count_reload(reloaded.is_some());
                if let Some(new) = reloaded {
                    rt = new;
                }
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
    let deadline = crate::clock::after(Instant::now(), shutdown_timeout);
    for s in group.senders() {
        let _ = s.send(Msg::Shutdown { deadline });
    }
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

/// The metrics and admin sockets: one when both share a bind.
fn bind_admin(plan: &Plan) -> Result<Vec<AdminSock>, BindError> {
    let mut wanted: Vec<(std::net::SocketAddr, Roles, &str)> = Vec::new();
    if let Some(m) = &plan.metrics {
        wanted.push((
            m.bind,
            Roles {
                metrics: true,
                admin: false,
                bind_is_loopback: m.bind.ip().is_loopback(),
            },
            "metrics",
        ));
    }
    if let Some(a) = &plan.admin {
        match wanted.iter_mut().find(|(b, _, _)| *b == a.bind) {
            Some((_, roles, name)) => {
                roles.admin = true;
                *name = "metrics+admin";
            }
            None => wanted.push((
                a.bind,
                Roles {
                    metrics: false,
                    admin: true,
                    bind_is_loopback: a.bind.ip().is_loopback(),
                },
                "admin",
            )),
        }
    }
    let mut out = Vec::new();
    for (addr, roles, name) in wanted {
        let bound = bind_admin_socket(addr);
        match bound {
            Ok(l) => {
                log::info!("{name} listening on http://{addr}");
                out.push(AdminSock {
                    sock: mio::net::TcpListener::from_std(l),
                    roles,
                });
            }
            Err(error) => {
                return Err(BindError {
                    listener: name.to_string(),
                    bind: addr.to_string(),
                    failure: BindFailure { addr, error },
                })
            }
        }
    }
    Ok(out)
}

/// Backlog of an admin/metrics socket: a burst of scrapes (or a page
/// opened in many tabs) waits in the kernel instead of being refused.
const ADMIN_BACKLOG: i32 = 4096;

fn bind_admin_socket(addr: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(ADMIN_BACKLOG)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// Listening sockets, per event loop.
struct Bound {
    tcp: Vec<Vec<TcpListenerSock>>,
    udp: Vec<Vec<UdpListenerSock>>,
    sockets: usize,
}

/// Binds the listeners `which` of `plan`, spreading plain sockets over the
/// loops round-robin from `*next` and giving `reuseport` ones a socket per
/// loop. All or nothing: on failure every socket bound here is closed.
fn bind_listeners(
    plan: &Plan,
    which: &[ListenerId],
    workers: usize,
    next: &mut usize,
) -> Result<Bound, BindError> {
    let mut tcp: Vec<Vec<TcpListenerSock>> = (0..workers).map(|_| Vec::new()).collect();
    let mut udp: Vec<Vec<UdpListenerSock>> = (0..workers).map(|_| Vec::new()).collect();
    let mut sockets = 0usize;
    for &li in which {
        let l = plan.listener(li);
        if l.socket_of.is_some() {
            // A virtual host: served on its group's first listener's socket.
            continue;
        }
        let opts = BindOptions {
            reuseport: l.reuseport,
            recv_pktinfo: l.protocol == Protocol::Udp,
            ..BindOptions::default()
        };
        match l.protocol {
            Protocol::Tcp | Protocol::Http => spread(
                l,
                workers,
                next,
                &mut sockets,
                &mut tcp,
                || bind_spec_tcp(&l.bind, &opts),
                |port, sock| TcpListenerSock {
                    plan: li,
                    port,
                    sock,
                },
            )?,
            Protocol::Udp => spread(
                l,
                workers,
                next,
                &mut sockets,
                &mut udp,
                || bind_spec_udp(&l.bind, &opts),
                |port, sock| UdpListenerSock {
                    plan: li,
                    port,
                    sock,
                },
            )?,
        }
    }
    Ok(Bound { tcp, udp, sockets })
}

/// SIGHUP: loads and validates the configuration again. An invalid file is
/// logged and changes nothing. Otherwise listeners with the same socket are
/// kept (with their connections), dropped ones are closed, new ones bound,
/// and new connections use the new plan; open connections and UDP sessions
/// finish under the configuration they started with. Returns the new runtime.
fn reload(
    rt: &Arc<Runtime>,
    config_path: &Path,
    group: &LoopGroup<Msg>,
    next: &mut usize,
) -> Option<Arc<Runtime>> {
    log::info!("SIGHUP: reloading {}", config_path.display());
    let mut plan = match crate::config::load(config_path) {
        Ok(p) => p,
        Err(errors) => {
            log::error!(
                "reload refused, the running configuration stays in force; {} is invalid:\n{errors}",
                config_path.display()
            );
            return None;
        }
    };
    if plan.listeners.is_empty() && !rt.plan.listeners.is_empty() {
        // Valid YAML, nothing in it: most likely a file caught while it is
        // rewritten (truncated, not yet written). Applying it would close
        // every listener.
        log::error!(
            "reload refused, the running configuration stays in force; {} has no listeners (an empty or partly written file?); to stop serving, stop nvelox",
            config_path.display()
        );
        return None;
    }
    for w in &plan.warnings {
        log::warn!("{w}");
    }
    for note in reload::keep_restart_only_settings(&rt.plan, &mut plan) {
        log::warn!("reload: {note}");
    }
    log::set_max_level(plan.logging.level);
    let keep = reload::keep_map(&rt.plan, &plan);
    let added = reload::added(&plan, &keep);
    let removed = keep.iter().filter(|k| k.is_none()).count();
    let keep = Arc::new(keep);
    // Phase 1: free the ports of removed listeners before binding new ones.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut waiting = 0;
    for s in group.senders() {
        let msg = Msg::CloseRemoved {
            keep: Arc::clone(&keep),
            done: tx.clone(),
        };
        waiting += usize::from(s.send(msg).is_ok());
    }
    for _ in 0..waiting {
        if rx.recv_timeout(Duration::from_secs(5)).is_err() {
            log::warn!("reload: an event loop did not confirm closing its listeners");
            break;
        }
    }
    let workers = group.len();
    let mut bound = match bind_listeners(&plan, &added, workers, next) {
        Ok(b) => b,
        Err(e) => {
            log::error!(
                "reload: {e}; the new listeners are not started, everything else is applied"
            );
            Bound {
                tcp: (0..workers).map(|_| Vec::new()).collect(),
                udp: (0..workers).map(|_| Vec::new()).collect(),
                sockets: 0,
            }
        }
    };
    let new_rt = Arc::new(Runtime::reloaded(plan, rt, &keep));
    // Phase 2: every loop switches; "configuration reloaded" is logged once
    // they all have, so a connection made after that line gets the new plan.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut waiting = 0;
    for (i, s) in group.senders().iter().enumerate() {
        let msg = Msg::Apply {
            rt: Arc::clone(&new_rt),
            keep: Arc::clone(&keep),
            tcp: std::mem::take(&mut bound.tcp[i]),
            udp: std::mem::take(&mut bound.udp[i]),
            done: tx.clone(),
        };
        waiting += usize::from(s.send(msg).is_ok());
    }
    for _ in 0..waiting {
        if rx.recv_timeout(Duration::from_secs(5)).is_err() {
            log::warn!("reload: an event loop did not confirm the new configuration");
            break;
        }
    }
    log::info!(
        "configuration reloaded: {} listeners kept, {} added ({} sockets), {} removed",
        keep.iter().filter(|k| k.is_some()).count(),
        added.len(),
        bound.sockets,
        removed
    );
    Some(new_rt)
}

/// Binds one listener (once, or once per loop with `reuseport`) and hands
/// its sockets to the loops: plain sockets round-robin from `*next`, a
/// `reuseport` listener one socket per port per loop.
fn spread<S, L>(
    l: &crate::config::ListenerPlan,
    workers: usize,
    next: &mut usize,
    sockets: &mut usize,
    per_loop: &mut [Vec<L>],
    bind: impl Fn() -> Result<Vec<(u16, S)>, reactor::listener::BindFailure>,
    wrap: impl Fn(u16, S) -> L,
) -> Result<(), BindError> {
    let copies = if l.reuseport { workers } else { 1 };
    for copy in 0..copies {
        let bound = bind().map_err(|failure| BindError {
            listener: l.name.clone(),
            bind: l.bind.to_string(),
            failure,
        })?;
        for (port, sock) in bound {
            let w = if l.reuseport {
                copy
            } else {
                assign(*next, workers)
            };
            *next += usize::from(!l.reuseport);
            *sockets += 1;
            per_loop[w].push(wrap(port, sock));
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
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: `set` is a valid, initialised sigset_t borrowed for the call;
    // a null siginfo pointer is allowed; `ts` lives across the call.
    let n = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    if n <= 0 {
        return None;
    }
    Signal::try_from(n).ok()
}
