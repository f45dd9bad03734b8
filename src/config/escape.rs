//! Byte strings for health-check `send` / `expect`: text with `\xNN`,
//! `\n`, `\r`, `\t`, `\0` and `\\` escapes, so binary probes (DNS, game
//! server queries) fit in a YAML string.
//!
//! Inside YAML double quotes, YAML decodes escapes itself before we see the
//! text; this decoder is for plain and single-quoted values.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EscapeError {
    /// `\q`: not an escape we know.
    Unknown(String),
    /// `\x` not followed by two hex digits.
    BadHex(String),
    /// A lone `\` at the end.
    Trailing,
}

impl fmt::Display for EscapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EscapeError::Unknown(e) => write!(
                f,
                "unknown escape {e:?} (allowed: \\xNN, \\n, \\r, \\t, \\0, \\\\)"
            ),
            EscapeError::BadHex(e) => write!(f, "escape {e:?} needs two hex digits, e.g. \\x0a"),
            EscapeError::Trailing => write!(f, "a lone backslash at the end (write \\\\)"),
        }
    }
}

impl std::error::Error for EscapeError {}

pub fn decode_escapes(s: &str) -> Result<Vec<u8>, EscapeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let Some(&c) = bytes.get(i + 1) else {
            return Err(EscapeError::Trailing);
        };
        match c {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = bytes.get(i + 2..i + 4).unwrap_or(&[]);
                let text = std::str::from_utf8(hex).unwrap_or("");
                let ok = hex.len() == 2 && hex.iter().all(u8::is_ascii_hexdigit);
                let value = u8::from_str_radix(text, 16).ok().filter(|_| ok);
                match value {
                    Some(v) => out.push(v),
                    None => {
                        let end = (i + 4).min(bytes.len());
                        return Err(EscapeError::BadHex(
                            String::from_utf8_lossy(&bytes[i..end]).into_owned(),
                        ));
                    }
                }
                i += 4;
                continue;
            }
            _ => {
                let len = s[i + 1..].chars().next().map_or(1, char::len_utf8);
                return Err(EscapeError::Unknown(s[i..i + 1 + len].to_string()));
            }
        }
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes() {
        assert_eq!(decode_escapes("ping").unwrap(), b"ping");
        assert_eq!(decode_escapes(r"\xff\x00a").unwrap(), vec![0xff, 0, b'a']);
        assert_eq!(decode_escapes(r"a\r\n\t\0\\").unwrap(), b"a\r\n\t\0\\");
        assert_eq!(decode_escapes("é").unwrap(), "é".as_bytes());
    }

    #[test]
    fn refuses_bad_escapes() {
        assert_eq!(
            decode_escapes(r"\q"),
            Err(EscapeError::Unknown(r"\q".into()))
        );
        assert_eq!(
            decode_escapes(r"\é"),
            Err(EscapeError::Unknown(r"\é".into()))
        );
        assert_eq!(
            decode_escapes(r"\x4"),
            Err(EscapeError::BadHex(r"\x4".into()))
        );
        assert_eq!(
            decode_escapes(r"\x+1"),
            Err(EscapeError::BadHex(r"\x+1".into()))
        );
        assert_eq!(decode_escapes("a\\"), Err(EscapeError::Trailing));
    }

    proptest! {
        #[test]
        fn hex_escapes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text: String = data.iter().map(|b| format!("\\x{b:02x}")).collect();
            prop_assert_eq!(decode_escapes(&text).unwrap(), data);
        }

        #[test]
        fn never_panics(s in "\\PC{0,16}") {
            let _ = decode_escapes(&s);
        }
    }
}
