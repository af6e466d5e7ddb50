//! Parsing of durations given on the command line (`--timeout 30s`,
//! `cairn bench --duration 10s`).

use std::time::Duration;

use crate::limits::TX_WAIT_TIMEOUT_MAX;

/// Parses `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds; at most
/// [`TX_WAIT_TIMEOUT_MAX`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_duration_at_most(text, TX_WAIT_TIMEOUT_MAX)
}

/// Parses a duration as [`parse_duration`] does, refusing zero and
/// anything longer than `limit`.
pub fn parse_duration_at_most(text: &str, limit: Duration) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let hint = "use a number with a unit: 500ms, 30s, 2m or 1h";
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; {hint}"))?;
    let milliseconds_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(format!("unknown unit {other:?} in {text:?}; {hint}")),
    };
    let duration = value
        .checked_mul(milliseconds_per_unit)
        .map(Duration::from_millis)
        .filter(|duration| *duration <= limit)
        .ok_or_else(|| format!("{text:?} is longer than the limit of {} s", limit.as_secs()))?;
    if duration.is_zero() {
        return Err(format!("{text:?} is zero; give a positive duration"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "10x", "0s", "-1s", "1.5s", "100000h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn limits_are_the_callers() {
        let limit = Duration::from_secs(60);
        assert_eq!(
            parse_duration_at_most("1m", limit),
            Ok(Duration::from_secs(60))
        );
        let error = parse_duration_at_most("61s", limit).unwrap_err();
        assert!(error.contains("limit of 60 s"), "{error}");
    }
}
