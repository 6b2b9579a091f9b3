//! What the user function answers: the profile, usage, the budget, the account's health,
//! the models to choose from, the export's lines.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::files::FileView;
use crate::{
    app::clock::format_day,
    clients::models::Model,
    domain::{Profile, ProvisioningState},
    flows::{
        export::ExportRecord,
        profile::{AccountHealth, Check},
        usage::{BudgetReport, SPEND_LAG_SECS, UsageReport},
    },
    store::DayUsage,
};

use super::{
    BudgetView, ProvisioningStateView,
    agent::{BlockView, PassageView},
    budget,
    chat::{ConversationView, MessageView, conversation, message},
    events::TurnErrorView,
};

/// The user's profile.
#[derive(Serialize, ToSchema)]
pub struct ProfileView {
    /// The name the agent knows the user by.
    display_name: Option<String>,
    /// The email.
    email: String,
    /// When the Supabase user was created.
    created_at: String,
    /// Where provisioning stands.
    state: ProvisioningStateView,
    /// The user's agent.
    agent_id: Option<String>,
    /// The model the agent uses.
    model: String,
}

/// `{profile}` of the user endpoints.
#[derive(Serialize, ToSchema)]
pub struct UserProfileView {
    /// The profile.
    profile: ProfileView,
}

fn profile_view(p: &Profile) -> ProfileView {
    ProfileView {
        display_name: p.display_name.clone(),
        email: p.email.clone(),
        created_at: p.user_created_at.clone(),
        state: p.state.into(),
        agent_id: p.letta_agent_id.clone(),
        model: p.model.clone(),
    }
}

/// `{profile: {…}}` of the user endpoints.
pub fn user_profile(p: &Profile) -> UserProfileView {
    UserProfileView {
        profile: profile_view(p),
    }
}

/// One day's (or a range's) usage.
#[derive(Serialize, ToSchema)]
pub struct DayUsageView {
    /// Replies.
    messages: u64,
    /// Prompt tokens.
    prompt_tokens: u64,
    /// Completion tokens.
    completion_tokens: u64,
    /// Cost, USD.
    cost_usd: f64,
}

impl From<&DayUsage> for DayUsageView {
    fn from(d: &DayUsage) -> Self {
        Self {
            messages: d.messages,
            prompt_tokens: d.prompt_tokens,
            completion_tokens: d.completion_tokens,
            cost_usd: d.cost_usd,
        }
    }
}

/// One day of `GET /user/usage`.
#[derive(Serialize, ToSchema)]
pub struct DatedUsageView {
    /// `YYYY-MM-DD` (UTC).
    date: String,
    /// Its usage.
    #[serde(flatten)]
    usage: DayUsageView,
}

/// LiteLLM's figures for the current budget period.
#[derive(Serialize, ToSchema)]
pub struct PeriodView {
    /// Spent this period, USD.
    spend_usd: f64,
    /// The period.
    budget_duration: Option<String>,
    /// When it resets.
    reset_at: Option<String>,
}

/// `GET /user/usage`.
#[derive(Serialize, ToSchema)]
pub struct UsageView {
    /// The first day (`YYYY-MM-DD`).
    from: String,
    /// The last day.
    to: String,
    /// Every day of the range, oldest first.
    days: Vec<DatedUsageView>,
    /// The range's sums.
    totals: DayUsageView,
    /// The current budget period, when LiteLLM answered.
    current_period: Option<PeriodView>,
}

/// `GET /user/usage`.
pub fn usage(report: &UsageReport) -> UsageView {
    UsageView {
        from: format_day(report.from),
        to: format_day(report.to),
        days: report
            .days
            .iter()
            .map(|(date, row)| DatedUsageView {
                date: format_day(*date),
                usage: row.into(),
            })
            .collect(),
        totals: (&report.totals).into(),
        current_period: report.current_period.as_ref().map(|u| PeriodView {
            spend_usd: u.spend,
            budget_duration: u.budget_duration.clone(),
            reset_at: u.budget_reset_at.clone(),
        }),
    }
}

/// Replies LiteLLM may not have counted yet.
#[derive(Serialize, ToSchema)]
pub struct RecentTurnsView {
    /// Replies stored in the last `spend_lag_seconds`.
    count: u64,
    /// Their cost, USD.
    cost_usd: f64,
    /// Why they are listed.
    note: &'static str,
}

/// `GET /user/budget` (and the answer to setting it).
#[derive(Serialize, ToSchema)]
pub struct BudgetReportView {
    /// LiteLLM's figures.
    #[serde(flatten)]
    budget: BudgetView,
    /// How long LiteLLM may take to count a reply's cost.
    spend_lag_seconds: i64,
    /// The replies of the last `spend_lag_seconds`.
    recent_turns: RecentTurnsView,
}

/// `GET /user/budget` (and the answer to setting it).
pub fn budget_report(report: &BudgetReport) -> BudgetReportView {
    BudgetReportView {
        budget: budget(&report.record),
        spend_lag_seconds: SPEND_LAG_SECS,
        recent_turns: RecentTurnsView {
            count: report.recent_turns,
            cost_usd: report.recent_cost_usd,
            note: "LiteLLM records spend a few seconds after each call; these recent turns may not be in `spend` yet",
        },
    }
}

/// One check of the account: `ok` is `null` when it could not be made.
#[derive(Serialize, ToSchema)]
pub struct CheckView {
    /// The result; `null` when the system could not be asked.
    ok: Option<bool>,
    /// Why it could not be made.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn check(c: &Check) -> CheckView {
    match c {
        Ok(ok) => CheckView {
            ok: Some(*ok),
            error: None,
        },
        Err(e) => CheckView {
            ok: None,
            error: Some(e.clone()),
        },
    }
}

/// Provisioning as a check.
#[derive(Serialize, ToSchema)]
pub struct ProvisioningCheckView {
    /// Whether it is complete.
    ok: bool,
    /// Where it stands.
    state: ProvisioningStateView,
    /// Why it stopped, if it did.
    error: Option<String>,
}

/// The budget as a check.
#[derive(Serialize, ToSchema)]
pub struct BudgetCheckView {
    /// Whether budget is left; `null` when LiteLLM could not say.
    ok: Option<bool>,
    /// What is left, USD.
    remaining: Option<f64>,
}

/// The checks of `GET /user/health`.
#[derive(Serialize, ToSchema)]
pub struct AccountChecksView {
    /// Provisioning complete.
    provisioning: ProvisioningCheckView,
    /// Letta has the agent.
    letta_agent: CheckView,
    /// LiteLLM has the user.
    litellm_user: CheckView,
    /// Budget left.
    budget: BudgetCheckView,
}

/// `GET /user/health`.
#[derive(Serialize, ToSchema)]
pub struct AccountHealthView {
    /// `healthy`, `degraded` or `unhealthy`.
    #[schema(example = "healthy")]
    status: &'static str,
    /// Each check.
    checks: AccountChecksView,
}

/// `GET /user/health`.
pub fn account_health(h: &AccountHealth) -> AccountHealthView {
    AccountHealthView {
        status: h.status(),
        checks: AccountChecksView {
            provisioning: ProvisioningCheckView {
                ok: h.profile.state == ProvisioningState::Ready,
                state: h.profile.state.into(),
                error: h.profile.provisioning_error.clone(),
            },
            letta_agent: check(&h.letta_agent),
            litellm_user: check(&h.litellm_user),
            budget: BudgetCheckView {
                ok: h.remaining.map(|r| r > 0.0),
                remaining: h.remaining,
            },
        },
    }
}

/// A model to choose from.
#[derive(Serialize, ToSchema)]
pub struct ModelView {
    /// The name to send as `model`.
    name: String,
    /// Who serves it.
    provider: String,
    /// Its context window, tokens.
    context_window: Option<u64>,
    /// USD per million prompt tokens.
    input_price_per_1m_tokens: f64,
    /// USD per million completion tokens.
    output_price_per_1m_tokens: f64,
}

/// `GET /models`.
#[derive(Serialize, ToSchema)]
pub struct ModelsView {
    /// The choices.
    models: Vec<ModelView>,
    /// The model new accounts get.
    default: String,
}

/// `GET /models`: the choices, and which one new accounts get.
pub fn models(choices: &[Model], default_model: &str) -> ModelsView {
    let per_million = |per_token: f64| (per_token * 1e6 * 1e6).round() / 1e6;
    ModelsView {
        models: choices
            .iter()
            .map(|m| ModelView {
                name: m.name.clone(),
                provider: m.provider.clone(),
                context_window: m.context_window,
                input_price_per_1m_tokens: per_million(m.price.input_per_token),
                output_price_per_1m_tokens: per_million(m.price.output_per_token),
            })
            .collect(),
        default: default_model.to_string(),
    }
}

/// One line of `GET /user/export` (`type` names which).
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// The profile.
    Profile {
        /// The Supabase user id.
        user_id: String,
        /// The profile.
        #[serde(flatten)]
        profile: ProfileView,
    },
    /// A conversation; its messages follow it.
    Conversation(ConversationView),
    /// A message.
    Message(Box<MessageView>),
    /// One day's usage.
    Usage {
        /// `YYYY-MM-DD`.
        day: String,
        /// Its usage.
        #[serde(flatten)]
        usage: DayUsageView,
    },
    /// A core memory block.
    MemoryBlock(BlockView),
    /// A document of the user's (its metadata).
    Document(FileView),
    /// An archival memory.
    ArchivalMemory(PassageView),
    /// The last line: how many of each were written.
    End {
        /// Records written, by type.
        counts: BTreeMap<String, u64>,
    },
    /// The export broke off (a dependency failed): it is incomplete.
    Error {
        /// What happened.
        error: TurnErrorView,
    },
}

/// One line of `GET /user/export`.
pub fn export_record(record: &ExportRecord) -> ExportLine {
    match record {
        ExportRecord::Profile(p) => ExportLine::Profile {
            user_id: p.user_id.to_string(),
            profile: profile_view(p),
        },
        ExportRecord::Conversation(c) => ExportLine::Conversation(conversation(c)),
        ExportRecord::Message(m) => ExportLine::Message(Box::new(message(m))),
        ExportRecord::Usage(day, d) => ExportLine::Usage {
            day: day.clone(),
            usage: d.into(),
        },
        ExportRecord::Block(b) => ExportLine::MemoryBlock(b.into()),
        ExportRecord::Document(f) => ExportLine::Document(super::files::file(f)),
        ExportRecord::Passage(p) => ExportLine::ArchivalMemory(p.into()),
        ExportRecord::End(counts) => ExportLine::End {
            counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        },
        ExportRecord::Error(e) => ExportLine::Error {
            error: TurnErrorView::retryable(e.code(), e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn export_lines_are_tagged_with_their_type() {
        let end = ExportLine::End {
            counts: BTreeMap::from([("message".to_string(), 2)]),
        };
        assert_eq!(
            serde_json::to_value(end).unwrap(),
            json!({"type": "end", "counts": {"message": 2}})
        );
    }
}
