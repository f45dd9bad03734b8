//! When a failed attempt at a request may be made again, as pure functions.
//!
//! Owns the rules of SPEC.md ("Retries"): always on a connect failure
//! (nothing was sent); on a reset or a listed status (502, 503, 504) only for
//! an idempotent request whose body was held whole (or had none); never once
//! response bytes reached the client; never past `attempts`, which counts the
//! first try. A timeout waiting for the response is never retried (504).
//! Does not own server choice (the balancer's iterator), counting passive
//! health, or keeping the body bytes (the shell holds them when
//! [`RetryFacts::body_held_whole`]).

/// `retry: {attempts, on}` of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (at least 1).
    pub attempts: u32,
    /// `reset` listed: a connection reset before the response head.
    pub on_reset: bool,
    /// `502`, `503`, `504` listed: such a response head from a server.
    pub on_502: bool,
    pub on_503: bool,
    pub on_504: bool,
}

impl Default for RetryPolicy {
    /// One attempt only (a connect failure is still tried on another server
    /// up to `attempts`, which is 1 here).
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            on_reset: false,
            on_502: false,
            on_503: false,
            on_504: false,
        }
    }
}

impl RetryPolicy {
    /// Whether a response with this status is one to retry on (and so to
    /// hold back from the client until the decision is made).
    pub fn retries_status(&self, status: u16) -> bool {
        match status {
            502 => self.on_502,
            503 => self.on_503,
            504 => self.on_504,
            _ => false,
        }
    }
}

/// How an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The connection to the server could not be made (nothing was sent).
    ConnectFailed,
    /// The connection was reset or closed before a whole response head.
    Reset,
    /// The server answered with this status.
    Status(u16),
    /// No response head within the backend's `timeouts.read`.
    Timeout,
    /// The response head was malformed.
    BadResponse,
    /// The response body bytes that came with the head were malformed
    /// (no byte of the response was sent yet).
    BadBody,
}

impl UpstreamFailure {
    /// The status the client gets when this failure is final (502, or 504
    /// for a timeout; a status answer is forwarded as it is).
    pub fn final_status(self) -> u16 {
        match self {
            UpstreamFailure::Timeout => 504,
            UpstreamFailure::Status(s) => s,
            _ => 502,
        }
    }
}

/// What the exchange looks like when an attempt fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryFacts {
    /// Attempts made so far, the failed one included.
    pub attempts_made: u32,
    pub idempotent: bool,
    /// The whole request body is kept (or there is none), so it can be sent
    /// again.
    pub body_held_whole: bool,
    /// Some response bytes were already written to the client.
    pub response_started: bool,
}

/// Whether to make another attempt (on another server, by the balancer).
pub fn should_retry(policy: &RetryPolicy, failure: UpstreamFailure, facts: &RetryFacts) -> bool {
    if facts.response_started || facts.attempts_made >= policy.attempts.max(1) {
        return false;
    }
    let replayable = facts.idempotent && facts.body_held_whole;
    match failure {
        UpstreamFailure::ConnectFailed => true,
        UpstreamFailure::Reset => policy.on_reset && replayable,
        UpstreamFailure::Status(status) => policy.retries_status(status) && replayable,
        UpstreamFailure::Timeout | UpstreamFailure::BadResponse | UpstreamFailure::BadBody => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: RetryPolicy = RetryPolicy {
        attempts: 3,
        on_reset: true,
        on_502: true,
        on_503: true,
        on_504: true,
    };

    fn facts(attempts_made: u32) -> RetryFacts {
        RetryFacts {
            attempts_made,
            idempotent: true,
            body_held_whole: true,
            response_started: false,
        }
    }

    #[test]
    fn connect_failure_retries_whatever_the_method_until_attempts_are_spent() {
        let post = RetryFacts {
            idempotent: false,
            body_held_whole: false,
            ..facts(1)
        };
        let policy = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(should_retry(&policy, UpstreamFailure::ConnectFailed, &post));
        assert!(should_retry(
            &policy,
            UpstreamFailure::ConnectFailed,
            &RetryFacts {
                attempts_made: 2,
                ..post
            }
        ));
        assert!(!should_retry(
            &policy,
            UpstreamFailure::ConnectFailed,
            &RetryFacts {
                attempts_made: 3,
                ..post
            }
        ));
        assert!(!should_retry(
            &RetryPolicy::default(),
            UpstreamFailure::ConnectFailed,
            &facts(1)
        ));
    }

    #[test]
    fn reset_and_status_need_the_word_an_idempotent_method_and_the_whole_body() {
        for failure in [
            UpstreamFailure::Reset,
            UpstreamFailure::Status(502),
            UpstreamFailure::Status(503),
            UpstreamFailure::Status(504),
        ] {
            assert!(should_retry(&ALL, failure, &facts(1)), "{failure:?}");
            let not_idempotent = RetryFacts {
                idempotent: false,
                ..facts(1)
            };
            assert!(!should_retry(&ALL, failure, &not_idempotent), "{failure:?}");
            let streamed = RetryFacts {
                body_held_whole: false,
                ..facts(1)
            };
            assert!(!should_retry(&ALL, failure, &streamed), "{failure:?}");
            let none = RetryPolicy {
                attempts: 3,
                ..RetryPolicy::default()
            };
            assert!(!should_retry(&none, failure, &facts(1)), "{failure:?}");
        }
        let only_503 = RetryPolicy {
            attempts: 3,
            on_503: true,
            ..RetryPolicy::default()
        };
        assert!(should_retry(
            &only_503,
            UpstreamFailure::Status(503),
            &facts(1)
        ));
        assert!(!should_retry(
            &only_503,
            UpstreamFailure::Status(502),
            &facts(1)
        ));
        assert!(!should_retry(&ALL, UpstreamFailure::Status(500), &facts(1)));
    }

    #[test]
    fn never_after_response_bytes_nor_on_timeout_or_bad_response() {
        let started = RetryFacts {
            response_started: true,
            ..facts(1)
        };
        for failure in [
            UpstreamFailure::ConnectFailed,
            UpstreamFailure::Reset,
            UpstreamFailure::Status(502),
        ] {
            assert!(!should_retry(&ALL, failure, &started));
        }
        assert!(!should_retry(&ALL, UpstreamFailure::Timeout, &facts(1)));
        assert!(!should_retry(&ALL, UpstreamFailure::BadResponse, &facts(1)));
        assert_eq!(UpstreamFailure::Timeout.final_status(), 504);
        assert_eq!(UpstreamFailure::Reset.final_status(), 502);
        assert_eq!(UpstreamFailure::Status(503).final_status(), 503);
    }
}
