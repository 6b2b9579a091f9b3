//! The spend check: turns and days against LiteLLM's spend logs, and messages a dead
//! invocation left pending.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Kind;
use crate::{
    app::error::AppError,
    clients::litellm::SpendLog,
    domain::{ErrorRecord, MessageStatus, Profile, Role, Usage},
    state::AppState,
};

/// A user message still `pending` this long after it was stored belongs to a turn that died
/// with its invocation (the chat function's timeout is 300 s), ms.
const STUCK_MS: i64 = 15 * 60_000;

/// Compares the user's turns and days of the lookback period with LiteLLM's spend logs:
/// - each complete reply must have been billed, call by call (LiteLLM's request ids, which the
///   reply keeps from Letta's step traces), exactly what it recorded;
/// - each whole day must have recorded, in the day's usage, what LiteLLM billed the user that
///   day: every call (turns, titles, calls of a turn the backend gave up on while Letta went
///   on, a message run twice). This holds after a user deletes history or a conversation,
///   which removes turns but not the day's usage.
///
/// Returns the findings and how many turns were too recent to judge.
pub(super) async fn billing(
    state: &AppState,
    profile: &Profile,
    fix: bool,
) -> Result<(Vec<(Kind, bool)>, usize), AppError> {
    let user = &profile.user_id;
    let now = now_ms();
    let settled_before = now - state.config.reconcile.settle.as_millis() as i64;
    let since = now - state.config.reconcile.lookback.as_millis() as i64;
    let messages = state.store.messages_since(user, &rfc3339(since)).await?;
    let logs = state
        .litellm
        .spend_logs(
            user.as_str(),
            &litellm_time(since),
            &litellm_time(now + 60_000),
        )
        .await?;
    let by_id: HashMap<&str, &SpendLog> = logs.iter().map(|l| (l.request_id.as_str(), l)).collect();

    let mut findings = Vec::new();
    let mut unsettled = 0;
    let mut busy_since = i64::MAX;
    let mut stuck = Vec::new();
    for message in &messages {
        let at = epoch_ms(&message.created_at).unwrap_or(now);
        if message.status == MessageStatus::Pending && at < now - STUCK_MS {
            stuck.push(message);
            continue;
        }
        if message.status == MessageStatus::Pending || at > settled_before {
            // A turn still running, or one whose calls LiteLLM may not have written yet.
            unsettled += usize::from(
                message.role == Role::Assistant || message.status == MessageStatus::Pending,
            );
            busy_since = busy_since.min(at);
            continue;
        }
        if message.role != Role::Assistant
            || message.status != MessageStatus::Complete
            || message.llm_call_ids.is_empty()
        {
            continue;
        }
        let billed_calls: Vec<&SpendLog> = message
            .llm_call_ids
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).copied())
            .collect();
        let billed: f64 = billed_calls.iter().map(|l| l.spend).sum();
        let stored = message.cost_usd.unwrap_or(0.0);
        if billed_calls.len() != message.llm_call_ids.len() || !same_amount(billed, stored) {
            findings.push((
                Kind::TurnBilling {
                    reply: message.id.clone(),
                    stored_usd: stored,
                    billed_usd: billed,
                    calls: message.llm_call_ids.len(),
                    billed_calls: billed_calls.len(),
                },
                false,
            ));
        }
    }

    if !stuck.is_empty() {
        let fixed = fix && {
            for message in &stuck {
                let mut failed = (*message).clone();
                failed.status = MessageStatus::Failed;
                failed.error = Some(ErrorRecord {
                    code: "agent_interrupted".into(),
                    message: "the reply was cut off; send the message again".into(),
                });
                state.store.put_message(user, &failed).await?;
            }
            true
        };
        findings.push((
            Kind::StuckMessages {
                messages: stuck.iter().map(|m| m.id.clone()).collect(),
            },
            fixed,
        ));
    }

    // Whole days after `since`, up to the day of a turn still running or settling.
    let calls: Vec<(i64, &SpendLog)> = logs
        .iter()
        .filter(|l| l.spend > 0.0 && l.status.as_deref() != Some("failure"))
        .filter_map(|l| Some((epoch_ms(&l.start_time)?, l)))
        .filter(|(t, _)| *t >= since)
        .collect();
    if let Some((t, _)) = calls
        .iter()
        .filter(|(t, _)| *t > settled_before)
        .min_by_key(|c| c.0)
    {
        busy_since = busy_since.min(*t);
    }
    let first_day = day_of(&rfc3339(since + 24 * 3600 * 1000));
    let today = day_of(&rfc3339(now));
    let busy_from = (busy_since != i64::MAX).then(|| day_of(&rfc3339(busy_since)));
    let recorded = state.store.usage_days(user, &first_day, &today).await?;
    let mut billed_by_day: BTreeMap<String, f64> = BTreeMap::new();
    for (t, log) in &calls {
        *billed_by_day.entry(day_of(&rfc3339(*t))).or_default() += log.spend;
    }
    let days: BTreeSet<&String> = billed_by_day.keys().chain(recorded.keys()).collect();
    for day in days {
        if *day < first_day || busy_from.as_ref().is_some_and(|b| day >= b) {
            continue;
        }
        let billed = billed_by_day.get(day).copied().unwrap_or(0.0);
        let stored = recorded.get(day).map_or(0.0, |d| d.cost_usd);
        if !same_amount(billed, stored) {
            let fixed = fix && {
                let difference = billed - stored;
                state
                    .store
                    .add_daily_usage(user, day, 0, &Usage::default(), difference)
                    .await?;
                tracing::info!(user = %user, day = %day, "recorded the day's billed cost");
                true
            };
            findings.push((
                Kind::DayBilling {
                    day: day.clone(),
                    recorded_usd: stored,
                    billed_usd: billed,
                },
                fixed,
            ));
        }
    }
    Ok((findings, unsettled))
}

/// Equal to within float rounding (LiteLLM and the backend add the same prices).
fn same_amount(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-6 * a.abs().max(b.abs())
}

fn day_of(rfc3339: &str) -> String {
    rfc3339.chars().take(10).collect()
}

pub(super) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Epoch ms of an RFC 3339 time (a time without an offset is UTC, as Letta writes them).
pub(super) fn epoch_ms(at: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let parsed = time::OffsetDateTime::parse(at, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{at}Z"), &Rfc3339))
        .ok()?;
    Some((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn at(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn rfc3339(ms: i64) -> String {
    at(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// LiteLLM's spend-log time filter format (UTC).
fn litellm_time(ms: i64) -> String {
    let t = at(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_or_without_an_offset_and_format_for_litellm() {
        let ms = epoch_ms("2026-11-22T20:26:20.180+00:00").unwrap();
        assert_eq!(epoch_ms("2026-11-22T20:26:20.180000Z"), Some(ms));
        assert_eq!(epoch_ms("2026-11-22T20:26:20.180"), Some(ms));
        assert_eq!(litellm_time(ms), "2026-11-22 20:26:20");
        assert_eq!(day_of(&rfc3339(ms)), "2026-11-22");
    }

    #[test]
    fn amounts_match_to_float_rounding_only() {
        assert!(same_amount(0.1 + 0.2, 0.3));
        assert!(same_amount(0.09096 + 0.0933, 0.18426));
        assert!(!same_amount(0.3, 0.3001));
        assert!(!same_amount(0.0, 0.00001));
    }
}
