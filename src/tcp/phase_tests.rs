//! Transitions of [`ConnState`], with a fake clock.

use super::*;

const LIMITS: Limits = Limits {
    retries: 2,
    connect_timeout: Duration::from_secs(3),
    idle_timeout: Duration::from_secs(60),
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn start(t0: Instant) -> ConnState {
    let (s, a) = ConnState::accepted(t0, false, LIMITS);
    assert_eq!(a, Action::Connect);
    assert_eq!(s.phase(), Phase::Connecting { attempt: 0 });
    s
}

/// A connection that reached `Relaying` at `t0`.
fn relaying(t0: Instant) -> ConnState {
    let mut s = start(t0);
    assert_eq!(s.on(Event::ServerChosen, t0), Action::Wait);
    s.on(Event::ConnectPending, t0);
    assert_eq!(
        s.on(Event::Connected, t0),
        Action::Arm(t0 + secs(60), TimerKind::Idle)
    );
    s
}

fn relayed(s: &mut ConnState, up: Pump, down: Pump, done: (bool, bool), now: Instant) -> Action {
    s.on(
        Event::Relayed(Relayed {
            up: &up,
            down: &down,
            up_done: done.0,
            down_done: done.1,
            moved: true,
        }),
        now,
    )
}

fn err(kind: io::ErrorKind) -> io::Error {
    io::Error::from(kind)
}

#[test]
fn accept_proxy_waits_for_the_header_under_a_deadline() {
    let t0 = Instant::now();
    let (mut s, a) = ConnState::accepted(t0, true, LIMITS);
    assert_eq!(s.phase(), Phase::AwaitingHeader);
    assert_eq!(
        a,
        Action::Arm(t0 + PROXY_HEADER_TIMEOUT, TimerKind::Deadline)
    );
    assert!(!s.is_relaying());
    assert_eq!(s.on(Event::HeaderComplete, t0 + secs(1)), Action::Connect);
    assert_eq!(s.phase(), Phase::Connecting { attempt: 0 });
}

#[test]
fn a_bad_or_late_header_closes() {
    let t0 = Instant::now();
    let (mut s, _) = ConnState::accepted(t0, true, LIMITS);
    assert_eq!(
        s.on(Event::HeaderRejected, t0),
        Action::Close(Reason::BadHeader)
    );
    assert_eq!(s.phase(), Phase::Closed(Reason::BadHeader));
    let (mut s, _) = ConnState::accepted(t0, true, LIMITS);
    assert_eq!(
        s.on(Event::Deadline, t0 + PROXY_HEADER_TIMEOUT),
        Action::Close(Reason::HeaderTimeout)
    );
}

#[test]
fn a_pending_connect_arms_the_connect_timeout_and_a_late_one_is_abandoned() {
    let t0 = Instant::now();
    let mut s = start(t0);
    s.on(Event::ServerChosen, t0);
    assert_eq!(s.phase(), Phase::Connecting { attempt: 1 });
    assert_eq!(
        s.on(Event::ConnectPending, t0),
        Action::Arm(t0 + secs(3), TimerKind::Deadline)
    );
    assert_eq!(
        s.on(Event::Deadline, t0 + secs(3)),
        Action::AbandonAttempt("connect timeout")
    );
    // The shell reports the failure; the next server is tried.
    assert_eq!(s.on(Event::AttemptFailed, t0 + secs(3)), Action::Connect);
}

#[test]
fn retries_bound_the_attempts() {
    let t0 = Instant::now();
    let mut s = start(t0);
    // retries: 2 -> three servers in all.
    for attempt in 1..=2 {
        s.on(Event::ServerChosen, t0);
        assert_eq!(s.phase(), Phase::Connecting { attempt });
        assert_eq!(s.on(Event::AttemptFailed, t0), Action::Connect);
    }
    s.on(Event::ServerChosen, t0);
    assert_eq!(
        s.on(Event::AttemptFailed, t0),
        Action::Close(Reason::ConnectFailed)
    );
    assert_eq!(s.phase(), Phase::Closed(Reason::ConnectFailed));
}

#[test]
fn no_retries_means_one_attempt() {
    let t0 = Instant::now();
    let limits = Limits {
        retries: 0,
        ..LIMITS
    };
    let (mut s, _) = ConnState::accepted(t0, false, limits);
    s.on(Event::ServerChosen, t0);
    assert_eq!(
        s.on(Event::AttemptFailed, t0),
        Action::Close(Reason::ConnectFailed)
    );
}

#[test]
fn no_server_is_told_apart_from_servers_that_failed() {
    let t0 = Instant::now();
    let mut s = start(t0);
    assert_eq!(s.on(Event::NoServer, t0), Action::Close(Reason::NoServer));
    let mut s = start(t0);
    let full = s.on(Event::BackendFull, t0);
    assert_eq!(full, Action::Close(Reason::BackendFull));
    assert!(Reason::BackendFull.never_reached_a_server());
    for last in [Event::NoServer, Event::BackendFull] {
        let mut s = start(t0);
        s.on(Event::ServerChosen, t0);
        s.on(Event::AttemptFailed, t0);
        assert_eq!(
            s.on(last, t0),
            Action::Close(Reason::ConnectFailed),
            "the only server failed, the balancer has no other"
        );
    }
}

#[test]
fn running_out_of_descriptors_closes_without_retrying() {
    let t0 = Instant::now();
    let mut s = start(t0);
    s.on(Event::ServerChosen, t0);
    assert_eq!(s.on(Event::OutOfFds, t0), Action::Close(Reason::OutOfFds));
}

#[test]
fn the_idle_timer_closes_only_after_a_quiet_idle_timeout() {
    let t0 = Instant::now();
    let mut s = relaying(t0);
    // Traffic at t0+50s moves the deadline: the timer at t0+60s re-arms.
    assert_eq!(
        relayed(
            &mut s,
            Pump::Idle,
            Pump::Idle,
            (false, false),
            t0 + secs(50)
        ),
        Action::Wait
    );
    assert_eq!(
        s.on(Event::IdleTimer, t0 + secs(60)),
        Action::Arm(t0 + secs(110), TimerKind::Idle)
    );
    assert_eq!(
        s.on(Event::IdleTimer, t0 + secs(110)),
        Action::Close(Reason::IdleTimeout)
    );
}

#[test]
fn a_pump_without_bytes_does_not_count_as_activity() {
    let t0 = Instant::now();
    let mut s = relaying(t0);
    let (idle, also_idle) = (Pump::Idle, Pump::Idle);
    let quiet = Relayed {
        up: &idle,
        down: &also_idle,
        up_done: false,
        down_done: false,
        moved: false,
    };
    assert_eq!(s.on(Event::Relayed(quiet), t0 + secs(50)), Action::Wait);
    assert_eq!(
        s.on(Event::IdleTimer, t0 + secs(60)),
        Action::Close(Reason::IdleTimeout)
    );
}

#[test]
fn half_closes_each_way_then_done() {
    let t0 = Instant::now();
    let mut s = relaying(t0);
    assert!(s.is_relaying());
    relayed(&mut s, Pump::Idle, Pump::Idle, (true, false), t0);
    assert_eq!(s.phase(), Phase::ClientFinished);
    assert!(s.is_relaying(), "replies still flow after the client's FIN");
    assert_eq!(
        relayed(&mut s, Pump::Idle, Pump::Idle, (true, true), t0),
        Action::Close(Reason::Done)
    );

    let mut s = relaying(t0);
    relayed(&mut s, Pump::Idle, Pump::Idle, (false, true), t0);
    assert_eq!(s.phase(), Phase::ServerFinished);
    assert_eq!(
        s.on(Event::IdleTimer, t0 + secs(61)),
        Action::Close(Reason::IdleTimeout),
        "a half-closed connection still times out"
    );
}

#[test]
fn a_spent_budget_requeues() {
    let t0 = Instant::now();
    let mut s = relaying(t0);
    assert_eq!(
        relayed(&mut s, Pump::Budget, Pump::Idle, (false, false), t0),
        Action::Requeue
    );
    assert_eq!(
        relayed(&mut s, Pump::Idle, Pump::Budget, (true, false), t0),
        Action::Requeue
    );
    assert_eq!(s.phase(), Phase::ClientFinished);
}

#[test]
fn failures_name_the_side_and_pass_on_a_reset() {
    use io::ErrorKind::*;
    let t0 = Instant::now();
    let cases = [
        // (up, down, reason)
        (
            Pump::SourceFailed(err(ConnectionReset)),
            Pump::Idle,
            Reason::ClientReset,
        ),
        (
            Pump::Idle,
            Pump::SinkFailed(err(BrokenPipe)),
            Reason::ClientReset,
        ),
        (
            Pump::SourceFailed(err(Other)),
            Pump::Idle,
            Reason::ClientError,
        ),
        (
            Pump::SinkFailed(err(ConnectionAborted)),
            Pump::Idle,
            Reason::ServerReset,
        ),
        (
            Pump::Idle,
            Pump::SourceFailed(err(ConnectionReset)),
            Reason::ServerReset,
        ),
        (
            Pump::Idle,
            Pump::SourceFailed(err(TimedOut)),
            Reason::ServerError,
        ),
    ];
    for (up, down, reason) in cases {
        let mut s = relaying(t0);
        assert_eq!(
            relayed(&mut s, up, down, (false, false), t0),
            Action::Close(reason)
        );
        assert!(reason.is_reset());
    }
    // A failure wins over a spent budget.
    let mut s = relaying(t0);
    assert_eq!(
        relayed(
            &mut s,
            Pump::Budget,
            Pump::SourceFailed(err(ConnectionReset)),
            (false, false),
            t0
        ),
        Action::Close(Reason::ServerReset)
    );
}

#[test]
fn only_a_reset_before_any_byte_blames_the_server() {
    assert!(Reason::ServerReset.blames_server(0));
    assert!(!Reason::ServerReset.blames_server(1));
    assert!(!Reason::ServerError.blames_server(0));
    assert!(!Reason::ClientReset.blames_server(0));
    assert!(!Reason::Done.is_reset());
    assert!(!Reason::IdleTimeout.is_reset());
}

#[test]
fn stale_timers_and_events_do_nothing() {
    let t0 = Instant::now();
    let mut s = relaying(t0);
    assert_eq!(s.on(Event::Deadline, t0 + secs(1)), Action::Wait);
    assert_eq!(s.on(Event::AttemptFailed, t0), Action::Wait);
    assert_eq!(s.phase(), Phase::Relaying);
    let mut s = start(t0);
    assert_eq!(s.on(Event::IdleTimer, t0 + secs(600)), Action::Wait);
    let (mut s, _) = ConnState::accepted(t0, true, LIMITS);
    assert_eq!(s.on(Event::Connected, t0), Action::Wait);
    assert_eq!(s.phase(), Phase::AwaitingHeader);
}

#[test]
fn shutdown_closes_in_any_phase_and_closed_stays_closed() {
    let t0 = Instant::now();
    let (mut s, _) = ConnState::accepted(t0, true, LIMITS);
    assert_eq!(s.on(Event::Shutdown, t0), Action::Close(Reason::Shutdown));
    assert_eq!(s.on(Event::HeaderComplete, t0), Action::Wait);
    assert_eq!(s.on(Event::Shutdown, t0), Action::Wait);
    let mut s = relaying(t0);
    assert_eq!(s.on(Event::Shutdown, t0), Action::Close(Reason::Shutdown));
    assert_eq!(s.phase(), Phase::Closed(Reason::Shutdown));
}

#[test]
fn huge_timeouts_saturate_instead_of_panicking() {
    let t0 = Instant::now();
    let limits = Limits {
        retries: 0,
        connect_timeout: Duration::MAX,
        idle_timeout: Duration::MAX,
    };
    let (mut s, _) = ConnState::accepted(t0, false, limits);
    s.on(Event::ServerChosen, t0);
    let Action::Arm(at, TimerKind::Deadline) = s.on(Event::ConnectPending, t0) else {
        panic!("no connect deadline");
    };
    assert!(at >= t0 + secs(100 * 365 * 86_400));
    let Action::Arm(at, TimerKind::Idle) = s.on(Event::Connected, t0) else {
        panic!("no idle timer");
    };
    assert_eq!(
        s.on(Event::IdleTimer, t0 + secs(3600)),
        Action::Arm(at, TimerKind::Idle)
    );
}

#[test]
fn reasons_are_the_access_log_words() {
    assert_eq!(Reason::NoServer.to_string(), "no server available");
    assert_eq!(Reason::BackendFull.as_str(), "backend full");
    assert_eq!(Reason::HeaderTimeout.as_str(), "PROXY header timeout");
    assert_eq!(Reason::OutOfFds.as_str(), "out of file descriptors");
}

#[test]
fn header_then_client_hello_then_connect_each_under_its_own_deadline() {
    let t0 = Instant::now();
    let intake = Intake {
        proxy_header: true,
        client_hello: true,
        tls_handshake: false,
    };
    let (mut s, a) = ConnState::accepted_with(t0, intake, LIMITS);
    assert_eq!(s.phase(), Phase::AwaitingHeader);
    assert_eq!(
        a,
        Action::Arm(t0 + PROXY_HEADER_TIMEOUT, TimerKind::Deadline)
    );
    let t1 = t0 + secs(1);
    assert_eq!(
        s.on(Event::HeaderComplete, t1),
        Action::Arm(t1 + CLIENT_HELLO_TIMEOUT, TimerKind::Deadline)
    );
    assert_eq!(s.phase(), Phase::AwaitingHello);
    // A routed ClientHello with other limits: the routed backend's apply.
    s.set_limits(Limits {
        retries: 0,
        ..LIMITS
    });
    assert_eq!(s.on(Event::HelloRouted, t1), Action::Connect);
    assert_eq!(s.phase(), Phase::Connecting { attempt: 0 });
    s.on(Event::ServerChosen, t1);
    assert_eq!(
        s.on(Event::AttemptFailed, t1),
        Action::Close(Reason::ConnectFailed),
        "retries: 0 from the routed backend"
    );
}

#[test]
fn a_bad_or_late_client_hello_closes_before_any_server() {
    let t0 = Instant::now();
    let intake = Intake {
        client_hello: true,
        ..Intake::default()
    };
    let (mut s, a) = ConnState::accepted_with(t0, intake, LIMITS);
    assert_eq!(
        a,
        Action::Arm(t0 + CLIENT_HELLO_TIMEOUT, TimerKind::Deadline)
    );
    assert_eq!(
        s.on(Event::HelloRejected, t0),
        Action::Close(Reason::BadClientHello)
    );
    let (mut s, _) = ConnState::accepted_with(t0, intake, LIMITS);
    // Events of other phases do nothing while waiting.
    assert_eq!(s.on(Event::Connected, t0), Action::Wait);
    assert_eq!(s.on(Event::HandshakeDone, t0), Action::Wait);
    assert_eq!(
        s.on(Event::Deadline, t0 + CLIENT_HELLO_TIMEOUT),
        Action::Close(Reason::ClientHelloTimeout)
    );
}

#[test]
fn a_tls_handshake_comes_before_connecting() {
    let t0 = Instant::now();
    let intake = Intake {
        tls_handshake: true,
        ..Intake::default()
    };
    let (mut s, a) = ConnState::accepted_with(t0, intake, LIMITS);
    assert_eq!(s.phase(), Phase::Handshaking);
    assert_eq!(
        a,
        Action::Arm(t0 + TLS_HANDSHAKE_TIMEOUT, TimerKind::Deadline)
    );
    assert_eq!(s.on(Event::HandshakeDone, t0), Action::Connect);
    assert_eq!(s.phase(), Phase::Connecting { attempt: 0 });

    let (mut s, _) = ConnState::accepted_with(t0, intake, LIMITS);
    assert_eq!(
        s.on(Event::HandshakeFailed, t0),
        Action::Close(Reason::HandshakeFailed)
    );
    let (mut s, _) = ConnState::accepted_with(t0, intake, LIMITS);
    assert_eq!(
        s.on(Event::Deadline, t0 + TLS_HANDSHAKE_TIMEOUT),
        Action::Close(Reason::HandshakeTimeout)
    );
    assert_eq!(Reason::HandshakeTimeout.as_str(), "TLS handshake timeout");
}
