//! The HTTP-mode keys: a `protocol: http` listener's `routes`, `headers`,
//! `backend_server_header`, `forwarded_for`, `max_header_size`,
//! `max_body_size`, and a backend's `retry` and `keepalive`; and the rule
//! that these keys are an error on a tcp or udp listener.
//!
//! Header names and values are checked with the HTTP core's own
//! [`HeaderEdits::validate`], one entry at a time so each error has its
//! line. The HTTP timeouts (`timeouts.read_header|read|write` of listeners,
//! `timeouts.read` of backends) are Go's `timeouts` blocks: `go.rs`.
//! Route backends are resolved by `link` (`listeners.rs`).

use super::super::raw::{HeaderMap, RawBackend, RawListener, RawRedirect, RawRetry};
use super::super::size::parse_size;
use super::*;
use crate::http::redirect::{self, Redirect};

/// An HTTP listener's settings before its route backends are resolved.
pub(super) struct HttpDraft {
    pub routes: Vec<RouteDraft>,
    pub edits: EditOptions,
    pub max_header_size: usize,
    pub max_body_size: Option<u64>,
}

pub(super) struct RouteDraft {
    /// YAML path of the route, for errors about its backend.
    pub path: String,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    /// `None`: a redirect-only route.
    pub backend: Option<String>,
    pub redirect: Option<Redirect>,
}

/// The words of `retry.on`.
const RETRY_WORDS: &str = "connect_failure, reset, 502, 503, 504";

impl Validator<'_> {
    /// Refuses every HTTP-only key of a tcp or udp listener, naming it.
    pub(super) fn http_keys_on_stream_or_datagram(
        &mut self,
        f: FileId,
        p: &str,
        l: &RawListener,
        protocol: Protocol,
    ) {
        let present = [
            ("routes", l.routes.is_some()),
            ("headers", l.headers.is_some()),
            ("backend_server_header", l.backend_server_header.is_some()),
            ("forwarded_for", l.forwarded_for.is_some()),
            ("max_header_size", l.max_header_size.is_some()),
            ("max_body_size", l.max_body_size.is_some()),
        ];
        for (name, _) in present.iter().filter(|(_, set)| *set) {
            self.error(
                f,
                &key(p, name),
                format!(
                    "`{name}` is for protocol: http listeners; this listener is {}",
                    protocol.name()
                ),
            );
        }
    }

    /// The HTTP keys of a `protocol: http` listener.
    pub(super) fn http_listener(&mut self, f: FileId, p: &str, l: &RawListener) -> HttpDraft {
        let mut routes = Vec::new();
        for (i, r) in l.routes.iter().flatten().enumerate() {
            let rp = format!("{p}.routes[{i}]");
            let (host, path_prefix) = match &r.matches {
                Some(m) => {
                    let mp = key(&rp, "match");
                    (
                        self.route_host(f, &key(&mp, "host"), m.host.as_ref()),
                        self.route_path_prefix(f, &key(&mp, "path_prefix"), m.path_prefix.as_ref()),
                    )
                }
                None => (None, None),
            };
            // A Go-only action (static, ...) is refused by the key scan; a
            // missing backend would only repeat it.
            if r.backend.is_none() && r.has_go_only_action() {
                continue;
            }
            // Go Nvelox: a route with a redirect needs no backend, and its
            // redirect wins over one it names (which must still exist).
            let redirect = r.redirect.as_ref().map(|x| self.redirect(f, &rp, x));
            let backend = match (&redirect, &r.backend) {
                (Some(_), b) => text(b.as_ref()).map(str::to_string),
                (None, _) => match self.required(f, &rp, "backend", r.backend.as_ref()) {
                    Some(b) => Some(b.to_string()),
                    None => continue,
                },
            };
            let redirect = match redirect {
                Some(None) => continue,
                Some(Some(x)) => Some(x),
                None => None,
            };
            routes.push(RouteDraft {
                path: key(&rp, "backend"),
                host,
                path_prefix,
                backend,
                redirect,
            });
        }
        let mut edits = EditOptions::default();
        if let Some(h) = &l.headers {
            let hp = key(p, "headers");
            edits.request.add = self.header_map(f, &hp, "request_add", h.request_add.as_ref());
            edits.request.set = self.header_map(f, &hp, "request_set", h.request_set.as_ref());
            edits.request.remove =
                self.header_names(f, &hp, "request_remove", h.request_remove.as_deref());
            edits.response.add = self.header_map(f, &hp, "response_add", h.response_add.as_ref());
            edits.response.set = self.header_map(f, &hp, "response_set", h.response_set.as_ref());
            edits.response.remove =
                self.header_names(f, &hp, "response_remove", h.response_remove.as_deref());
        }
        if let Some(v) = &l.forwarded_for {
            edits.forwarded_for = self.flag(f, &key(p, "forwarded_for"), Some(v));
        }
        edits.backend_server_header = text(l.backend_server_header.as_ref()).and_then(|name| {
            let path = key(p, "backend_server_header");
            self.header_name(f, &path, name).then(|| name.to_string())
        });
        let max_header_size = self
            .size(
                f,
                &key(p, "max_header_size"),
                l.max_header_size.as_ref(),
                MIN_MAX_HEADER_SIZE as u64,
                MAX_MAX_HEADER_SIZE as u64,
            )
            .map_or(DEFAULT_MAX_HEADER_SIZE, |n| n as usize);
        // Go's `0` = no limit.
        let max_body_size = self
            .size(
                f,
                &key(p, "max_body_size"),
                l.max_body_size.as_ref(),
                0,
                u64::MAX,
            )
            .filter(|&n| n > 0);
        HttpDraft {
            routes,
            edits,
            max_header_size,
            max_body_size,
        }
    }

    /// A route's `redirect: {url, code}`; `None` (reported) when wrong.
    fn redirect(&mut self, f: FileId, rp: &str, x: &RawRedirect) -> Option<Redirect> {
        let xp = key(rp, "redirect");
        let code = match &x.code {
            Some(_) => {
                let n = self.number(f, &key(&xp, "code"), x.code.as_ref(), 0, 999)?;
                u16::try_from(n).unwrap_or(0)
            }
            None => redirect::DEFAULT_CODE,
        };
        let url = self.required(f, &xp, "url", x.url.as_ref())?;
        match Redirect::parse(url, code) {
            Ok(r) => Some(r),
            Err(e) => {
                let at = if redirect::CODES.contains(&code) {
                    "url"
                } else {
                    "code"
                };
                self.error(f, &key(&xp, at), e);
                None
            }
        }
    }

    /// A size in `min..=max` bytes; `None` when absent or wrong.
    fn size(&mut self, f: FileId, path: &str, t: Option<&Text>, min: u64, max: u64) -> Option<u64> {
        let s = text(t)?;
        match parse_size(s) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.error(
                    f,
                    path,
                    format!("size {s:?} ({n} bytes) is outside {min}..={max} bytes"),
                );
                None
            }
            Err(e) => {
                self.error(f, path, e);
                None
            }
        }
    }

    fn route_host(&mut self, f: FileId, path: &str, t: Option<&Text>) -> Option<String> {
        let host = text(t)?;
        let bad = |c: char| c.is_whitespace() || c.is_control() || "/?#@,".contains(c);
        if host.is_empty() || host.contains(bad) {
            self.error(f, path, format!("{host:?} is not a host name"));
            return None;
        }
        let has_port = match host.strip_prefix('[') {
            Some(rest) => rest.find(']').is_some_and(|i| rest.len() > i + 1),
            None => host.contains(':'),
        };
        if has_port {
            self.error(
                f,
                path,
                format!("route hosts match without the port; write {host:?} without it"),
            );
            return None;
        }
        Some(host.to_ascii_lowercase())
    }

    fn route_path_prefix(&mut self, f: FileId, path: &str, t: Option<&Text>) -> Option<String> {
        let prefix = text(t)?;
        if !prefix.starts_with('/') {
            self.error(f, path, format!("path_prefix {prefix:?} must start with /"));
            return None;
        }
        if prefix.bytes().any(|b| b <= b' ' || b == 0x7f) {
            self.error(
                f,
                path,
                format!("path_prefix {prefix:?} has a space or control character, which no request path has"),
            );
            return None;
        }
        Some(prefix.to_string())
    }

    /// Whether `name` may be edited: a token, and not a header nvelox
    /// writes itself (framing, hop-by-hop). Reports why not.
    fn header_name(&mut self, f: FileId, path: &str, name: &str) -> bool {
        let probe = HeaderEdits {
            remove: vec![name.to_string()],
            ..HeaderEdits::default()
        };
        match probe.validate() {
            Ok(()) => true,
            Err(e) => {
                self.error(f, path, e);
                false
            }
        }
    }

    fn header_map(
        &mut self,
        f: FileId,
        hp: &str,
        which: &str,
        map: Option<&HeaderMap>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let wp = key(hp, which);
        for (name, value) in map.map(|m| m.0.as_slice()).unwrap_or_default() {
            let path = key(&wp, name);
            let probe = HeaderEdits {
                add: vec![(name.clone(), value.0.clone())],
                ..HeaderEdits::default()
            };
            match probe.validate() {
                Ok(()) => out.push((name.clone(), value.0.clone())),
                Err(e) => self.error(f, &path, format!("{e} (values may not hold CR, LF or NUL)")),
            }
        }
        out
    }

    fn header_names(
        &mut self,
        f: FileId,
        hp: &str,
        which: &str,
        names: Option<&[Text]>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let wp = key(hp, which);
        for (i, name) in names.unwrap_or_default().iter().enumerate() {
            let path = format!("{wp}[{i}]");
            let name = name.as_str().trim();
            if self.header_name(f, &path, name) {
                out.push(name.to_string());
            }
        }
        out
    }

    /// A backend's HTTP settings; `read` is its `timeouts.read` (from
    /// `go.rs`), `retries` its TCP connect retries.
    pub(super) fn http_backend(
        &mut self,
        f: FileId,
        p: &str,
        b: &RawBackend,
        retries: u32,
        read: Option<Option<Duration>>,
    ) -> HttpBackendPlan {
        let retry = match &b.retry {
            Some(r) => self.retry(f, &key(p, "retry"), r),
            None => RetryPolicy {
                attempts: 1 + retries.min(MAX_HTTP_ATTEMPTS - 1),
                ..RetryPolicy::default()
            },
        };
        let keepalive = self
            .number(
                f,
                &key(p, "keepalive"),
                b.keepalive.as_ref(),
                0,
                MAX_HTTP_KEEPALIVE as u64,
            )
            .map_or(DEFAULT_HTTP_KEEPALIVE, |n| n as usize);
        HttpBackendPlan {
            retry,
            response_timeout: read.unwrap_or(Some(DEFAULT_HTTP_RESPONSE_TIMEOUT)),
            keepalive,
        }
    }

    fn retry(&mut self, f: FileId, rp: &str, r: &RawRetry) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        match text(r.attempts.as_ref()) {
            Some("0") => self.error(
                f,
                &key(rp, "attempts"),
                format!(
                    "attempts counts the first try: 1 (no retry) to {MAX_HTTP_ATTEMPTS}, got 0"
                ),
            ),
            _ => {
                if let Some(n) = self.number(
                    f,
                    &key(rp, "attempts"),
                    r.attempts.as_ref(),
                    1,
                    u64::from(MAX_HTTP_ATTEMPTS),
                ) {
                    policy.attempts = n as u32;
                }
            }
        }
        if r.attempts.is_none() {
            self.error(f, rp, "missing required key `attempts`");
        }
        let on = text(r.on.as_ref()).unwrap_or("");
        for word in on.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                // Always retried (nothing was sent); accepted as Go writes it.
                "connect_failure" => {}
                "reset" => policy.on_reset = true,
                "502" => policy.on_502 = true,
                "503" => policy.on_503 = true,
                "504" => policy.on_504 = true,
                _ => self.error(
                    f,
                    &key(rp, "on"),
                    format!("unknown retry condition {word:?} (expected: {RETRY_WORDS})"),
                ),
            }
        }
        policy
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "redirect_tests.rs"]
mod redirect_tests;
