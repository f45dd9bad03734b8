//! Size strings of the configuration file (`max_body_size`,
//! `max_header_size`): a number of bytes, or a whole number with `K`, `KB`,
//! `M`, `MB`, `G`, `GB` (any case, powers of 1024: `1MB` = 1,048,576).
//!
//! This module owns the syntax only (and refuses values that do not fit in
//! 64 bits); which sizes are allowed for a key is decided by `validate`.

use std::fmt;

/// Why a size string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeError {
    Empty,
    /// Not a whole number with an optional unit (`1.5MB`, `-3`, `MB`).
    Malformed(String),
    UnknownUnit {
        input: String,
        unit: String,
    },
    /// Does not fit in 64 bits.
    TooLarge(String),
}

const EXPECTED: &str =
    "expected bytes, or a whole number with K, KB, M, MB, G or GB, e.g. 16384, 64KB, 10MB";

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::Empty => write!(f, "size is empty ({EXPECTED})"),
            SizeError::Malformed(s) => write!(f, "{s:?} is not a size ({EXPECTED})"),
            SizeError::UnknownUnit { input, unit } => write!(
                f,
                "size {input:?} has unknown unit {unit:?} (units: K, KB, M, MB, G, GB; powers of 1024)"
            ),
            SizeError::TooLarge(s) => write!(f, "size {s:?} is too large"),
        }
    }
}

impl std::error::Error for SizeError {}

/// Parses a size in bytes. Surrounding whitespace, and whitespace between
/// the number and its unit, are ignored.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(SizeError::Malformed(s.to_string()));
    }
    let unit = unit.trim_start();
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" => 10,
        "M" | "MB" => 20,
        "G" | "GB" => 30,
        _ if unit.starts_with(['.', ',']) || unit.is_empty() => {
            return Err(SizeError::Malformed(s.to_string()))
        }
        _ if !unit.chars().all(|c| c.is_ascii_alphabetic()) => {
            return Err(SizeError::Malformed(s.to_string()))
        }
        _ => {
            return Err(SizeError::UnknownUnit {
                input: s.to_string(),
                unit: unit.to_string(),
            })
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| SizeError::TooLarge(s.to_string()))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::TooLarge(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_units_are_powers_of_1024() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("16384"), Ok(16384));
        assert_eq!(parse_size(" 512B "), Ok(512));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4KB"), Ok(4096));
        assert_eq!(parse_size("4kb"), Ok(4096));
        assert_eq!(parse_size("1MB"), Ok(1_048_576));
        assert_eq!(parse_size("10 MB"), Ok(10 * 1_048_576));
        assert_eq!(parse_size("10m"), Ok(10 * 1_048_576));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
    }

    #[test]
    fn malformed_and_unknown_units_are_refused() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("  "), Err(SizeError::Empty));
        for bad in ["MB", "-1", "1.5MB", "1,5MB", "+3", "1 M B", "1MB!", "0x10"] {
            assert!(
                matches!(parse_size(bad), Err(SizeError::Malformed(_))),
                "{bad}: {:?}",
                parse_size(bad)
            );
        }
        assert_eq!(
            parse_size("3TB"),
            Err(SizeError::UnknownUnit {
                input: "3TB".into(),
                unit: "TB".into()
            })
        );
        assert!(parse_size("3 bytes").is_err());
        let msg = parse_size("3TB").unwrap_err().to_string();
        assert!(msg.contains("powers of 1024"), "{msg}");
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_size("18446744073709551616"),
            Err(SizeError::TooLarge("18446744073709551616".into()))
        );
        // 2^34 G = 2^64 bytes: one past the largest.
        assert!(matches!(
            parse_size("17179869184G"),
            Err(SizeError::TooLarge(_))
        ));
        assert_eq!(parse_size("17179869183G"), Ok(17_179_869_183u64 << 30));
        assert!(matches!(
            parse_size("99999999999999999999999KB"),
            Err(SizeError::TooLarge(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_size(&s);
        }

        #[test]
        fn kb_is_1024_bytes(n in 0u64..(1u64 << 40)) {
            proptest::prop_assert_eq!(parse_size(&format!("{n}KB")), Ok(n * 1024));
        }
    }
}
