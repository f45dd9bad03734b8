//! Route redirects (`routes[].redirect: {url, code}`, Go Nvelox's): the
//! URL template, checked once at load, and the `Location` built from it and
//! a request; and the generated redirect response.
//!
//! The variables are Go Nvelox's: `${host}` (the `Host` without its port),
//! `${port}` (its port, empty when none), `${path}`, `${query}` (without the
//! `?`), `${uri}` (path and query, as in the request line), `${scheme}`
//! (`http` or `https`, the client connection's). Everything a request
//! supplies is percent-encoded when it is not a visible ASCII byte, so no
//! request can put a CR, LF or other control byte in the `Location` header.
//! Does not own which route matches (the plan) nor when the reply is sent
//! (the shell, with [`super::session::Session::local_reply`]).

use std::io::Write as _;

use super::head::RequestHead;

/// The status codes a redirect may have; Go Nvelox's default is 302.
pub const CODES: [u16; 5] = [301, 302, 303, 307, 308];
pub const DEFAULT_CODE: u16 = 302;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Host,
    Port,
    Path,
    Query,
    Uri,
    Scheme,
}

const VARS: [(&str, Var); 6] = [
    ("host", Var::Host),
    ("port", Var::Port),
    ("path", Var::Path),
    ("query", Var::Query),
    ("uri", Var::Uri),
    ("scheme", Var::Scheme),
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A checked redirect: its URL template and status code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    parts: Vec<Part>,
    pub code: u16,
}

/// What a template needs from the request.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    /// The `Host` header as sent (with its port, if any).
    pub host: Option<&'a [u8]>,
    /// Path and query (origin-form, or absolute-form without the authority).
    pub uri: &'a [u8],
    pub tls: bool,
}

impl<'a> RequestFacts<'a> {
    pub fn of(head: &'a RequestHead, tls: bool) -> Self {
        RequestFacts {
            host: head.host(),
            uri: head.path(),
            tls,
        }
    }
}

impl Redirect {
    /// Checks a `url` template and a `code`: the URL is not empty, has no
    /// space or control byte, and names only known variables; the code is
    /// one of [`CODES`].
    pub fn parse(url: &str, code: u16) -> Result<Redirect, String> {
        if !CODES.contains(&code) {
            return Err(format!(
                "redirect code {code} is not one of 301, 302, 303, 307, 308"
            ));
        }
        if url.is_empty() {
            return Err("redirect url is empty".into());
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "redirect url {url:?} has a space or control character"
            ));
        }
        let mut parts = Vec::new();
        let mut rest = url;
        while let Some(i) = rest.find("${") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                return Err(format!("redirect url {url:?}: `${{` without `}}`"));
            };
            let name = &after[..end];
            let Some(&(_, var)) = VARS.iter().find(|(n, _)| *n == name) else {
                return Err(format!(
                    "redirect url {url:?}: unknown variable ${{{name}}} (known: host, port, path, query, uri, scheme)"
                ));
            };
            parts.push(Part::Var(var));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Redirect { parts, code })
    }

    /// The `Location` for a request: the template with its variables
    /// replaced; request bytes that are not visible ASCII are
    /// percent-encoded.
    pub fn location(&self, req: &RequestFacts) -> Vec<u8> {
        let (name, port) = split_host(req.host.unwrap_or(b""));
        let (path, query) = match req.uri.iter().position(|&b| b == b'?') {
            Some(q) => (&req.uri[..q], &req.uri[q + 1..]),
            None => (req.uri, &b""[..]),
        };
        let mut out = Vec::with_capacity(64 + req.uri.len());
        for part in &self.parts {
            let value: &[u8] = match part {
                Part::Text(t) => {
                    out.extend_from_slice(t.as_bytes());
                    continue;
                }
                Part::Var(Var::Host) => name,
                Part::Var(Var::Port) => port,
                Part::Var(Var::Path) => path,
                Part::Var(Var::Query) => query,
                Part::Var(Var::Uri) => req.uri,
                Part::Var(Var::Scheme) => {
                    if req.tls {
                        b"https"
                    } else {
                        b"http"
                    }
                }
            };
            escape_into(value, &mut out);
        }
        out
    }
}

/// `host[:port]` or `[v6][:port]` into the name (brackets kept) and port.
fn split_host(host: &[u8]) -> (&[u8], &[u8]) {
    let colon = if host.starts_with(b"[") {
        host.iter()
            .position(|&b| b == b']')
            .and_then(|e| (host.get(e + 1) == Some(&b':')).then_some(e + 1))
    } else {
        host.iter().position(|&b| b == b':')
    };
    match colon {
        Some(c) => (&host[..c], &host[c + 1..]),
        None => (host, b""),
    }
}

fn escape_into(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        if b > b' ' && b < 0x7f {
            out.push(b);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        _ => "Permanent Redirect",
    }
}

/// Appends the redirect response to `out`, with `close` and `head` as in
/// [`super::reply::write_error_response`]. `location` comes from
/// [`Redirect::location`] (visible ASCII only).
pub fn write_redirect(code: u16, location: &[u8], close: bool, head: bool, out: &mut Vec<u8>) {
    let body = "Redirecting.\n";
    let connection = if close { "Connection: close\r\n" } else { "" };
    let _ = write!(out, "HTTP/1.1 {code} {}\r\nLocation: ", reason(code));
    out.extend_from_slice(location);
    let _ = write!(
        out,
        "\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n{}",
        body.len(),
        if head { "" } else { body }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_response, Answering, HeadLimits, Method, Parsed};

    fn facts<'a>(host: Option<&'a str>, uri: &'a str, tls: bool) -> RequestFacts<'a> {
        RequestFacts {
            host: host.map(str::as_bytes),
            uri: uri.as_bytes(),
            tls,
        }
    }

    fn loc(url: &str, f: &RequestFacts) -> String {
        String::from_utf8(Redirect::parse(url, 301).unwrap().location(f)).unwrap()
    }

    #[test]
    fn every_variable_is_replaced() {
        let f = facts(Some("Example.test:8080"), "/a/b?x=1&y", false);
        assert_eq!(
            loc("https://${host}${path}", &f),
            "https://Example.test/a/b"
        );
        assert_eq!(loc("https://h${uri}", &f), "https://h/a/b?x=1&y");
        assert_eq!(
            loc("${scheme}://${host}:${port}/n?${query}", &f),
            "http://Example.test:8080/n?x=1&y"
        );
        assert_eq!(loc("/current", &f), "/current");
        let tls = facts(Some("[::1]:9"), "/", true);
        assert_eq!(loc("${scheme}://${host}|${port}", &tls), "https://[::1]|9");
        let bare = facts(None, "/p", false);
        assert_eq!(loc("//${host}${path}|${port}|${query}", &bare), "///p||");
        assert_eq!(loc("x${host}", &facts(Some("[::1]"), "/", false)), "x[::1]");
    }

    #[test]
    fn request_bytes_cannot_inject_a_header() {
        let f = facts(Some("a\r\nSet-Cookie: x=1"), "/p\r\nX: y\x7f\u{e9}", false);
        let l = loc("https://${host}:${port}${uri}", &f);
        assert_eq!(l, "https://a%0D%0ASet-Cookie:%20x=1/p%0D%0AX:%20y%7F%C3%A9");
        assert!(l.bytes().all(|b| b > b' ' && b < 0x7f));
    }

    #[test]
    fn bad_templates_and_codes_are_refused() {
        for code in [0, 200, 300, 304, 399] {
            assert!(Redirect::parse("/x", code).is_err(), "{code}");
        }
        for code in CODES {
            assert_eq!(Redirect::parse("/x", code).unwrap().code, code);
        }
        for url in ["", "/a b", "/a\r\nX: y", "/${nope}", "/${host", "/\t"] {
            assert!(Redirect::parse(url, 302).is_err(), "{url:?}");
        }
        let e = Redirect::parse("https://${hots}/", 302).unwrap_err();
        assert!(e.contains("unknown variable ${hots}"), "{e}");
    }

    #[test]
    fn the_response_parses_with_location_and_keeps_alive_when_asked() {
        let answering = Answering {
            method: Method::Get,
            upgrade_requested: false,
        };
        for (close, code) in [(false, 301), (true, 308)] {
            let mut out = Vec::new();
            write_redirect(code, b"https://x/y", close, false, &mut out);
            let Ok(Parsed::Complete { head, consumed }) =
                parse_response(&out, &HeadLimits::default(), answering)
            else {
                panic!("does not parse");
            };
            assert_eq!(head.status, code);
            assert_eq!(head.keep_alive, !close);
            let text = String::from_utf8_lossy(&out);
            assert!(text.contains("\r\nLocation: https://x/y\r\n"), "{text}");
            assert_eq!(&out[consumed..], b"Redirecting.\n");
        }
        let mut head_only = Vec::new();
        write_redirect(302, b"/", false, true, &mut head_only);
        assert!(head_only.ends_with(b"\r\n\r\n"));
        assert!(head_only.starts_with(b"HTTP/1.1 302 Found\r\n"));
    }
}
