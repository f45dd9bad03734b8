//! An echo server written as a reactor [`Handler`]: TCP connections get
//! their bytes back (half-close aware: after the client's FIN, everything
//! still pending is written, then our FIN follows), UDP datagrams go back to
//! their sender from the address they were sent to.
//!
//! Shared by the `echo` and `many_ports` examples and by the loopback tests
//! (`#[path]`-included), so the tests exercise exactly what the examples run.
//! It owns its listeners and connections; the loop owns tokens and timers.
//!
//! Accept pausing: out of file descriptors (EMFILE/ENFILE), a listener is
//! deregistered and a timer retries it after [`FD_RETRY`]; the queued
//! connections wait in the kernel backlog. [`EchoMsg::PauseAccept`] /
//! [`EchoMsg::ResumeAccept`] do the same on request.

#![allow(dead_code)]

use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream, UdpSocket};
use reactor::listener::{accept_batch, AcceptStop};
use reactor::udp::{RecvBatch, SendBatch};
use reactor::{io, Action, Ctx, Handler, Interest, IoStatus, Ready, Token, DEFAULT_BUDGET};
use slab::Slab;

/// How long a listener stays paused after the process ran out of fds.
pub const FD_RETRY: Duration = Duration::from_millis(100);

/// Bytes of echo in flight per connection; a full buffer stops reading
/// (backpressure) until the client reads its echo.
const CONN_BUF: usize = 16 * 1024;

/// Datagrams per `recvmmsg`.
const UDP_BATCH: usize = 32;

/// Index of a TCP listener inside one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerIdx(pub usize);

/// Index of a UDP socket inside one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpIdx(pub usize);

/// Slab key of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId(pub usize);

/// What a token stands for.
#[derive(Clone, Copy, Debug)]
pub enum Tag {
    Listener(ListenerIdx),
    Udp(UdpIdx),
    Conn(ConnId),
}

#[derive(Debug)]
pub enum EchoTimer {
    RetryAccept(ListenerIdx),
}

/// What other threads may ask of a running echo server.
#[derive(Clone, Debug)]
pub enum EchoMsg {
    PauseAccept,
    ResumeAccept,
}

/// Events reported to an observer (tests), in the order they happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    Started { loop_index: usize },
    Accepted { loop_index: usize },
    ReadClosed,
    FdExhausted,
    Paused,
    Resumed,
}

/// Counters shared by every loop of a group.
#[derive(Debug, Default)]
pub struct EchoStats {
    pub started: AtomicUsize,
    pub accepted: AtomicUsize,
    pub open: AtomicUsize,
    pub datagrams: AtomicUsize,
    pub fd_exhausted: AtomicUsize,
}

struct ListenerSlot {
    sock: TcpListener,
    token: Option<Token>,
    /// Deregistered because accept ran out of fds; a timer resumes it.
    fd_paused: bool,
}

struct UdpSlot {
    sock: UdpSocket,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Echo bytes not yet written: `buf[start..end]`.
    start: usize,
    end: usize,
    read_closed: bool,
}

pub struct EchoServer {
    listeners: Vec<ListenerSlot>,
    udp: Vec<UdpSlot>,
    conns: Slab<(Conn, Token)>,
    udp_in: RecvBatch,
    udp_out: SendBatch,
    /// Accepting paused by [`EchoMsg::PauseAccept`].
    user_paused: bool,
    stats: Arc<EchoStats>,
    notes: Option<mpsc::Sender<Note>>,
    started: Option<mpsc::Sender<usize>>,
    warned_fds: bool,
}

impl EchoServer {
    pub fn new(tcp: Vec<TcpListener>, udp: Vec<UdpSocket>, stats: Arc<EchoStats>) -> EchoServer {
        EchoServer {
            listeners: tcp
                .into_iter()
                .map(|sock| ListenerSlot {
                    sock,
                    token: None,
                    fd_paused: false,
                })
                .collect(),
            udp: udp.into_iter().map(|sock| UdpSlot { sock }).collect(),
            conns: Slab::new(),
            udp_in: RecvBatch::new(UDP_BATCH),
            udp_out: SendBatch::new(),
            user_paused: false,
            stats,
            notes: None,
            started: None,
            warned_fds: false,
        }
    }

    /// Reports [`Note`]s to `tx` (for tests).
    pub fn with_notes(mut self, tx: mpsc::Sender<Note>) -> EchoServer {
        self.notes = Some(tx);
        self
    }

    /// Sends the loop index to `tx` once the listeners are registered.
    pub fn with_started_signal(mut self, tx: mpsc::Sender<usize>) -> EchoServer {
        self.started = Some(tx);
        self
    }

    fn note(&self, n: Note) {
        if let Some(tx) = &self.notes {
            let _ = tx.send(n);
        }
    }

    /// Registers or deregisters listener `i` to match its pause flags.
    fn apply_listener_state(&mut self, ctx: &mut Ctx<Self>, i: ListenerIdx) {
        let want = !(self.user_paused || self.listeners[i.0].fd_paused);
        let slot = &mut self.listeners[i.0];
        match (slot.token, want) {
            (None, true) => {
                match ctx.register(&mut slot.sock, Interest::READABLE, Tag::Listener(i)) {
                    Ok(t) => slot.token = Some(t),
                    Err(e) => log::error!("cannot register listener: {e}"),
                }
            }
            (Some(t), false) => {
                ctx.deregister(&mut slot.sock, t);
                slot.token = None;
            }
            _ => {}
        }
    }

    fn on_accept_ready(&mut self, ctx: &mut Ctx<Self>, token: Token, i: ListenerIdx) {
        let mut fresh = Vec::new();
        let (_, stop) = accept_batch(&self.listeners[i.0].sock, DEFAULT_BUDGET, |s, _| {
            fresh.push(s)
        });
        for mut stream in fresh {
            let entry = self.conns.vacant_entry();
            let id = ConnId(entry.key());
            match ctx.register(
                &mut stream,
                Interest::READABLE | Interest::WRITABLE,
                Tag::Conn(id),
            ) {
                Ok(t) => {
                    entry.insert((
                        Conn {
                            stream,
                            buf: vec![0; CONN_BUF],
                            start: 0,
                            end: 0,
                            read_closed: false,
                        },
                        t,
                    ));
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    self.stats.open.fetch_add(1, Ordering::Relaxed);
                    self.note(Note::Accepted {
                        loop_index: ctx.loop_index(),
                    });
                }
                Err(e) => log::warn!("cannot register connection: {e}"),
            }
        }
        match stop {
            AcceptStop::WouldBlock => {}
            AcceptStop::Budget => ctx.requeue(token, Ready::READABLE),
            AcceptStop::FdExhausted(e) => {
                if !self.warned_fds {
                    log::warn!("out of file descriptors ({e}); pausing accept, retrying every {FD_RETRY:?}");
                    self.warned_fds = true;
                }
                self.stats.fd_exhausted.fetch_add(1, Ordering::Relaxed);
                self.note(Note::FdExhausted);
                self.listeners[i.0].fd_paused = true;
                self.apply_listener_state(ctx, i);
                ctx.set_timer_after(FD_RETRY, EchoTimer::RetryAccept(i));
            }
            AcceptStop::Error(e) => log::error!("accept failed: {e}"),
        }
    }

    /// Echoes until the socket would block, the budget is spent, or the
    /// connection is done. Returns false when the connection must close.
    fn drive_conn(&mut self, ctx: &mut Ctx<Self>, id: ConnId, token: Token) -> bool {
        let Some((c, _)) = self.conns.get_mut(id.0) else {
            return true;
        };
        for _ in 0..DEFAULT_BUDGET {
            if c.start < c.end {
                match io::write(&mut c.stream, &c.buf[c.start..c.end]) {
                    IoStatus::Progress(n) => c.start += n,
                    // Full: stop reading too (backpressure) until writable.
                    IoStatus::WouldBlock => return true,
                    IoStatus::Closed | IoStatus::Error(_) => return false,
                }
                continue;
            }
            c.start = 0;
            c.end = 0;
            if c.read_closed {
                // Everything echoed: pass the client's FIN on, then close.
                let _ = c.stream.shutdown(Shutdown::Write);
                return false;
            }
            match io::read(&mut c.stream, &mut c.buf) {
                IoStatus::Progress(n) => c.end = n,
                IoStatus::WouldBlock => return true,
                IoStatus::Closed => {
                    c.read_closed = true;
                    if let Some(tx) = &self.notes {
                        let _ = tx.send(Note::ReadClosed);
                    }
                }
                IoStatus::Error(_) => return false,
            }
        }
        ctx.requeue(token, Ready::READABLE.merge(Ready::WRITABLE));
        true
    }

    fn close_conn(&mut self, ctx: &mut Ctx<Self>, id: ConnId) {
        if let Some((mut c, token)) = self.conns.try_remove(id.0) {
            ctx.deregister(&mut c.stream, token);
            self.stats.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn on_udp_ready(&mut self, ctx: &mut Ctx<Self>, token: Token, i: UdpIdx) {
        let sock = &self.udp[i.0].sock;
        for _ in 0..DEFAULT_BUDGET / UDP_BATCH.max(1) + 1 {
            match self.udp_in.recv(sock) {
                IoStatus::Progress(n) => {
                    self.stats.datagrams.fetch_add(n, Ordering::Relaxed);
                    for (data, meta) in self.udp_in.iter() {
                        self.udp_out.push(data, Some(meta.peer), meta.local_ip);
                    }
                    // Echo is lossy like UDP itself: whatever the socket
                    // does not take now is dropped, never queued unbounded.
                    let _ = self.udp_out.flush(sock);
                    self.udp_out.clear();
                }
                IoStatus::WouldBlock => return,
                // ICMP errors from earlier replies: nothing to do for echo.
                IoStatus::Error(_) | IoStatus::Closed => {}
            }
        }
        ctx.requeue(token, Ready::READABLE);
    }
}

impl Handler for EchoServer {
    type Tag = Tag;
    type Timer = EchoTimer;
    type Message = EchoMsg;

    fn on_start(&mut self, ctx: &mut Ctx<Self>) -> Action {
        for i in 0..self.listeners.len() {
            self.apply_listener_state(ctx, ListenerIdx(i));
        }
        for (i, slot) in self.udp.iter_mut().enumerate() {
            if let Err(e) = ctx.register(&mut slot.sock, Interest::READABLE, Tag::Udp(UdpIdx(i))) {
                log::error!("cannot register udp socket: {e}");
            }
        }
        self.stats.started.fetch_add(1, Ordering::Release);
        if let Some(tx) = &self.started {
            let _ = tx.send(ctx.loop_index());
        }
        self.note(Note::Started {
            loop_index: ctx.loop_index(),
        });
        Action::Continue
    }

    fn on_ready(&mut self, ctx: &mut Ctx<Self>, token: Token, _ready: Ready) -> Action {
        match ctx.tag(token).copied() {
            Some(Tag::Listener(i)) => self.on_accept_ready(ctx, token, i),
            Some(Tag::Udp(i)) => self.on_udp_ready(ctx, token, i),
            Some(Tag::Conn(id)) if !self.drive_conn(ctx, id, token) => self.close_conn(ctx, id),
            Some(Tag::Conn(_)) | None => {}
        }
        Action::Continue
    }

    fn on_timer(&mut self, ctx: &mut Ctx<Self>, timer: EchoTimer) -> Action {
        match timer {
            EchoTimer::RetryAccept(i) => {
                self.listeners[i.0].fd_paused = false;
                // Registering again reports a non-empty backlog at once.
                self.apply_listener_state(ctx, i);
            }
        }
        Action::Continue
    }

    fn on_message(&mut self, ctx: &mut Ctx<Self>, msg: EchoMsg) -> Action {
        self.user_paused = matches!(msg, EchoMsg::PauseAccept);
        for i in 0..self.listeners.len() {
            self.apply_listener_state(ctx, ListenerIdx(i));
        }
        self.note(if self.user_paused {
            Note::Paused
        } else {
            Note::Resumed
        });
        Action::Continue
    }

    fn on_stop(&mut self, ctx: &mut Ctx<Self>) {
        let ids: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for id in ids {
            self.close_conn(ctx, ConnId(id));
        }
    }
}

/// The local address of every TCP listener, for printing.
pub fn tcp_addrs(ls: &[TcpListener]) -> Vec<SocketAddr> {
    ls.iter().filter_map(|l| l.local_addr().ok()).collect()
}
