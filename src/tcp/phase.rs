//! The life cycle of one TCP connection as a sans-IO state machine.
//!
//! Owns: the phase a connection is in (awaiting its PROXY header, its
//! TLS ClientHello for `sni_routes`, or the end of its TLS handshake;
//! connecting with attempt *n*, relaying, half-closed either way, closed),
//! how many servers it has tried against `retries`, when it was last
//! active, which single timer it needs next (deadlines saturate through
//! `clock::after`), and why it ended (the access log's `reason=`).
//! Every transition takes an [`Event`] and `now` and returns the one
//! [`Action`] the shell must perform.
//!
//! Does not own: sockets, buffers, the balancer, health reports or log
//! lines. The shell (`conn.rs`, `header.rs`, `accept.rs`) does the I/O and
//! feeds its outcomes back in as events.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use super::relay::Pump;
use crate::clock::after;

/// How long a client on an `accept_proxy` listener has to send its header.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client on an `sni_routes` listener has to send its ClientHello.
pub const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client on a `tls:` listener has to finish its handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a new connection must go through before a server is chosen, in
/// this order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Intake {
    /// `accept_proxy`: the client's PROXY header.
    pub proxy_header: bool,
    /// `sni_routes`: the ClientHello (read, not consumed) picks the backend.
    pub client_hello: bool,
    /// `tls:`: the TLS handshake with the client.
    pub tls_handshake: bool,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `accept_proxy`: waiting for the client's PROXY header.
    AwaitingHeader,
    /// `sni_routes`: waiting for the client's whole ClientHello.
    AwaitingHello,
    /// `tls:`: the TLS handshake with the client is under way.
    Handshaking,
    /// Choosing a server and connecting to it. `attempt` counts the servers
    /// chosen so far (0 before the first is chosen).
    Connecting { attempt: u32 },
    /// Bytes flow both ways.
    Relaying,
    /// The client finished sending and its FIN was passed to the server;
    /// the server's bytes still flow to the client.
    ClientFinished,
    /// The server finished sending and its FIN was passed to the client;
    /// the client's bytes still flow to the server.
    ServerFinished,
    /// Nothing more happens; the shell drops the connection.
    Closed(Reason),
}

/// Why a connection ended: the access log's `reason=` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Both directions finished with a FIN.
    Done,
    IdleTimeout,
    /// Every server tried failed, or `retries` ran out.
    ConnectFailed,
    /// The balancer had no server for the first attempt.
    NoServer,
    /// The backend's `max_connections` was reached at the first attempt.
    BackendFull,
    /// A connect failed for lack of file descriptors (ours, not the server's).
    OutOfFds,
    BadHeader,
    HeaderTimeout,
    /// `sni_routes`: what the client sent is not a TLS ClientHello.
    BadClientHello,
    ClientHelloTimeout,
    /// `tls:`: the handshake with the client failed.
    HandshakeFailed,
    HandshakeTimeout,
    /// The access rules refused the client (`ip_denylist`, limits, ...).
    Denied,
    ClientReset,
    ClientError,
    ServerReset,
    ServerError,
    /// `shutdown_timeout` ended while the connection was still open.
    Shutdown,
}

impl Reason {
    /// The text written after `reason=` in the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Done => "done",
            Reason::IdleTimeout => "idle timeout",
            Reason::ConnectFailed => "connect failed",
            Reason::NoServer => "no server available",
            Reason::BackendFull => "backend full",
            Reason::OutOfFds => "out of file descriptors",
            Reason::BadHeader => "bad PROXY header",
            Reason::HeaderTimeout => "PROXY header timeout",
            Reason::BadClientHello => "bad ClientHello",
            Reason::ClientHelloTimeout => "ClientHello timeout",
            Reason::HandshakeFailed => "TLS handshake failed",
            Reason::HandshakeTimeout => "TLS handshake timeout",
            Reason::Denied => "denied",
            Reason::ClientReset => "client reset",
            Reason::ClientError => "client error",
            Reason::ServerReset => "server reset",
            Reason::ServerError => "server error",
            Reason::Shutdown => "shutdown",
        }
    }

    /// Both sockets close with RST (`SO_LINGER 0`): a reset or error on
    /// one side is passed on as a reset.
    pub fn is_reset(self) -> bool {
        matches!(
            self,
            Reason::ClientReset | Reason::ClientError | Reason::ServerReset | Reason::ServerError
        )
    }

    /// The connection ended before any server took it: a connection
    /// error of its listener.
    pub fn never_reached_a_server(self) -> bool {
        matches!(
            self,
            Reason::ConnectFailed
                | Reason::NoServer
                | Reason::BackendFull
                | Reason::OutOfFds
                | Reason::BadHeader
                | Reason::HeaderTimeout
        )
    }

    /// A server that resets before sending a single byte counts as a
    /// passive health failure; a reset later in a conversation does not.
    pub fn blames_server(self, bytes_from_server: u64) -> bool {
        self == Reason::ServerReset && bytes_from_server == 0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two timers a connection uses, one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// The PROXY header, ClientHello, handshake or the current connect
    /// attempt is due.
    Deadline,
    /// Check for inactivity.
    Idle,
}

/// What happened, as the shell saw it.
#[derive(Debug)]
pub enum Event<'a> {
    /// The PROXY header is complete (its addresses are recorded).
    HeaderComplete,
    /// Garbage, an over-long header, or the client closed first.
    HeaderRejected,
    /// The ClientHello is complete and chose the backend (`sni_routes`).
    HelloRouted,
    /// Not a ClientHello, an over-long one, or the client closed first.
    HelloRejected,
    /// The client's TLS handshake completed.
    HandshakeDone,
    /// The client's TLS handshake failed.
    HandshakeFailed,
    /// The client in the PROXY header is refused by the access rules.
    Denied,
    /// The balancer chose a server: a new attempt begins.
    ServerChosen,
    /// The balancer has no (further) server.
    NoServer,
    /// The backend is at its `max_connections`.
    BackendFull,
    /// A non-blocking connect to the chosen server is under way.
    ConnectPending,
    /// The current attempt failed (refused, failed at once, timed out,
    /// could not be registered); the shell has reported and released it.
    AttemptFailed,
    /// Opening the upstream socket failed for lack of descriptors.
    OutOfFds,
    /// The upstream connect completed.
    Connected,
    /// The connection's deadline timer fired.
    Deadline,
    /// The connection's idle timer fired.
    IdleTimer,
    /// Both directions were pumped.
    Relayed(Relayed<'a>),
    /// The process is shutting down and the drain time is over.
    Shutdown,
}

/// The result of pumping both directions once.
#[derive(Debug)]
pub struct Relayed<'a> {
    /// Client -> server.
    pub up: &'a Pump,
    /// Server -> client.
    pub down: &'a Pump,
    /// The client's FIN has been passed to the server.
    pub up_done: bool,
    /// The server's FIN has been passed to the client.
    pub down_done: bool,
    /// At least one byte moved (the connection is active).
    pub moved: bool,
}

/// The one thing the shell must do after a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the next event.
    Wait,
    /// Cancel the running timer, choose a server and start connecting
    /// (report back `ServerChosen`/`NoServer`, then the outcome).
    Connect,
    /// Arm the connection's timer at `at`, replacing any running one.
    Arm(Instant, TimerKind),
    /// Tear the current attempt down as failed for this passive-health
    /// reason, then report `AttemptFailed`.
    AbandonAttempt(&'static str),
    /// The relay budget ran out with work left: re-queue the client.
    Requeue,
    /// Close both sockets (with RST when `reason.is_reset()`), release
    /// everything, write the access-log line.
    Close(Reason),
}

/// The per-connection limits, fixed when the connection is accepted (a
/// reload does not change an established connection's timeouts).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Servers tried after the first one fails.
    pub retries: u32,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
}

/// One connection's state.
#[derive(Debug)]
pub struct ConnState {
    phase: Phase,
    intake: Intake,
    limits: Limits,
    started: Instant,
    last_active: Instant,
}

impl ConnState {
    /// A connection accepted at `now`. With `accept_proxy` it first waits
    /// for the PROXY header (up to [`PROXY_HEADER_TIMEOUT`]); otherwise it
    /// starts connecting at once.
    pub fn accepted(now: Instant, accept_proxy: bool, limits: Limits) -> (ConnState, Action) {
        let intake = Intake {
            proxy_header: accept_proxy,
            ..Intake::default()
        };
        ConnState::accepted_with(now, intake, limits)
    }

    /// A connection accepted at `now` that goes through `intake` first.
    pub fn accepted_with(now: Instant, intake: Intake, limits: Limits) -> (ConnState, Action) {
        let mut s = ConnState {
            phase: Phase::AwaitingHeader,
            intake,
            limits,
            started: now,
            last_active: now,
        };
        let action = if intake.proxy_header {
            Action::Arm(after(now, PROXY_HEADER_TIMEOUT), TimerKind::Deadline)
        } else {
            s.after_header(now)
        };
        (s, action)
    }

    /// The PROXY header is in (or none was expected): the next intake step.
    fn after_header(&mut self, now: Instant) -> Action {
        if self.intake.client_hello {
            self.phase = Phase::AwaitingHello;
            Action::Arm(after(now, CLIENT_HELLO_TIMEOUT), TimerKind::Deadline)
        } else {
            self.after_hello(now)
        }
    }

    fn after_hello(&mut self, now: Instant) -> Action {
        if self.intake.tls_handshake {
            self.phase = Phase::Handshaking;
            Action::Arm(after(now, TLS_HANDSHAKE_TIMEOUT), TimerKind::Deadline)
        } else {
            self.phase = Phase::Connecting { attempt: 0 };
            Action::Connect
        }
    }

    /// `sni_routes` chose another backend than the listener's: its retries
    /// and connect timeout apply from now on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Bytes may be relayed in this phase.
    pub fn is_relaying(&self) -> bool {
        matches!(
            self.phase,
            Phase::Relaying | Phase::ClientFinished | Phase::ServerFinished
        )
    }

    fn close(&mut self, reason: Reason) -> Action {
        self.phase = Phase::Closed(reason);
        Action::Close(reason)
    }

    /// The transition function.
    pub fn on(&mut self, event: Event<'_>, now: Instant) -> Action {
        use Phase::*;
        match (self.phase, event) {
            (Closed(_), _) => Action::Wait,
            (_, Event::Shutdown) => self.close(Reason::Shutdown),

            (AwaitingHeader, Event::HeaderComplete) => self.after_header(now),
            (AwaitingHeader, Event::HeaderRejected) => self.close(Reason::BadHeader),
            (AwaitingHeader, Event::Deadline) => self.close(Reason::HeaderTimeout),

            (AwaitingHello, Event::HelloRouted) => self.after_hello(now),
            (AwaitingHello, Event::HelloRejected) => self.close(Reason::BadClientHello),
            (AwaitingHello, Event::Deadline) => self.close(Reason::ClientHelloTimeout),

            (Handshaking, Event::HandshakeDone) => {
                self.phase = Connecting { attempt: 0 };
                Action::Connect
            }
            (Handshaking, Event::HandshakeFailed) => self.close(Reason::HandshakeFailed),
            (Handshaking, Event::Deadline) => self.close(Reason::HandshakeTimeout),
            (AwaitingHeader, Event::Denied) => self.close(Reason::Denied),

            (Connecting { attempt }, Event::ServerChosen) => {
                self.phase = Connecting {
                    attempt: attempt.saturating_add(1),
                };
                Action::Wait
            }
            (Connecting { attempt }, e @ (Event::NoServer | Event::BackendFull)) => {
                self.close(match (attempt, e) {
                    (0, Event::BackendFull) => Reason::BackendFull,
                    (0, _) => Reason::NoServer,
                    _ => Reason::ConnectFailed,
                })
            }
            (Connecting { .. }, Event::ConnectPending) => {
                Action::Arm(after(now, self.limits.connect_timeout), TimerKind::Deadline)
            }
            (Connecting { attempt }, Event::AttemptFailed) => {
                if attempt > self.limits.retries {
                    self.close(Reason::ConnectFailed)
                } else {
                    Action::Connect
                }
            }
            (Connecting { .. }, Event::OutOfFds) => self.close(Reason::OutOfFds),
            (Connecting { .. }, Event::Deadline) => Action::AbandonAttempt("connect timeout"),
            (Connecting { .. }, Event::Connected) => {
                self.phase = Relaying;
                self.last_active = now;
                Action::Arm(after(now, self.limits.idle_timeout), TimerKind::Idle)
            }

            (Relaying | ClientFinished | ServerFinished, Event::IdleTimer) => {
                let due = after(self.last_active, self.limits.idle_timeout);
                if now >= due {
                    self.close(Reason::IdleTimeout)
                } else {
                    Action::Arm(due, TimerKind::Idle)
                }
            }
            (Relaying | ClientFinished | ServerFinished, Event::Relayed(r)) => self.relayed(r, now),

            // A timer or event that outlived the phase it was meant for.
            _ => Action::Wait,
        }
    }

    fn relayed(&mut self, r: Relayed<'_>, now: Instant) -> Action {
        if r.moved {
            self.last_active = now;
        }
        let failed = match (r.up, r.down) {
            (Pump::SourceFailed(e), _) | (_, Pump::SinkFailed(e)) => Some(failure(e, Side::Client)),
            (Pump::SinkFailed(e), _) | (_, Pump::SourceFailed(e)) => Some(failure(e, Side::Server)),
            _ => None,
        };
        if let Some(reason) = failed {
            return self.close(reason);
        }
        self.phase = match (r.up_done, r.down_done) {
            (true, true) => return self.close(Reason::Done),
            (true, false) => Phase::ClientFinished,
            (false, true) => Phase::ServerFinished,
            (false, false) => Phase::Relaying,
        };
        if matches!(r.up, Pump::Budget) || matches!(r.down, Pump::Budget) {
            Action::Requeue
        } else {
            Action::Wait
        }
    }
}

#[derive(Clone, Copy)]
enum Side {
    Client,
    Server,
}

/// A failed read or write on `side`: a reset when the peer reset or went
/// away, an error otherwise; either way passed on as a reset.
fn failure(e: &io::Error, side: Side) -> Reason {
    let reset = matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    );
    match (side, reset) {
        (Side::Client, true) => Reason::ClientReset,
        (Side::Client, false) => Reason::ClientError,
        (Side::Server, true) => Reason::ServerReset,
        (Side::Server, false) => Reason::ServerError,
    }
}

#[cfg(test)]
#[path = "phase_tests.rs"]
mod tests;
