//! Loopback tests of whole handlers on real event loops: many concurrent
//! echo connections over a 2-loop group, half-close, accept pause/resume,
//! and `stop()` joining every thread. Everything on 127.0.0.1 port 0 (or a
//! port the kernel picked), bounded by timeouts; channels, not sleeps, say
//! when something happened.

#[path = "../examples/support/echo_server.rs"]
mod echo_server;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream as StdStream};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use echo_server::{EchoMsg, EchoServer, EchoStats, Note};
use reactor::listener::{accept_batch, bind_tcp, BindOptions};
use reactor::{io, Action, BindHost, Ctx, Handler, Interest, IoStatus, LoopGroup, Ready, Token};

const LOCAL: BindHost = BindHost::Ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

fn localhost0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Waits (bounded) for the first note matching `want`, skipping others.
fn wait_note(rx: &mpsc::Receiver<Note>, want: impl Fn(&Note) -> bool) -> Note {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(n) if want(&n) => return n,
            Ok(_) => {}
            Err(e) => panic!("expected note never came: {e}"),
        }
    }
}

fn payload(conn: usize) -> Vec<u8> {
    let len = 1 + (conn * 7919) % 6000;
    (0..len).map(|i| (i * 31 + conn * 17) as u8).collect()
}

#[test]
fn thousand_concurrent_echo_connections_over_two_loops() {
    const CONNS: usize = 1000;
    // One SO_REUSEPORT listener per loop on the same port: the kernel
    // spreads the clients, so both loops really serve connections.
    let opts = BindOptions {
        reuseport: true,
        ..BindOptions::default()
    };
    let first = bind_tcp(localhost0(), LOCAL, &opts).unwrap();
    let addr = first.local_addr().unwrap();
    let second = bind_tcp(addr, LOCAL, &opts).unwrap();
    let mut per_loop = [Some(first), Some(second)];
    let stats = Arc::new(EchoStats::default());
    let (tx, rx) = mpsc::channel();
    let group = LoopGroup::start(2, "echo1k", |i| {
        let l = per_loop[i].take().into_iter().collect();
        EchoServer::new(l, Vec::new(), Arc::clone(&stats)).with_notes(tx.clone())
    })
    .unwrap();

    let mut clients: Vec<StdStream> = (0..CONNS)
        .map(|_| {
            let c = StdStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            c
        })
        .collect();
    // All 1,000 are open at once; each writes its own pattern (small enough
    // to sit in socket buffers, so writing all before reading cannot deadlock).
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(&payload(i)).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want = payload(i);
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).unwrap();
        assert!(got == want, "connection {i}: echo differs");
    }
    let mut per_loop_accepts = [0usize; 2];
    while let Ok(n) = rx.try_recv() {
        if let Note::Accepted { loop_index } = n {
            per_loop_accepts[loop_index] += 1;
        }
    }
    assert_eq!(per_loop_accepts.iter().sum::<usize>(), CONNS);
    assert!(
        per_loop_accepts.iter().all(|n| *n > 0),
        "both loops served: {per_loop_accepts:?}"
    );
    assert_eq!(stats.open.load(Ordering::Relaxed), CONNS);

    // Clients close; the server passes each FIN on and forgets the connection.
    for mut c in clients {
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
    assert!(group.stop().iter().all(|r| r.is_ok()));
    assert_eq!(stats.open.load(Ordering::Relaxed), 0);
}

/// Reads until the client's FIN, and only then answers with the bytes
/// reversed: a reply that can only exist after the read side closed.
struct Reverser {
    listener: mio::net::TcpListener,
    conn: Option<(mio::net::TcpStream, Token)>,
    got: Vec<u8>,
    reply: Vec<u8>,
    written: usize,
    read_closed: bool,
    notes: mpsc::Sender<&'static str>,
}

impl Handler for Reverser {
    type Tag = bool; // true: the listener
    type Timer = ();
    type Message = ();

    fn on_start(&mut self, ctx: &mut Ctx<Self>) -> Action {
        ctx.register(&mut self.listener, Interest::READABLE, true)
            .unwrap();
        Action::Continue
    }

    fn on_ready(&mut self, ctx: &mut Ctx<Self>, token: Token, ready: Ready) -> Action {
        if ctx.tag(token) == Some(&true) {
            let mut fresh = None;
            accept_batch(&self.listener, 1, |s, _| fresh = Some(s));
            if let Some(mut s) = fresh {
                let t = ctx
                    .register(&mut s, Interest::READABLE | Interest::WRITABLE, false)
                    .unwrap();
                self.conn = Some((s, t));
            }
            return Action::Continue;
        }
        let Some((stream, t)) = self.conn.as_mut() else {
            return Action::Continue;
        };
        if ready.read_closed {
            let _ = self.notes.send("ready.read_closed");
        }
        let mut buf = [0u8; 4096];
        while !self.read_closed {
            match io::read(stream, &mut buf) {
                IoStatus::Progress(n) => self.got.extend_from_slice(&buf[..n]),
                IoStatus::Closed => {
                    self.read_closed = true;
                    let _ = self.notes.send("read returned 0");
                    self.reply = self.got.iter().rev().copied().collect();
                }
                IoStatus::WouldBlock => return Action::Continue,
                IoStatus::Error(e) => panic!("read: {e}"),
            }
        }
        match io::drain(stream, &self.reply, &mut self.written) {
            IoStatus::Progress(_) => {
                stream.shutdown(Shutdown::Write).unwrap();
                let _ = self.notes.send("replied");
                let t = *t;
                if let Some((mut s, _)) = self.conn.take() {
                    ctx.deregister(&mut s, t);
                }
            }
            IoStatus::WouldBlock => {}
            other => panic!("write after half-close: {other:?}"),
        }
        Action::Continue
    }
}

#[test]
fn handler_sees_half_close_and_still_writes_its_reply() {
    let listener = bind_tcp(localhost0(), LOCAL, &BindOptions::default()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let mut handler = Some(Reverser {
        listener,
        conn: None,
        got: Vec::new(),
        reply: Vec::new(),
        written: 0,
        read_closed: false,
        notes: tx,
    });
    let group = LoopGroup::start(1, "halfclose", |_| handler.take().unwrap()).unwrap();

    let mut c = StdStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    c.write_all(&msg).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    let want: Vec<u8> = msg.iter().rev().copied().collect();
    assert!(back == want, "reply after half-close differs");

    // "replied" is sent just after the FIN we already read: wait for it.
    let mut notes = Vec::new();
    while notes.last() != Some(&"replied") {
        notes.push(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }
    // `Ready::read_closed` is only a hint (the FIN may be consumed by a read
    // inside an earlier wakeup); a read returning 0 is the real signal.
    let closed = notes.iter().position(|n| *n == "read returned 0").unwrap();
    let replied = notes.iter().position(|n| *n == "replied").unwrap();
    assert!(closed < replied, "{notes:?}");
    assert!(group.stop().iter().all(|r| r.is_ok()));
}

#[test]
fn paused_listener_leaves_connections_in_the_backlog_until_resumed() {
    let listener = bind_tcp(localhost0(), LOCAL, &BindOptions::default()).unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(EchoStats::default());
    let (tx, rx) = mpsc::channel();
    let mut l = Some(listener);
    let group = LoopGroup::start(1, "pause", |_| {
        EchoServer::new(
            l.take().into_iter().collect(),
            Vec::new(),
            Arc::clone(&stats),
        )
        .with_notes(tx.clone())
    })
    .unwrap();
    wait_note(&rx, |n| matches!(n, Note::Started { .. }));

    group.sender(0).send(EchoMsg::PauseAccept).unwrap();
    wait_note(&rx, |n| *n == Note::Paused);
    // The kernel completes the handshake into the backlog...
    let mut queued: Vec<StdStream> = (0..3)
        .map(|i| {
            let mut c = StdStream::connect(addr).unwrap();
            c.write_all(&[i]).unwrap();
            c
        })
        .collect();
    // ...but nobody accepts, so nothing is echoed.
    queued[0]
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 1];
    let err = queued[0].read(&mut b).unwrap_err();
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    assert_eq!(stats.accepted.load(Ordering::Relaxed), 0);

    group.sender(0).send(EchoMsg::ResumeAccept).unwrap();
    wait_note(&rx, |n| *n == Note::Resumed);
    for (i, c) in queued.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], i as u8);
    }
    assert_eq!(stats.accepted.load(Ordering::Relaxed), 3);
    assert!(group.stop().iter().all(|r| r.is_ok()));
}

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn stop_joins_every_loop_thread_even_with_open_connections() {
    let mut ls: Vec<_> = (0..3)
        .map(|_| Some(bind_tcp(localhost0(), LOCAL, &BindOptions::default()).unwrap()))
        .collect();
    let addrs: Vec<_> = ls
        .iter()
        .map(|l| l.as_ref().unwrap().local_addr().unwrap())
        .collect();
    let stats = Arc::new(EchoStats::default());
    let (tx, rx) = mpsc::channel();
    let group = LoopGroup::start(3, "stopjoin", |i| {
        EchoServer::new(
            ls[i].take().into_iter().collect(),
            Vec::new(),
            Arc::clone(&stats),
        )
        .with_notes(tx.clone())
    })
    .unwrap();
    let mut clients = Vec::new();
    for a in &addrs {
        let mut c = StdStream::connect(a).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        clients.push(c);
    }
    wait_note(&rx, |n| matches!(n, Note::Accepted { .. }));
    let ours = |names: &[String]| names.iter().filter(|n| n.starts_with("stopjoin")).count();
    assert_eq!(ours(&thread_names()), 3);

    let results = group.stop();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(ours(&thread_names()), 0, "every loop thread was joined");
    // on_stop closed the open connections: clients see EOF.
    for mut c in clients {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
    }
    assert_eq!(stats.open.load(Ordering::Relaxed), 0);
}
