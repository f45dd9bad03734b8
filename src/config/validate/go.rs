//! Go Nvelox compatibility in the validator: refused Go-only keys (found by
//! `compat::scan`), the listener's `backend` key and its deprecated alias
//! `default_backend`, and Go's `timeouts` blocks mapped onto nvelox's own
//! settings.
//!
//! Mapping (documented in docs/config.md, "Coming from Go Nvelox"):
//! - `listeners[].timeouts.idle` -> the listener's `idle_timeout`;
//! - `listeners[].timeouts.connect` -> the connect timeout of the listener's
//!   backend, unless the backend sets its own, which wins (Go's rule);
//!   nvelox has one per backend, so listeners sharing a backend must agree;
//! - `listeners[].timeouts.read_header|read|write` are HTTP timeouts: kept
//!   for `http` listeners (`read_header` and `read` both bound the request
//!   head, the shorter wins), refused on `tcp`/`udp` listeners, where nvelox
//!   has nothing like them;
//! - `backends[].timeouts.connect` -> `connect_timeout`;
//! - `backends[].timeouts.read` (wait for an HTTP response) is kept for
//!   HTTP, refused on a backend that a `tcp`/`udp` listener uses.
//!
//! `0` means "no limit" in Go Nvelox. For the HTTP timeouts that meaning is
//! kept; for `idle` and `connect`, where nvelox needs a limit, it is refused
//! with a message that says so. This module does not own the other keys of
//! listeners and backends (`listeners.rs`, `backends.rs`).

use std::time::Duration;

use super::super::compat;
use super::super::duration::parse_duration;
use super::super::raw::{RawBackendTimeouts, RawListener, RawListenerTimeouts, Text};
use super::*;

/// A timeout taken from a Go `timeouts:` block, with where it was written.
#[derive(Clone, Debug)]
pub(super) struct SetAt {
    pub value: Duration,
    pub path: String,
}

impl Validator<'_> {
    /// Reports every Go-only key of one file, all at once.
    pub(super) fn go_only_keys(&mut self, file: FileId, text: &str) {
        for finding in compat::scan(text) {
            self.error(file, &finding.path, finding.message());
        }
    }

    /// The listener's backend name: `backend`, or the deprecated
    /// `default_backend` (a warning naming it); both set is an error. A
    /// listener with `routes` may have neither (Go: every request matches a
    /// route). Returns the name and the key it was written under.
    pub(super) fn listener_backend(
        &mut self,
        f: FileId,
        p: &str,
        l: &RawListener,
    ) -> (Option<String>, &'static str) {
        match (&l.backend, &l.default_backend) {
            (Some(_), Some(_)) => {
                self.error(
                    f,
                    &key(p, "default_backend"),
                    "`backend` and its deprecated alias `default_backend` are both set; keep only `backend`",
                );
                (None, "backend")
            }
            (None, Some(t)) => {
                let name = self.required(f, p, "default_backend", Some(t));
                if name.is_some() {
                    let w = self.located(
                        f,
                        &key(p, "default_backend"),
                        "`default_backend` is deprecated (Go Nvelox renamed it); write `backend`"
                            .to_string(),
                    );
                    self.warnings.push((f, w));
                }
                (name.map(str::to_string), "default_backend")
            }
            (None, None) if l.routes.is_some() => (None, "backend"),
            (b, None) => (
                self.required(f, p, "backend", b.as_ref())
                    .map(str::to_string),
                "backend",
            ),
        }
    }

    /// A Go timeout that nvelox needs a limit for: `0` is refused, naming
    /// Go's meaning; otherwise a duration > 0.
    fn limited(&mut self, f: FileId, path: &str, t: &Text, max: Duration) -> Option<Duration> {
        if matches!(parse_duration(t.as_str().trim()), Ok(d) if d.is_zero()) {
            self.error(
                f,
                path,
                "0 means \"no limit\" in Go Nvelox; nvelox needs a limit here: write a long duration instead (e.g. 24h)",
            );
            return None;
        }
        let d = self.duration(f, path, Some(t), Duration::ZERO, false, max);
        (!d.is_zero()).then_some(d)
    }

    /// Go's listener `timeouts:`. Returns (idle, connect, HTTP timeouts);
    /// the HTTP ones (`read_header`, `read`, `write`) are kept for `http`
    /// listeners (`http`), refused on tcp/udp ones.
    pub(super) fn listener_timeouts(
        &mut self,
        f: FileId,
        p: &str,
        t: &RawListenerTimeouts,
        http: bool,
        idle_timeout_set: bool,
    ) -> (Option<Duration>, Option<SetAt>, HttpListenerTimeouts) {
        let tp = key(p, "timeouts");
        // Each written one: `None` = no limit (Go's `0`).
        let mut written: [Option<Option<Duration>>; 3] = [None; 3];
        for (i, (name, value)) in [
            ("read_header", &t.read_header),
            ("read", &t.read),
            ("write", &t.write),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(value) = value else { continue };
            let path = key(&tp, name);
            if http {
                // Go's meaning kept: `0` = no limit.
                let d = self.duration(f, &path, Some(value), Duration::ZERO, true, MAX_TIMEOUT);
                written[i] = Some((!d.is_zero()).then_some(d));
            } else {
                self.error(
                    f,
                    &path,
                    format!(
                        "not supported by nvelox: timeouts.{name} on a tcp or udp listener (an HTTP timeout: Go Nvelox ignores it here too, so remove it; the relay's timeout is timeouts.idle or idle_timeout)"
                    ),
                );
            }
        }
        let [read_header, read, write] = written;
        // `read` and Go's `read_header` both bound the request head in
        // nvelox; the shorter limit applies.
        let head = match (read_header, read) {
            (None, None) => Some(DEFAULT_HTTP_HEAD_TIMEOUT),
            (Some(a), None) | (None, Some(a)) => a,
            (Some(a), Some(b)) => match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        };
        let http_timeouts = HttpListenerTimeouts {
            head,
            write: write.unwrap_or(Some(DEFAULT_HTTP_WRITE_TIMEOUT)),
        };
        let idle = t.idle.as_ref().and_then(|v| {
            let path = key(&tp, "idle");
            if idle_timeout_set {
                self.error(
                    f,
                    &path,
                    "`timeouts.idle` and `idle_timeout` are the same setting; keep one",
                );
                return None;
            }
            self.limited(f, &path, v, MAX_IDLE_TIMEOUT)
        });
        let connect = t.connect.as_ref().and_then(|v| {
            let path = key(&tp, "connect");
            self.limited(f, &path, v, MAX_TIMEOUT)
                .map(|value| SetAt { value, path })
        });
        (idle, connect, http_timeouts)
    }

    /// Go's backend `timeouts:`. Returns (connect, `read` with its path);
    /// `read` is `None` inside for "no limit" (Go's `0`).
    pub(super) fn backend_timeouts(
        &mut self,
        f: FileId,
        p: &str,
        t: &RawBackendTimeouts,
        connect_timeout_set: bool,
    ) -> (Option<SetAt>, Option<(String, Option<Duration>)>) {
        let tp = key(p, "timeouts");
        let connect = t.connect.as_ref().and_then(|v| {
            let path = key(&tp, "connect");
            if connect_timeout_set {
                self.error(
                    f,
                    &path,
                    "`timeouts.connect` and `connect_timeout` are the same setting; keep one",
                );
                return None;
            }
            self.limited(f, &path, v, MAX_TIMEOUT)
                .map(|value| SetAt { value, path })
        });
        let read = t.read.as_ref().map(|v| {
            let path = key(&tp, "read");
            // Go's meaning kept: `0` = no limit.
            let d = self.duration(
                f,
                &path,
                Some(v),
                DEFAULT_HTTP_RESPONSE_TIMEOUT,
                true,
                MAX_TIMEOUT,
            );
            (path, (!d.is_zero()).then_some(d))
        });
        (connect, read)
    }

    /// A listener's `timeouts.connect` applied to its backend. As in Go
    /// Nvelox, a connect timeout the backend sets itself wins (a warning
    /// says the listener's is unused); otherwise it becomes the backend's.
    /// nvelox has one connect timeout per backend, so two listeners giving
    /// one backend different values is an error.
    pub(super) fn listener_connect(
        &mut self,
        l: &ListenerDraft,
        connect: &SetAt,
        b: &mut BackendDraft,
    ) {
        let f = l.origin.file;
        let bname = b.plan.name.clone();
        if let Some((own, origin)) = &b.connect_set {
            if own.value != connect.value {
                let at = self.place(&Origin {
                    file: origin.file,
                    path: own.path.clone(),
                });
                let w = self.located(
                    f,
                    &connect.path,
                    format!(
                        "not used: backend {bname:?} sets its own connect timeout ({:?}, at {at}), which wins, as in Go Nvelox",
                        own.value
                    ),
                );
                self.warnings.push((f, w));
            }
            return;
        }
        match &b.listener_connect {
            Some((set, origin)) if set.value != connect.value => {
                let msg = format!(
                    "timeouts.connect {:?} contradicts the {:?} another listener of backend {bname:?} set at {} (nvelox has one connect timeout per backend: set it there, or give these listeners separate backends)",
                    connect.value,
                    set.value,
                    self.place(&Origin {
                        file: origin.file,
                        path: set.path.clone(),
                    })
                );
                self.error(f, &connect.path, msg);
            }
            Some(_) => {}
            None => {
                b.plan.connect_timeout = connect.value;
                b.listener_connect = Some((connect.clone(), l.origin.clone()));
            }
        }
    }
}

#[cfg(test)]
#[path = "go_tests.rs"]
mod tests;
