//! The wall clock, in the forms the backend stores and compares: RFC 3339 text, epoch seconds
//! and milliseconds, and UTC days (`YYYY-MM-DD`, the key of a day's usage).

use time::{Date, OffsetDateTime, format_description::FormatItem, macros::format_description};

/// A day as the backend writes and reads it: `YYYY-MM-DD`.
pub const DAY: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// `YYYY-MM-DD`.
pub fn format_day(d: Date) -> String {
    d.format(DAY).unwrap_or_default()
}

/// Now, as RFC 3339 text (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The UTC day (`YYYY-MM-DD`) of an RFC 3339 time the backend wrote; today for anything else.
pub fn day_of(rfc3339: &str) -> String {
    let at = OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    format_day(at.to_offset(time::UtcOffset::UTC).date())
}

/// Today (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    format_day(OffsetDateTime::now_utc().date())
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Epoch ms of an RFC 3339 time (a time without an offset is UTC, as Letta writes them).
pub fn epoch_ms(at: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let parsed = OffsetDateTime::parse(at, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{at}Z"), &Rfc3339))
        .ok()?;
    Some((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Now, in seconds since the Unix epoch.
pub fn now_epoch() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Sleeps until the second after `epoch_second` has begun (at most a second); returns at once
/// when it has.
pub async fn sleep_past(epoch_second: i64) {
    let now = time::OffsetDateTime::now_utc();
    if now.unix_timestamp() <= epoch_second {
        let left =
            time::Duration::SECOND - time::Duration::nanoseconds(i64::from(now.nanosecond()));
        let left = std::time::Duration::try_from(left).unwrap_or_default();
        tokio::time::sleep(left + std::time::Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_the_utc_date_of_a_time() {
        assert_eq!(day_of("2026-11-22T23:59:59.5Z"), "2026-11-22");
        assert_eq!(day_of("2026-11-23T01:00:00+02:00"), "2026-11-22");
        assert_eq!(day_of("not a time"), today());
    }
}
