//! Tests of the streaming body decoders, including every split point.

use proptest::prelude::*;

use super::body::*;
use super::BodyFraming;

/// Decodes `input` fed in pieces cut at `cuts`, the way a shell would: the
/// bytes not consumed stay buffered and are fed again with the next piece.
/// Returns (payload, bytes of the body, done).
fn decode_split(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize, bool), BodyError> {
    let mut decoder = BodyDecoder::new(BodyFraming::Chunked, 1024);
    let mut payload = Vec::new();
    let mut buffered: Vec<u8> = Vec::new();
    let mut body_len = 0;
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
    bounds.sort_unstable();
    bounds.push(input.len());
    let mut from = 0;
    for to in bounds {
        buffered.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            let piece = decoder.next_piece(&buffered)?;
            payload.extend_from_slice(&buffered[piece.data.clone()]);
            buffered.drain(..piece.consumed);
            body_len += piece.consumed;
            if piece.done {
                return Ok((payload, body_len, true));
            }
            if piece.consumed == 0 {
                break;
            }
        }
    }
    Ok((payload, body_len, false))
}

const MESSAGE: &[u8] =
    b"5\r\nhello\r\n1;name=value\r\n \r\n10 ; a=\"b c\"\r\n0123456789abcdef\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\nNEXT";

#[test]
fn chunked_whole_and_byte_by_byte() {
    let whole = decode_split(MESSAGE, &[]).unwrap();
    assert_eq!(whole.0, b"hello 0123456789abcdef");
    assert_eq!(whole.1, MESSAGE.len() - 4);
    assert!(whole.2);
    let every: Vec<usize> = (1..MESSAGE.len()).collect();
    assert_eq!(decode_split(MESSAGE, &every).unwrap(), whole);
    for cut in 0..MESSAGE.len() {
        assert_eq!(
            decode_split(MESSAGE, &[cut]).unwrap(),
            whole,
            "cut at {cut}"
        );
    }
}

#[test]
fn scan_reports_where_the_body_ends() {
    let mut d = BodyDecoder::new(BodyFraming::Chunked, 1024);
    assert_eq!(
        d.feed(MESSAGE),
        Ok(Progress {
            consumed: MESSAGE.len() - 4,
            done: true
        })
    );
    assert_eq!(
        d.feed(b"more"),
        Ok(Progress {
            consumed: 0,
            done: true
        })
    );
    for k in 0..MESSAGE.len() - 4 {
        let mut d = BodyDecoder::new(BodyFraming::Chunked, 1024);
        let first = d.feed(&MESSAGE[..k]).unwrap();
        assert_eq!(
            first,
            Progress {
                consumed: k,
                done: false
            }
        );
        let rest = d.feed(&MESSAGE[k..]).unwrap();
        assert_eq!(
            rest,
            Progress {
                consumed: MESSAGE.len() - 4 - k,
                done: true
            }
        );
    }
}

#[test]
fn chunked_errors() {
    let cases: &[(&[u8], BodyError)] = &[
        (b"x\r\n", BodyError::BadChunkSize),
        (b"\r\n", BodyError::BadChunkSize),
        (b" 5\r\n", BodyError::BadChunkSize),
        (b"-5\r\n", BodyError::BadChunkSize),
        (b"+5\r\n", BodyError::BadChunkSize),
        (b"0x5\r\n", BodyError::BadChunkSize),
        (b"5 5\r\n", BodyError::BadChunkSize),
        (b"5\n", BodyError::BadChunkSize),
        (b"5\r\r", BodyError::BadLineEnding),
        (b"5;a\x01\r\n", BodyError::BadChunkSize),
        (b"5;a\nb\r\n", BodyError::BadChunkSize),
        (b"11111111111111111\r\n", BodyError::ChunkSizeOverflow),
        (b"5\r\nhelloX\r\n", BodyError::BadLineEnding),
        (b"5\r\nhello\r\r", BodyError::BadLineEnding),
        (b"5\r\nhello\n", BodyError::BadLineEnding),
        (b"0\r\nX-A 1\r\n\r\n", BodyError::BadTrailer),
        (b"0\r\n:1\r\n\r\n", BodyError::BadTrailer),
        (b"0\r\n a: 1\r\n\r\n", BodyError::BadTrailer),
        (b"0\r\na: 1\x00\r\n\r\n", BodyError::BadTrailer),
        (b"0\r\na: 1\n", BodyError::BadTrailer),
        (b"0\r\na: 1\r\r", BodyError::BadLineEnding),
        (b"0\r\n\r\r", BodyError::BadLineEnding),
        (b"0\r\n\n", BodyError::BadTrailer),
    ];
    for (raw, want) in cases {
        assert_eq!(
            decode_split(raw, &[]).map(|_| ()),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
        let every: Vec<usize> = (1..raw.len()).collect();
        assert_eq!(
            decode_split(raw, &every).map(|_| ()),
            Err(*want),
            "split {:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

/// Scans `input` as a shell would (calling again with what is left), so an
/// error after some good bytes surfaces.
fn scan_all(d: &mut ChunkedDecoder, input: &[u8]) -> Result<Progress, BodyError> {
    let mut consumed = 0;
    loop {
        let p = d.scan(&input[consumed..])?;
        consumed += p.consumed;
        if p.done || p.consumed == 0 {
            return Ok(Progress {
                consumed,
                done: p.done,
            });
        }
    }
}

#[test]
fn errors_come_after_the_good_bytes_before_them() {
    let mut d = ChunkedDecoder::new(DEFAULT_MAX_CHUNK_LINE, 64);
    assert_eq!(
        d.scan(b"2\r\nab\r\nZ"),
        Ok(Progress {
            consumed: 7,
            done: false
        })
    );
    assert_eq!(d.scan(b"Z"), Err(BodyError::BadChunkSize));
    assert_eq!(
        d.scan(b"Z"),
        Err(BodyError::BadChunkSize),
        "the error sticks"
    );
    let mut d = ChunkedDecoder::new(DEFAULT_MAX_CHUNK_LINE, 64);
    assert_eq!(
        d.next_piece(b"2\r\nab"),
        Ok(Piece {
            consumed: 5,
            data: 3..5,
            done: false
        })
    );
    assert_eq!(
        d.next_piece(b"\rX"),
        Ok(Piece {
            consumed: 1,
            data: 1..1,
            done: false
        })
    );
    assert_eq!(d.next_piece(b"X"), Err(BodyError::BadLineEnding));
}

#[test]
fn sixteen_hex_digits_are_the_maximum() {
    let mut d = ChunkedDecoder::new(DEFAULT_MAX_CHUNK_LINE, 64);
    let p = d.scan(b"ffffffffffffffff\r\nabc").unwrap();
    assert_eq!(
        p,
        Progress {
            consumed: 21,
            done: false
        }
    );
    let mut d = ChunkedDecoder::new(DEFAULT_MAX_CHUNK_LINE, 64);
    assert_eq!(
        scan_all(&mut d, b"0000000000000000005\r\n"),
        Err(BodyError::ChunkSizeOverflow)
    );
}

#[test]
fn lines_and_trailers_are_bounded() {
    let mut d = ChunkedDecoder::new(16, 64);
    let long_ext = [b"5;".as_slice(), &[b'a'; 20], b"\r\n"].concat();
    assert_eq!(
        scan_all(&mut d, &long_ext),
        Err(BodyError::ChunkLineTooLong)
    );
    let mut d = ChunkedDecoder::new(16, 64);
    assert!(d.scan(b"5;aaaaaaaaaaa\r\n").is_ok(), "16 bytes fit");
    let mut d = ChunkedDecoder::new(16, 10);
    assert_eq!(
        scan_all(&mut d, b"0\r\nX-Long: abcdef\r\n\r\n"),
        Err(BodyError::TrailersTooLarge)
    );
    // A size line split across calls is still bounded as one line.
    let mut d = ChunkedDecoder::new(16, 64);
    for _ in 0..16 {
        if d.scan(b"0").is_err() {
            return;
        }
    }
    assert!(d.scan(b"0").is_err());
}

#[test]
fn length_and_close_delimited_bodies() {
    let mut d = BodyDecoder::new(BodyFraming::Length(5), 0);
    assert_eq!(
        d.feed(b"he"),
        Ok(Progress {
            consumed: 2,
            done: false
        })
    );
    assert_eq!(d.at_eof(), Err(BodyError::Truncated));
    assert_eq!(
        d.feed(b"lloGET"),
        Ok(Progress {
            consumed: 3,
            done: true
        })
    );
    assert!(d.is_done());
    assert_eq!(d.at_eof(), Ok(()));
    let mut d = BodyDecoder::new(BodyFraming::None, 0);
    assert!(d.is_done());
    assert_eq!(
        d.feed(b"GET"),
        Ok(Progress {
            consumed: 0,
            done: true
        })
    );
    let d = BodyDecoder::new(BodyFraming::Length(0), 0);
    assert!(d.is_done());
    let mut d = BodyDecoder::new(BodyFraming::CloseDelimited, 0);
    assert_eq!(
        d.feed(b"abc"),
        Ok(Progress {
            consumed: 3,
            done: false
        })
    );
    assert!(!d.is_done());
    assert_eq!(d.at_eof(), Ok(()));
    assert!(d.is_done());
    let mut d = BodyDecoder::new(BodyFraming::Chunked, 64);
    assert_eq!(
        d.feed(b"5\r\nab"),
        Ok(Progress {
            consumed: 5,
            done: false
        })
    );
    assert_eq!(d.at_eof(), Err(BodyError::Truncated));
    let mut d = BodyDecoder::new(BodyFraming::Length(u64::MAX), 0);
    assert_eq!(
        d.feed(&[0; 10]),
        Ok(Progress {
            consumed: 10,
            done: false
        })
    );
    let piece = BodyDecoder::new(BodyFraming::Length(3), 0)
        .next_piece(b"abcdef")
        .unwrap();
    assert_eq!(
        piece,
        Piece {
            consumed: 3,
            data: 0..3,
            done: true
        }
    );
}

/// Encodes `chunks` as a chunked body with some extensions and trailers.
fn encode(chunks: &[Vec<u8>], ext: bool, trailers: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend_from_slice(format!("{:X}", c.len()).as_bytes());
        if ext {
            out.extend_from_slice(b" ;e=1");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if trailers {
        out.extend_from_slice(b"X-T: v\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

proptest! {
    #[test]
    fn chunked_round_trips_at_random_splits(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        ext in any::<bool>(),
        trailers in any::<bool>(),
        cuts in proptest::collection::vec(0usize..3000, 0..20),
        tail in proptest::collection::vec(any::<u8>(), 0..10),
    ) {
        let body = encode(&chunks, ext, trailers);
        let mut input = body.clone();
        input.extend_from_slice(&tail);
        let (payload, len, done) = decode_split(&input, &cuts).unwrap();
        prop_assert!(done);
        prop_assert_eq!(len, body.len());
        prop_assert_eq!(payload, chunks.concat());
        let mut d = BodyDecoder::new(BodyFraming::Chunked, 1024);
        prop_assert_eq!(d.feed(&input).unwrap(), Progress { consumed: body.len(), done: true });
    }

    #[test]
    fn garbage_never_panics_and_always_progresses(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut d = ChunkedDecoder::new(32, 64);
        let mut rest = &input[..];
        while !rest.is_empty() {
            match d.next_piece(rest) {
                Err(_) => break,
                Ok(p) => {
                    prop_assert!(p.data.end <= p.consumed);
                    if p.done { break; }
                    prop_assert!(p.consumed > 0);
                    rest = &rest[p.consumed..];
                }
            }
        }
    }
}
