//! The user's profile and account health: the display name (which also reaches the agent's
//! memory) and one status over every part of the account.

use crate::{
    app::{dependency::DependencyError, error::AppError},
    clients::litellm::UserRecord,
    domain::{DisplayName, Profile, ProvisioningState, SignedInUser},
    flows::{accounts, agent::ready_agent},
    state::AppState,
};

/// The user's profile as it stands (made on a first request, like every entry point).
pub async fn profile(state: &AppState, user: &SignedInUser) -> Result<Profile, AppError> {
    accounts::profile_of(state, user).await
}

/// Sets the display name on the profile and in the agent's `human` block (its `Name:` line).
pub async fn set_display_name(
    state: &AppState,
    user: &SignedInUser,
    name: &DisplayName,
) -> Result<Profile, AppError> {
    let (_, agent_id) = ready_agent(state, user).await?;
    if let Some(block) = state.letta.block(&agent_id, "human").await? {
        let value = with_name_line(&block.value, name.as_str());
        state.letta.update_block(&agent_id, "human", &value).await?;
    }
    state
        .store
        .set_profile_field(&user.id, "display_name", Some(name.as_str()))
        .await?;
    profile(state, user).await
}

/// Replaces the block's `Name:` line, or puts one first.
pub fn with_name_line(value: &str, name: &str) -> String {
    let line = format!("Name: {name}");
    if value.lines().any(|l| l.starts_with("Name:")) {
        value
            .lines()
            .map(|l| {
                if l.starts_with("Name:") {
                    line.as_str()
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else if value.trim().is_empty() {
        line
    } else {
        format!("{line}\n{value}")
    }
}

/// One check of the account: `Ok(present)`, or why it could not be checked.
pub type Check = Result<bool, String>;

/// The account's health: provisioning complete, agent present, LiteLLM user present, budget left.
pub struct AccountHealth {
    /// The profile (state and last provisioning error).
    pub profile: Profile,
    /// The Letta agent exists.
    pub letta_agent: Check,
    /// The LiteLLM user exists.
    pub litellm_user: Check,
    /// What is left of the budget, when known.
    pub remaining: Option<f64>,
}

impl AccountHealth {
    /// `healthy`, `degraded` (usable but needs attention) or `unhealthy`.
    pub fn status(&self) -> &'static str {
        let provisioned = self.profile.state == ProvisioningState::Ready;
        let broken = !provisioned
            || matches!(self.letta_agent, Ok(false))
            || matches!(self.litellm_user, Ok(false));
        let unknown = self.letta_agent.is_err() || self.litellm_user.is_err();
        if broken {
            "unhealthy"
        } else if unknown || self.remaining.is_some_and(|r| r <= 0.0) {
            "degraded"
        } else {
            "healthy"
        }
    }
}

/// Checks every part of the account.
pub async fn account_health(
    state: &AppState,
    user: &SignedInUser,
) -> Result<AccountHealth, AppError> {
    let profile = profile(state, user).await?;
    let letta_agent = match &profile.letta_agent_id {
        Some(id) => state
            .letta
            .get_agent(id)
            .await
            .map(|a| a.is_some())
            .map_err(summarized),
        None => Ok(false),
    };
    let info = state
        .litellm
        .user_info(user.id.as_str())
        .await
        .map_err(summarized);
    let remaining = match &info {
        Ok(Some(info)) => info.user_info.as_ref().and_then(UserRecord::remaining),
        _ => None,
    };
    Ok(AccountHealth {
        profile,
        letta_agent,
        litellm_user: info.map(|i| i.is_some()),
        remaining,
    })
}

/// A failed check as the client sees it: the summary, never the dependency's own text (the
/// whole error, redacted, goes to the log).
fn summarized(e: DependencyError) -> String {
    tracing::warn!(error = %e, "account health check failed");
    e.summary()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_line_is_replaced_or_added() {
        assert_eq!(
            with_name_line("Name: Old\nLikes tea.", "New"),
            "Name: New\nLikes tea."
        );
        assert_eq!(with_name_line("Likes tea.", "New"), "Name: New\nLikes tea.");
        assert_eq!(with_name_line("", "New"), "Name: New");
    }
}
