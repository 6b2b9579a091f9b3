//! Things of a user without a profile. Only what is proven this deployment's, and older than
//! the grace period, is deleted: the LiteLLM user marked with this deployment (account
//! deletion removes it last, so it outlives every other leftover), with its keys, provider and
//! archives, and the agents tagged with this deployment (or unmarked ones, when the LiteLLM
//! user is this deployment's). Another deployment's things are not reported at all; unmarked
//! ones that cannot be proven this deployment's are reported and left alone.

use super::{
    Kind,
    check::{Checked, archive_name, done, past_grace},
};
use crate::{
    app::error::AppError,
    clients::{letta::Agent, litellm::UserInfo},
    domain::UserId,
    flows::{
        accounts,
        provisioning::{self, Owner, provider_name},
    },
    state::AppState,
};

/// What LiteLLM and Letta hold under a user's name.
struct Held {
    litellm: Option<UserInfo>,
    /// Who the LiteLLM user's mark says it belongs to.
    litellm_owner: Owner,
    litellm_created: Option<String>,
    provider: bool,
    /// Agents this deployment's (by their tag, or by the LiteLLM user's mark).
    ours: Vec<Agent>,
    /// Agents no mark proves this deployment's.
    unproven: Vec<Agent>,
    /// Archives older than the grace period.
    archives: Vec<String>,
}

/// Finds, reports and (when fixing) deletes what a user without a profile left behind.
pub(super) async fn orphaned(
    state: &AppState,
    user: &UserId,
    fix: bool,
) -> Result<Checked, AppError> {
    let held = held(state, user).await?;
    let ours = held.litellm_owner == Owner::Ours;
    if held.litellm_owner == Owner::Other && held.ours.is_empty() {
        // Another deployment's user (an identity both deployments share): none of ours.
        return Ok(Checked::Nothing);
    }
    let unproven = unproven(&held, ours);
    let settled = past_grace(state);
    let settled = |at: Option<&str>| at.is_none_or(&settled);
    let young = !settled(held.litellm_created.as_deref())
        || held.ours.iter().any(|a| !settled(a.created_at.as_deref()));
    let Held {
        litellm,
        provider,
        ours: agents,
        archives,
        ..
    } = held;
    let litellm = litellm.filter(|_| ours);
    let provider = provider && ours;
    let archives = if ours { archives } else { Vec::new() };
    if litellm.is_none() && !provider && agents.is_empty() && archives.is_empty() {
        return Ok(unproven.map_or(Checked::Nothing, |finding| done(vec![finding])));
    }
    if young {
        // A request may be in the middle of making or deleting the account.
        return Ok(done(Vec::new()));
    }
    let agents: Vec<String> = agents.into_iter().map(|a| a.id).collect();
    let fixed = fix && delete(state, user, ours, &agents, &archives).await?;
    let mut findings: Vec<(Kind, bool)> = unproven.into_iter().collect();
    let kind = Kind::Orphaned {
        litellm_keys: litellm.map(|i| i.keys.len()),
        letta_provider: provider,
        letta_agents: agents,
        letta_archives: archives,
    };
    findings.push((kind, fixed));
    Ok(done(findings))
}

/// Looks everywhere for what carries the user's name.
async fn held(state: &AppState, user: &UserId) -> Result<Held, AppError> {
    let litellm = state.litellm.user_info(user.as_str()).await?;
    let record = litellm.as_ref().and_then(|i| i.user_info.as_ref());
    let litellm_owner = Owner::of(state, record.and_then(|r| r.deployment()));
    let litellm_created = record.and_then(|r| r.created_at.clone());
    let provider = state.letta.find_provider(&provider_name(user)).await?;
    let settled = past_grace(state);
    let archives: Vec<String> = state
        .letta
        .find_archives(&archive_name(user))
        .await?
        .into_iter()
        .filter(|a| a.created_at.as_deref().is_none_or(&settled))
        .map(|a| a.id)
        .collect();
    let (ours, unproven) = provisioning::agents_of(state, user)
        .await?
        .into_iter()
        .partition(|a| match Owner::of_agent(state, a) {
            Owner::Ours => true,
            _ => litellm_owner == Owner::Ours,
        });
    Ok(Held {
        litellm,
        litellm_owner,
        litellm_created,
        provider: provider.is_some(),
        ours,
        unproven,
        archives,
    })
}

/// The `Unproven` finding, when something carries no mark that proves it this deployment's.
fn unproven(held: &Held, ours: bool) -> Option<(Kind, bool)> {
    let litellm_user = held.litellm_owner == Owner::Unmarked && held.litellm.is_some();
    let letta_provider = !ours && held.provider;
    (litellm_user || letta_provider || !held.unproven.is_empty()).then(|| {
        let letta_agents = held.unproven.iter().map(|a| a.id.clone()).collect();
        let kind = Kind::Unproven {
            litellm_user,
            letta_provider,
            letta_agents,
        };
        (kind, false)
    })
}

/// Deletes what is proven this deployment's: with the LiteLLM user, what account deletion
/// would have deleted (another deployment's agents aside); without it, the tagged agents.
async fn delete(
    state: &AppState,
    user: &UserId,
    litellm_ours: bool,
    agents: &[String],
    archives: &[String],
) -> Result<bool, AppError> {
    if litellm_ours {
        accounts::delete_resources(state, user, None).await?;
    } else {
        for agent in agents {
            state
                .letta
                .delete_agent_and_archives(agent, &provisioning::agent_tag(user))
                .await?;
        }
    }
    for archive in archives {
        state.letta.delete_archive(archive).await?;
    }
    Ok(true)
}
