//! The wall clock, in the two forms the backend stores: RFC 3339 text and epoch seconds.

/// Now, as RFC 3339 text (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
