// Oracle shared by the `http_request` fuzz target and the stable unit tests
// in `src/http/fuzz_seed_tests.rs` (`include!`d by both, hence no `//!`
// header). The includer brings the `http` module into scope
// (`use nvelox::http;` or `use crate::http;`).

use http::head::{parse_request, HeadLimits, Parsed};
use http::session::{ClientStep, Session, UpstreamStep};
use http::{BodyDecoder, BodyFraming, EditOptions, RequestContext, RetryPolicy};

/// What a client connection did with a byte stream, independent of how the
/// stream was split into reads.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Head {
        target: Vec<u8>,
        framing: BodyFraming,
    },
    Body(usize),
    BodyDone,
    Reject(u16),
    Close,
}

/// Limits small enough that the fuzzer reaches them.
pub fn fuzz_limits() -> HeadLimits {
    HeadLimits {
        max_head_bytes: 512,
        max_headers: 8,
        max_body: Some(4096),
    }
}

/// Drives a [`Session`] like the shell would, feeding `stream` in reads of
/// the given lengths (the rest in one read), answering every request with an
/// empty 200. Panics if a step consumes more than it was given or if the
/// loop stops making progress.
pub fn drive(stream: &[u8], reads: &[usize]) -> Vec<Seen> {
    let now = std::time::Instant::now();
    let mut session = Session::new(fuzz_limits(), now);
    let mut seen: Vec<Seen> = Vec::new();
    let mut buffer: Vec<u8> = Vec::new();
    let mut offset: usize = 0;
    let mut read_iter = reads.iter().copied();
    let mut steps = 0usize;
    let mut ended = false;
    while !ended {
        let n = read_iter.next().unwrap_or(usize::MAX).max(1);
        let end = offset.saturating_add(n).min(stream.len());
        buffer.extend_from_slice(&stream[offset..end]);
        offset = end;
        loop {
            steps += 1;
            assert!(steps <= 4 * stream.len() + 64, "no progress");
            match session.client_input(&buffer, now) {
                ClientStep::NeedMore => break,
                ClientStep::Request {
                    consumed,
                    head,
                    whole_body,
                } => {
                    assert!(consumed > 0 && consumed <= buffer.len());
                    if let Some(n) = whole_body {
                        assert!(consumed + n <= buffer.len());
                    }
                    check_head(&buffer, consumed, &head);
                    seen.push(Seen::Head {
                        target: head.target().to_vec(),
                        framing: head.framing,
                    });
                    buffer.drain(..consumed);
                    session.attempt_started(RetryPolicy::default(), now);
                }
                ClientStep::Body { forward, done } => {
                    assert!(forward <= buffer.len());
                    assert!(forward > 0 || done || buffer.is_empty(), "body stalled");
                    buffer.drain(..forward);
                    match seen.last_mut() {
                        _ if forward == 0 => {}
                        Some(Seen::Body(total)) => *total += forward,
                        _ => seen.push(Seen::Body(forward)),
                    }
                    if done {
                        seen.push(Seen::BodyDone);
                    } else if buffer.is_empty() {
                        break;
                    }
                }
                ClientStep::Hold => {
                    // Answer the outstanding request; its end lets the
                    // next pipelined request be read.
                    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                    match session.upstream_input(reply, now) {
                        UpstreamStep::Response { end: Some(end), .. } => {
                            if end.close_client {
                                seen.push(Seen::Close);
                                ended = true;
                                break;
                            }
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                ClientStep::Reject(r) => {
                    assert!([400, 413, 414, 431, 501].contains(&r.status), "{r:?}");
                    seen.push(Seen::Reject(r.status));
                    ended = true;
                    break;
                }
                ClientStep::Close | ClientStep::Tunnel => {
                    seen.push(Seen::Close);
                    ended = true;
                    break;
                }
            }
        }
        if offset >= stream.len() {
            break;
        }
    }
    seen
}

/// A complete head parses the same from its own bytes, its prefixes are
/// incomplete, and the head written for the server parses back to the same
/// method, target and framing.
fn check_head(buffer: &[u8], consumed: usize, head: &http::RequestHead) {
    let limits = fuzz_limits();
    let own = &buffer[..consumed];
    match parse_request(own, &limits) {
        Ok(Parsed::Complete {
            head: again,
            consumed: c,
        }) => {
            assert_eq!(c, consumed);
            assert_eq!(&again, head, "trailing bytes changed the head");
        }
        other => panic!("own bytes gave {other:?}"),
    }
    let stride = (consumed / 8).max(1);
    for k in (0..consumed).step_by(stride) {
        assert_eq!(
            parse_request(&own[..k], &limits),
            Ok(Parsed::Incomplete),
            "prefix {k}"
        );
    }
    let ctx = RequestContext {
        client_ip: std::net::IpAddr::from([192, 0, 2, 1]),
        proto: "http",
        port: 80,
        upstream_keep_alive: true,
    };
    let mut out = Vec::new();
    http::write_request_head(head, &ctx, &EditOptions::default(), &mut out);
    let roomy = HeadLimits {
        max_head_bytes: 4096,
        max_headers: 64,
        max_body: None,
    };
    match parse_request(&out, &roomy) {
        Ok(Parsed::Complete {
            head: sent,
            consumed: c,
        }) => {
            assert_eq!(c, out.len());
            assert_eq!(sent.method_bytes(), head.method_bytes());
            assert_eq!(sent.target(), head.target());
            assert_eq!(sent.framing, head.framing);
            assert_eq!(sent.upgrade, head.upgrade);
        }
        other => panic!("edited head does not parse: {other:?}"),
    }
}

/// The fuzz oracle: the first byte seeds the read lengths, the rest is what a
/// client sends. Fed whole, byte by byte and in seeded reads, the connection
/// must see exactly the same heads, body lengths and outcome; the chunked
/// decoder alone must agree with itself at every split.
pub fn check_http_request(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = drive(stream, &[]);
    let mut state = u32::from(seed) | 0x100;
    let reads: Vec<usize> = (0..stream.len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            1 + (state % 37) as usize
        })
        .collect();
    assert_eq!(drive(stream, &reads), whole, "seeded reads differ");
    // Byte-by-byte reads re-parse the head on every byte: quadratic, so
    // only for short inputs (the seeded reads cover longer ones).
    if stream.len() <= 128 {
        assert_eq!(
            drive(stream, &vec![1; stream.len()]),
            whole,
            "byte reads differ"
        );
    }

    let mut decoder = BodyDecoder::new(BodyFraming::Chunked, 256);
    let mut rest = stream;
    while !rest.is_empty() {
        match decoder.next_piece(rest) {
            Err(_) => break,
            Ok(piece) => {
                assert!(piece.data.start <= piece.data.end && piece.data.end <= piece.consumed);
                assert!(piece.consumed <= rest.len());
                if piece.done {
                    break;
                }
                assert!(piece.consumed > 0, "decoder stalled");
                rest = &rest[piece.consumed..];
            }
        }
    }
}
