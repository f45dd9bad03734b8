//! Shared helpers for the PROXY protocol tests: hex vectors, parse and
//! emit wrappers that panic with context, and the fuzz target's oracle.
#![allow(dead_code)]

use std::net::SocketAddr;

use nvelox::proxy_protocol::{Accept, Error, Header, Parsed};

/// The fuzz target's oracle, compiled and run here on stable.
mod parse_check {
    include!("../../fuzz/fuzz_targets/parse_check.rs");
}
pub use parse_check::check_parse;

/// `"0d 0a ..."` -> bytes; panics on a typo in a test vector.
pub fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex {b:?}")))
        .collect()
}

pub const SIG: &str = "0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a";

pub fn v2(rest: &str) -> Vec<u8> {
    hex(&format!("{SIG} {rest}"))
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub fn complete(buf: &[u8], accept: Accept) -> (Header, usize) {
    match Header::parse(buf, accept) {
        Ok(Parsed::Complete { header, consumed }) => (header, consumed),
        other => panic!("expected a complete header, got {other:?}"),
    }
}

pub fn emitted(h: &Header) -> Vec<u8> {
    let mut out = Vec::new();
    match h.emit(&mut out) {
        Ok(n) => assert_eq!(n, out.len()),
        Err(e) => panic!("emit {h:?}: {e}"),
    }
    out
}

pub fn parse_err(buf: &[u8], accept: Accept) -> Error {
    match Header::parse(buf, accept) {
        Err(e) => e,
        other => panic!("expected an error for {buf:02x?}, got {other:?}"),
    }
}

/// Checks both directions: the vector parses to `header` (consuming all of
/// it), and `header` emits exactly the vector.
pub fn vector(bytes: &[u8], header: Header) {
    let (parsed, consumed) = complete(bytes, Accept::Any);
    assert_eq!(parsed, header);
    assert_eq!(consumed, bytes.len());
    assert_eq!(emitted(&header), bytes);
    assert_eq!(header.encoded_len(), bytes.len());
    check_parse(bytes);
}

pub fn version_of(bytes: &[u8]) -> Accept {
    if bytes.starts_with(b"PROXY") {
        Accept::V1
    } else {
        Accept::V2
    }
}
