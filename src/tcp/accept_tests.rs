//! Tests of accept pausing: what pausing and resuming cost in `epoll_ctl`
//! calls (`Ctx::poller_ops`) on a loop with many listeners.

use std::path::Path;

use reactor::{Action, EventLoop, Handler};

use super::*;
use crate::logging::AccessLog;
use crate::runtime::Runtime;

/// A loop with the proxy's tag and timer types, driven by hand.
struct HandLoop;

impl Handler for HandLoop {
    type Tag = Tag;
    type Timer = Timer;
    type Message = ();
    fn on_ready(&mut self, _: &mut Ctx<Self>, _: Token, _: Ready) -> Action {
        Action::Continue
    }
}

const PLAN: &str = r#"
listeners:
  - name: range
    bind: "127.0.0.1:8080"
    backend: pool
backends:
  - name: pool
    servers:
      - "127.0.0.1:9001"
"#;

/// A proxy with `n` listening sockets (all of one plan listener), started.
fn proxy_with_listeners(ctx: &mut Ctx<HandLoop>, n: usize) -> TcpProxy {
    let plan = crate::config::load_str(PLAN, Path::new("test.yaml")).unwrap();
    let socks = (0..n)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            TcpListenerSock {
                plan: crate::config::ListenerId(0),
                port: l.local_addr().unwrap().port(),
                sock: TcpListener::from_std(l),
            }
        })
        .collect();
    let mut p = TcpProxy::new(Arc::new(Runtime::new(plan)), AccessLog::off(), socks);
    p.start(ctx);
    p
}

/// Bug 5: fd exhaustion on one listener paused every listener of the loop
/// (one `epoll_ctl` each), every close then resumed them all, and the next
/// accept paused them all again: ~2 x 10,000 `epoll_ctl` per close on a
/// 10,000-port range. Now only the exhausted listener pauses, a close does
/// not touch it, and the retry timer resumes just that one.
#[test]
fn fd_exhaustion_pauses_and_resumes_only_the_listener_concerned() {
    const N: usize = 200;
    let mut ev = EventLoop::<HandLoop>::new().unwrap();
    let ctx = ev.ctx();
    let mut p = proxy_with_listeners(ctx, N);
    let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);

    let before = ctx.poller_ops();
    p.on_fd_exhausted(ctx, TcpSlot(3), &emfile);
    p.on_fd_exhausted(ctx, TcpSlot(3), &emfile);
    assert_eq!(
        ctx.poller_ops() - before,
        1,
        "pause touches one socket, once"
    );

    let before = ctx.poller_ops();
    for _ in 0..10 {
        p.resume_paused(ctx); // what every close does
    }
    assert_eq!(ctx.poller_ops() - before, 0, "a close does not resume it");

    let before = ctx.poller_ops();
    p.on_accept_retry(ctx);
    assert_eq!(ctx.poller_ops() - before, 1, "the retry resumes just it");
    assert!(p.listeners.iter().all(|s| s.paused.is_none()));
    assert!(p.paused.is_empty());
    p.stop_listening(ctx);
}

#[test]
fn a_listener_at_its_cap_pauses_once_and_a_close_resumes_only_it() {
    const N: usize = 200;
    let mut ev = EventLoop::<HandLoop>::new().unwrap();
    let ctx = ev.ctx();
    let mut p = proxy_with_listeners(ctx, N);

    let before = ctx.poller_ops();
    p.resume_paused(ctx);
    assert_eq!(
        ctx.poller_ops() - before,
        0,
        "nothing paused: nothing to do"
    );

    p.pause(ctx, TcpSlot(7), Pause::AtCap);
    p.pause(ctx, TcpSlot(7), Pause::AtCap);
    assert_eq!(ctx.poller_ops() - before, 1);
    assert_eq!(p.paused.at_cap, vec![TcpSlot(7)]);

    // There is room (no connection is open): a close resumes it.
    p.resume_paused(ctx);
    p.resume_paused(ctx);
    assert_eq!(ctx.poller_ops() - before, 2);
    assert!(p.paused.is_empty() && p.listeners[7].paused.is_none());

    // A listener paused for an error waits for the retry timer.
    p.pause(ctx, TcpSlot(9), Pause::AtCap);
    p.pause(ctx, TcpSlot(9), Pause::UntilRetry);
    assert_eq!(p.paused.until_retry, vec![TcpSlot(9)]);
    assert!(p.paused.at_cap.is_empty());
    p.resume_paused(ctx);
    assert_eq!(p.listeners[9].paused, Some(Pause::UntilRetry));
    p.on_accept_retry(ctx);
    assert_eq!(ctx.poller_ops() - before, 4);
    assert!(p.paused.is_empty());
    p.stop_listening(ctx);
}
