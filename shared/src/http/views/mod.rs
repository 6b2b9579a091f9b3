//! The JSON shapes clients see, one module per function (`auth`, `user`, `agent`, `chat`, and
//! the chat turn's `events`), as flows return typed values and only these files decide how
//! they look on the wire. Each type derives its OpenAPI schema, so the description
//! (`/openapi.json`) is the wire format.

use serde::Serialize;
use utoipa::ToSchema;

use crate::{clients::litellm::UserRecord, domain::ProvisioningState};

pub mod agent;
pub mod api_keys;
pub mod auth;
pub mod chat;
pub mod events;
pub mod files;
pub mod openai;
pub mod user;

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
