//! The wall clock, in the two forms the backend stores: RFC 3339 text and epoch seconds.

/// Now, as RFC 3339 text (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The UTC day (`YYYY-MM-DD`) of an RFC 3339 time the backend wrote; today for anything else.
pub fn day_of(rfc3339: &str) -> String {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    at.to_offset(time::UtcOffset::UTC).date().to_string()
}

/// Today (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
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
