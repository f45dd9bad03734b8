//! One admin/metrics request, pure: parsing a bounded request head with
//! httparse, the query string, and the access decision (403 / 401) with
//! the API key compared in constant time.
//!
//! Owns the limits of a request and what a well-formed one is. Does not
//! own sockets or timers (`mod.rs`) or what a path does (`api.rs`).

use std::net::IpAddr;

/// The most a request head (and the little body an admin POST carries) may
/// take; more is answered 431 and closed.
pub const MAX_REQUEST: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;

/// A parsed request: only what the admin server needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Percent-decoded path, without the query.
    pub path: String,
    /// Raw query string (after `?`), not decoded.
    pub query: String,
    pub api_key: Option<String>,
    /// `Authorization: Basic ...` as written (base64 part).
    pub basic: Option<String>,
}

/// What the bytes so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet.
    Partial,
    Complete(Request),
    /// Not HTTP/1, or not what this server accepts: answer 400 and close.
    Bad(&'static str),
    /// Over [`MAX_REQUEST`]: answer 431 and close.
    TooLarge,
}

pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST => Parsed::TooLarge,
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::TooLarge,
        Err(_) => Parsed::Bad("malformed request"),
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return Parsed::Bad("malformed request");
            };
            let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
            if !raw_path.starts_with('/') {
                return Parsed::Bad("the request target must be a path");
            }
            let Some(path) = percent_decode(raw_path) else {
                return Parsed::Bad("bad percent-encoding in the path");
            };
            let mut api_key = None;
            let mut basic = None;
            for h in req.headers.iter() {
                let value = || {
                    std::str::from_utf8(h.value)
                        .ok()
                        .map(|v| v.trim().to_string())
                };
                if h.name.eq_ignore_ascii_case("x-api-key") {
                    api_key = value();
                } else if h.name.eq_ignore_ascii_case("authorization") {
                    basic = value().and_then(|v| {
                        let (scheme, rest) = v.split_once(' ')?;
                        scheme
                            .eq_ignore_ascii_case("basic")
                            .then(|| rest.trim().to_string())
                    });
                }
            }
            Parsed::Complete(Request {
                method: method.to_string(),
                path,
                query: query.to_string(),
                api_key,
                basic,
            })
        }
    }
}

/// `%XX` decoding (no `+` to space: that is a form encoding, not a path
/// or query rule for what we carry). `None` on a bad escape or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded value of `name` in a query string.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v))
}

/// Equal contents, in time that depends on the lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the compiler from short-cutting the fold.
    std::hint::black_box(diff) == 0
}

/// Why an admin request may not go on.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// A client from another host on a loopback-only bind.
    Forbidden,
    /// No key, or a wrong one.
    Unauthorized,
}

/// The access rule of every admin path: 403 for a non-loopback client when
/// the bind is loopback; with an `api_key`, the `X-API-Key` header or the
/// password of HTTP Basic authentication (any user name) must match it.
pub fn check_access(
    req: &Request,
    peer: IpAddr,
    bind_is_loopback: bool,
    api_key: Option<&str>,
) -> Result<(), Denied> {
    if bind_is_loopback && !peer.to_canonical().is_loopback() {
        return Err(Denied::Forbidden);
    }
    let Some(key) = api_key else { return Ok(()) };
    let by_header = req
        .api_key
        .as_deref()
        .is_some_and(|k| constant_time_eq(k.as_bytes(), key.as_bytes()));
    let by_basic = req
        .basic
        .as_deref()
        .and_then(base64_decode)
        .and_then(|cred| {
            let i = cred.iter().position(|&b| b == b':')?;
            Some(constant_time_eq(&cred[i + 1..], key.as_bytes()))
        })
        .unwrap_or(false);
    if by_header | by_basic {
        Ok(())
    } else {
        Err(Denied::Unauthorized)
    }
}

/// Standard base64 (with or without padding); `None` on anything else.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 || s.len() > MAX_REQUEST {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Request {
        match parse(text.as_bytes()) {
            Parsed::Complete(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_head_is_parsed_with_path_query_and_credentials() {
        let r = req("POST /api/v1/backends/a%20b/drain?server=10.0.0.1%3A80 HTTP/1.1\r\nHost: x\r\nX-Api-Key:  k1 \r\nAuthorization: Basic dTpwdw==\r\n\r\n");
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/v1/backends/a b/drain");
        assert_eq!(
            query_param(&r.query, "server").as_deref(),
            Some("10.0.0.1:80")
        );
        assert_eq!(query_param(&r.query, "value"), None);
        assert_eq!(r.api_key.as_deref(), Some("k1"));
        assert_eq!(r.basic.as_deref(), Some("dTpwdw=="));
    }

    #[test]
    fn partial_garbage_and_oversized_heads() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial);
        assert!(matches!(parse(b"\x00\x01garbage\r\n\r\n"), Parsed::Bad(_)));
        assert!(matches!(
            parse(b"GET http://x/ HTTP/1.1\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse(b"GET /%zz HTTP/1.1\r\n\r\n"),
            Parsed::Bad(_)
        ));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_REQUEST, b'a');
        assert_eq!(parse(&big), Parsed::TooLarge);
        let many: String = (0..40).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Parsed::TooLarge
        );
    }

    #[test]
    fn access_needs_the_key_by_header_or_basic_password() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let none = req("GET / HTTP/1.1\r\n\r\n");
        assert_eq!(check_access(&none, lo, true, None), Ok(()));
        assert_eq!(
            check_access(&none, lo, true, Some("pw")),
            Err(Denied::Unauthorized)
        );
        let wrong = req("GET / HTTP/1.1\r\nX-API-Key: pX\r\n\r\n");
        assert_eq!(
            check_access(&wrong, lo, true, Some("pw")),
            Err(Denied::Unauthorized)
        );
        let right = req("GET / HTTP/1.1\r\nX-API-Key: pw\r\n\r\n");
        assert_eq!(check_access(&right, lo, true, Some("pw")), Ok(()));
        // "u:pw"
        let basic = req("GET / HTTP/1.1\r\nAuthorization: Basic dTpwdw==\r\n\r\n");
        assert_eq!(check_access(&basic, lo, true, Some("pw")), Ok(()));
        assert_eq!(
            check_access(&basic, lo, true, Some("p")),
            Err(Denied::Unauthorized)
        );
        let far: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            check_access(&right, far, true, Some("pw")),
            Err(Denied::Forbidden)
        );
        assert_eq!(check_access(&right, far, false, Some("pw")), Ok(()));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(check_access(&none, mapped, true, None), Ok(()));
    }

    #[test]
    fn base64_and_constant_time_compare() {
        assert_eq!(base64_decode("dTpwdw==").unwrap(), b"u:pw");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert_eq!(base64_decode("Y"), None);
        assert_eq!(base64_decode("a*b="), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
