//! Provisioning a user's account, as a resumable state machine stored on the profile:
//! `signed_up → litellm_user → letta_provider → letta_agent → ready`.
//!
//! Each step first looks for what an earlier try made (the LiteLLM user by id, the Letta provider
//! by its name, the agent by its name), creates it only when absent, then advances the state with
//! a conditional update. A lease on the profile keeps two entry points from running it at once.
//! A failed step leaves the state where it stopped; any entry point that needs a ready account
//! (login, me, agent status, chat) runs the remaining steps.

use crate::{
    app::{dependency::DependencyError, error::AppError, secret::Secret},
    clients::{
        letta::{Agent, AgentSpec},
        litellm::key_hash,
    },
    domain::{Profile, ProvisioningState, UserId},
    state::AppState,
    store::{Lease, Transition},
};

/// How long one provisioning run (or agent migration) may hold the lease.
pub(crate) const LEASE_SECS: i64 = 60;

/// The `persona` block every new agent starts with.
pub const INITIAL_PERSONA: &str = "I am a personal assistant with long-term memory. I keep what \
    the user tells me about themselves in my memory and use it to help them.";

/// The Letta provider's name for a user.
pub fn provider_name(user: &UserId) -> String {
    format!("user-{user}")
}

/// The name of the user's documents folder (one per user, found again by it).
pub fn folder_name(user: &UserId) -> String {
    format!("files-{user}")
}

/// Deletes every documents folder of the user's (account deletion): found by name, so one
/// whose record was lost goes too.
pub(crate) async fn delete_folders(state: &AppState, user: &UserId) -> Result<(), AppError> {
    for folder in state.letta.folders_named(&folder_name(user)).await? {
        state.letta.delete_folder(&folder).await?;
    }
    Ok(())
}

/// The agent's name for a user.
pub fn agent_name(user: &UserId) -> String {
    format!("agent-{user}")
}

/// The tag every agent of a user carries.
pub fn agent_tag(user: &UserId) -> String {
    format!("user:{user}")
}

/// The prefix of the tag that names the deployment an agent belongs to.
const DEPLOYMENT_TAG_PREFIX: &str = "deployment:";

/// The tag every agent this deployment makes carries.
pub fn deployment_tag(deployment: &str) -> String {
    format!("{DEPLOYMENT_TAG_PREFIX}{deployment}")
}

/// Whose a thing in LiteLLM or Letta is, by the deployment it is marked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This deployment's.
    Ours,
    /// Another deployment's: never touched.
    Other,
    /// Unmarked (made before deployments were marked, or by hand).
    Unmarked,
}

impl Owner {
    /// Who `mark` (a deployment id, when there is one) says owns a thing.
    pub fn of(state: &AppState, mark: Option<&str>) -> Self {
        match mark {
            None => Self::Unmarked,
            Some(d) if d == state.config.deployment_id => Self::Ours,
            Some(_) => Self::Other,
        }
    }

    /// Who an agent's tags say owns it.
    pub fn of_agent(state: &AppState, agent: &Agent) -> Self {
        let mark = agent
            .tags
            .iter()
            .find_map(|t| t.strip_prefix(DEPLOYMENT_TAG_PREFIX));
        Self::of(state, mark)
    }
}

/// The user's agents (by name or tag, each once), except those another deployment made.
pub async fn agents_of(state: &AppState, user: &UserId) -> Result<Vec<Agent>, AppError> {
    let mut agents: Vec<Agent> = state
        .letta
        .find_agents_by_name(&agent_name(user))
        .await?
        .into_iter()
        .chain(state.letta.find_agents_by_tag(&agent_tag(user)).await?)
        .filter(|a| Owner::of_agent(state, a) != Owner::Other)
        .collect();
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    agents.dedup_by(|a, b| a.id == b.id);
    Ok(agents)
}

fn new_key_alias(user: &UserId) -> String {
    // LiteLLM requires key aliases to be unique across all keys.
    format!(
        "user-{user}-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// Runs `work` holding the user's provisioning lease (one run at a time changes the account's
/// agent, provider and keys); 409 `provisioning` with `busy` when another run holds it. The
/// lease is released only by its owner.
pub(crate) async fn with_lease<T, F, Fut>(
    state: &AppState,
    user: &UserId,
    busy: String,
    work: F,
) -> Result<T, AppError>
where
    F: FnOnce(Lease) -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    let Some(lease) = state.store.lock_provisioning(user, LEASE_SECS).await? else {
        return Err(AppError::Provisioning(busy));
    };
    let result = work(lease.clone()).await;
    if let Err(e) = state.store.unlock_provisioning(user, &lease).await {
        tracing::warn!(error = %e, "could not release the provisioning lease; it expires by itself");
    }
    result
}

/// Before a step that changes or deletes something: the lease must still be this run's (it
/// may have expired and been taken by another run), and is renewed.
pub(crate) async fn still_leased(
    state: &AppState,
    user: &UserId,
    lease: &Lease,
) -> Result<(), AppError> {
    if state.store.renew_lease(user, lease).await? {
        Ok(())
    } else {
        Err(AppError::Provisioning(
            "another request took over setting up your account; try again in a few seconds".into(),
        ))
    }
}

/// Runs the remaining steps of a profile's provisioning.
pub async fn resume(state: &AppState, profile: Profile) -> Result<Profile, AppError> {
    let user = profile.user_id.clone();
    let busy = format!(
        "your account is being set up (step: {}); try again in a few seconds",
        profile.state.as_str()
    );
    let result = with_lease(state, &user, busy, |lease| {
        let user = &user;
        async move { run(state, user, &lease).await }
    })
    .await;
    match result {
        Ok(profile) => Ok(profile),
        Err(e) => {
            tracing::warn!(user = %user, error = %e, "provisioning stopped; it resumes on the next request");
            let _ = state
                .store
                .set_profile_field(&user, "provisioning_error", Some(&e.to_string()))
                .await;
            Err(e)
        }
    }
}

/// The starting value of the `human` block: what the user told us at sign-up.
pub fn initial_human_block(display_name: Option<&str>) -> String {
    match display_name {
        Some(n) => format!("Name: {n}"),
        None => "Name: (not told yet)".to_string(),
    }
}

/// Creates the user's agent (fresh memory blocks, no archival memory) on the user's provider.
pub async fn create_agent(state: &AppState, profile: &Profile) -> Result<Agent, AppError> {
    let human = initial_human_block(profile.display_name.as_deref());
    create_agent_with(state, profile, &human, INITIAL_PERSONA).await
}

/// Creates an agent of the configured type for the user, on the user's model, with these
/// memory blocks.
pub async fn create_agent_with(
    state: &AppState,
    profile: &Profile,
    human: &str,
    persona: &str,
) -> Result<Agent, AppError> {
    let user = &profile.user_id;
    let tags = vec![agent_tag(user), deployment_tag(&state.config.deployment_id)];
    let spec = AgentSpec {
        name: &agent_name(user),
        provider_name: &provider_name(user),
        model: &profile.model,
        human,
        persona,
        tags: &tags,
    };
    Ok(state.letta.create_agent(&spec).await?)
}

/// A key made earlier in this run (with its alias), so the next step need not make another.
type FreshKey = Option<(Secret, String)>;

/// Runs steps until the profile is ready, re-reading it after each (another run may move it).
async fn run(state: &AppState, user: &UserId, lease: &Lease) -> Result<Profile, AppError> {
    let mut fresh_key: FreshKey = None;
    loop {
        let profile = state
            .store
            .get_profile(user)
            .await?
            .ok_or_else(|| AppError::NotFound("no account for this user".into()))?;
        if profile.state != ProvisioningState::Ready {
            still_leased(state, user, lease).await?;
        }
        let (next, transition) = match profile.state {
            ProvisioningState::Ready => return Ok(profile),
            ProvisioningState::SignedUp => {
                fresh_key = litellm_user(state, &profile).await?;
                (ProvisioningState::LitellmUser, Transition::default())
            }
            ProvisioningState::LitellmUser => (
                ProvisioningState::LettaProvider,
                letta_provider(state, user, fresh_key.take()).await?,
            ),
            ProvisioningState::LettaProvider => (
                ProvisioningState::LettaAgent,
                letta_agent(state, &profile).await?,
            ),
            ProvisioningState::LettaAgent => (ProvisioningState::Ready, Transition::default()),
        };
        if !state
            .store
            .advance_profile(user, profile.state, next, transition)
            .await?
        {
            tracing::info!(user = %user, "provisioning state moved under us; re-reading");
        }
    }
}

/// The LiteLLM user, unless it exists, with the default budget (0 while the email is not
/// confirmed); its first key when made here.
async fn litellm_user(state: &AppState, profile: &Profile) -> Result<FreshKey, AppError> {
    let user = &profile.user_id;
    if state.litellm.user_info(user.as_str()).await?.is_some() {
        return Ok(None);
    }
    let budget = &state.config.budget;
    let amount = if profile.awaiting_confirmation {
        0.0
    } else {
        budget.default_budget
    };
    let alias = new_key_alias(user);
    match state
        .litellm
        .new_user(user.as_str(), &alias, amount, &budget.duration)
        .await
    {
        Ok(created) => Ok(Some((created.key, alias))),
        // Created by a try whose answer was lost: the next step makes a key.
        Err(DependencyError::Status {
            status: 400, body, ..
        }) if body.contains("already exists") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The BYOK provider `user-<id>` holding the user's key (created, or its key rotated), and no
/// other key of the user's left in LiteLLM.
async fn letta_provider(
    state: &AppState,
    user: &UserId,
    fresh_key: FreshKey,
) -> Result<Transition, AppError> {
    let (key, alias) = match fresh_key {
        Some(k) => k,
        None => {
            let alias = new_key_alias(user);
            (
                state.litellm.generate_key(user.as_str(), &alias).await?,
                alias,
            )
        }
    };
    let name = provider_name(user);
    let base_url = format!("{}/v1", state.config.letta.litellm_url_for_letta);
    let provider = match state.letta.find_provider(&name).await? {
        Some(p) => {
            state.letta.update_provider_key(&p.id, &key).await?;
            p
        }
        None => state.letta.create_provider(&name, &key, &base_url).await?,
    };
    // Keys other than the provider's are leftovers of earlier tries.
    let hash = key_hash(&key);
    if let Some(info) = state.litellm.user_info(user.as_str()).await? {
        let stale: Vec<String> = info
            .keys
            .into_iter()
            .map(|k| k.token)
            .filter(|t| *t != hash)
            .collect();
        state.litellm.delete_keys(&stale).await?;
    }
    Ok(Transition {
        set: vec![
            ("letta_provider_id", provider.id),
            ("litellm_key_alias", alias),
            ("litellm_key_hash", hash),
        ],
    })
}

/// Exactly one agent per user: found by name or created; extras from raced tries are removed.
async fn letta_agent(state: &AppState, profile: &Profile) -> Result<Transition, AppError> {
    let mut existing = state
        .letta
        .find_agents_by_name(&agent_name(&profile.user_id))
        .await?;
    let agent = if existing.is_empty() {
        create_agent(state, profile).await?
    } else {
        let keep = existing.remove(0);
        for extra in existing {
            state
                .letta
                .delete_agent_and_archives(&extra.id, &agent_tag(&profile.user_id))
                .await?;
        }
        keep
    };
    let agent_type = agent
        .agent_type
        .unwrap_or_else(|| state.config.letta.agent_type.clone());
    Ok(Transition {
        set: vec![
            ("letta_agent_id", agent.id),
            ("letta_agent_type", agent_type),
        ],
    })
}
