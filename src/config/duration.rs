//! Duration strings of the configuration file: `500ms`, `10s`, `2m`, `1h`,
//! a bare integer meaning seconds, and Go-style sums such as `1m30s`.
//!
//! This module owns the syntax only; which durations may be zero is decided
//! by `validate`, which knows what each key means.

use std::fmt;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    Empty,
    Negative(String),
    /// A number with no unit inside a compound value (`1m30`), or a
    /// fraction, or any other character we do not understand.
    Malformed(String),
    UnknownUnit {
        input: String,
        unit: String,
    },
    TooLarge(String),
}

const EXPECTED: &str = "expected e.g. 500ms, 10s, 2m, 1h, 1m30s, or a bare number of seconds";

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => write!(f, "duration is empty ({EXPECTED})"),
            DurationError::Negative(s) => write!(f, "duration {s:?} is negative"),
            DurationError::Malformed(s) => write!(f, "{s:?} is not a duration ({EXPECTED})"),
            DurationError::UnknownUnit { input, unit } => write!(
                f,
                "duration {input:?} has unknown unit {unit:?} (units: ms, s, m, h)"
            ),
            DurationError::TooLarge(s) => write!(f, "duration {s:?} is too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration. Surrounding whitespace is ignored.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(s.to_string()));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s
            .parse()
            .map_err(|_| DurationError::TooLarge(s.to_string()))?;
        return Ok(Duration::from_secs(secs));
    }
    let mut total_ms: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Malformed(s.to_string()));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::TooLarge(s.to_string()))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        if unit_len == 0 {
            // `1m30` or `1.5s`: a number without a unit after another part,
            // or a fraction; both are ambiguous, so refuse them.
            return Err(DurationError::Malformed(s.to_string()));
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    input: s.to_string(),
                    unit: unit.to_string(),
                })
            }
        };
        total_ms = number
            .checked_mul(factor_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| DurationError::TooLarge(s.to_string()))?;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_documented_form() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 7s "), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("  "), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_duration("1.5s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("1m30"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("10 s"),
            Err(DurationError::Malformed(_))
        ));
        assert_eq!(
            parse_duration("10sec"),
            Err(DurationError::UnknownUnit {
                input: "10sec".into(),
                unit: "sec".into()
            })
        );
        assert!(matches!(
            parse_duration("99999999999999999999"),
            Err(DurationError::TooLarge(_))
        ));
        assert!(matches!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::TooLarge(_))
        ));
        let msg = parse_duration("10sec").unwrap_err().to_string();
        assert!(
            msg.contains("10sec") && msg.contains("ms, s, m, h"),
            "{msg}"
        );
        let msg = parse_duration("soon").unwrap_err().to_string();
        assert!(msg.contains("soon") && msg.contains("500ms"), "{msg}");
    }

    proptest! {
        #[test]
        fn number_and_unit_round_trip(n in 0u64..1_000_000, unit in 0usize..5) {
            let (text, want) = match unit {
                0 => (format!("{n}ms"), Duration::from_millis(n)),
                1 => (format!("{n}s"), Duration::from_secs(n)),
                2 => (format!("{n}m"), Duration::from_secs(n * 60)),
                3 => (format!("{n}h"), Duration::from_secs(n * 3600)),
                _ => (format!("{n}"), Duration::from_secs(n)),
            };
            prop_assert_eq!(parse_duration(&text), Ok(want));
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn sums_add_up(m in 0u64..10_000, s in 0u64..10_000) {
            prop_assert_eq!(
                parse_duration(&format!("{m}m{s}s")),
                Ok(Duration::from_secs(m * 60 + s))
            );
        }
    }
}
