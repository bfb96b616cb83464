//! Time as switchyard stores and shows it.
//!
//! The core never reads a clock: the shell passes `now` in as a [`Timestamp`]. D1 stores
//! milliseconds since the Unix epoch as an INTEGER (exact: they stay far below 2^53); the API
//! shows RFC 3339 in UTC with millisecond precision.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Latest time switchyard accepts: the year 9999, the last year RFC 3339 can write with four
    /// digits. Also keeps every stored value exact as a JavaScript number.
    pub const MAX_MS: i64 = 253_402_300_799_999;

    pub fn from_millis(ms: i64) -> Option<Timestamp> {
        (0..=Self::MAX_MS).contains(&ms).then_some(Timestamp(ms))
    }

    /// For clocks: a reading outside the range is clamped into it rather than refused.
    pub fn saturating_from_millis(ms: i64) -> Timestamp {
        Timestamp(ms.clamp(0, Self::MAX_MS))
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// `2026-11-23T20:44:31.123Z`.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
            // from_millis bounds the value to chrono's range, so this is unreachable; an
            // obviously wrong date is still better than a panic.
            None => "1970-01-01T00:00:00.000Z".to_string(),
        }
    }

    /// Reads any RFC 3339 time (any offset) and keeps it as UTC milliseconds.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let time = DateTime::parse_from_rfc3339(text).ok()?;
        Timestamp::from_millis(time.timestamp_millis())
    }

    pub fn minus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_sub(ms).max(0))
    }

    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms).clamp(0, Self::MAX_MS))
    }
}

/// A duration as written in an instruction file: whole digits and a unit, `ms`, `s`, `m`, `h` or
/// `d` (`90s`, `30m`, `2h`), in milliseconds. Anything else, zero and overflow are `None`.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    let number: i64 = number.parse().ok()?;
    number.checked_mul(unit_ms).filter(|ms| *ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_digits_and_a_unit_and_nothing_else() {
        assert_eq!(parse_duration_ms("90s"), Some(90_000));
        assert_eq!(parse_duration_ms(" 30m "), Some(1_800_000));
        assert_eq!(parse_duration_ms("2h"), Some(7_200_000));
        assert_eq!(parse_duration_ms("1d"), Some(86_400_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        for bad in ["", "30", "m", "1.5h", "-1s", "0s", "1 h", "1H", "ten minutes", "99999999999999999999d"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
    }

    fn check(ms: i64, text: &str) {
        let time = Timestamp::from_millis(ms).expect("in range");
        assert_eq!(time.to_rfc3339(), text);
        assert_eq!(Timestamp::parse_rfc3339(text), Some(time));
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        check(0, "1970-01-01T00:00:00.000Z");
        check(1_705_314_600_000, "2024-01-15T10:30:00.000Z");
        check(1_795_466_671_123, "2026-11-23T20:44:31.123Z");
        check(Timestamp::MAX_MS, "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let time = Timestamp::parse_rfc3339("2024-01-15T12:30:00+02:00").unwrap();
        assert_eq!(time.to_rfc3339(), "2024-01-15T10:30:00.000Z");
    }

    #[test]
    fn out_of_range_and_malformed_times_are_refused() {
        assert_eq!(Timestamp::from_millis(-1), None);
        assert_eq!(Timestamp::from_millis(Timestamp::MAX_MS + 1), None);
        assert_eq!(Timestamp::parse_rfc3339("2024-01-15"), None);
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
        assert_eq!(Timestamp::parse_rfc3339("1969-12-31T23:59:59Z"), None);
    }

    #[test]
    fn clock_readings_out_of_range_are_clamped() {
        assert_eq!(Timestamp::saturating_from_millis(-5).as_millis(), 0);
        assert_eq!(Timestamp::saturating_from_millis(i64::MAX).as_millis(), Timestamp::MAX_MS);
        assert_eq!(Timestamp::saturating_from_millis(42).as_millis(), 42);
    }

    #[test]
    fn subtracting_never_goes_before_the_epoch() {
        let time = Timestamp::from_millis(10).unwrap();
        assert_eq!(time.minus_millis(3).as_millis(), 7);
        assert_eq!(time.minus_millis(i64::MAX).as_millis(), 0);
    }
}
