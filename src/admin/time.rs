//! Times in admin commands: shown as `YYYY-MM-DD HH:MM UTC`, given as a date (RFC 3339 or just
//! `YYYY-MM-DD`) or a duration from now (`90m`, `12h`, `7d`, `2w`).

use crate::error::{Error, Result};

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn format_ts(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A cut-off for "older than": a date (`2027-01-31`) is itself, a duration (`30d`) counts back
/// from now.
pub fn cutoff(text: &str) -> Result<u64> {
    let now = crate::service::now_millis();
    if text.contains('-') {
        parse_when(text, now)
    } else {
        Ok(now.saturating_sub(parse_when(text, 0)?))
    }
}

/// A point in time in milliseconds since the epoch: `text` is a date (`2027-01-31`,
/// `2027-01-31T17:00:00Z`) or a duration added to `now_ms` (`30m`, `12h`, `7d`, `2w`).
pub fn parse_when(text: &str, now_ms: u64) -> Result<u64> {
    let invalid = || {
        Error::invalid_param(format!(
            "`{text}` is neither a date (2027-01-31 or 2027-01-31T17:00:00Z) nor a duration \
             (30m, 12h, 7d, 2w)"
        ))
    };
    if let Some(unit) = text.chars().last().filter(char::is_ascii_alphabetic)
        && !text.contains('-')
    {
        let count: u64 = text[..text.len() - 1].parse().map_err(|_| invalid())?;
        let unit_ms: u64 = match unit {
            's' => 1000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 604_800_000,
            _ => return Err(invalid()),
        };
        return count
            .checked_mul(unit_ms)
            .and_then(|ms| ms.checked_add(now_ms))
            .ok_or_else(invalid);
    }
    let (date, time) = text.split_once('T').unwrap_or((text, "00:00:00Z"));
    let date: Vec<i64> = date
        .split('-')
        .map(|part| part.parse().map_err(|_| invalid()))
        .collect::<Result<_>>()?;
    let [year, month, day] = date[..] else {
        return Err(invalid());
    };
    let time = time.strip_suffix('Z').ok_or_else(invalid)?;
    let clock: Vec<i64> = time
        .split(':')
        .map(|part| part.parse().map_err(|_| invalid()))
        .collect::<Result<_>>()?;
    let (hour, minute, second) = match clock[..] {
        [h, m] => (h, m, 0),
        [h, m, s] => (h, m, s),
        _ => return Err(invalid()),
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..61).contains(&second)
    {
        return Err(invalid());
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(secs).map(|s| s * 1000).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::{format_ts, parse_when};

    #[test]
    fn shows_times() {
        assert_eq!(format_ts(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_ts(1_796_620_835_430), "2026-12-07 05:20 UTC");
        assert_eq!(format_ts(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn reads_dates_and_durations() {
        assert_eq!(parse_when("2000-02-29", 0).unwrap(), 951_782_400_000);
        assert_eq!(
            parse_when("2026-12-07T05:20:35Z", 0).unwrap(),
            1_796_620_835_000
        );
        assert_eq!(
            parse_when("2026-12-07T05:20Z", 0).unwrap(),
            1_796_620_800_000
        );
        assert_eq!(parse_when("90m", 1000).unwrap(), 1000 + 90 * 60_000);
        assert_eq!(parse_when("7d", 0).unwrap(), 7 * 86_400_000);
        for bad in [
            "",
            "7x",
            "d",
            "2026-13-01",
            "2026-12-07T25:00Z",
            "yesterday",
            "99999999999999999999w",
        ] {
            assert!(parse_when(bad, 0).is_err(), "{bad}");
        }
    }
}
