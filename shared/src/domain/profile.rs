//! A user's profile and the provisioning state machine it records:
//! `signed_up → litellm_user → letta_provider → letta_agent → ready`.

use serde::{Deserialize, Serialize};

use crate::{app::clock::now_rfc3339, domain::ids::UserId};

/// Where a user's provisioning stands; each step is resumable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisioningState {
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

impl ProvisioningState {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedUp => "signed_up",
            Self::LitellmUser => "litellm_user",
            Self::LettaProvider => "letta_provider",
            Self::LettaAgent => "letta_agent",
            Self::Ready => "ready",
        }
    }
}

/// A user's profile: identity, provisioning state, and the ids of what was made for them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// The Supabase user id.
    pub user_id: UserId,
    /// The email.
    pub email: String,
    /// The name the agent knows the user by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Where provisioning stands.
    pub state: ProvisioningState,
    /// The LiteLLM model the agent uses.
    pub model: String,
    /// When the Supabase user was created.
    pub user_created_at: String,
    /// When the profile was made.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// The alias of the user's LiteLLM key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub litellm_key_alias: Option<String>,
    /// SHA-256 of the user's LiteLLM key (LiteLLM's own key id); the key itself is stored only
    /// in Letta's provider, encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub litellm_key_hash: Option<String>,
    /// The Letta provider holding the user's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_provider_id: Option<String>,
    /// The user's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_agent_id: Option<String>,
    /// Its architecture, as recorded when it was made or last checked (absent on profiles
    /// made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_agent_type: Option<String>,
    /// The email was not confirmed when the account was made: the budget stays 0 until it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_confirmation: bool,
    /// Archival memories the agent holds, as the backend counted them (added through the API
    /// or saved by the agent in a chat turn, minus deletions), for the cap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub archival_passages: u64,
    /// The user's Letta folder (documents for the agent), made with the first upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_folder_id: Option<String>,
    /// The user's documents, for the cap (`FILES_MAX`): reserved before each upload.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub file_count: u64,
    /// The user's API keys, for the cap (10): kept in the same write as each creation and
    /// deletion.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub api_key_count: u64,
    /// The user's conversations besides the default one, for the cap (`CONVERSATIONS_MAX`):
    /// kept in the same write as each creation and deletion.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conversation_count: u64,
    /// The user set a budget at or below what the period had already spent: chat is refused
    /// here, before Letta, until the period resets or the budget is raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_used_up: Option<BudgetUsedUp>,
    /// Why the last provisioning attempt stopped, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_error: Option<String>,
    /// Epoch seconds until which a provisioning run holds the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_until: Option<i64>,
}

/// A budget the user set at or below the period's spend (LiteLLM's figures when it was set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetUsedUp {
    /// Spent this period, USD, with the replies LiteLLM had not counted yet.
    pub spend: f64,
    /// The cap, USD.
    pub limit: f64,
    /// When LiteLLM resets the period's spend (RFC 3339); absent: until the budget is raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl BudgetUsedUp {
    /// Whether it still holds at `now`: the period it was set in has not ended.
    pub fn holds_at(&self, now: time::OffsetDateTime) -> bool {
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        match &self.until {
            None => true,
            // LiteLLM writes the reset time with or without an offset.
            Some(until) => time::OffsetDateTime::parse(until, rfc3339)
                .or_else(|_| time::OffsetDateTime::parse(&format!("{until}Z"), rfc3339))
                .map_or(true, |end| now < end),
        }
    }
}

impl Profile {
    /// A new profile at `signed_up`.
    pub fn new(
        user_id: UserId,
        email: &str,
        display_name: Option<String>,
        model: &str,
        user_created_at: &str,
    ) -> Self {
        let now = now_rfc3339();
        Self {
            user_id,
            email: email.to_string(),
            display_name,
            state: ProvisioningState::SignedUp,
            model: model.to_string(),
            user_created_at: user_created_at.to_string(),
            created_at: now.clone(),
            updated_at: now,
            litellm_key_alias: None,
            litellm_key_hash: None,
            letta_provider_id: None,
            letta_agent_id: None,
            letta_agent_type: None,
            awaiting_confirmation: false,
            archival_passages: 0,
            letta_folder_id: None,
            file_count: 0,
            api_key_count: 0,
            conversation_count: 0,
            budget_used_up: None,
            provisioning_error: None,
            lock_until: None,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_used_up_budget_holds_until_the_period_resets() {
        let used_up = |until: Option<&str>| BudgetUsedUp {
            spend: 0.0,
            limit: 0.0,
            until: until.map(str::to_string),
        };
        let now = datetime!(2026-11-23 08:00 UTC);
        assert!(used_up(None).holds_at(now));
        assert!(used_up(Some("2026-12-01T00:00:00+00:00")).holds_at(now));
        assert!(used_up(Some("2026-12-01T00:00:00.123456")).holds_at(now));
        assert!(!used_up(Some("2026-11-23T07:59:59Z")).holds_at(now));
        assert!(!used_up(Some("2026-11-23T07:59:59.5")).holds_at(now));
    }
}
