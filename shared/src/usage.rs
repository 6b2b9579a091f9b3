//! The user's own view of usage and budget: daily aggregates from DynamoDB, the budget from
//! LiteLLM (which records spend a few seconds after each call).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;
use serde_json::{Value, json};
use time::{
    Date, Duration, OffsetDateTime, format_description::FormatItem, macros::format_description,
};

use crate::{
    AppState,
    config::BUDGET_DURATIONS,
    domain::UserId,
    error::AppError,
    store::sdk_error,
    upstream::{DependencyError, Service},
};

const DAY: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");
/// The longest range `GET /user/usage` answers.
pub const MAX_DAYS: i64 = 366;
/// How far LiteLLM's recorded spend may trail the calls (batched writes).
pub const SPEND_LAG_SECS: i64 = 15;

pub fn parse_day(field: &str, raw: &str) -> Result<Date, AppError> {
    Date::parse(raw.trim(), DAY)
        .map_err(|_| AppError::validation(field, "must be a date as YYYY-MM-DD"))
}

fn format_day(d: Date) -> String {
    d.format(DAY).unwrap_or_default()
}

/// The requested range: defaults to the last 30 days, at most 366 days, `from` ≤ `to`.
pub fn date_range(from: Option<&str>, to: Option<&str>) -> Result<(Date, Date), AppError> {
    let today = OffsetDateTime::now_utc().date();
    let to = to.map(|t| parse_day("to", t)).transpose()?.unwrap_or(today);
    let from = from
        .map(|f| parse_day("from", f))
        .transpose()?
        .unwrap_or(to - Duration::days(29));
    if from > to {
        return Err(AppError::validation("from", "must not be after `to`"));
    }
    if (to - from).whole_days() + 1 > MAX_DAYS {
        return Err(AppError::validation(
            "from",
            format!("the range is at most {MAX_DAYS} days"),
        ));
    }
    Ok((from, to))
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct DayRow {
    #[serde(default)]
    messages: u64,
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    cost_usd: f64,
}

/// One row per day of the range (zeros where nothing happened), totals, and LiteLLM's spend for
/// the current budget period.
pub async fn usage(
    state: &AppState,
    user: &UserId,
    from: Date,
    to: Date,
) -> Result<Value, AppError> {
    let mut rows: BTreeMap<String, DayRow> = BTreeMap::new();
    let mut start = None;
    loop {
        let page = state
            .store
            .client()
            .query()
            .table_name(state.store.table_name())
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", AttributeValue::S(user.pk()))
            .expression_attribute_values(
                ":lo",
                AttributeValue::S(format!("USAGE#{}", format_day(from))),
            )
            .expression_attribute_values(
                ":hi",
                AttributeValue::S(format!("USAGE#{}", format_day(to))),
            )
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk_error)?;
        for item in page.items.unwrap_or_default() {
            let day = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(|s| s.trim_start_matches("USAGE#").to_string());
            let row: DayRow =
                serde_dynamo::from_item(item).map_err(|e| DependencyError::Decode {
                    service: Service::DynamoDb,
                    detail: e.to_string(),
                })?;
            if let Some(day) = day {
                rows.insert(day, row);
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let mut days = Vec::new();
    let mut total = DayRow::default();
    let mut day = from;
    while day <= to {
        let key = format_day(day);
        let row = rows.get(&key).copied().unwrap_or_default();
        total.messages += row.messages;
        total.prompt_tokens += row.prompt_tokens;
        total.completion_tokens += row.completion_tokens;
        total.cost_usd += row.cost_usd;
        days.push(json!({
            "date": key, "messages": row.messages, "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens, "cost_usd": row.cost_usd,
        }));
        day = day.next_day().unwrap_or(day);
        if day == Date::MAX {
            break;
        }
    }
    let litellm = match state.litellm.user_info(user.as_str()).await {
        Ok(Some(info)) => info.user_info.map(|u| {
            json!({"spend_usd": u.spend, "budget_duration": u.budget_duration, "reset_at": u.budget_reset_at})
        }),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "LiteLLM spend unavailable for the usage report");
            None
        }
    };
    Ok(json!({
        "from": format_day(from),
        "to": format_day(to),
        "days": days,
        "totals": {
            "messages": total.messages, "prompt_tokens": total.prompt_tokens,
            "completion_tokens": total.completion_tokens, "cost_usd": total.cost_usd,
        },
        "current_period": litellm,
    }))
}

/// The cost of the replies stored in the last `SPEND_LAG_SECS`, which LiteLLM may not count yet.
async fn recent_cost(state: &AppState, user: &UserId) -> Result<(u64, f64), AppError> {
    let page = state.store.history(user, 20, None).await?;
    let cutoff = OffsetDateTime::now_utc() - Duration::seconds(SPEND_LAG_SECS);
    let mut turns = 0;
    let mut cost = 0.0;
    for m in page.messages {
        let when = OffsetDateTime::parse(
            &m.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok();
        if when.is_some_and(|w| w >= cutoff) && m.cost_usd.is_some() {
            turns += 1;
            cost += m.cost_usd.unwrap_or(0.0);
        }
    }
    Ok((turns, cost))
}

/// `{max_budget, spend, remaining, budget_duration, reset_at}` from LiteLLM, with the note
/// that its spend trails the calls, and our own tally of the turns it may not count yet.
pub async fn budget(state: &AppState, user: &UserId) -> Result<Value, AppError> {
    let info = state
        .litellm
        .user_info(user.as_str())
        .await?
        .and_then(|i| i.user_info)
        .ok_or_else(|| AppError::Conflict {
            code: "provisioning",
            message: "your account has no budget yet; sign in again to finish setting it up".into(),
        })?;
    let (turns, cost) = recent_cost(state, user).await?;
    let mut view = info.budget_view();
    view["spend_lag_seconds"] = json!(SPEND_LAG_SECS);
    view["recent_turns"] = json!({"count": turns, "cost_usd": cost,
        "note": "LiteLLM records spend a few seconds after each call; these recent turns may not be in `spend` yet"});
    Ok(view)
}

/// Sets the user's own cap: 0 ≤ `max_budget` ≤ `USER_MAX_BUDGET`, a LiteLLM duration.
pub async fn set_budget(
    state: &AppState,
    user: &UserId,
    max_budget: f64,
    duration: Option<&str>,
) -> Result<Value, AppError> {
    let ceiling = state.config.budget.max_budget;
    if !max_budget.is_finite() || max_budget < 0.0 {
        return Err(AppError::validation("max_budget", "must be at least 0"));
    }
    if max_budget > ceiling {
        return Err(AppError::validation(
            "max_budget",
            format!("must be at most {ceiling} (the operator's ceiling)"),
        ));
    }
    if let Some(d) = duration
        && !BUDGET_DURATIONS.contains(&d)
    {
        return Err(AppError::validation(
            "budget_duration",
            format!("must be one of {}", BUDGET_DURATIONS.join(", ")),
        ));
    }
    state
        .litellm
        .update_user_budget(user.as_str(), max_budget, duration)
        .await?;
    budget(state, user).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_default_to_thirty_days_and_are_bounded() {
        let (from, to) = date_range(None, Some("2026-03-31")).unwrap();
        assert_eq!(format_day(from), "2026-03-02");
        assert_eq!(format_day(to), "2026-03-31");
        assert!(
            date_range(Some("2025-01-01"), Some("2026-01-01")).is_ok(),
            "366 days"
        );
        assert!(
            date_range(Some("2025-01-01"), Some("2026-01-02")).is_err(),
            "367 days"
        );
        assert!(date_range(Some("2026-02-02"), Some("2026-02-01")).is_err());
        assert!(
            matches!(date_range(Some("2026-13-01"), None), Err(AppError::Validation { field, .. }) if field == "from")
        );
    }
}
