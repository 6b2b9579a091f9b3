//! The spend check: turns and days against LiteLLM's spend logs, and messages a dead
//! invocation left pending.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Kind;
use crate::{
    app::{
        clock::{epoch_ms, format_day, now_ms},
        error::{AppError, ErrorCode},
    },
    clients::litellm::SpendLog,
    domain::{ErrorRecord, Message, MessageStatus, Profile, Role, Usage, UserId},
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
    let window = Window {
        now,
        settled_before: now - state.config.reconcile.settle.as_millis() as i64,
        since: now - state.config.reconcile.lookback.as_millis() as i64,
    };
    let messages = state
        .store
        .messages_since(user, &rfc3339(window.since))
        .await?;
    let logs = state
        .litellm
        .spend_logs(
            user.as_str(),
            &litellm_time(window.since),
            &litellm_time(now + 60_000),
        )
        .await?;
    let turns = turns(&messages, &logs, &window);
    let mut findings = turns.findings;
    if !turns.stuck.is_empty() {
        findings.push(mark_stuck(state, user, &turns.stuck, fix).await?);
    }
    let days = days(state, user, &logs, &window, turns.busy_since, fix).await?;
    findings.extend(days);
    Ok((findings, turns.unsettled))
}

/// The period checked, epoch ms.
struct Window {
    now: i64,
    /// Calls before this are in LiteLLM's spend logs by now.
    settled_before: i64,
    /// The start of the lookback period.
    since: i64,
}

/// What the period's messages say.
struct Turns<'a> {
    /// Replies billed otherwise than they recorded.
    findings: Vec<(Kind, bool)>,
    /// User messages a dead invocation left pending.
    stuck: Vec<&'a Message>,
    /// Turns too recent to judge.
    unsettled: usize,
    /// When the earliest turn still running or settling started (`i64::MAX`: none).
    busy_since: i64,
}

/// Each settled complete reply against LiteLLM's logs of its calls.
fn turns<'a>(messages: &'a [Message], logs: &[SpendLog], window: &Window) -> Turns<'a> {
    let by_id: HashMap<&str, &SpendLog> = logs.iter().map(|l| (l.request_id.as_str(), l)).collect();
    let mut turns = Turns {
        findings: Vec::new(),
        stuck: Vec::new(),
        unsettled: 0,
        busy_since: i64::MAX,
    };
    for message in messages {
        let at = epoch_ms(&message.created_at).unwrap_or(window.now);
        if message.status == MessageStatus::Pending && at < window.now - STUCK_MS {
            turns.stuck.push(message);
        } else if message.status == MessageStatus::Pending || at > window.settled_before {
            // A turn still running, or one whose calls LiteLLM may not have written yet.
            turns.unsettled += usize::from(
                message.role == Role::Assistant || message.status == MessageStatus::Pending,
            );
            turns.busy_since = turns.busy_since.min(at);
        } else if let Some(kind) = turn_billing(message, &by_id) {
            turns.findings.push((kind, false));
        }
    }
    turns
}

/// `TurnBilling` when a complete reply's calls are missing from the logs or cost otherwise.
fn turn_billing(message: &Message, by_id: &HashMap<&str, &SpendLog>) -> Option<Kind> {
    if message.role != Role::Assistant
        || message.status != MessageStatus::Complete
        || message.llm_call_ids.is_empty()
    {
        return None;
    }
    let billed_calls: Vec<&SpendLog> = message
        .llm_call_ids
        .iter()
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .collect();
    let billed: f64 = billed_calls.iter().map(|l| l.spend).sum();
    let stored = message.cost_usd.unwrap_or(0.0);
    (billed_calls.len() != message.llm_call_ids.len() || !same_amount(billed, stored)).then(|| {
        Kind::TurnBilling {
            reply: message.id.clone(),
            stored_usd: stored,
            billed_usd: billed,
            calls: message.llm_call_ids.len(),
            billed_calls: billed_calls.len(),
        }
    })
}

/// Marks stuck messages `failed`, as their turn would have, when fixing.
async fn mark_stuck(
    state: &AppState,
    user: &UserId,
    stuck: &[&Message],
    fix: bool,
) -> Result<(Kind, bool), AppError> {
    let fixed = fix && {
        for message in stuck {
            let mut failed = (*message).clone();
            failed.status = MessageStatus::Failed;
            failed.error = Some(ErrorRecord {
                code: ErrorCode::AgentInterrupted.to_string(),
                message: "the reply was cut off; send the message again".into(),
            });
            state.store.put_message(user, &failed).await?;
        }
        true
    };
    let messages = stuck.iter().map(|m| m.id.clone()).collect();
    Ok((Kind::StuckMessages { messages }, fixed))
}

/// Whole days after `since`, up to the day of a turn still running or settling: each day's
/// recorded usage against what LiteLLM billed that day (recorded as billed when fixing).
async fn days(
    state: &AppState,
    user: &UserId,
    logs: &[SpendLog],
    window: &Window,
    busy_since: i64,
    fix: bool,
) -> Result<Vec<(Kind, bool)>, AppError> {
    let calls: Vec<(i64, &SpendLog)> = logs
        .iter()
        .filter(|l| l.spend > 0.0 && l.status.as_deref() != Some("failure"))
        .filter_map(|l| Some((epoch_ms(&l.start_time)?, l)))
        .filter(|(t, _)| *t >= window.since)
        .collect();
    let settling = calls
        .iter()
        .map(|c| c.0)
        .filter(|t| *t > window.settled_before);
    let busy_since = settling.fold(busy_since, i64::min);
    let first_day = day_of(window.since + 24 * 3600 * 1000);
    let today = day_of(window.now);
    let busy_from = (busy_since != i64::MAX).then(|| day_of(busy_since));
    let recorded = state.store.usage_days(user, &first_day, &today).await?;
    let mut billed_by_day: BTreeMap<String, f64> = BTreeMap::new();
    for (t, log) in &calls {
        *billed_by_day.entry(day_of(*t)).or_default() += log.spend;
    }
    let days: BTreeSet<&String> = billed_by_day.keys().chain(recorded.keys()).collect();
    let mut findings = Vec::new();
    for day in days {
        if *day < first_day || busy_from.as_ref().is_some_and(|b| day >= b) {
            continue;
        }
        let billed = billed_by_day.get(day).copied().unwrap_or(0.0);
        let stored = recorded.get(day).map_or(0.0, |d| d.cost_usd);
        if same_amount(billed, stored) {
            continue;
        }
        let fixed = fix && {
            state
                .store
                .add_daily_usage(user, day, 0, &Usage::default(), billed - stored)
                .await?;
            tracing::info!(user = %user, day = %day, "recorded the day's billed cost");
            true
        };
        let kind = Kind::DayBilling {
            day: day.clone(),
            recorded_usd: stored,
            billed_usd: billed,
        };
        findings.push((kind, fixed));
    }
    Ok(findings)
}

/// Equal to within float rounding (LiteLLM and the backend add the same prices).
fn same_amount(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-6 * a.abs().max(b.abs())
}

/// The UTC day (`YYYY-MM-DD`) of an epoch-ms time.
fn day_of(ms: i64) -> String {
    format_day(at(ms).date())
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
        assert_eq!(day_of(ms), "2026-11-22");
    }

    #[test]
    fn amounts_match_to_float_rounding_only() {
        assert!(same_amount(0.1 + 0.2, 0.3));
        assert!(same_amount(0.09096 + 0.0933, 0.18426));
        assert!(!same_amount(0.3, 0.3001));
        assert!(!same_amount(0.0, 0.00001));
    }
}
