//! `health_check.active` and `health_check.passive` of one backend.
//!
//! Decodes the probe's `send`/`expect` escapes and checks the http probe
//! path (it is written into the probe's request line, so only what is valid
//! there passes); running the probes is `crate::health`'s job.

use std::fmt;

use super::super::escape::decode_escapes;
use super::super::raw::{self, Text};
use super::*;

impl Validator<'_> {
    pub(super) fn active_check(
        &mut self,
        f: FileId,
        p: &str,
        a: &raw::RawActiveCheck,
    ) -> ActiveCheck {
        let kind = self.choice(
            f,
            &key(p, "type"),
            a.kind.as_ref(),
            &[
                ("tcp", CheckKind::Tcp),
                ("http", CheckKind::Http),
                ("udp", CheckKind::Udp),
            ],
            CheckKind::Tcp,
        );
        let port = self.port(f, &key(p, "port"), a.port.as_ref());
        let path = match (kind, text(a.path.as_ref())) {
            (CheckKind::Http, None) => "/".to_string(),
            (CheckKind::Http, Some(s)) => match check_http_path(s) {
                Ok(()) => s.to_string(),
                Err(e) => {
                    self.error(f, &key(p, "path"), e);
                    "/".to_string()
                }
            },
            (_, Some(_)) => {
                self.error(f, &key(p, "path"), "`path` is only used by type: http");
                String::new()
            }
            (_, None) => String::new(),
        };
        let bytes = |this: &mut Self, name: &str, t: Option<&Text>| -> Vec<u8> {
            let Some(t) = t else { return Vec::new() };
            match decode_escapes(t.as_str()) {
                Ok(b) => b,
                Err(e) => {
                    this.error(f, &key(p, name), e);
                    Vec::new()
                }
            }
        };
        let send = bytes(self, "send", a.send.as_ref());
        let expect = bytes(self, "expect", a.expect.as_ref());
        if kind == CheckKind::Http && a.send.is_some() {
            self.error(
                f,
                &key(p, "send"),
                "`send` is for tcp and udp checks; http checks send a GET for `path`",
            );
        }
        let interval = self.duration(
            f,
            &key(p, "interval"),
            a.interval.as_ref(),
            DEFAULT_CHECK_INTERVAL,
            false,
            MAX_TIMEOUT,
        );
        let timeout = self.duration(
            f,
            &key(p, "timeout"),
            a.timeout.as_ref(),
            DEFAULT_CHECK_TIMEOUT,
            false,
            MAX_TIMEOUT,
        );
        let rise = self
            .number(f, &key(p, "rise"), a.rise.as_ref(), 1, 1000)
            .map_or(DEFAULT_RISE, |n| n as u32);
        let fall = self
            .number(f, &key(p, "fall"), a.fall.as_ref(), 1, 1000)
            .map_or(DEFAULT_FALL, |n| n as u32);
        ActiveCheck {
            kind,
            port,
            path,
            send,
            expect,
            interval,
            timeout,
            rise,
            fall,
        }
    }

    pub(super) fn passive_check(
        &mut self,
        f: FileId,
        p: &str,
        ps: &raw::RawPassiveCheck,
    ) -> PassiveCheck {
        let max_fails = self
            .number(f, &key(p, "max_fails"), ps.max_fails.as_ref(), 1, 1000)
            .map_or(DEFAULT_MAX_FAILS, |n| n as u32);
        let fail_timeout = self.duration(
            f,
            &key(p, "fail_timeout"),
            ps.fail_timeout.as_ref(),
            DEFAULT_FAIL_TIMEOUT,
            false,
            MAX_TIMEOUT,
        );
        PassiveCheck {
            max_fails,
            fail_timeout,
        }
    }
}

/// The longest http probe path accepted: far above any real health URL,
/// small enough that the request always fits one write.
pub const MAX_HTTP_PATH_LEN: usize = 1024;

/// Why an http probe `path` cannot go into `GET <path> HTTP/1.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpPathError {
    NoLeadingSlash(String),
    TooLong(usize),
    /// A character that is not allowed in an origin-form request target
    /// (RFC 9112 3.2.1): space, control characters, `#`, non-ASCII, ...
    BadChar {
        path: String,
        found: char,
    },
    /// `%` not followed by two hex digits.
    BadPercent(String),
}

impl fmt::Display for HttpPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpPathError::NoLeadingSlash(p) => write!(f, "http path {p:?} must start with /"),
            HttpPathError::TooLong(n) => write!(
                f,
                "http path is {n} bytes long (the maximum is {MAX_HTTP_PATH_LEN})"
            ),
            HttpPathError::BadChar { path, found } => write!(
                f,
                "http path {path:?} contains {found:?}, which is not allowed in a request line \
                 (percent-encode it, e.g. %20 for a space)"
            ),
            HttpPathError::BadPercent(p) => write!(
                f,
                "http path {p:?} has a `%` not followed by two hex digits"
            ),
        }
    }
}

impl std::error::Error for HttpPathError {}

/// Accepts an origin-form request target: `/`, then path and query
/// characters (unreserved, sub-delims, `:`, `@`, `/`, `?`, `%XX`).
pub fn check_http_path(path: &str) -> Result<(), HttpPathError> {
    if !path.starts_with('/') {
        return Err(HttpPathError::NoLeadingSlash(path.to_string()));
    }
    if path.len() > MAX_HTTP_PATH_LEN {
        return Err(HttpPathError::TooLong(path.len()));
    }
    let bytes = path.as_bytes();
    for (i, c) in path.char_indices() {
        if c == '%' {
            let hex = |k: usize| bytes.get(k).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(HttpPathError::BadPercent(path.to_string()));
            }
            continue;
        }
        if !(c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?".contains(c)) {
            return Err(HttpPathError::BadChar {
                path: path.to_string(),
                found: c,
            });
        }
    }
    Ok(())
}
