//! Server health. `state.rs` is each server's health state machine (pure:
//! active rise/fall, passive max_fails/fail_timeout, the single trial);
//! this file runs the active checks: probes driven by the reactor's timers
//! on loop 0.
//!
//! Owns: one [`Probe`] per server with `health_check.active`, each at most
//! one probe in flight, on a non-blocking socket registered in the loop
//! (never a blocking call), with a timeout timer; scheduling with jitter;
//! a small reserve of file descriptors so probes still run when client
//! traffic fills the fd table. Results go to
//! [`BackendRt::report_probe`](crate::backend_rt::BackendRt::report_probe),
//! which keeps the state ([`state::Health`]) and logs the warning line.
//!
//! A backend with `backend_tls` is probed over TLS (`tcp` and `http`
//! checks): the PROXY header in clear, then the handshake (a refused
//! certificate or a failed handshake is a failed probe, as it is a failed
//! connect for traffic), then the check's bytes through the session; a
//! `tcp` check without `send`/`expect` is up once the handshake completes.
//!
//! Does not own: what a reply means (`probe.rs`, pure), where and when to
//! probe (`schedule.rs`, pure), passive checks (the TCP and UDP proxies
//! report connection outcomes through `BackendRt`).
//!
//! Only loop 0 runs probes ([`HealthChecker::start`] is called there);
//! every loop reads the published state through `Runtime::backends`.

pub mod probe;
pub mod schedule;
pub mod state;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UdpSocket};
use reactor::{Ctx, Interest, Ready, TimerKey, Token};

use crate::config::CheckKind;
use crate::events::Loop;
pub use crate::events::ProbeId;
use crate::events::{Tag, Timer};
use crate::limits::{is_resource_exhaustion, LogLimiter};
use crate::runtime::Runtime;
use crate::tls::{Handshake, TlsSession};
use probe::{Conversation, Failure, Verdict};
use schedule::{first_probe, next_probe, Prng, ProbeTarget};

/// How many spare fds the checker holds back for its probes. Probes run
/// one per server at a time; a handful is enough to keep the servers that
/// matter probed while clients hold every other descriptor.
const FD_RESERVE: usize = 4;
/// Read size per `read` call; replies are bounded by the conversation.
const CHUNK: usize = 2048;

enum Sock {
    Stream(TcpStream),
    Datagram(UdpSocket),
}

/// One probe in flight.
struct Flight {
    sock: Sock,
    token: Token,
    timeout: TimerKey,
    started: Instant,
    connected: bool,
    written: usize,
    reply: Vec<u8>,
    /// `backend_tls`: the session the check runs through.
    tls: Option<Box<TlsSession>>,
}

struct Probe {
    target: ProbeTarget,
    conv: Conversation,
    interval: Duration,
    timeout: Duration,
    /// The timer that starts the next probe.
    due: Option<TimerKey>,
    flight: Option<Flight>,
}

/// Spare descriptors, given up one at a time when a probe's `socket()`
/// fails for lack of descriptors, and taken back after the probe.
struct FdReserve {
    spare: Vec<socket2::Socket>,
}

impl FdReserve {
    fn new() -> FdReserve {
        let mut r = FdReserve { spare: Vec::new() };
        r.refill();
        r
    }

    fn refill(&mut self) {
        while self.spare.len() < FD_RESERVE {
            match socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None) {
                Ok(s) => self.spare.push(s),
                Err(_) => break,
            }
        }
    }

    /// Closes one spare; false when none is left.
    fn release_one(&mut self) -> bool {
        self.spare.pop().is_some()
    }
}

fn failure_of(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::Refused,
        io::ErrorKind::TimedOut => Failure::Timeout,
        _ => Failure::Broken,
    }
}

pub struct HealthChecker {
    rt: Arc<Runtime>,
    probes: Vec<Probe>,
    rng: Prng,
    reserve: Option<FdReserve>,
    skip_warn: LogLimiter,
    stopped: bool,
}

impl HealthChecker {
    /// Cheap: nothing is computed or opened until [`start`](Self::start),
    /// so loops other than 0 pay nothing.
    pub fn new(rt: Arc<Runtime>) -> HealthChecker {
        HealthChecker {
            rt,
            probes: Vec::new(),
            rng: Prng::new(0),
            reserve: None,
            skip_warn: LogLimiter::new(Duration::from_secs(1)),
            stopped: false,
        }
    }

    /// Builds the probe table and arms every server's first probe.
    pub fn start(&mut self, ctx: &mut Ctx<impl Loop>) {
        let rt = Arc::clone(&self.rt);
        let (targets, skipped) = schedule::targets(&rt.plan);
        for s in skipped {
            let b = rt.plan.backend(s.backend);
            log::warn!(
                "backend {} server {}: no port to probe (no server port, no health_check.active.port, no listener uses the backend); not health checked",
                b.name,
                b.servers[s.server.0].label
            );
        }
        if targets.is_empty() {
            return;
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
        self.rng = Prng::new(seed);
        self.reserve = Some(FdReserve::new());
        let now = ctx.now();
        let mut shortest = Duration::MAX;
        for target in targets {
            let b = rt.plan.backend(target.backend);
            let Some(active) = &b.health.active else {
                continue;
            };
            shortest = shortest.min(active.interval);
            let id = ProbeId(self.probes.len());
            let at = first_probe(now, active.interval, &mut self.rng);
            self.probes.push(Probe {
                conv: Conversation::new(active, target.addr, b.send_proxy),
                target,
                interval: active.interval,
                timeout: active.timeout,
                due: Some(ctx.set_timer(at, Timer::ProbeDue(id))),
                flight: None,
            });
        }
        // "Probe skipped: out of descriptors" at most once per interval.
        self.skip_warn = LogLimiter::new(shortest);
        log::info!("health checks: probing {} servers", self.probes.len());
    }

    /// Shutdown: no more probes; abandon those in flight without a verdict.
    pub fn stop(&mut self, ctx: &mut Ctx<impl Loop>) {
        self.stopped = true;
        for p in &mut self.probes {
            if let Some(k) = p.due.take() {
                ctx.cancel_timer(k);
            }
            if let Some(f) = p.flight.take() {
                ctx.cancel_timer(f.timeout);
                close(ctx, f);
            }
        }
    }

    /// It is time for a probe of `id`.
    pub fn on_due(&mut self, ctx: &mut Ctx<impl Loop>, id: ProbeId) {
        let Some(p) = self.probes.get_mut(id.0) else {
            return;
        };
        p.due = None;
        if self.stopped || p.flight.is_some() {
            return;
        }
        let now = ctx.now();
        let disabled = self
            .rt
            .backend(p.target.backend)
            .server(p.target.server)
            .admin_mode()
            == crate::backend_rt::AdminMode::Disabled;
        if disabled {
            // An operator took the server out: no probes until enabled.
            return self.schedule(ctx, id, now, now);
        }
        let opened = match p.conv.kind() {
            CheckKind::Tcp | CheckKind::Http => open_stream(p.target.addr),
            CheckKind::Udp => open_datagram(p.target.addr, p.conv.request()),
        };
        let opened = match opened {
            Err(e) if is_resource_exhaustion(&e) => {
                // Give up a spare descriptor and try once more.
                match self.reserve.as_mut().map(FdReserve::release_one) {
                    Some(true) => match p.conv.kind() {
                        CheckKind::Tcp | CheckKind::Http => open_stream(p.target.addr),
                        CheckKind::Udp => open_datagram(p.target.addr, p.conv.request()),
                    },
                    _ => Err(e),
                }
            }
            other => other,
        };
        let mut sock = match opened {
            Ok(s) => s,
            Err(e) if is_resource_exhaustion(&e) => return self.skipped(ctx, id, now, &e),
            Err(e) => return self.conclude_from(ctx, id, now, Verdict::Down(failure_of(&e))),
        };
        let tls = match (&sock, &self.rt.plan.backend(p.target.backend).tls) {
            (Sock::Stream(_), Some(t)) => {
                let server = &self
                    .rt
                    .backend(p.target.backend)
                    .server(p.target.server)
                    .plan;
                let session = match p.conv.kind() {
                    CheckKind::Http => t.http_session(server),
                    _ => t.session(server),
                };
                match session {
                    Ok(s) => Some(Box::new(s)),
                    Err(e) => {
                        log::error!("health check {}: cannot start TLS: {e}", p.target.addr);
                        let down = Verdict::Down(Failure::TlsHandshake);
                        return self.conclude_from(ctx, id, now, down);
                    }
                }
            }
            _ => None,
        };
        let interest = match sock {
            Sock::Stream(_) => Interest::READABLE | Interest::WRITABLE,
            Sock::Datagram(_) => Interest::READABLE,
        };
        let registered = match &mut sock {
            Sock::Stream(s) => ctx.register(s, interest, Tag::Probe(id)),
            Sock::Datagram(s) => ctx.register(s, interest, Tag::Probe(id)),
        };
        let token = match registered {
            Ok(t) => t,
            Err(e) => {
                log::error!("health check {}: cannot register probe: {e}", p.target.addr);
                return self.conclude_from(ctx, id, now, Verdict::Down(Failure::Broken));
            }
        };
        let timeout = ctx.set_timer_after(p.timeout, Timer::ProbeTimeout(id));
        p.flight = Some(Flight {
            sock,
            token,
            timeout,
            started: now,
            connected: false,
            written: 0,
            reply: Vec::new(),
            tls,
        });
    }

    pub fn on_timeout(&mut self, ctx: &mut Ctx<impl Loop>, id: ProbeId) {
        let Some(p) = self.probes.get_mut(id.0) else {
            return;
        };
        // The timer has fired; `finish` cancelling its stale key is a no-op.
        if p.flight.is_some() {
            self.finish(ctx, id, Verdict::Down(Failure::Timeout));
        }
    }

    pub fn on_ready(&mut self, ctx: &mut Ctx<impl Loop>, id: ProbeId, _ready: Ready) {
        let Some(p) = self.probes.get_mut(id.0) else {
            return;
        };
        let Some(f) = p.flight.as_mut() else {
            return;
        };
        let verdict = match &mut f.sock {
            Sock::Stream(s) => stream_progress(
                s,
                f.tls.as_deref_mut(),
                &mut f.connected,
                &mut f.written,
                &mut f.reply,
                &p.conv,
            ),
            Sock::Datagram(s) => datagram_progress(s, &p.conv),
        };
        if verdict != Verdict::Pending {
            self.finish(ctx, id, verdict);
        }
    }

    /// Ends the flight of `id` with `verdict`.
    fn finish(&mut self, ctx: &mut Ctx<impl Loop>, id: ProbeId, verdict: Verdict) {
        let p = &mut self.probes[id.0];
        let Some(f) = p.flight.take() else {
            return;
        };
        ctx.cancel_timer(f.timeout);
        let started = f.started;
        close(ctx, f);
        self.conclude_from(ctx, id, started, verdict);
    }

    /// Reports a verdict and schedules the next probe.
    fn conclude_from(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: ProbeId,
        started: Instant,
        v: Verdict,
    ) {
        if let Some(r) = self.reserve.as_mut() {
            r.refill();
        }
        let now = ctx.now();
        let p = &self.probes[id.0];
        let backend = self.rt.backend(p.target.backend);
        match v {
            Verdict::Up => backend.report_probe(p.target.server, true, now, "ok"),
            Verdict::Down(why) => {
                log::debug!(
                    "health check of backend {} server {} ({}): {why}",
                    backend.plan.name,
                    backend.server(p.target.server).plan.label,
                    p.target.addr
                );
                backend.report_probe(p.target.server, false, now, &why.to_string());
            }
            Verdict::Pending => {}
        }
        self.schedule(ctx, id, started, now);
    }

    /// No descriptor for the probe: neither up nor down, just try again
    /// next interval. The server is not at fault.
    fn skipped(&mut self, ctx: &mut Ctx<impl Loop>, id: ProbeId, now: Instant, e: &io::Error) {
        if let Some(n) = self.skip_warn.allow(now) {
            log::warn!(
                "health check of {} skipped: {e} ({n} similar messages suppressed)",
                self.probes[id.0].target.addr
            );
        }
        if let Some(r) = self.reserve.as_mut() {
            r.refill();
        }
        self.schedule(ctx, id, now, now);
    }

    fn schedule(&mut self, ctx: &mut Ctx<impl Loop>, id: ProbeId, started: Instant, now: Instant) {
        if self.stopped {
            return;
        }
        let p = &mut self.probes[id.0];
        let at = next_probe(started, now, p.interval, &mut self.rng);
        p.due = Some(ctx.set_timer(at, Timer::ProbeDue(id)));
    }
}

fn close(ctx: &mut Ctx<impl Loop>, f: Flight) {
    match f.sock {
        Sock::Stream(mut s) => {
            ctx.deregister(&mut s, f.token);
        }
        Sock::Datagram(mut s) => {
            ctx.deregister(&mut s, f.token);
        }
    }
}

fn open_stream(addr: SocketAddr) -> io::Result<Sock> {
    TcpStream::connect(addr).map(Sock::Stream)
}

/// A fresh UDP socket connected to the server, with the probe datagram
/// sent. Connected, so the kernel reports ICMP port unreachable to us as
/// ECONNREFUSED and filters datagrams from anyone else.
fn open_datagram(addr: SocketAddr, request: &[u8]) -> io::Result<Sock> {
    let any = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let s = UdpSocket::bind(SocketAddr::new(any, 0))?;
    s.connect(addr)?;
    match s.send(request) {
        Ok(_) => {}
        // A full send buffer on a fresh socket: the timeout will judge.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(Sock::Datagram(s))
}

/// A probe's stream: the socket, or the socket through its TLS session.
struct ProbeIo<'a> {
    s: &'a mut TcpStream,
    tls: Option<&'a mut TlsSession>,
}

impl Read for ProbeIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            Some(t) => t.io(&mut *self.s).read(buf),
            None => self.s.read(buf),
        }
    }
}

impl Write for ProbeIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.tls.as_deref_mut() {
            Some(t) => t.io(&mut *self.s).write(buf),
            None => self.s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `request[*written..upto]`: false when the socket broke.
fn write_upto(
    io: &mut impl Write,
    request: &[u8],
    upto: usize,
    written: &mut usize,
) -> Result<(), Verdict> {
    while *written < upto {
        match io.write(&request[*written..upto]) {
            Ok(0) => return Err(Verdict::Down(Failure::Broken)),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Verdict::Down(failure_of(&e))),
        }
    }
    Ok(())
}

/// Drives a TCP/HTTP probe as far as the socket allows (`tls`: through
/// the `backend_tls` session, after its PROXY header in clear).
fn stream_progress(
    s: &mut TcpStream,
    mut tls: Option<&mut TlsSession>,
    connected: &mut bool,
    written: &mut usize,
    reply: &mut Vec<u8>,
    conv: &Conversation,
) -> Verdict {
    if !*connected {
        match reactor::io::connect_result(s) {
            Ok(false) => return Verdict::Pending,
            Ok(true) => *connected = true,
            Err(e) => return Verdict::Down(failure_of(&e)),
        }
    }
    let request = conv.request();
    if let Some(t) = tls.as_deref_mut() {
        let header = conv.header_len();
        if let Err(v) = write_upto(s, request, header, written) {
            return v;
        }
        if *written < header {
            return Verdict::Pending;
        }
        if t.is_handshaking() {
            match t.handshake(s) {
                Handshake::Pending => return Verdict::Pending,
                Handshake::Done => {}
                Handshake::Failed(_) if t.cert_rejected() => {
                    return Verdict::Down(Failure::TlsVerify)
                }
                Handshake::Failed(_) => return Verdict::Down(Failure::TlsHandshake),
            }
        }
    }
    let mut io = ProbeIo { s, tls };
    if let Err(v) = write_upto(&mut io, request, request.len(), written) {
        return v;
    }
    if *written == request.len() && conv.sent() == Verdict::Up {
        return Verdict::Up;
    }
    let limit = conv.reply_limit();
    let mut chunk = [0u8; CHUNK];
    let mut eof = false;
    while reply.len() < limit {
        let room = (limit - reply.len()).min(CHUNK);
        match io.read(&mut chunk[..room]) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Verdict::Down(failure_of(&e)),
        }
    }
    conv.judge_stream(reply, eof)
}

fn datagram_progress(s: &mut UdpSocket, conv: &Conversation) -> Verdict {
    let mut buf = [0u8; probe::MAX_DATAGRAM];
    loop {
        match s.recv(&mut buf) {
            Ok(n) => return conv.judge_datagram(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Verdict::Pending,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Verdict::Down(failure_of(&e)),
        }
    }
}
