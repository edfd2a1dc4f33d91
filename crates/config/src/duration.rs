//! Go-style durations as used in Centrifugo configuration files.
//!
//! Accepted input:
//! - Go duration strings: a sequence of `<number><unit>` parts where the number may have a
//!   fraction and the unit is one of `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`
//!   (`"25s"`, `"500ms"`, `"1m30s"`, `"720h"`, `"1h2m3.5s"`, `".5s"`).
//! - `"0"` and the empty string, meaning zero.
//! - Bare numbers, either as JSON/YAML/TOML numbers (`25`, `1.5`) or as unit-less strings
//!   (`"25"`), which are read as **seconds**. Note that Go (and therefore Centrifugo) reads a
//!   unit-less number as nanoseconds in some code paths; Gyre deliberately chooses seconds
//!   because that is what a human writing `ping_interval: 25` means.
//!
//! Negative durations are rejected.
//!
//! Durations serialize back to a compact Go-compatible string with zero components omitted
//! (`"720h"`, `"1m30s"`, `"500ms"`, `"0s"`), which Go's `time.ParseDuration` also accepts.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_MIN: u128 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MIN;
/// Go's `time.Duration` is an `int64` of nanoseconds; keep the same upper bound.
const MAX_NANOS: u128 = i64::MAX as u128;

/// A non-negative duration read from configuration, convertible to [`std::time::Duration`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

/// Error returned when a duration string cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct ParseDurationError {
    /// The text that failed to parse.
    pub input: String,
    /// Why it failed.
    pub reason: String,
}

impl Duration {
    /// The zero duration.
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    /// Creates a duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// Creates a duration of whole milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration(std::time::Duration::from_millis(millis))
    }

    /// Returns the wrapped [`std::time::Duration`].
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Returns true if the duration is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Returns the number of whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Returns true if the duration has no sub-second part.
    pub const fn is_whole_seconds(self) -> bool {
        self.0.subsec_nanos() == 0
    }

    /// Parses a duration using the rules described in the module documentation.
    pub fn parse(input: &str) -> Result<Self, ParseDurationError> {
        parse_duration(input).map_err(|reason| ParseDurationError {
            input: input.to_owned(),
            reason,
        })
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Duration::parse(s)
    }
}

fn nanos_to_duration(nanos: u128) -> Result<Duration, String> {
    if nanos > MAX_NANOS {
        return Err("duration out of range".to_owned());
    }
    let secs = (nanos / NANOS_PER_SEC) as u64;
    let sub = (nanos % NANOS_PER_SEC) as u32;
    Ok(Duration(std::time::Duration::new(secs, sub)))
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{00b5}s" | "\u{03bc}s" => NANOS_PER_MICRO,
        "ms" => NANOS_PER_MILLI,
        "s" => NANOS_PER_SEC,
        "m" => NANOS_PER_MIN,
        "h" => NANOS_PER_HOUR,
        _ => return None,
    })
}

/// Splits a leading `digits[.digits]` number off `s`; returns (integer, fraction, rest).
fn split_number(s: &str) -> (&str, &str, &str) {
    let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (int_part, rest) = s.split_at(int_end);
    if let Some(after_dot) = rest.strip_prefix('.') {
        let frac_end = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        let (frac, rest) = after_dot.split_at(frac_end);
        (int_part, frac, rest)
    } else {
        (int_part, "", rest)
    }
}

/// Scales `int.frac` by `unit` nanoseconds, truncating below one nanosecond.
fn scale(int_part: &str, frac: &str, unit: u128) -> Result<u128, String> {
    let overflow = || "duration out of range".to_owned();
    let mut total: u128 = 0;
    for b in int_part.bytes() {
        total = total
            .checked_mul(10)
            .and_then(|t| t.checked_add(u128::from(b - b'0')))
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(overflow)?;
    }
    total = total
        .checked_mul(unit)
        .filter(|t| *t <= MAX_NANOS)
        .ok_or_else(overflow)?;
    // Digits beyond 18 cannot change the result at nanosecond precision for units <= 1h.
    let mut frac_value: u128 = 0;
    let mut denom: u128 = 1;
    for b in frac.bytes().take(18) {
        frac_value = frac_value * 10 + u128::from(b - b'0');
        denom *= 10;
    }
    Ok(total + frac_value * unit / denom)
}

fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let s = match s.strip_prefix('+') {
        Some(rest) => rest,
        None if s.starts_with('-') => {
            return Err("negative durations are not supported".to_owned());
        }
        None => s,
    };
    if s.is_empty() || s == "0" {
        return Ok(Duration::ZERO);
    }
    // A bare number without any unit: seconds.
    let (int_part, frac, rest) = split_number(s);
    if rest.is_empty() {
        if int_part.is_empty() && frac.is_empty() {
            return Err("expected a number".to_owned());
        }
        return nanos_to_duration(scale(int_part, frac, NANOS_PER_SEC)?);
    }
    let mut remaining = s;
    let mut total: u128 = 0;
    while !remaining.is_empty() {
        let (int_part, frac, rest) = split_number(remaining);
        if int_part.is_empty() && frac.is_empty() {
            return Err(format!("expected a number at {remaining:?}"));
        }
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, after) = rest.split_at(unit_end);
        if unit.is_empty() {
            return Err("missing unit (use ns, us, ms, s, m or h)".to_owned());
        }
        let unit_ns = unit_nanos(unit).ok_or_else(|| format!("unknown unit {unit:?}"))?;
        total = total
            .checked_add(scale(int_part, frac, unit_ns)?)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(|| "duration out of range".to_owned())?;
        remaining = after;
    }
    nanos_to_duration(total)
}

/// Writes `whole.fraction` with trailing zeros of the fraction removed.
fn write_decimal(
    f: &mut fmt::Formatter<'_>,
    whole: u128,
    frac: u128,
    frac_digits: usize,
) -> fmt::Result {
    write!(f, "{whole}")?;
    if frac > 0 {
        let digits = format!("{frac:0frac_digits$}");
        write!(f, ".{}", digits.trim_end_matches('0'))?;
    }
    Ok(())
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < NANOS_PER_MICRO {
            return write!(f, "{nanos}ns");
        }
        if nanos < NANOS_PER_MILLI {
            write_decimal(f, nanos / NANOS_PER_MICRO, nanos % NANOS_PER_MICRO, 3)?;
            return f.write_str("us");
        }
        if nanos < NANOS_PER_SEC {
            write_decimal(f, nanos / NANOS_PER_MILLI, nanos % NANOS_PER_MILLI, 6)?;
            return f.write_str("ms");
        }
        let hours = nanos / NANOS_PER_HOUR;
        let minutes = (nanos % NANOS_PER_HOUR) / NANOS_PER_MIN;
        let sec_nanos = nanos % NANOS_PER_MIN;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        if sec_nanos > 0 {
            write_decimal(f, sec_nanos / NANOS_PER_SEC, sec_nanos % NANOS_PER_SEC, 9)?;
            f.write_str("s")?;
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string like \"25s\" or a number of seconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        Duration::parse(v).map_err(|e| E::custom(e))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        nanos_to_duration(u128::from(v) * NANOS_PER_SEC).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom("negative durations are not supported")),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        if !v.is_finite() || v < 0.0 {
            return Err(E::custom("duration must be a finite non-negative number"));
        }
        let d = std::time::Duration::try_from_secs_f64(v).map_err(E::custom)?;
        nanos_to_duration(d.as_nanos()).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> std::time::Duration {
        Duration::parse(s).map(Duration::get).expect(s)
    }

    #[test]
    fn parses_go_strings() {
        use std::time::Duration as D;
        assert_eq!(p("25s"), D::from_secs(25));
        assert_eq!(p("500ms"), D::from_millis(500));
        assert_eq!(p("1m30s"), D::from_secs(90));
        assert_eq!(p("720h"), D::from_secs(720 * 3600));
        assert_eq!(p("1h2m3.5s"), D::from_millis(3_723_500));
        assert_eq!(p("0"), D::ZERO);
        assert_eq!(p(""), D::ZERO);
        assert_eq!(p(".5s"), D::from_millis(500));
        assert_eq!(p("1.5h"), D::from_secs(5400));
        assert_eq!(p("10us"), D::from_micros(10));
        assert_eq!(p("10µs"), D::from_micros(10));
        assert_eq!(p("10μs"), D::from_micros(10));
        assert_eq!(p("7ns"), D::from_nanos(7));
        assert_eq!(p("+3s"), D::from_secs(3));
        assert_eq!(p("25"), D::from_secs(25));
        assert_eq!(p("2.5"), D::from_millis(2500));
    }

    #[test]
    fn rejects_bad_strings() {
        for bad in [
            "-1s",
            "1x",
            "s",
            "1s2",
            "1.2.3s",
            "abc",
            ".s",
            "9999999999999h",
        ] {
            assert!(Duration::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn formats_compact_go_style() {
        let cases = [
            ("0", "0s"),
            ("25s", "25s"),
            ("500ms", "500ms"),
            ("1.5ms", "1.5ms"),
            ("90s", "1m30s"),
            ("720h", "720h"),
            ("1h2m3.5s", "1h2m3.5s"),
            ("1h0m1s", "1h1s"),
            ("7ns", "7ns"),
            ("12us", "12us"),
        ];
        for (input, expected) in cases {
            let d = Duration::parse(input).expect(input);
            assert_eq!(d.to_string(), expected);
            assert_eq!(Duration::parse(&d.to_string()), Ok(d));
        }
    }

    #[test]
    fn serde_numbers_are_seconds() {
        let d: Duration = serde_json::from_str("25").expect("int");
        assert_eq!(d, Duration::from_secs(25));
        let d: Duration = serde_json::from_str("0.25").expect("float");
        assert_eq!(d, Duration::from_millis(250));
        let d: Duration = serde_json::from_str("\"1m\"").expect("string");
        assert_eq!(d, Duration::from_secs(60));
        assert!(serde_json::from_str::<Duration>("-5").is_err());
        assert!(serde_json::from_str::<Duration>("true").is_err());
        assert_eq!(
            serde_json::to_string(&Duration::from_secs(3600)).expect("ser"),
            "\"1h\""
        );
    }
}
