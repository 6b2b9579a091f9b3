//! The user's own view of usage and budget: daily aggregates from the store, the budget from
//! LiteLLM (which records spend a few seconds after each call).

use time::{Date, Duration, OffsetDateTime};

use crate::{
    app::{
        clock::{DAY, format_day},
        error::{AppError, ErrorCode},
    },
    clients::litellm::UserRecord,
    domain::{BudgetUsedUp, SignedInUser, UserId},
    flows::accounts,
    state::AppState,
    store::DayUsage,
};

/// The longest range `GET /user/usage` answers.
pub const MAX_DAYS: i64 = 366;
/// How far LiteLLM's recorded spend may trail the calls (batched writes).
pub const SPEND_LAG_SECS: i64 = 15;

/// Parses `YYYY-MM-DD`; 422 naming `field` otherwise.
pub fn parse_day(field: &str, raw: &str) -> Result<Date, AppError> {
    Date::parse(raw.trim(), DAY)
        .map_err(|_| AppError::validation(field, "must be a date as YYYY-MM-DD"))
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

/// Usage over a range of days.
pub struct UsageReport {
    /// First day.
    pub from: Date,
    /// Last day.
    pub to: Date,
    /// Every day of the range, zeros where nothing happened.
    pub days: Vec<(Date, DayUsage)>,
    /// The sums over the range.
    pub totals: DayUsage,
    /// LiteLLM's figures for the current budget period, when LiteLLM answered.
    pub current_period: Option<UserRecord>,
}

/// One row per day of the range (zeros where nothing happened), totals, and LiteLLM's spend for
/// the current budget period.
pub async fn usage(
    state: &AppState,
    user: &UserId,
    from: Date,
    to: Date,
) -> Result<UsageReport, AppError> {
    let stored = state
        .store
        .usage_days(user, &format_day(from), &format_day(to))
        .await?;
    let mut days = Vec::new();
    let mut totals = DayUsage::default();
    let mut day = from;
    while day <= to {
        let row = stored.get(&format_day(day)).copied().unwrap_or_default();
        totals.messages += row.messages;
        totals.prompt_tokens += row.prompt_tokens;
        totals.completion_tokens += row.completion_tokens;
        totals.cost_usd += row.cost_usd;
        days.push((day, row));
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    let current_period = match state.litellm.user_info(user.as_str()).await {
        Ok(info) => info.and_then(|i| i.user_info),
        Err(e) => {
            tracing::warn!(error = %e, "LiteLLM spend unavailable for the usage report");
            None
        }
    };
    Ok(UsageReport {
        from,
        to,
        days,
        totals,
        current_period,
    })
}

/// The budget as LiteLLM has it, with our tally of the turns it may not count yet.
pub struct BudgetReport {
    /// LiteLLM's record: limit, spend, period.
    pub record: UserRecord,
    /// Replies stored in the last `SPEND_LAG_SECS`.
    pub recent_turns: u64,
    /// Their cost.
    pub recent_cost_usd: f64,
}

/// The cost of the replies stored in the last `SPEND_LAG_SECS`, which LiteLLM may not count yet.
async fn recent_cost(state: &AppState, user: &UserId) -> Result<(u64, f64), AppError> {
    let cutoff = OffsetDateTime::now_utc() - Duration::seconds(SPEND_LAG_SECS);
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let recent = |at: &str| OffsetDateTime::parse(at, rfc3339).is_ok_and(|w| w >= cutoff);
    let mut costs = Vec::new();
    for conversation in state.store.conversations(user).await? {
        if !recent(&conversation.last_activity) {
            continue;
        }
        let page = state
            .store
            .history(user, &conversation.id, 20, None)
            .await?;
        costs.extend(
            page.messages
                .iter()
                .filter(|m| recent(&m.created_at))
                .filter_map(|m| m.cost_usd),
        );
    }
    Ok((costs.len() as u64, costs.iter().sum()))
}

/// The user's budget from LiteLLM; 409 `provisioning` when LiteLLM has no user yet.
pub async fn budget(state: &AppState, user: &UserId) -> Result<BudgetReport, AppError> {
    let record = state
        .litellm
        .user_info(user.as_str())
        .await?
        .and_then(|i| i.user_info)
        .ok_or_else(|| {
            AppError::Provisioning(
                "your account has no budget yet; sign in again to finish setting it up".into(),
            )
        })?;
    let (recent_turns, recent_cost_usd) = recent_cost(state, user).await?;
    Ok(BudgetReport {
        record,
        recent_turns,
        recent_cost_usd,
    })
}

/// Sets the user's own cap for the operator's period: 0 ≤ `max_budget` ≤ `USER_MAX_BUDGET`.
/// The period is never the user's to choose (a shorter one would multiply the cap); naming
/// another is 422. An account whose email is not confirmed has no budget to set (403).
pub async fn set_budget(
    state: &AppState,
    user: &SignedInUser,
    max_budget: f64,
    duration: Option<&str>,
) -> Result<BudgetReport, AppError> {
    let ceiling = state.config.budget.max_budget;
    let period = state.config.budget.duration.as_str();
    if !max_budget.is_finite() || max_budget < 0.0 {
        return Err(AppError::validation("max_budget", "must be at least 0"));
    }
    if max_budget > ceiling {
        return Err(AppError::validation(
            "max_budget",
            format!("must be at most {ceiling} (the operator's ceiling)"),
        ));
    }
    if duration.is_some_and(|d| d != period) {
        return Err(AppError::validation(
            "budget_duration",
            format!("the budget period is the operator's: {period}"),
        ));
    }
    let profile = accounts::account(state, user).await?;
    if profile.awaiting_confirmation {
        return Err(AppError::Forbidden {
            code: ErrorCode::EmailNotConfirmed,
            message: "confirm your email address first: until then the account has no budget"
                .into(),
        });
    }
    state
        .litellm
        .update_user_budget(user.id.as_str(), max_budget, Some(period))
        .await?;
    let report = budget(state, &user.id).await?;
    // LiteLLM enforces a new cap only once its cache of the user expires; a cap at or below
    // what is spent is enforced here from the next message on.
    let used_up = used_up(&report, max_budget);
    if used_up != profile.budget_used_up {
        state
            .store
            .set_budget_used_up(&user.id, used_up.as_ref())
            .await?;
    }
    Ok(report)
}

/// The budget as used up when `limit` is at or below the period's spend (with the replies
/// LiteLLM has not counted yet).
fn used_up(report: &BudgetReport, limit: f64) -> Option<BudgetUsedUp> {
    let spend = report.record.spend + report.recent_cost_usd;
    (limit <= spend).then(|| BudgetUsedUp {
        spend,
        limit,
        until: report.record.budget_reset_at.clone(),
    })
}

/// After LiteLLM refused a turn for the budget: records it as used up (with LiteLLM's figures
/// and the period's end), so the next turns are refused before Letta is called.
pub async fn record_budget_used_up(state: &AppState, user: &UserId) -> Result<(), AppError> {
    let report = budget(state, user).await?;
    let limit = report.record.max_budget.unwrap_or(0.0);
    let used_up = used_up(&report, limit).unwrap_or(BudgetUsedUp {
        // LiteLLM refused although its figures (not yet counting the last calls) leave some:
        // its refusal is what counts.
        spend: report.record.spend + report.recent_cost_usd,
        limit,
        until: report.record.budget_reset_at.clone(),
    });
    state
        .store
        .set_budget_used_up(user, Some(&used_up))
        .await
        .map_err(Into::into)
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
