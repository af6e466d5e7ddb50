//! How `cairn` prints times: block times and the genesis time are
//! milliseconds since the Unix epoch, shown as RFC 3339 UTC with a fixed
//! three-digit millisecond fraction (`2026-12-04T19:51:31.850Z`, never
//! `31.85Z` or `31Z`), so every time has the same width and reads the
//! same way.

use time::OffsetDateTime;

/// `milliseconds` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`, or
/// `None` for a time past the year 9999.
pub fn utc_millis(milliseconds: u64) -> Option<String> {
    let nanoseconds = i128::from(milliseconds).checked_mul(1_000_000)?;
    let time = OffsetDateTime::from_unix_timestamp_nanos(nanoseconds).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.millisecond()
    ))
}

/// The time for people, with the raw number: `2026-12-04T19:51:31.850Z
/// (1796413891850 ms)`.
pub fn format_time(milliseconds: u64) -> String {
    match utc_millis(milliseconds) {
        Some(text) => format!("{text} ({milliseconds} ms)"),
        None => format!("{milliseconds} ms since the Unix epoch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_have_three_digits() {
        assert_eq!(
            utc_millis(1_704_067_200_000).as_deref(),
            Some("2024-01-01T00:00:00.000Z")
        );
        assert_eq!(
            utc_millis(1_704_067_200_850).as_deref(),
            Some("2024-01-01T00:00:00.850Z")
        );
        assert_eq!(
            utc_millis(1_704_067_200_007).as_deref(),
            Some("2024-01-01T00:00:00.007Z")
        );
        assert_eq!(utc_millis(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        // Every time that prints has the same width.
        for milliseconds in [0, 1, 999, 1_000, 1_796_413_891_850, 253_402_300_799_999] {
            let text = utc_millis(milliseconds).unwrap();
            assert_eq!(text.len(), "2026-12-04T19:51:31.850Z".len(), "{text}");
        }
    }

    #[test]
    fn times_say_the_raw_number() {
        assert_eq!(
            format_time(1_704_067_200_850),
            "2024-01-01T00:00:00.850Z (1704067200850 ms)"
        );
        assert_eq!(
            format_time(u64::MAX),
            format!("{} ms since the Unix epoch", u64::MAX)
        );
    }
}
