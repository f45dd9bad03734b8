//! Responses nvelox generates itself: a complete, short `HTTP/1.1` response
//! with a `Content-Length` and a one-line text body; with `Connection: close`
//! unless the connection stays open after it.
//!
//! Owns the status texts and bodies of 400, 404 (no route), 408, 413, 414,
//! 417, 429, 431, 501, 502, 503 and 504. Does not own when they are sent
//! ([`super::session`] and the shell decide) and never echoes anything from
//! the request, so nothing a client sends can end up in the reply.

use std::io::Write as _;

/// Reason phrase and body of a status nvelox may send; other codes get a
/// generic text.
fn texts(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("Bad Request", "Bad request.\n"),
        404 => ("Not Found", "No route for this request.\n"),
        408 => (
            "Request Timeout",
            "The request head did not arrive in time.\n",
        ),
        413 => ("Content Too Large", "The request body is too large.\n"),
        414 => ("URI Too Long", "The request target is too long.\n"),
        417 => ("Expectation Failed", "The expectation cannot be met.\n"),
        429 => ("Too Many Requests", "Too many requests.\n"),
        431 => (
            "Request Header Fields Too Large",
            "The request head is too large.\n",
        ),
        501 => ("Not Implemented", "Not implemented.\n"),
        502 => ("Bad Gateway", "No server answered properly.\n"),
        503 => ("Service Unavailable", "No server is available.\n"),
        504 => ("Gateway Timeout", "The server did not answer in time.\n"),
        _ => ("Error", "Error.\n"),
    }
}

/// A complete response for `status`, ending the connection.
pub fn error_response(status: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    write_error_response(status, true, false, &mut out);
    out
}

/// Appends the response for `status` to `out` (no allocation when `out`
/// has room); `close`: it says `Connection: close` (the connection ends
/// after it), else the client may send its next request. `head`: the
/// answer to a HEAD request: the same head, no body (a body there would
/// be read as the start of the next response).
pub fn write_error_response(status: u16, close: bool, head: bool, out: &mut Vec<u8>) {
    let (reason, body) = texts(status);
    let connection = if close { "Connection: close\r\n" } else { "" };
    let body_bytes = if head { "" } else { body };
    let _ = write!(
        out,
        "HTTP/1.1 {status:03} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n{body_bytes}",
        body.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_response, Answering, HeadLimits, Method, Parsed};
    use crate::http::BodyFraming;

    #[test]
    fn every_status_parses_back_with_its_exact_body() {
        for status in [
            400, 404, 408, 413, 414, 417, 429, 431, 501, 502, 503, 504, 599,
        ] {
            let bytes = error_response(status);
            let answering = Answering {
                method: Method::Get,
                upgrade_requested: false,
            };
            let Ok(Parsed::Complete { head, consumed }) =
                parse_response(&bytes, &HeadLimits::default(), answering)
            else {
                panic!("{status} does not parse");
            };
            assert_eq!(head.status, status);
            assert!(!head.keep_alive, "{status} must close");
            assert_eq!(
                head.framing,
                BodyFraming::Length((bytes.len() - consumed) as u64)
            );
            assert!(bytes.ends_with(b"\n"));
        }
    }

    #[test]
    fn known_statuses_have_their_own_reason() {
        assert!(
            error_response(431).starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        );
        assert!(error_response(504).starts_with(b"HTTP/1.1 504 Gateway Timeout\r\n"));
        assert!(String::from_utf8_lossy(&error_response(404)).contains("No route"));
    }

    #[test]
    fn a_reply_that_keeps_the_connection_has_no_connection_close() {
        let mut out = Vec::new();
        write_error_response(503, false, false, &mut out);
        let answering = Answering {
            method: Method::Get,
            upgrade_requested: false,
        };
        let Ok(Parsed::Complete { head, .. }) =
            parse_response(&out, &HeadLimits::default(), answering)
        else {
            panic!("503 does not parse");
        };
        assert!(head.keep_alive);
        assert!(!String::from_utf8_lossy(&out).contains("Connection"));
        // To a HEAD request: the same head, no body.
        let mut to_head = Vec::new();
        write_error_response(503, false, true, &mut to_head);
        assert_eq!(to_head, out[..to_head.len()]);
        assert!(to_head.ends_with(b"\r\n\r\n"));
    }
}
