//! The JSON shapes clients see, one type per resource: flows return typed values, and only
//! this file decides how they look on the wire. Each type derives its OpenAPI schema, so the
//! description (`/openapi.json`) is the wire format.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::{
    ToSchema,
    openapi::{ObjectBuilder, OneOfBuilder, Ref, RefOr, Schema, Type},
};

use crate::{
    clients::{
        letta::{Block, Passage},
        litellm::UserRecord,
        models::Model,
        supabase::{Session, User as SupabaseUser},
    },
    domain::{Conversation, Message, MessageStatus, Profile, ProvisioningState, Role, ToolCall},
    flows::{
        agent::{AgentStatus, ArchivalPage, ResetOutcome},
        chat::{ChatEvent, Done, TurnError},
        conversations::ConversationPage,
        export::ExportRecord,
        profile::{AccountHealth, Check},
        usage::{BudgetReport, SPEND_LAG_SECS, UsageReport, format_day},
    },
    store::{DayUsage, HistoryPage},
};

/// The session as clients see it.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The access token (a Supabase JWT): `Authorization: Bearer <access_token>`.
    access_token: String,
    /// The refresh token (single use): `POST /api/v1/auth/refresh`.
    refresh_token: String,
    /// `bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// When it expires (epoch seconds).
    expires_at: Option<u64>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        Self {
            access_token: s.access_token.expose().to_string(),
            refresh_token: s.refresh_token.expose().to_string(),
            token_type: s.token_type.clone(),
            expires_in: s.expires_in,
            expires_at: s.expires_at,
        }
    }
}

/// `{session}` after a refresh.
#[derive(Serialize, ToSchema)]
pub struct RefreshedView {
    /// The new session (the old refresh token is spent).
    session: SessionView,
}

/// A refreshed session.
pub fn refreshed(session: &Session) -> RefreshedView {
    RefreshedView {
        session: session.into(),
    }
}

/// The signed-in user.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    /// The Supabase user id (a UUID).
    id: String,
    /// The email.
    email: String,
    /// When the Supabase user was created.
    created_at: String,
}

/// `{id, email, created_at}` of the signed-in user.
pub fn user(p: &Profile) -> UserView {
    UserView {
        id: p.user_id.to_string(),
        email: p.email.clone(),
        created_at: p.user_created_at.clone(),
    }
}

/// The user's budget as LiteLLM has it.
#[derive(Serialize, ToSchema)]
pub struct BudgetView {
    /// The cap per period, USD.
    max_budget: Option<f64>,
    /// Spent this period, USD (LiteLLM records spend a few seconds after each call).
    spend: f64,
    /// What is left this period, USD.
    remaining: Option<f64>,
    /// The period (`1mo`, …): the operator's.
    budget_duration: Option<String>,
    /// When the period's spend resets.
    reset_at: Option<String>,
}

/// `{max_budget, spend, remaining, budget_duration, reset_at}`.
pub fn budget(record: &UserRecord) -> BudgetView {
    BudgetView {
        max_budget: record.max_budget,
        spend: record.spend,
        remaining: record.remaining(),
        budget_duration: record.budget_duration.clone(),
        reset_at: record.budget_reset_at.clone(),
    }
}

/// Where provisioning stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProvisioningStateView {
    /// The Supabase user and the profile exist.
    SignedUp,
    /// The LiteLLM user (with its budget) exists.
    LitellmUser,
    /// The Letta provider holds the user's key.
    LettaProvider,
    /// The agent exists.
    LettaAgent,
    /// Everything is in place.
    Ready,
}

impl From<ProvisioningState> for ProvisioningStateView {
    fn from(s: ProvisioningState) -> Self {
        match s {
            ProvisioningState::SignedUp => Self::SignedUp,
            ProvisioningState::LitellmUser => Self::LitellmUser,
            ProvisioningState::LettaProvider => Self::LettaProvider,
            ProvisioningState::LettaAgent => Self::LettaAgent,
            ProvisioningState::Ready => Self::Ready,
        }
    }
}

/// The profile in the auth endpoints' answers (no key material, no internal ids beyond the
/// agent's).
#[derive(Serialize, ToSchema)]
pub struct AccountProfileView {
    /// Where provisioning stands.
    state: ProvisioningStateView,
    /// Whether the account is ready to chat.
    ready: bool,
    /// The name the agent knows the user by.
    display_name: Option<String>,
    /// The user's agent.
    agent_id: Option<String>,
    /// The model the agent uses.
    model: String,
    /// When the profile was made.
    created_at: String,
    /// The budget, when LiteLLM could say.
    budget: Option<BudgetView>,
    /// Why provisioning stopped (only while the account is not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    provisioning_error: Option<Option<String>>,
}

/// The profile of the auth endpoints, with the budget when LiteLLM could say.
pub fn account_profile(
    profile: &Profile,
    budget_record: Option<&UserRecord>,
) -> AccountProfileView {
    let ready = profile.state == ProvisioningState::Ready;
    AccountProfileView {
        state: profile.state.into(),
        ready,
        display_name: profile.display_name.clone(),
        agent_id: profile.letta_agent_id.clone(),
        model: profile.model.clone(),
        created_at: profile.created_at.clone(),
        budget: budget_record.map(budget),
        provisioning_error: (!ready).then(|| profile.provisioning_error.clone()),
    }
}

/// `{user, session, profile}` after registration or login.
#[derive(Serialize, ToSchema)]
pub struct SignedInView {
    /// Who signed in.
    user: UserView,
    /// The session.
    session: SessionView,
    /// The account.
    profile: AccountProfileView,
}

/// `{user, session, profile}` after registration or login.
pub fn signed_in(
    session: &Session,
    profile: &Profile,
    budget_record: Option<&UserRecord>,
) -> SignedInView {
    SignedInView {
        user: user(profile),
        session: session.into(),
        profile: account_profile(profile, budget_record),
    }
}

/// `{user, profile}` of `GET /auth/me`.
#[derive(Serialize, ToSchema)]
pub struct MeView {
    /// Who is signed in.
    user: UserView,
    /// The account.
    profile: AccountProfileView,
}

/// The signed-in user and the account.
pub fn me(profile: &Profile, budget_record: Option<&UserRecord>) -> MeView {
    MeView {
        user: user(profile),
        profile: account_profile(profile, budget_record),
    }
}

/// A user waiting for the email confirmation.
#[derive(Serialize, ToSchema)]
pub struct PendingUserView {
    /// The Supabase user id.
    id: String,
    /// The email.
    email: Option<String>,
}

/// The 202 answer when the Supabase project confirms emails.
#[derive(Serialize, ToSchema)]
pub struct ConfirmationRequiredView {
    /// `confirmation_required`.
    #[schema(example = "confirmation_required")]
    status: &'static str,
    /// What to do next.
    message: &'static str,
    /// The user made.
    user: PendingUserView,
}

/// The 202 answer when the Supabase project confirms emails.
pub fn confirmation_required(user: &SupabaseUser) -> ConfirmationRequiredView {
    ConfirmationRequiredView {
        status: "confirmation_required",
        message: "Check your email to confirm your address, then sign in.",
        user: PendingUserView {
            id: user.id.clone(),
            email: user.email.clone(),
        },
    }
}

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

/// A core memory block's size.
#[derive(Serialize, ToSchema)]
pub struct BlockSizeView {
    /// `human`, `persona`, …
    label: String,
    /// Its length, in characters.
    chars: usize,
    /// Its limit, in characters.
    limit: Option<u64>,
}

/// `GET /agent/status`.
#[derive(Serialize, ToSchema)]
pub struct AgentStatusView {
    /// Where provisioning stands.
    state: ProvisioningStateView,
    /// The user's agent.
    agent_id: Option<String>,
    /// Whether Letta has the agent.
    responding: bool,
    /// The model the agent uses.
    model: String,
    /// Messages in the agent's context window.
    context_messages: Option<usize>,
    /// Messages stored by the backend.
    message_count: u64,
    /// When the newest stored message was written.
    last_activity: Option<String>,
    /// The core memory blocks' sizes.
    memory_blocks: Vec<BlockSizeView>,
    /// Archival memories, as the backend counted them.
    archival_passages: Option<u64>,
}

/// `GET /agent/status`.
pub fn agent_status(s: &AgentStatus) -> AgentStatusView {
    AgentStatusView {
        state: s.profile.state.into(),
        agent_id: s.profile.letta_agent_id.clone(),
        responding: s.responding,
        model: s.profile.model.clone(),
        context_messages: s.context_messages,
        message_count: s.message_count,
        last_activity: s.last_activity.clone(),
        memory_blocks: s
            .blocks
            .iter()
            .map(|b| BlockSizeView {
                label: b.label.clone(),
                chars: b.value.chars().count(),
                limit: b.limit,
            })
            .collect(),
        archival_passages: s.archival_passages,
    }
}

/// A core memory block.
#[derive(Serialize, ToSchema)]
pub struct BlockView {
    /// `human` or `persona`.
    label: String,
    /// Its text.
    value: String,
    /// Its limit, in characters.
    limit: Option<u64>,
    /// What it is for (shown to the agent).
    description: Option<String>,
}

impl From<&Block> for BlockView {
    fn from(b: &Block) -> Self {
        Self {
            label: b.label.clone(),
            value: b.value.clone(),
            limit: b.limit,
            description: b.description.clone(),
        }
    }
}

/// `GET /agent/memory`.
#[derive(Serialize, ToSchema)]
pub struct MemoryView {
    /// The core memory blocks.
    blocks: Vec<BlockView>,
}

/// `GET /agent/memory`.
pub fn memory(blocks: &[Block]) -> MemoryView {
    MemoryView {
        blocks: blocks.iter().map(BlockView::from).collect(),
    }
}

/// A block after it was replaced.
#[derive(Serialize, ToSchema)]
pub struct BlockReplacedView {
    /// The block as Letta now has it.
    block: BlockView,
}

/// A block after it was replaced.
pub fn block(block: &Block) -> BlockReplacedView {
    BlockReplacedView {
        block: block.into(),
    }
}

/// An archival memory.
#[derive(Serialize, ToSchema)]
pub struct PassageView {
    /// Its id.
    id: String,
    /// Its text.
    text: String,
    /// Its tags.
    tags: Option<Vec<String>>,
    /// When it was stored.
    created_at: Option<String>,
}

impl From<&Passage> for PassageView {
    fn from(p: &Passage) -> Self {
        Self {
            id: p.id.clone(),
            text: p.text.clone(),
            tags: p.tags.clone(),
            created_at: p.created_at.clone(),
        }
    }
}

/// Archival memories just added (Letta splits a long text into several).
#[derive(Serialize, ToSchema)]
pub struct PassagesView {
    /// What was stored.
    passages: Vec<PassageView>,
}

/// Archival memories just added.
pub fn passages(passages: &[Passage]) -> PassagesView {
    PassagesView {
        passages: passages.iter().map(PassageView::from).collect(),
    }
}

/// An archival memory found by a search or a listing.
#[derive(Serialize, ToSchema)]
pub struct ArchivalMemoryView {
    /// Its id (absent for some search results).
    id: Option<String>,
    /// Its text.
    text: String,
    /// Its tags.
    tags: Option<Vec<String>>,
    /// When it was stored.
    created_at: Option<String>,
}

/// `GET /agent/memory/archival`.
#[derive(Serialize, ToSchema)]
pub struct ArchivalView {
    /// The search, if one was made.
    query: Option<String>,
    /// The page's memories.
    memories: Vec<ArchivalMemoryView>,
    /// The next page's cursor.
    next_cursor: Option<String>,
}

/// `GET /agent/memory/archival`.
pub fn archival(page: &ArchivalPage) -> ArchivalView {
    ArchivalView {
        query: page.query.clone(),
        memories: page
            .memories
            .iter()
            .map(|m| ArchivalMemoryView {
                id: m.id.clone(),
                text: m.text.clone(),
                tags: m.tags.clone(),
                created_at: m.created_at.clone(),
            })
            .collect(),
        next_cursor: page.next_cursor.clone(),
    }
}

/// `POST /agent/reset`.
#[derive(Serialize, ToSchema)]
pub struct ResetView {
    /// `messages` or `all`.
    #[schema(example = "messages")]
    scope: &'static str,
    /// The agent after the reset (a new one for `all`).
    agent_id: String,
    /// Stored messages deleted.
    history_deleted: usize,
}

/// `POST /agent/reset`.
pub fn reset(r: &ResetOutcome) -> ResetView {
    ResetView {
        scope: r.scope.as_str(),
        agent_id: r.agent_id.clone(),
        history_deleted: r.history_deleted,
    }
}

/// `{deleted: true, id}` after a deletion.
#[derive(Serialize, ToSchema)]
pub struct DeletedView {
    /// Always `true`.
    deleted: bool,
    /// What was deleted.
    id: String,
    /// For a conversation: its messages deleted with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    messages_deleted: Option<usize>,
}

/// `{deleted: true, id}`, with the messages deleted along when there were any to count.
pub fn deleted(id: &str, messages_deleted: Option<usize>) -> DeletedView {
    DeletedView {
        deleted: true,
        id: id.to_string(),
        messages_deleted,
    }
}

/// Who wrote a message.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleView {
    /// The user.
    User,
    /// The agent.
    Assistant,
}

/// `pending`: stored, the agent not reached yet; `complete`; `interrupted`: the reply broke
/// off (what arrived is kept); `failed`: the agent never produced a reply.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum StatusView {
    /// Stored; the agent not reached yet.
    Pending,
    /// Answered in full.
    Complete,
    /// The reply broke off; what arrived is kept.
    Interrupted,
    /// The agent never produced a reply.
    Failed,
}

impl From<MessageStatus> for StatusView {
    fn from(s: MessageStatus) -> Self {
        match s {
            MessageStatus::Pending => Self::Pending,
            MessageStatus::Complete => Self::Complete,
            MessageStatus::Interrupted => Self::Interrupted,
            MessageStatus::Failed => Self::Failed,
        }
    }
}

/// A tool call the agent made.
#[derive(Serialize, ToSchema)]
pub struct ToolCallView {
    /// The call id.
    id: String,
    /// The tool.
    name: String,
    /// Its JSON arguments, as text.
    arguments: String,
    /// What it returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    /// `success` or `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

impl From<&ToolCall> for ToolCallView {
    fn from(t: &ToolCall) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            arguments: t.arguments.clone(),
            result: t.result.clone(),
            status: t.status.clone(),
        }
    }
}

/// Token counts of a turn.
#[derive(Serialize, ToSchema)]
pub struct TokensView {
    /// Prompt tokens over every step.
    prompt_tokens: u64,
    /// Completion tokens over every step.
    completion_tokens: u64,
    /// Both.
    total_tokens: u64,
    /// LLM calls (steps).
    steps: u64,
}

/// Why a message failed or broke off.
#[derive(Serialize, ToSchema)]
pub struct MessageErrorView {
    /// A stable code.
    code: String,
    /// A sentence for the user.
    message: String,
}

/// A stored message as clients see it (no keys, no Letta or LiteLLM ids).
#[derive(Serialize, ToSchema)]
pub struct MessageView {
    /// A ULID: messages sort by time.
    id: String,
    /// Its conversation (`default` for the user's first).
    conversation_id: String,
    /// Who wrote it.
    role: RoleView,
    /// The text.
    content: String,
    /// Where it stands.
    status: StatusView,
    /// When it was stored (RFC 3339).
    created_at: String,
    /// For replies: the user's message answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<String>,
    /// The agent's reasoning.
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<String>,
    /// The tools the agent called.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallView>,
    /// Token counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<TokensView>,
    /// Cost, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
    /// The model that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// Time to the first token, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_ms: Option<u64>,
    /// The whole turn, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    /// Why it failed or broke off.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<MessageErrorView>,
    /// Why the agent stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: Option<String>,
}

/// A stored message as clients see it.
pub fn message(m: &Message) -> MessageView {
    MessageView {
        id: m.id.clone(),
        conversation_id: m.conversation_id.to_string(),
        role: match m.role {
            Role::User => RoleView::User,
            Role::Assistant => RoleView::Assistant,
        },
        content: m.content.clone(),
        status: m.status.into(),
        created_at: m.created_at.clone(),
        reply_to: m.reply_to.clone(),
        reasoning: m.reasoning.clone(),
        tool_calls: m.tool_calls.iter().map(ToolCallView::from).collect(),
        usage: m.usage.as_ref().map(|u| TokensView {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            steps: u.steps,
        }),
        cost_usd: m.cost_usd,
        model: m.model.clone(),
        ttft_ms: m.ttft_ms,
        latency_ms: m.latency_ms,
        error: m.error.as_ref().map(|e| MessageErrorView {
            code: e.code.clone(),
            message: e.message.clone(),
        }),
        stop_reason: m.stop_reason.clone(),
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
        ExportRecord::Passage(p) => ExportLine::ArchivalMemory(p.into()),
        ExportRecord::End(counts) => ExportLine::End {
            counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        },
        ExportRecord::Error(e) => ExportLine::Error {
            error: TurnErrorView {
                code: e.code().to_string(),
                message: e.to_string(),
                retryable: true,
                spend: None,
                limit: None,
            },
        },
    }
}

/// A conversation (Letta's id stays inside).
#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    /// `default` or a ULID.
    id: String,
    /// Its title: the user's, or one made from the first message.
    title: Option<String>,
    /// Whether the user set the title.
    title_by_user: bool,
    /// When it was made.
    created_at: String,
    /// When a message was last added.
    last_activity: String,
    /// Messages stored in it.
    message_count: u64,
}

/// A conversation (Letta's id stays inside).
pub fn conversation(c: &Conversation) -> ConversationView {
    ConversationView {
        id: c.id.to_string(),
        title: c.title.clone(),
        title_by_user: c.title_by_user,
        created_at: c.created_at.clone(),
        last_activity: c.last_activity.clone(),
        message_count: c.message_count,
    }
}

/// `GET /conversations`.
#[derive(Serialize, ToSchema)]
pub struct ConversationsView {
    /// Most recently active first.
    conversations: Vec<ConversationView>,
    /// The next page's cursor.
    next_cursor: Option<String>,
}

/// `GET /conversations`.
pub fn conversations(page: &ConversationPage) -> ConversationsView {
    ConversationsView {
        conversations: page.conversations.iter().map(conversation).collect(),
        next_cursor: page.next_cursor.clone(),
    }
}

/// `GET /chat/history`.
#[derive(Serialize, ToSchema)]
pub struct HistoryView {
    /// Newest first.
    messages: Vec<MessageView>,
    /// The next (older) page's cursor.
    next_cursor: Option<String>,
}

/// `GET /chat/history`.
pub fn history(page: &HistoryPage) -> HistoryView {
    HistoryView {
        messages: page.messages.iter().map(message).collect(),
        next_cursor: page.next_cursor.clone(),
    }
}

/// `start`: the turn began; the ids of the user's message and of the reply.
#[derive(Serialize, ToSchema)]
pub struct StartEvent {
    /// The conversation.
    conversation_id: String,
    /// The reply's id.
    message_id: String,
    /// The user's message's id.
    user_message_id: String,
    /// The model answering.
    model: Option<String>,
    /// Present (`true`) when a finished turn is replayed for a repeated `Idempotency-Key`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

/// `reasoning`: a piece of the agent's reasoning.
#[derive(Serialize, ToSchema)]
pub struct ReasoningEvent {
    /// The text added.
    delta: String,
}

/// `tool_call`: the agent calls a tool.
#[derive(Serialize, ToSchema)]
pub struct ToolCallEvent {
    /// The call id.
    id: String,
    /// The tool.
    name: String,
    /// Its JSON arguments, as text.
    arguments: String,
}

/// `tool_result`: what the tool returned.
#[derive(Serialize, ToSchema)]
pub struct ToolResultEvent {
    /// The call id.
    id: String,
    /// The tool.
    name: String,
    /// `success` or `error`.
    status: Option<String>,
    /// What it returned.
    result: String,
}

/// `delta`: a piece of the reply's text.
#[derive(Serialize, ToSchema)]
pub struct DeltaEvent {
    /// The text added.
    text: String,
}

/// `usage`: what the turn cost.
#[derive(Serialize, ToSchema)]
pub struct UsageEvent {
    /// Prompt tokens over every step.
    prompt_tokens: u64,
    /// Completion tokens over every step.
    completion_tokens: u64,
    /// Both.
    total_tokens: u64,
    /// LLM calls (steps).
    steps: u64,
    /// Cost, USD.
    cost_usd: Option<f64>,
    /// The model.
    model: Option<String>,
}

/// `done`: the reply is stored; the last event of a turn.
#[derive(Serialize, ToSchema)]
pub struct DoneEvent {
    /// The reply's id.
    message_id: String,
    /// Why the agent stopped.
    stop_reason: Option<String>,
    /// The whole turn, ms.
    latency_ms: Option<u64>,
    /// Time to the first token, ms.
    ttft_ms: Option<u64>,
    /// Whether the stored text differs from the deltas (then `text` is the reply).
    text_corrected: bool,
    /// The reply's text, when it was corrected or replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// Present (`true`) for a replayed turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed: Option<bool>,
    /// A replayed turn's stored status.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusView>,
}

/// `error`: the turn broke off (what arrived is kept and marked); the last event.
#[derive(Serialize, ToSchema)]
pub struct TurnErrorView {
    /// `budget_exceeded`, `billing_key_revoked`, `llm_error`, `agent_interrupted`, …
    code: String,
    /// A sentence for the user.
    message: String,
    /// Whether sending the message again may succeed.
    retryable: bool,
    /// For `budget_exceeded`: spent this period, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    spend: Option<Option<f64>>,
    /// For `budget_exceeded`: the cap, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<Option<f64>>,
}

/// `title`: the conversation got a title from its first message.
#[derive(Serialize, ToSchema)]
pub struct TitleEvent {
    /// The conversation.
    conversation_id: String,
    /// Its new title.
    title: String,
}

/// One SSE event of `POST /chat/message`: `event:` is the name, `data:` the JSON of that event,
/// `id:` counts from 1. A turn is `start`, then `reasoning`, `tool_call`, `tool_result` and
/// `delta` as they happen, then `usage` and `done` — or `error` — and maybe `title`.
#[derive(Serialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum ChatEventView {
    /// The turn began.
    Start(StartEvent),
    /// The agent's reasoning.
    Reasoning(ReasoningEvent),
    /// A tool call.
    ToolCall(ToolCallEvent),
    /// Its result.
    ToolResult(ToolResultEvent),
    /// Reply text.
    Delta(DeltaEvent),
    /// What the turn cost.
    Usage(UsageEvent),
    /// The reply is stored.
    Done(DoneEvent),
    /// The turn broke off.
    Error(TurnErrorView),
    /// The conversation's new title.
    Title(TitleEvent),
}

/// The events: name, the schema of `data`, what it says.
const CHAT_EVENTS: [(&str, &str, &str); 9] = [
    ("start", "StartEvent", "The turn began."),
    (
        "reasoning",
        "ReasoningEvent",
        "A piece of the agent's reasoning.",
    ),
    ("tool_call", "ToolCallEvent", "The agent calls a tool."),
    ("tool_result", "ToolResultEvent", "What the tool returned."),
    ("delta", "DeltaEvent", "A piece of the reply's text."),
    ("usage", "UsageEvent", "What the turn cost."),
    ("done", "DoneEvent", "The reply is stored: the last event."),
    (
        "error",
        "TurnErrorView",
        "The turn broke off: the last event.",
    ),
    ("title", "TitleEvent", "The conversation got a title."),
];

/// Each SSE event as an object of its fields (`event`, `id`, and `data`, a JSON string of the
/// event's schema): the shape OpenAPI 3.1 tools read an event stream's `schema` as.
impl utoipa::PartialSchema for ChatEventView {
    fn schema() -> RefOr<Schema> {
        let event = |(name, data, description): (&str, &str, &str)| {
            ObjectBuilder::new()
                .description(Some(description))
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([name])),
                )
                .required("event")
                .property(
                    "id",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("The event's number in the turn, from 1.")),
                )
                .property(
                    "data",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/json")
                        .content_schema(Some(Ref::from_schema_name(data))),
                )
                .required("data")
        };
        let events = CHAT_EVENTS
            .into_iter()
            .fold(OneOfBuilder::new(), |one_of, e| one_of.item(event(e)));
        events
            .description(Some(
                "One SSE event of a chat turn: `start`, then `reasoning`, `tool_call`, \
                 `tool_result` and `delta` as they happen, then `usage` and `done` (or `error`), \
                 and maybe `title`.",
            ))
            .into()
    }
}

impl ToSchema for ChatEventView {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((T::name().into_owned(), T::schema()));
            T::schemas(schemas);
        }
        add::<StartEvent>(schemas);
        add::<ReasoningEvent>(schemas);
        add::<ToolCallEvent>(schemas);
        add::<ToolResultEvent>(schemas);
        add::<DeltaEvent>(schemas);
        add::<UsageEvent>(schemas);
        add::<DoneEvent>(schemas);
        add::<TurnErrorView>(schemas);
        add::<TitleEvent>(schemas);
    }
}

fn done(d: &Done) -> DoneEvent {
    DoneEvent {
        message_id: d.message_id.clone(),
        stop_reason: d.stop_reason.clone(),
        latency_ms: d.latency_ms,
        ttft_ms: d.ttft_ms,
        text_corrected: d.text_corrected,
        text: d.text.clone(),
        replayed: d.replayed_status.map(|_| true),
        status: d.replayed_status.map(StatusView::from),
    }
}

fn turn_error(e: &TurnError) -> TurnErrorView {
    TurnErrorView {
        code: e.code.to_string(),
        message: e.message.clone(),
        retryable: e.retryable,
        spend: e.budget.map(|(spend, _)| spend),
        limit: e.budget.map(|(_, limit)| limit),
    }
}

impl ChatEventView {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start(_) => "start",
            Self::Reasoning(_) => "reasoning",
            Self::ToolCall(_) => "tool_call",
            Self::ToolResult(_) => "tool_result",
            Self::Delta(_) => "delta",
            Self::Usage(_) => "usage",
            Self::Done(_) => "done",
            Self::Error(_) => "error",
            Self::Title(_) => "title",
        }
    }

    /// The SSE `data:` JSON.
    pub fn data(&self) -> Value {
        let mut tagged = serde_json::to_value(self).unwrap_or(Value::Null);
        tagged
            .get_mut("data")
            .map(Value::take)
            .unwrap_or(Value::Null)
    }
}

/// A chat event as clients see it.
pub fn chat_event(event: &ChatEvent) -> ChatEventView {
    match event {
        ChatEvent::Start {
            conversation_id,
            message_id,
            user_message_id,
            model,
            replayed,
        } => ChatEventView::Start(StartEvent {
            conversation_id: conversation_id.to_string(),
            message_id: message_id.clone(),
            user_message_id: user_message_id.clone(),
            model: model.clone(),
            replayed: *replayed,
        }),
        ChatEvent::Reasoning { delta } => ChatEventView::Reasoning(ReasoningEvent {
            delta: delta.clone(),
        }),
        ChatEvent::ToolCall {
            id,
            name,
            arguments,
        } => ChatEventView::ToolCall(ToolCallEvent {
            id: id.clone(),
            name: name.clone(),
            arguments: arguments.clone(),
        }),
        ChatEvent::ToolResult {
            id,
            name,
            status,
            result,
        } => ChatEventView::ToolResult(ToolResultEvent {
            id: id.clone(),
            name: name.clone(),
            status: status.clone(),
            result: result.clone(),
        }),
        ChatEvent::Delta { text } => ChatEventView::Delta(DeltaEvent { text: text.clone() }),
        ChatEvent::Usage {
            usage,
            cost_usd,
            model,
        } => ChatEventView::Usage(UsageEvent {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens,
            steps: usage.steps,
            cost_usd: *cost_usd,
            model: model.clone(),
        }),
        ChatEvent::Done(d) => ChatEventView::Done(done(d)),
        ChatEvent::Error(e) => ChatEventView::Error(turn_error(e)),
        ChatEvent::Title {
            conversation_id,
            title,
        } => ChatEventView::Title(TitleEvent {
            conversation_id: conversation_id.to_string(),
            title: title.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{ConversationId, MessageStatus, Role};

    #[test]
    fn message_views_hide_internal_fields() {
        let mut m = Message::new(
            &ConversationId::default_conversation(),
            &ulid::Ulid::new(),
            Role::Assistant,
            "hi".into(),
            MessageStatus::Complete,
        );
        m.letta_run_id = Some("run-1".into());
        m.letta_message_ids = vec!["message-1".into()];
        m.llm_call_ids = vec!["chatcmpl-1".into()];
        let v = serde_json::to_value(message(&m)).unwrap();
        assert!(v.get("pk").is_none() && v.get("letta_run_id").is_none());
        assert!(v.get("letta_message_ids").is_none() && v.get("llm_call_ids").is_none());
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["status"], "complete");
        assert_eq!(v["conversation_id"], "default");
    }

    #[test]
    fn replayed_turns_say_so_in_start_and_done() {
        let start = chat_event(&ChatEvent::Start {
            conversation_id: ConversationId::default_conversation(),
            message_id: "m".into(),
            user_message_id: "u".into(),
            model: Some("gpt-4".into()),
            replayed: true,
        });
        assert_eq!(
            (start.name(), &start.data()["replayed"]),
            ("start", &json!(true))
        );
        let live = chat_event(&ChatEvent::Start {
            conversation_id: ConversationId::default_conversation(),
            message_id: "m".into(),
            user_message_id: "u".into(),
            model: None,
            replayed: false,
        });
        assert!(live.data().get("replayed").is_none());
        assert_eq!(live.data()["model"], Value::Null);
        let done = chat_event(&ChatEvent::Done(Done {
            message_id: "m".into(),
            stop_reason: None,
            latency_ms: Some(3),
            ttft_ms: None,
            text_corrected: false,
            text: None,
            replayed_status: Some(MessageStatus::Interrupted),
        }));
        assert_eq!(done.name(), "done");
        assert_eq!(done.data()["status"], "interrupted");
        assert_eq!(done.data()["replayed"], true);
        assert!(done.data().get("text").is_none());
    }

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
