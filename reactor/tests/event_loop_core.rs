//! Core loop behaviour: timers, mailbox, requeue, stop, stale tokens.

use std::io::{Read, Write};
use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reactor::{Action, Ctx, EventLoop, Handler, Interest, LoopGroup, Ready, Token};

struct Timers {
    fired: Vec<u32>,
    started: Option<Instant>,
}

impl Handler for Timers {
    type Tag = ();
    type Timer = u32;
    type Message = ();
    fn on_start(&mut self, ctx: &mut Ctx<Self>) -> Action {
        self.started = Some(ctx.now());
        ctx.set_timer_after(Duration::from_millis(30), 3);
        ctx.set_timer_after(Duration::from_millis(10), 1);
        let k = ctx.set_timer_after(Duration::from_millis(20), 2);
        ctx.cancel_timer(k);
        Action::Continue
    }
    fn on_ready(&mut self, _: &mut Ctx<Self>, _: Token, _: Ready) -> Action {
        Action::Continue
    }
    fn on_timer(&mut self, ctx: &mut Ctx<Self>, t: u32) -> Action {
        assert!(ctx.now() >= self.started.unwrap() + Duration::from_millis(10 * t as u64));
        self.fired.push(t);
        if t == 3 {
            Action::Stop
        } else {
            Action::Continue
        }
    }
}

#[test]
fn timers_fire_in_order_and_cancelled_ones_do_not() {
    let ev = EventLoop::new().unwrap();
    let mut h = Timers {
        fired: vec![],
        started: None,
    };
    ev.run(&mut h).unwrap();
    assert_eq!(h.fired, vec![1, 3]);
}

/// Bug 1: `set_timer_after(Duration::MAX, ..)` panicked ("overflow when
/// adding duration to instant"), and with `panic = "abort"` took the process.
struct HugeTimers {
    fired: Vec<u32>,
}

impl Handler for HugeTimers {
    type Tag = ();
    type Timer = u32;
    type Message = ();
    fn on_start(&mut self, ctx: &mut Ctx<Self>) -> Action {
        ctx.set_timer_after(Duration::MAX, 9);
        ctx.set_timer_after(Duration::from_secs(u64::MAX), 9);
        ctx.set_timer_after(Duration::from_millis(u64::MAX), 9);
        ctx.set_timer_after(Duration::from_millis(5), 1);
        Action::Continue
    }
    fn on_ready(&mut self, _: &mut Ctx<Self>, _: Token, _: Ready) -> Action {
        Action::Continue
    }
    fn on_timer(&mut self, ctx: &mut Ctx<Self>, t: u32) -> Action {
        self.fired.push(t);
        assert_eq!(ctx.timer_count(), 3, "the huge timers stay pending");
        Action::Stop
    }
}

#[test]
fn timers_set_duration_max_ahead_never_panic_nor_fire() {
    let ev = EventLoop::new().unwrap();
    let mut h = HugeTimers { fired: vec![] };
    ev.run(&mut h).unwrap();
    assert_eq!(h.fired, vec![1]);
}

struct Counter {
    seen: mpsc::Sender<(usize, u64)>,
}

impl Handler for Counter {
    type Tag = ();
    type Timer = ();
    type Message = u64;
    fn on_ready(&mut self, _: &mut Ctx<Self>, _: Token, _: Ready) -> Action {
        Action::Continue
    }
    fn on_message(&mut self, ctx: &mut Ctx<Self>, m: u64) -> Action {
        self.seen.send((ctx.loop_index(), m)).unwrap();
        Action::Continue
    }
}

#[test]
fn mailbox_reaches_every_loop_and_stop_joins_all_threads() {
    let (tx, rx) = mpsc::channel();
    let group = LoopGroup::start(3, "test", |_| Counter { seen: tx.clone() }).unwrap();
    group.broadcast(7);
    group.sender(1).send(9).unwrap();
    let mut got: Vec<_> = (0..4)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, vec![(0, 7), (1, 7), (1, 9), (2, 7)]);
    let senders: Vec<_> = group.senders().to_vec();
    let results = group.stop();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.is_ok()));
    assert!(senders.iter().all(|s| s.is_closed()));
    assert_eq!(
        senders[0].send(1),
        Err(1),
        "a stopped loop refuses messages"
    );
}

/// Two connections become readable in the same batch; handling the first
/// closes the second and opens a new source. The new source must not get
/// the closed one's token within the batch.
struct Stale {
    streams: Vec<Option<mio::net::TcpStream>>,
    tokens: Vec<Token>,
    listener: Option<mio::net::TcpListener>,
    events: Vec<Token>,
    reused_in_batch: bool,
}

impl Handler for Stale {
    type Tag = usize;
    type Timer = ();
    type Message = ();
    fn on_start(&mut self, ctx: &mut Ctx<Self>) -> Action {
        for i in 0..2 {
            let mut s = self.streams[i].take().unwrap();
            let t = ctx.register(&mut s, Interest::READABLE, i).unwrap();
            self.tokens.push(t);
            self.streams[i] = Some(s);
        }
        Action::Continue
    }
    fn on_ready(&mut self, ctx: &mut Ctx<Self>, token: Token, _: Ready) -> Action {
        self.events.push(token);
        let me = *ctx.tag(token).unwrap();
        let other = 1 - me;
        if let Some(mut s) = self.streams[other].take() {
            let other_token = self.tokens[other];
            ctx.deregister(&mut s, other_token);
            let mut l = self.listener.take().unwrap();
            let t = ctx.register(&mut l, Interest::READABLE, 99).unwrap();
            self.reused_in_batch |= t == other_token;
            self.listener = Some(l);
        }
        Action::Stop
    }
}

#[test]
fn token_of_a_source_closed_in_the_batch_is_not_reused_or_delivered() {
    let server = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let mut clients = vec![];
    let mut streams = vec![];
    for _ in 0..2 {
        let mut c = StdStream::connect(addr).unwrap();
        c.write_all(b"x").unwrap();
        clients.push(c);
        let (s, _) = server.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        streams.push(Some(mio::net::TcpStream::from_std(s)));
    }
    let extra = StdListener::bind("127.0.0.1:0").unwrap();
    extra.set_nonblocking(true).unwrap();
    let mut ev = EventLoop::new().unwrap();
    let _ = ev.ctx();
    let mut h = Stale {
        streams,
        tokens: vec![],
        listener: Some(mio::net::TcpListener::from_std(extra)),
        events: vec![],
        reused_in_batch: false,
    };
    ev.run(&mut h).unwrap();
    assert!(!h.reused_in_batch);
    assert_eq!(
        h.events.len(),
        1,
        "the closed source's event was delivered: {:?}",
        h.events
    );
}

/// A handler that reads 1 byte per wakeup and requeues: all bytes of two
/// sources are consumed, interleaved, without new readiness edges.
struct Budget {
    streams: Vec<mio::net::TcpStream>,
    order: Vec<usize>,
    remaining: usize,
}

impl Handler for Budget {
    type Tag = usize;
    type Timer = ();
    type Message = ();
    fn on_start(&mut self, ctx: &mut Ctx<Self>) -> Action {
        for i in 0..self.streams.len() {
            ctx.register(&mut self.streams[i], Interest::READABLE, i)
                .unwrap();
        }
        Action::Continue
    }
    fn on_ready(&mut self, ctx: &mut Ctx<Self>, token: Token, ready: Ready) -> Action {
        let i = *ctx.tag(token).unwrap();
        let mut b = [0u8; 1];
        if let Ok(1) = self.streams[i].read(&mut b) {
            self.order.push(i);
            self.remaining -= 1;
            ctx.requeue(token, ready);
        }
        if self.remaining == 0 {
            Action::Stop
        } else {
            Action::Continue
        }
    }
}

#[test]
fn requeued_tokens_are_served_fairly_without_new_edges() {
    let server = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let mut clients = vec![];
    let mut streams = vec![];
    for _ in 0..2 {
        let mut c = StdStream::connect(addr).unwrap();
        c.write_all(b"abcd").unwrap();
        clients.push(c);
        let (s, _) = server.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        streams.push(mio::net::TcpStream::from_std(s));
    }
    let ev = EventLoop::new().unwrap();
    let mut h = Budget {
        streams,
        order: vec![],
        remaining: 8,
    };
    ev.run(&mut h).unwrap();
    assert_eq!(h.order.len(), 8);
    assert_ne!(
        &h.order[..4],
        &[h.order[0]; 4],
        "one source hogged the loop: {:?}",
        h.order
    );
}

/// Bug 4: a token re-queued in a timer (or message) callback and closed in
/// the same callback stayed in the re-queue list past the end of the
/// iteration, when its slot is freed; a source opened in the next
/// iteration's event phase reused the slot and then received the closed
/// source's `Ready`.
struct StaleRequeue {
    a: Option<mio::net::UdpSocket>,
    a_token: Option<Token>,
    trigger: mio::net::UdpSocket,
    b: Option<mio::net::UdpSocket>,
    b_token: Option<Token>,
    b_got_ready: usize,
    opened_b: bool,
}

impl StaleRequeue {
    fn new() -> StaleRequeue {
        let udp = || mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        StaleRequeue {
            a: Some(udp()),
            a_token: None,
            trigger: udp(),
            b: Some(udp()),
            b_token: None,
            b_got_ready: 0,
            opened_b: false,
        }
    }

    /// Re-queues A (as a handler out of budget does), then closes it.
    fn requeue_and_close_a(&mut self, ctx: &mut Ctx<Self>) {
        let t = self.a_token.unwrap();
        ctx.requeue(t, Ready::READABLE);
        ctx.deregister(self.a.as_mut().unwrap(), t);
        self.a = None;
        // Wakes the next iteration's event phase, where B is opened.
        let to = self.trigger.local_addr().unwrap();
        self.trigger.send_to(b"x", to).unwrap();
    }
}

impl Handler for StaleRequeue {
    type Tag = &'static str;
    type Timer = bool;
    type Message = ();
    fn on_start(&mut self, ctx: &mut Ctx<Self>) -> Action {
        let a = self.a.as_mut().unwrap();
        self.a_token = Some(ctx.register(a, Interest::READABLE, "a").unwrap());
        ctx.register(&mut self.trigger, Interest::READABLE, "trigger")
            .unwrap();
        // Safety net: never hang the test.
        ctx.set_timer_after(Duration::from_secs(5), false);
        Action::Continue
    }
    fn on_ready(&mut self, ctx: &mut Ctx<Self>, token: Token, _: Ready) -> Action {
        match *ctx.tag(token).unwrap() {
            "trigger" => {
                let mut buf = [0u8; 8];
                while self.trigger.recv_from(&mut buf).is_ok() {}
                if !self.opened_b {
                    self.opened_b = true;
                    let b = self.b.as_mut().unwrap();
                    self.b_token = Some(ctx.register(b, Interest::READABLE, "b").unwrap());
                }
            }
            // B never receives a datagram: any Ready for it is A's.
            "b" => self.b_got_ready += 1,
            _ => {}
        }
        Action::Continue
    }
    fn on_timer(&mut self, ctx: &mut Ctx<Self>, close_a: bool) -> Action {
        if close_a {
            self.requeue_and_close_a(ctx);
            Action::Continue
        } else {
            Action::Stop
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<Self>, _: ()) -> Action {
        self.requeue_and_close_a(ctx);
        Action::Continue
    }
    fn on_tick(&mut self, _: &mut Ctx<Self>) -> Action {
        if self.opened_b {
            Action::Stop
        } else {
            Action::Continue
        }
    }
}

fn check_stale_requeue(h: &StaleRequeue) {
    assert!(h.opened_b, "the scenario did not run");
    assert_eq!(
        h.b_token, h.a_token,
        "B must reuse A's slot for this test to mean anything"
    );
    assert_eq!(
        h.b_got_ready, 0,
        "B received the closed A's re-queued Ready"
    );
}

#[test]
fn requeued_token_closed_in_a_timer_is_not_delivered_to_its_slots_next_owner() {
    let mut ev = EventLoop::new().unwrap();
    ev.ctx().set_timer_after(Duration::ZERO, true);
    let mut h = StaleRequeue::new();
    ev.run(&mut h).unwrap();
    check_stale_requeue(&h);
}

#[test]
fn requeued_token_closed_in_a_message_is_not_delivered_to_its_slots_next_owner() {
    let ev = EventLoop::new().unwrap();
    ev.sender().send(()).unwrap();
    let mut h = StaleRequeue::new();
    ev.run(&mut h).unwrap();
    check_stale_requeue(&h);
}

#[test]
fn poller_ops_count_every_epoll_ctl_made_through_ctx() {
    struct Nop;
    impl Handler for Nop {
        type Tag = ();
        type Timer = ();
        type Message = ();
        fn on_ready(&mut self, _: &mut Ctx<Self>, _: Token, _: Ready) -> Action {
            Action::Continue
        }
    }
    let mut ev = EventLoop::<Nop>::new().unwrap();
    let ctx = ev.ctx();
    let mut a = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut b = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(ctx.poller_ops(), 0);
    let ta = ctx.register(&mut a, Interest::READABLE, ()).unwrap();
    let tb = ctx.register(&mut b, Interest::READABLE, ()).unwrap();
    ctx.pause(&mut a);
    ctx.resume(&mut a, ta, Interest::READABLE).unwrap();
    ctx.reregister(&mut a, ta, Interest::WRITABLE).unwrap();
    ctx.deregister(&mut a, ta);
    assert_eq!(ctx.poller_ops(), 6);
    drop(b);
    ctx.forget(tb);
    assert_eq!(ctx.poller_ops(), 6, "forget makes no system call");
}
