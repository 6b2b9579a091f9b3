//! The check of one user with a profile: the identity, provisioning, the things the profile
//! points at, leftovers of earlier tries, and (for a ready account) the spend check.

use super::{
    Kind, Part,
    billing::billing,
    check::{Checked, archive_name, done, past_grace, repair},
    orphans,
};
use crate::{
    app::{
        clock::{epoch_ms, now_epoch, now_ms},
        error::AppError,
    },
    clients::{
        letta::Agent,
        litellm::{KeyRecord, UserInfo},
    },
    domain::{Profile, ProvisioningState, UserId},
    flows::{
        accounts,
        provisioning::{self, Owner, provider_name},
    },
    state::AppState,
    store::Transition,
};

/// Checks one user; `has_identity` is whether the Supabase listing had them.
pub(super) async fn check_user(
    state: &AppState,
    user: &UserId,
    has_identity: bool,
    fix: bool,
) -> Result<Checked, AppError> {
    let Some(profile) = state.store.get_profile(user).await? else {
        return orphans::orphaned(state, user, fix).await;
    };
    if profile.lock_until.is_some_and(|until| until >= now_epoch()) {
        return Ok(Checked::Busy);
    }
    let settled = past_grace(state);
    if !has_identity {
        if !settled(&profile.created_at) {
            return Ok(done(Vec::new()));
        }
        if let Some(finding) = identity_gone(state, user, fix).await? {
            return Ok(done(vec![finding]));
        }
    }
    if profile.state != ProvisioningState::Ready {
        if !settled(&profile.updated_at) {
            return Ok(done(Vec::new()));
        }
        return Ok(done(vec![half_provisioned(state, profile, fix).await?]));
    }
    Box::pin(check_ready(state, &profile, fix)).await
}

/// `NoIdentity` when Supabase says this user is gone. The listing is paged by offset, newest
/// first: a sign-up or a deletion during the scan shifts the pages, and a live user can be
/// missed. Only Supabase's 404 for this very user says the identity is gone.
async fn identity_gone(
    state: &AppState,
    user: &UserId,
    fix: bool,
) -> Result<Option<(Kind, bool)>, AppError> {
    if state
        .supabase
        .admin_get_user(user.as_str())
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let deletion = Box::pin(accounts::delete_everything(state, user));
    let fixed = fix && repair(state, user, deletion).await?;
    Ok(Some((Kind::NoIdentity, fixed)))
}

/// Provisioning that stopped: resumed when fixing.
async fn half_provisioned(
    state: &AppState,
    profile: Profile,
    fix: bool,
) -> Result<(Kind, bool), AppError> {
    let kind = Kind::HalfProvisioned {
        state: profile.state.as_str(),
    };
    let fixed = fix
        && match provisioning::resume(state, profile).await {
            Ok(_) => true,
            Err(AppError::Provisioning(_)) => false,
            Err(e) => return Err(e),
        };
    Ok((kind, fixed))
}

/// A ready account: what it points at must exist; leftovers go; its spend must agree.
async fn check_ready(state: &AppState, profile: &Profile, fix: bool) -> Result<Checked, AppError> {
    let user = &profile.user_id;
    let litellm = state.litellm.user_info(user.as_str()).await?;
    let provider = state.letta.find_provider(&provider_name(user)).await?;
    let agents = provisioning::agents_of(state, user).await?;
    let own = Own {
        key: profile.litellm_key_hash.as_deref().unwrap_or_default(),
        agent: profile.letta_agent_id.as_deref().unwrap_or_default(),
    };
    let keys = litellm
        .as_ref()
        .map(|i| i.keys.as_slice())
        .unwrap_or_default();
    let missing = own.missing(litellm.as_ref(), provider.is_some(), &agents);
    if let Some(first) = missing.iter().min() {
        let fixed = fix && Box::pin(rebuild(state, user, first.made_by())).await?;
        // The rest is judged on the next run, against what the rebuild made.
        return Ok(done(vec![(Kind::Broken { missing }, fixed)]));
    }
    let mut findings = leftovers(state, user, &own, keys, agents, fix).await?;
    let mut unsettled = 0;
    if litellm.is_some() {
        let (billing, skipped) = billing(state, profile, fix).await?;
        findings.extend(billing);
        unsettled = skipped;
    }
    Ok(Checked::Done {
        findings,
        unsettled,
    })
}

/// What the profile says is the account's: its key (hash) and its agent.
struct Own<'a> {
    key: &'a str,
    agent: &'a str,
}

impl Own<'_> {
    /// The parts of the account that no longer exist.
    fn missing(&self, litellm: Option<&UserInfo>, provider: bool, agents: &[Agent]) -> Vec<Part> {
        let key = litellm.is_none_or(|i| i.keys.iter().any(|k| k.token == self.key));
        [
            (Part::LitellmUser, litellm.is_some()),
            (Part::LitellmKey, key),
            (Part::LettaProvider, provider),
            (Part::LettaAgent, agents.iter().any(|a| a.id == self.agent)),
        ]
        .into_iter()
        .filter_map(|(part, there)| (!there).then_some(part))
        .collect()
    }
}

/// Keys, agents and archives of earlier tries, deleted (under the lease) when fixing.
async fn leftovers(
    state: &AppState,
    user: &UserId,
    own: &Own<'_>,
    keys: &[KeyRecord],
    agents: Vec<Agent>,
    fix: bool,
) -> Result<Vec<(Kind, bool)>, AppError> {
    let settled = past_grace(state);
    let now = now_ms();
    // Keys other than the agent's, except short-lived ones not expired yet (a title call's).
    let stale: Vec<String> = keys
        .iter()
        .filter(|k| k.token != own.key && Owner::of(state, k.deployment()) != Owner::Other)
        .filter(|k| {
            k.expires
                .as_deref()
                .is_none_or(|e| epoch_ms(e).is_none_or(|t| t <= now))
        })
        .map(|k| k.token.clone())
        .collect();
    let extra: Vec<String> = agents
        .into_iter()
        .filter(|a| a.id != own.agent && a.created_at.as_deref().is_none_or(&settled))
        .map(|a| a.id)
        .collect();
    // Archives named for the user's agent that no agent has attached (an old agent's archive
    // may be the live agent's too: it goes only when no agent has it).
    let mut loose = Vec::new();
    for archive in state.letta.find_archives(&archive_name(user)).await? {
        if archive.created_at.as_deref().is_none_or(&settled)
            && state
                .letta
                .archive_in_use(&archive.id, &provisioning::agent_tag(user))
                .await?
                == Some(false)
        {
            loose.push(archive.id);
        }
    }
    if stale.is_empty() && extra.is_empty() && loose.is_empty() {
        return Ok(Vec::new());
    }
    let fixed = fix
        && repair(state, user, async {
            state.litellm.delete_keys(&stale).await?;
            for agent in &extra {
                state
                    .letta
                    .delete_agent_and_archives(agent, &provisioning::agent_tag(user))
                    .await?;
            }
            for archive in &loose {
                state.letta.delete_archive(archive).await?;
            }
            Ok(())
        })
        .await?;
    let kinds = [
        (!stale.is_empty()).then_some(Kind::StaleKeys { count: stale.len() }),
        (!extra.is_empty()).then_some(Kind::ExtraAgents { agents: extra }),
        (!loose.is_empty()).then_some(Kind::OrphanArchives { archives: loose }),
    ];
    Ok(kinds.into_iter().flatten().map(|k| (k, fixed)).collect())
}

/// Sends a ready account's provisioning back to `step` (under the lease) and runs it again.
async fn rebuild(
    state: &AppState,
    user: &UserId,
    step: ProvisioningState,
) -> Result<bool, AppError> {
    let roll_back = Box::pin(async {
        let moved = state
            .store
            .advance_profile(user, ProvisioningState::Ready, step, Transition::default())
            .await?;
        if moved {
            Ok(())
        } else {
            Err(AppError::Provisioning(
                "the account changed meanwhile".into(),
            ))
        }
    });
    let rolled_back = repair(state, user, roll_back).await?;
    if !rolled_back {
        return Ok(false);
    }
    let profile = state
        .store
        .get_profile(user)
        .await?
        .ok_or_else(|| AppError::NotFound("no account for this user".into()))?;
    match provisioning::resume(state, profile).await {
        Ok(_) => Ok(true),
        Err(AppError::Provisioning(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
