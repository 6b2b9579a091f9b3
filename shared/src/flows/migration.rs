//! Moving a user's agent to the configured architecture (`LETTA_AGENT_TYPE`) without losing its
//! memory: a new agent with the same memory blocks, the old agent's archives attached to it,
//! the profile switched, then the old agent deleted (its archives stay: the new agent has them).
//! Each step finds what an earlier try made, so a failure at any point leaves a working account
//! (the profile points at one agent or the other) and the next request finishes the move.

use crate::{
    app::error::AppError,
    clients::{http::absent_on_404, letta::Agent},
    domain::{Profile, UserId},
    flows::provisioning::{
        INITIAL_PERSONA, agents_of, create_agent_with, initial_human_block, still_leased,
        with_lease,
    },
    state::AppState,
    store::Lease,
};

/// The profile with its agent of the configured type, moving it there first when needed.
/// Costs nothing once the profile records the configured type.
pub async fn ensure_current_type(state: &AppState, profile: Profile) -> Result<Profile, AppError> {
    let target = state.config.letta.agent_type.as_str();
    if profile.letta_agent_type.as_deref() == Some(target) {
        return Ok(profile);
    }
    let user = profile.user_id.clone();
    let busy = "your assistant is being upgraded; try again in a few seconds".to_string();
    let user = &user;
    with_lease(state, user, busy, |lease| async move {
        migrate(state, user, target, &lease).await
    })
    .await
}

async fn migrate(
    state: &AppState,
    user: &UserId,
    target: &str,
    lease: &Lease,
) -> Result<Profile, AppError> {
    let profile = reread(state, user).await?;
    let old_id = profile
        .letta_agent_id
        .clone()
        .ok_or_else(|| AppError::Internal("a ready profile without an agent".into()))?;
    let old = state.letta.get_agent(&old_id).await?;
    if let Some(agent) = &old
        && agent.agent_type.as_deref() == Some(target)
    {
        // Only the record was missing (a profile made before agent types were recorded).
        state.store.set_profile_agent(user, &old_id, target).await?;
        return reread(state, user).await;
    }
    let successor = successor(state, &profile, old.as_ref(), target).await?;
    let archives = absent_on_404(state.letta.agent_archive_ids(&old_id).await)?.unwrap_or_default();
    for archive in &archives {
        state.letta.attach_archive(&successor.id, archive).await?;
    }
    // The user's documents too.
    if let Some(folder) = &profile.letta_folder_id {
        state.letta.attach_folder(&successor.id, folder).await?;
    }
    state
        .store
        .set_profile_agent(user, &successor.id, target)
        .await?;
    if old.is_some() {
        // The agent only: its archives now belong to the successor.
        still_leased(state, user, lease).await?;
        state.letta.delete_agent(&old_id).await?;
    }
    tracing::info!(
        user = %user, from = ?old.and_then(|a| a.agent_type), to = target,
        archives = archives.len(), "agent moved to the configured architecture"
    );
    reread(state, user).await
}

/// The new agent: one an earlier try made, or a new one with the old agent's memory blocks.
async fn successor(
    state: &AppState,
    profile: &Profile,
    old: Option<&Agent>,
    target: &str,
) -> Result<Agent, AppError> {
    let user = &profile.user_id;
    let earlier = agents_of(state, user).await?.into_iter().find(|a| {
        Some(a.id.as_str()) != old.map(|o| o.id.as_str()) && a.agent_type.as_deref() == Some(target)
    });
    if let Some(agent) = earlier {
        return Ok(agent);
    }
    let blocks = match old {
        Some(agent) => state.letta.blocks(&agent.id).await?,
        None => Vec::new(),
    };
    let value = |label: &str| {
        blocks
            .iter()
            .find(|b| b.label == label)
            .map(|b| b.value.clone())
    };
    let human =
        value("human").unwrap_or_else(|| initial_human_block(profile.display_name.as_deref()));
    let persona = value("persona").unwrap_or_else(|| INITIAL_PERSONA.to_string());
    create_agent_with(state, profile, &human, &persona).await
}

async fn reread(state: &AppState, user: &UserId) -> Result<Profile, AppError> {
    state
        .store
        .get_profile(user)
        .await?
        .ok_or_else(|| AppError::NotFound("no account for this user".into()))
}
