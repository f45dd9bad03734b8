//! The small HTTP/1 server for `/metrics`, the status page and the admin
//! API, on loop 0 (registered with the reactor like any listener; no
//! extra thread).
//!
//! Owns: the admin/metrics listening sockets handed over by `run.rs`, their
//! connections (one request each, answered with `Connection: close`), the
//! bounds that keep a slow or hostile client harmless: at most
//! [`MAX_REQUEST`](request::MAX_REQUEST) bytes of request, [`REQUEST_TIME`]
//! from accept to the last byte of the answer, [`MAX_CONNS`] at once.
//! Split by concept: `request.rs` (parsing, access rule, pure), `api.rs`
//! (what each path answers), `json.rs` (the writer), `status.html` (the
//! page, compiled in).
//!
//! Does not own the counters (`metrics/`) or server state (`backend_rt.rs`).

pub mod api;
pub mod json;
pub mod request;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mio::net::{TcpListener, TcpStream};
use reactor::{Ctx, Interest, Ready, TimerKey, Token};
use slab::Slab;

use crate::events::{AdminConnId, Loop, Tag, Timer};
use crate::logging::AccessLog;
use crate::runtime::Runtime;
use api::{Env, Response, Roles};
use request::{Parsed, MAX_REQUEST};

/// From accept to the last byte of the answer.
pub const REQUEST_TIME: Duration = Duration::from_secs(5);
/// Admin connections open at once; more are closed at accept.
pub const MAX_CONNS: usize = 4096;
/// Accepts per readiness event before yielding to the other sockets.
const ACCEPT_BUDGET: usize = 64;

/// One admin/metrics listening socket and what it serves.
pub struct AdminSock {
    pub sock: TcpListener,
    pub roles: Roles,
}

struct Conn {
    stream: TcpStream,
    token: Token,
    peer: SocketAddr,
    roles: Roles,
    request: Vec<u8>,
    /// The answer, once there is one.
    answer: Option<Vec<u8>>,
    written: usize,
    timer: Option<TimerKey>,
}

pub struct AdminServer {
    rt: Arc<Runtime>,
    access: AccessLog,
    started: SystemTime,
    listeners: Vec<(AdminSock, Option<Token>)>,
    conns: Slab<Conn>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// The bytes of a whole answer (`head_only` for HEAD).
fn encode(r: &Response, head_only: bool) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    if r.challenge {
        head.push_str("WWW-Authenticate: Basic realm=\"nvelox\"\r\n");
    }
    if let Some(allow) = r.allow {
        head.push_str("Allow: ");
        head.push_str(allow);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(r.body.as_bytes());
    }
    out
}

impl AdminServer {
    pub fn new(rt: Arc<Runtime>, access: AccessLog, socks: Vec<AdminSock>) -> AdminServer {
        AdminServer {
            rt,
            access,
            started: SystemTime::now(),
            listeners: socks.into_iter().map(|s| (s, None)).collect(),
            conns: Slab::new(),
        }
    }

    pub fn start(&mut self, ctx: &mut Ctx<impl Loop>) {
        for (i, (l, token)) in self.listeners.iter_mut().enumerate() {
            match ctx.register(&mut l.sock, Interest::READABLE, Tag::AdminListener(i)) {
                Ok(t) => *token = Some(t),
                Err(e) => log::error!("cannot register the admin/metrics socket: {e}"),
            }
        }
    }

    /// Reload: answers come from the new configuration (paths, api_key).
    pub fn set_runtime(&mut self, rt: Arc<Runtime>) {
        self.rt = rt;
    }

    /// Shutdown: close the sockets and every admin connection.
    pub fn stop(&mut self, ctx: &mut Ctx<impl Loop>) {
        for (mut l, token) in self.listeners.drain(..) {
            if let Some(t) = token {
                ctx.deregister(&mut l.sock, t);
            }
        }
        let ids: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in ids {
            self.close(ctx, AdminConnId(k));
        }
    }

    pub fn on_listener_ready(&mut self, ctx: &mut Ctx<impl Loop>, i: usize, token: Token) {
        for _ in 0..ACCEPT_BUDGET {
            let Some((l, _)) = self.listeners.get(i) else {
                return;
            };
            let roles = l.roles;
            match l.sock.accept() {
                Ok((stream, peer)) => self.open(ctx, stream, peer, roles),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors, usually: the clients wait in the
                    // backlog; try again on the next event.
                    log::debug!("admin accept: {e}");
                    return;
                }
            }
        }
        ctx.requeue(token, Ready::READABLE);
    }

    fn open(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        mut stream: TcpStream,
        peer: SocketAddr,
        roles: Roles,
    ) {
        if self.conns.len() >= MAX_CONNS {
            return; // dropped: closed at once
        }
        let entry = self.conns.vacant_entry();
        let id = AdminConnId(entry.key());
        let Ok(token) = ctx.register(
            &mut stream,
            Interest::READABLE | Interest::WRITABLE,
            Tag::AdminConn(id),
        ) else {
            return;
        };
        let timer = Some(ctx.set_timer_after(REQUEST_TIME, Timer::AdminDeadline(id)));
        entry.insert(Conn {
            stream,
            token,
            peer,
            roles,
            request: Vec::new(),
            answer: None,
            written: 0,
            timer,
        });
        // The request may already be there (edge-triggered: no new edge).
        self.on_conn_ready(ctx, id, Ready::READABLE);
    }

    pub fn on_deadline(&mut self, ctx: &mut Ctx<impl Loop>, id: AdminConnId) {
        if let Some(c) = self.conns.get_mut(id.0) {
            c.timer = None;
        }
        self.close(ctx, id);
    }

    pub fn on_conn_ready(&mut self, ctx: &mut Ctx<impl Loop>, id: AdminConnId, _ready: Ready) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        if c.answer.is_none() {
            match read_request(c) {
                Ok(false) => {}
                Ok(true) => return self.close(ctx, id),
                Err(_) => return self.close(ctx, id),
            }
            let answer = match request::parse(&c.request) {
                Parsed::Partial => return,
                Parsed::Bad(why) => encode(&Response::error(400, why), false),
                Parsed::TooLarge => encode(&Response::error(431, "request too large"), false),
                Parsed::Complete(req) => {
                    let env = Env {
                        rt: &self.rt,
                        roles: c.roles,
                        peer: c.peer.ip(),
                        access_log_dropped: self.access.dropped(),
                        started: self.started,
                    };
                    encode(&api::respond(&req, &env), req.method == "HEAD")
                }
            };
            c.answer = Some(answer);
        }
        if write_answer(c).unwrap_or(true) {
            self.close(ctx, id);
        }
    }

    fn close(&mut self, ctx: &mut Ctx<impl Loop>, id: AdminConnId) {
        let Some(mut c) = self.conns.try_remove(id.0) else {
            return;
        };
        if let Some(k) = c.timer.take() {
            ctx.cancel_timer(k);
        }
        ctx.deregister(&mut c.stream, c.token);
    }
}

/// Reads what is there, up to the request limit. `Ok(true)`: the client
/// closed before a whole request.
fn read_request(c: &mut Conn) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    while c.request.len() < MAX_REQUEST {
        let room = (MAX_REQUEST - c.request.len()).min(chunk.len());
        match c.stream.read(&mut chunk[..room]) {
            Ok(0) => return Ok(true),
            Ok(n) => c.request.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Writes as much of the answer as the socket takes. `Ok(true)`: done.
fn write_answer(c: &mut Conn) -> io::Result<bool> {
    let Some(answer) = &c.answer else {
        return Ok(false);
    };
    while c.written < answer.len() {
        match c.stream.write(&answer[c.written..]) {
            Ok(0) => return Ok(true),
            Ok(n) => c.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // FIN after the answer; the socket closes when the connection drops.
    let _ = c.stream.shutdown(std::net::Shutdown::Write);
    Ok(true)
}
