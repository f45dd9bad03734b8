//! Per-wakeup cost of the timer wheel with many pending far-future timers
//! (issue 11, bug 3). Not a test: run it by hand, in release mode.
//!
//! ```text
//! cargo run --release -p nvelox-reactor --example timer_bench
//! ```
//!
//! Every case holds N timers 300 s ahead (the default `idle_timeout`,
//! spread over 5 s), far beyond one turn of the old wheel, and measures:
//!
//! * **wheel**: one idle wakeup = `next_deadline()` + `expire(now)` with the
//!   clock advanced 1 ms and nothing due, for the old single-level wheel
//!   (`support/old_wheel.rs`, the baseline) and the current one, same run;
//! * **loop**: one real `EventLoop` iteration (epoll_wait, `next_deadline`,
//!   one readable UDP socket that sends itself the next datagram, `expire`,
//!   `on_tick`) with the current wheel.
//!
//! Each figure is the best of three runs; the ratio compares it with the
//! 100-timer case of the same column. Flat ratios mean O(1) per wakeup.

#[path = "support/old_wheel.rs"]
mod old_wheel;

use std::hint::black_box;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use old_wheel::OldTimerWheel;
use reactor::{Action, Ctx, EventLoop, Handler, Interest, Ready, TimerWheel, Token};

const SIZES: [usize; 4] = [100, 1_000, 10_000, 100_000];
const RUNS: usize = 3;
/// Each wheel run stops after this much time or `MAX_WAKEUPS` wakeups.
const RUN_TIME: Duration = Duration::from_millis(300);
/// 1 ms per wakeup: stays well below the 300 s at which the timers fire.
const MAX_WAKEUPS: u64 = 200_000;
const LOOP_ITERATIONS: usize = 20_000;

fn far_deadline(t0: Instant, i: usize) -> Instant {
    t0 + Duration::from_secs(300) + Duration::from_millis((i % 5_000) as u64)
}

trait Wheel {
    fn add(&mut self, at: Instant);
    fn wake(&mut self, now: Instant, out: &mut Vec<()>);
}

impl Wheel for OldTimerWheel<()> {
    fn add(&mut self, at: Instant) {
        self.insert(at, ());
    }
    fn wake(&mut self, now: Instant, out: &mut Vec<()>) {
        black_box(self.next_deadline());
        self.expire(now, out);
    }
}

impl Wheel for TimerWheel<()> {
    fn add(&mut self, at: Instant) {
        self.insert(at, ());
    }
    fn wake(&mut self, now: Instant, out: &mut Vec<()>) {
        black_box(self.next_deadline());
        self.expire(now, out);
    }
}

/// Nanoseconds per idle wakeup of a wheel holding `n` far timers.
fn wheel_ns<W: Wheel>(make: impl Fn(Instant) -> W, n: usize) -> f64 {
    let t0 = Instant::now();
    let mut w = make(t0);
    for i in 0..n {
        w.add(far_deadline(t0, i));
    }
    let mut out = Vec::new();
    let mut wakeups = 0u64;
    let start = Instant::now();
    while wakeups < MAX_WAKEUPS && start.elapsed() < RUN_TIME {
        for _ in 0..100 {
            wakeups += 1;
            w.wake(t0 + Duration::from_millis(wakeups), &mut out);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / wakeups as f64;
    assert!(out.is_empty(), "a far timer fired during the bench");
    ns
}

/// An event loop whose only source is a UDP socket that sends itself one
/// datagram per iteration, so every iteration is one wakeup.
struct Spin {
    sock: UdpSocket,
    addr: SocketAddr,
    timers: usize,
    left: usize,
    started: Option<Instant>,
    elapsed: Duration,
}

impl Handler for Spin {
    type Tag = ();
    type Timer = ();
    type Message = ();

    fn on_start(&mut self, ctx: &mut Ctx<Self>) -> Action {
        for i in 0..self.timers {
            let at = far_deadline(ctx.now(), i);
            ctx.set_timer(at, ());
        }
        if let Err(e) = ctx.register(&mut self.sock, Interest::READABLE, ()) {
            eprintln!("register: {e}");
            return Action::Stop;
        }
        let _ = self.sock.send_to(b"x", self.addr);
        Action::Continue
    }

    fn on_ready(&mut self, _ctx: &mut Ctx<Self>, _token: Token, _ready: Ready) -> Action {
        let mut buf = [0u8; 16];
        loop {
            match self.sock.recv_from(&mut buf) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    eprintln!("recv: {e}");
                    return Action::Stop;
                }
            }
        }
        // The first tenth warms up caches and the allocator.
        if self.left == LOOP_ITERATIONS * 9 / 10 {
            self.started = Some(Instant::now());
        }
        if self.left == 0 {
            self.elapsed = self.started.map(|s| s.elapsed()).unwrap_or_default();
            return Action::Stop;
        }
        self.left -= 1;
        let _ = self.sock.send_to(b"x", self.addr);
        Action::Continue
    }

    fn on_timer(&mut self, _ctx: &mut Ctx<Self>, _timer: ()) -> Action {
        eprintln!("a far timer fired during the bench");
        Action::Stop
    }
}

/// Nanoseconds per `EventLoop` iteration with `n` far timers pending.
fn loop_ns(n: usize) -> std::io::Result<f64> {
    let sock = UdpSocket::bind("127.0.0.1:0".parse().map_err(std::io::Error::other)?)?;
    let addr = sock.local_addr()?;
    let mut h = Spin {
        sock,
        addr,
        timers: n,
        left: LOOP_ITERATIONS,
        started: None,
        elapsed: Duration::ZERO,
    };
    EventLoop::new()?.run(&mut h)?;
    let measured = LOOP_ITERATIONS * 9 / 10;
    Ok(h.elapsed.as_nanos() as f64 / measured as f64)
}

fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..RUNS).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() -> std::io::Result<()> {
    println!("| pending far timers | old wheel ns/wakeup | x 100 | new wheel ns/wakeup | x 100 | old / new | EventLoop ns/iteration | x 100 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut base: Option<(f64, f64, f64)> = None;
    for n in SIZES {
        let old = best(|| wheel_ns(OldTimerWheel::new, n));
        let new = best(|| wheel_ns(TimerWheel::new, n));
        let mut lp = f64::INFINITY;
        for _ in 0..RUNS {
            lp = lp.min(loop_ns(n)?);
        }
        let (bo, bn, bl) = *base.get_or_insert((old, new, lp));
        println!(
            "| {n} | {old:.0} | {:.2}x | {new:.1} | {:.2}x | {:.0}x | {lp:.0} | {:.2}x |",
            old / bo,
            new / bn,
            old / new,
            lp / bl
        );
    }
    Ok(())
}
