//! Scalar checks shared by every section: required strings, durations,
//! bounded whole numbers, ports, flags and one-of choices.
//!
//! Each reports a problem and falls back to a default, so checking goes on;
//! the plan is only returned when no error was recorded. What a key means
//! (its default, whether it may be zero) is the caller's business.

use std::time::Duration;

use super::super::duration::{parse_duration, DurationError};
use super::super::raw::Text;
use super::{key, text, FileId, Validator};

impl Validator<'_> {
    pub(super) fn required<'t>(
        &mut self,
        file: FileId,
        item: &str,
        name: &str,
        t: Option<&'t Text>,
    ) -> Option<&'t str> {
        match text(t) {
            Some(s) if !s.is_empty() => Some(s),
            Some(_) => {
                self.error(file, &key(item, name), format!("`{name}` is empty"));
                None
            }
            None => {
                self.error(file, item, format!("missing required key `{name}`"));
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        file: FileId,
        path: &str,
        t: Option<&Text>,
        default: Duration,
        allow_zero: bool,
        max: Duration,
    ) -> Duration {
        let Some(s) = text(t) else { return default };
        match parse_duration(s) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(file, path, "must be greater than 0");
                default
            }
            Ok(d) if d > max => {
                self.error(
                    file,
                    path,
                    format!(
                        "duration {s:?} is above the maximum of {}",
                        describe_max(max)
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(DurationError::TooLarge(_)) => {
                self.error(
                    file,
                    path,
                    format!(
                        "duration {s:?} is too large (the maximum is {})",
                        describe_max(max)
                    ),
                );
                default
            }
            Err(e) => {
                self.error(file, path, e);
                default
            }
        }
    }

    /// A whole number in `min..=max`; `None` when absent or wrong.
    pub(super) fn number(
        &mut self,
        file: FileId,
        path: &str,
        t: Option<&Text>,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let s = text(t)?;
        let n = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse::<u64>().ok()
        } else {
            None
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) if n < min => {
                self.error(file, path, format!("must be at least {min}, got {n}"));
                None
            }
            _ => {
                self.error(
                    file,
                    path,
                    format!("expected a whole number from {min} to {max}, got {s:?}"),
                );
                None
            }
        }
    }

    pub(super) fn port(&mut self, file: FileId, path: &str, t: Option<&Text>) -> Option<u16> {
        if text(t) == Some("0") {
            self.error(file, path, "port 0 is not allowed (ports are 1-65535)");
            return None;
        }
        self.number(file, path, t, 1, 65535).map(|n| n as u16)
    }

    pub(super) fn flag(&mut self, file: FileId, path: &str, t: Option<&Text>) -> bool {
        let Some(s) = text(t) else { return false };
        match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => true,
            "false" | "no" | "off" => false,
            _ => {
                self.error(file, path, format!("expected true or false, got {s:?}"));
                false
            }
        }
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        file: FileId,
        path: &str,
        t: Option<&Text>,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(s) = text(t) else { return default };
        let lower = s.to_ascii_lowercase();
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == lower) {
            return *v;
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.error(
            file,
            path,
            format!(
                "unknown value {s:?} (expected one of: {})",
                names.join(", ")
            ),
        );
        default
    }
}

/// A maximum as the operator would write it: `24h`, `168h (7 days)`.
fn describe_max(max: Duration) -> String {
    let secs = max.as_secs();
    let hours = secs / 3600;
    if secs % 3600 != 0 || hours == 0 {
        return format!("{secs}s");
    }
    if hours % 24 == 0 && hours > 24 {
        format!("{hours}h ({} days)", hours / 24)
    } else {
        format!("{hours}h")
    }
}
