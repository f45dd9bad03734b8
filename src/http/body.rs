//! Message bodies, streamed: a chunked decoder and a length counter that say
//! where a body ends, byte by byte, without ever holding it.
//!
//! Owns: the chunked wire format (RFC 9112 section 7.1) parsed strictly and
//! incrementally (input may be split at any byte), with bounded size lines
//! and trailers; counting `Content-Length` bodies; close-delimited bodies.
//! Does not own the bytes: every call takes the caller's input slice and
//! answers how much of it belongs to the body ([`Progress`], for forwarding
//! the chunked bytes as they are) or where the payload data lies
//! ([`Piece`], for a caller that removes the framing).
//!
//! Strictness (a proxy forwards these bytes, so any leniency another parser
//! does not share is a smuggling vector): size lines and trailer lines end in
//! CRLF exactly; a size is 1 to 16 hex digits, optionally followed by spaces
//! or tabs and `;extensions`; control bytes in extensions and trailers, a
//! trailer line without a colon, or a name that is not a token are errors.

use std::fmt;
use std::ops::Range;

use super::framing::BodyFraming;

/// Longest chunk-size line (size, extensions, CRLF) by default.
pub const DEFAULT_MAX_CHUNK_LINE: usize = 4096;
/// Most hex digits in a chunk size (a `u64`).
const MAX_SIZE_DIGITS: u8 = 16;

/// Why a body could not be read. Every one ends the connection: 400 for a
/// request body, 502 (or a close, once the response started) for a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// A chunk-size line that is not `HEX[ws][;ext]CRLF`.
    BadChunkSize,
    /// More than 16 hex digits.
    ChunkSizeOverflow,
    /// A chunk-size line longer than the limit.
    ChunkLineTooLong,
    /// Chunk data not followed by CRLF, or a bare CR or LF in a framing line.
    BadLineEnding,
    /// A trailer line that is not `token ":" value CRLF`.
    BadTrailer,
    /// Trailers longer than the limit.
    TrailersTooLarge,
    /// The peer closed before the body's end.
    Truncated,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::BadChunkSize => "bad chunk size line",
            BodyError::ChunkSizeOverflow => "chunk size too large",
            BodyError::ChunkLineTooLong => "chunk size line too long",
            BodyError::BadLineEnding => "bad line ending in chunked body",
            BodyError::BadTrailer => "bad trailer line",
            BodyError::TrailersTooLarge => "trailers too large",
            BodyError::Truncated => "body truncated by close",
        })
    }
}

impl std::error::Error for BodyError {}

/// How much of an input belongs to the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Leading bytes of the input that are part of the body (framing
    /// included); the rest belongs to what follows (the next message).
    pub consumed: usize,
    /// The body's last byte is among them.
    pub done: bool,
}

/// One step of decoding: `consumed` bytes of input were read, of which
/// `data` (a range into the input) is payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub consumed: usize,
    pub data: Range<usize>,
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    SizeDigits,
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// Streaming decoder of a chunked body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: Chunk,
    /// Size being read, then payload bytes left in the current chunk.
    size: u64,
    digits: u8,
    line_len: usize,
    trailer_len: usize,
    max_line: usize,
    max_trailers: usize,
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Visible text, space, tab and obs-text: what a value or extension may hold.
fn is_text(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl ChunkedDecoder {
    /// A decoder whose size lines are at most `max_line` bytes and whose
    /// trailers total at most `max_trailers` bytes.
    pub fn new(max_line: usize, max_trailers: usize) -> Self {
        ChunkedDecoder {
            state: Chunk::SizeDigits,
            size: 0,
            digits: 0,
            line_len: 0,
            trailer_len: 0,
            max_line,
            max_trailers,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Reads framing bytes up to and including the next run of payload
    /// data in `input`. Consumes at least one byte of a non-empty input
    /// unless the body is already done; an error is returned only when the
    /// bad byte is the first one (else the bytes before it come first).
    pub fn next_piece(&mut self, input: &[u8]) -> Result<Piece, BodyError> {
        let mut pos = 0;
        while pos < input.len() {
            if self.state == Chunk::Done {
                break;
            }
            if self.state == Chunk::Data {
                let n = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - pos);
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = Chunk::DataCr;
                }
                return Ok(Piece {
                    consumed: pos + n,
                    data: pos..pos + n,
                    done: false,
                });
            }
            // A bad byte is left unconsumed, with the state as it was
            // before it: the bytes before it are reported first, so where
            // the error surfaces does not depend on how input was split.
            let before = self.clone();
            if let Err(e) = self.framing_byte(input[pos]) {
                *self = before;
                if pos == 0 {
                    return Err(e);
                }
                break;
            }
            pos += 1;
        }
        Ok(Piece {
            consumed: pos,
            data: pos..pos,
            done: self.is_done(),
        })
    }

    /// How many leading bytes of `input` belong to the body (framing and
    /// data, for forwarding as-is), and whether the body ends there. Bytes
    /// before an error are reported first; the error comes when the bad
    /// byte is at the start of the input.
    pub fn scan(&mut self, input: &[u8]) -> Result<Progress, BodyError> {
        let mut consumed = 0;
        while consumed < input.len() && !self.is_done() {
            match self.next_piece(&input[consumed..]) {
                Ok(piece) if piece.consumed > 0 => consumed += piece.consumed,
                Ok(_) => break,
                Err(e) if consumed == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(Progress {
            consumed,
            done: self.is_done(),
        })
    }

    fn count_line(&mut self) -> Result<(), BodyError> {
        self.line_len += 1;
        if self.line_len > self.max_line {
            return Err(BodyError::ChunkLineTooLong);
        }
        Ok(())
    }

    fn count_trailer(&mut self) -> Result<(), BodyError> {
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailers {
            return Err(BodyError::TrailersTooLarge);
        }
        Ok(())
    }

    fn framing_byte(&mut self, b: u8) -> Result<(), BodyError> {
        use Chunk::*;
        match self.state {
            SizeDigits | SizeSpace | Extension | SizeLf => self.count_line()?,
            TrailerStart | TrailerName | TrailerValue | TrailerLf | EndLf => {
                self.count_trailer()?
            }
            Data | DataCr | DataLf | Done => {}
        }
        self.state = match (self.state, b) {
            (SizeDigits, _) if hex_value(b).is_some() => {
                if self.digits == MAX_SIZE_DIGITS {
                    return Err(BodyError::ChunkSizeOverflow);
                }
                self.digits += 1;
                self.size = (self.size << 4) | hex_value(b).unwrap_or(0);
                SizeDigits
            }
            (SizeDigits, _) if self.digits == 0 => return Err(BodyError::BadChunkSize),
            (SizeDigits | SizeSpace, b' ' | b'\t') => SizeSpace,
            (SizeDigits | SizeSpace, b';') => Extension,
            (SizeDigits | SizeSpace | Extension, b'\r') => SizeLf,
            (SizeDigits | SizeSpace, _) => return Err(BodyError::BadChunkSize),
            (Extension, _) if is_text(b) => Extension,
            (Extension, _) => return Err(BodyError::BadChunkSize),
            (SizeLf, b'\n') => {
                self.line_len = 0;
                self.digits = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => SizeDigits,
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            (SizeLf | DataCr | DataLf | TrailerLf | EndLf, _) => {
                return Err(BodyError::BadLineEnding)
            }
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, _) if is_token(b) => TrailerName,
            (TrailerName, _) if is_token(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerStart | TrailerName, _) => return Err(BodyError::BadTrailer),
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_text(b) => TrailerValue,
            (TrailerValue, _) => return Err(BodyError::BadTrailer),
            // Data and Done never reach here (next_piece handles them).
            (Data | Done, _) => self.state,
        };
        Ok(())
    }
}

/// Any body, by its framing: feed input, learn how much belongs to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyDecoder {
    /// Ended (a message without body, or a finished one).
    Done,
    /// `remaining` bytes still to come.
    Length {
        remaining: u64,
    },
    Chunked(ChunkedDecoder),
    /// Everything until the peer closes (responses and tunnels).
    UntilClose,
}

impl BodyDecoder {
    /// The decoder for a body framed as `framing`; chunk trailers limited to
    /// `max_trailers` bytes.
    pub fn new(framing: BodyFraming, max_trailers: usize) -> Self {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => BodyDecoder::Done,
            BodyFraming::Length(n) => BodyDecoder::Length { remaining: n },
            BodyFraming::Chunked => {
                BodyDecoder::Chunked(ChunkedDecoder::new(DEFAULT_MAX_CHUNK_LINE, max_trailers))
            }
            BodyFraming::CloseDelimited | BodyFraming::Tunnel => BodyDecoder::UntilClose,
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Done => true,
            BodyDecoder::Chunked(c) => c.is_done(),
            _ => false,
        }
    }

    /// How many leading bytes of `input` belong to the body (to forward
    /// as they are), and whether the body ends there.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, BodyError> {
        match self {
            BodyDecoder::Done => Ok(Progress {
                consumed: 0,
                done: true,
            }),
            BodyDecoder::Length { remaining } => {
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                *remaining -= n as u64;
                let done = *remaining == 0;
                if done {
                    *self = BodyDecoder::Done;
                }
                Ok(Progress { consumed: n, done })
            }
            BodyDecoder::Chunked(c) => c.scan(input),
            BodyDecoder::UntilClose => Ok(Progress {
                consumed: input.len(),
                done: false,
            }),
        }
    }

    /// Like [`feed`](Self::feed) but one run of payload at a time, for a
    /// caller that removes the chunked framing.
    pub fn next_piece(&mut self, input: &[u8]) -> Result<Piece, BodyError> {
        match self {
            BodyDecoder::Chunked(c) => c.next_piece(input),
            _ => {
                let p = self.feed(input)?;
                Ok(Piece {
                    consumed: p.consumed,
                    data: 0..p.consumed,
                    done: p.done,
                })
            }
        }
    }

    /// The peer closed: fine only for a body that ends at close or is done.
    pub fn at_eof(&mut self) -> Result<(), BodyError> {
        match self {
            BodyDecoder::UntilClose => {
                *self = BodyDecoder::Done;
                Ok(())
            }
            other if other.is_done() => Ok(()),
            _ => Err(BodyError::Truncated),
        }
    }
}
