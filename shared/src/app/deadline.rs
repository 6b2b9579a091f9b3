//! The time a request has left. In Lambda, the invocation's deadline (the function's timeout)
//! less a margin to answer in; dependency calls made for the request never wait past it and
//! are not retried when no time is left, so a hung dependency ends the request with a clear
//! 503 before Lambda kills the function. Without a deadline (the local gateway) calls are only
//! bounded by their own timeout.

use std::{
    future::Future,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// What is kept back from the function's own deadline to send the answer.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(1500);

/// Values below this (September 2001, in epoch milliseconds) cannot be a deadline: the runtime
/// emulator of `cargo lambda watch` sends the function's timeout there instead.
const EARLIEST_EPOCH_MS: u64 = 1_000_000_000_000;

/// The deadline of an invocation whose runtime API sent `deadline_ms` (epoch milliseconds, as
/// Lambda does; a small value is the emulator's timeout, from now), less the margin.
pub fn from_lambda(deadline_ms: u64) -> Instant {
    let left = if deadline_ms < EARLIEST_EPOCH_MS {
        Duration::from_millis(deadline_ms)
    } else {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    Instant::now() + left.saturating_sub(ANSWER_MARGIN)
}

/// Runs `work` with `deadline` as the time its calls have (if any).
pub async fn within<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(d) => DEADLINE.scope(d, work).await,
        None => work.await,
    }
}

/// The current deadline, to carry into a task spawned for the request.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The time left before the current deadline; `None` without one.
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_is_lambdas_less_the_margin_and_scoped_to_its_work() {
        assert_eq!(remaining(), None);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let deadline = from_lambda(now_ms + 10_000);
        let left = within(Some(deadline), async { remaining().unwrap() }).await;
        assert!(
            left <= Duration::from_millis(8_500) && left > Duration::from_millis(8_000),
            "{left:?}"
        );
        // A deadline already past leaves nothing.
        let past = from_lambda(now_ms.saturating_sub(5_000));
        assert_eq!(
            within(Some(past), async { remaining() }).await,
            Some(Duration::ZERO)
        );
        assert_eq!(remaining(), None);
    }
}
