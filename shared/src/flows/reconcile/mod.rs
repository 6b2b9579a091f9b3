//! The reconciler: checks, user by user, that Supabase Auth, DynamoDB, LiteLLM and Letta agree,
//! and that every LLM call billed to a user's agent key belongs to a stored turn that recorded
//! what it cost. With `fix`, repairs what is safe (see [`Kind`]); a report names users and
//! resources by id and counts, never keys or text.
//!
//! Each user's repairs run under the provisioning lease, so they never race a request that is
//! setting up, migrating or deleting the same account; a user whose lease is held is skipped.

use std::collections::{BTreeSet, HashSet};

use futures_util::{StreamExt, stream};
use serde::Serialize;

mod billing;

use billing::{billing, epoch_ms, now_ms};

use crate::{
    app::{
        clock::{now_epoch, now_rfc3339},
        error::AppError,
    },
    clients::letta::{Agent, Listing, Named},
    domain::{ProvisioningState, UserId},
    flows::{
        accounts,
        provisioning::{self, Owner, agent_name, provider_name},
    },
    state::AppState,
    store::Transition,
};

/// Users checked at once.
const CONCURRENCY: usize = 4;
/// Page size when listing Supabase users and LiteLLM users.
const PAGE: u32 = 100;

/// Which users to check.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every user any of the systems knows.
    All,
    /// Only these.
    Users(Vec<UserId>),
}

/// What one run found (and fixed).
#[derive(Debug, Serialize)]
pub struct Report {
    /// When the run started.
    pub started_at: String,
    /// Whether repairs were made.
    pub fix: bool,
    /// Users checked.
    pub users_checked: usize,
    /// Supabase users that never used the backend (no profile and nothing else; in scope
    /// `Users`, counted among those): not a problem, the first request sets them up.
    pub identities_without_profile: usize,
    /// Users skipped because a request held their lease.
    pub skipped_busy: Vec<String>,
    /// Turns too recent to compare with LiteLLM's spend logs yet.
    pub unsettled_turns: usize,
    /// What disagrees.
    pub findings: Vec<Finding>,
    /// Users whose check could not finish (a dependency failed); the next run retries.
    pub errors: Vec<CheckError>,
}

impl Report {
    /// Findings left unfixed.
    pub fn open(&self) -> usize {
        self.findings.iter().filter(|f| !f.fixed).count()
    }
}

/// A user whose check failed.
#[derive(Debug, Serialize)]
pub struct CheckError {
    /// The user.
    pub user: String,
    /// The error (our own message, no upstream text).
    pub error: String,
}

/// One disagreement about one user.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// The user.
    pub user: String,
    /// What disagrees.
    #[serde(flatten)]
    pub kind: Kind,
    /// Repaired in this run.
    pub fixed: bool,
}

/// The kinds of disagreement, and what `fix` does about each.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// LiteLLM or Letta hold things of this deployment's for a user without a profile (an
    /// account deletion that stopped part way). Fix: delete them, once older than the grace
    /// period.
    Orphaned {
        /// A LiteLLM user (with this many keys).
        litellm_keys: Option<usize>,
        /// A Letta provider.
        letta_provider: bool,
        /// Letta agents.
        letta_agents: Vec<String>,
        /// Letta archives.
        letta_archives: Vec<String>,
    },
    /// Things named for a user without a profile that carry no deployment's mark (made
    /// before deployments were marked, or by hand), with no LiteLLM user of this deployment's
    /// to prove them this deployment's: they may be another's, so they are only reported.
    Unproven {
        /// An unmarked LiteLLM user.
        litellm_user: bool,
        /// A Letta provider (with that LiteLLM user, or none).
        letta_provider: bool,
        /// Unmarked Letta agents.
        letta_agents: Vec<String>,
    },
    /// A profile whose Supabase user is gone (deleted in Supabase, or a deletion that
    /// stopped). Fix: delete the rest of the account.
    NoIdentity,
    /// Provisioning stopped and no request resumed it within the grace period.
    /// Fix: resume it.
    HalfProvisioned {
        /// Where it stopped.
        state: &'static str,
    },
    /// A ready account pointing at things that no longer exist. Fix: its provisioning goes
    /// back to the first step whose result is missing and runs again (a new LiteLLM user,
    /// key and provider, or agent; a rebuilt agent starts with fresh memory, its old one is
    /// gone anyway).
    Broken {
        /// What is missing: `litellm_user`, `litellm_key`, `letta_provider`, `letta_agent`.
        missing: Vec<&'static str>,
    },
    /// Keys of the user's other than the agent's (leftovers of earlier provisioning tries).
    /// Fix: delete them.
    StaleKeys {
        /// How many.
        count: usize,
    },
    /// Agents of the user's other than the profile's (raced or interrupted tries).
    /// Fix: delete them with their archives.
    ExtraAgents {
        /// Their ids.
        agents: Vec<String>,
    },
    /// Archives named for the user's agent but attached to no agent of the user's.
    /// Fix: delete them.
    OrphanArchives {
        /// Their ids.
        archives: Vec<String>,
    },
    /// User messages still `pending` long after their turn must have ended (its invocation
    /// died). Fix: mark them `failed`, as the turn would have.
    StuckMessages {
        /// Their ids.
        messages: Vec<String>,
    },
    /// A complete reply whose calls LiteLLM billed otherwise than it recorded (or some of
    /// whose calls LiteLLM has no record of). Only reported: it is an error somewhere.
    TurnBilling {
        /// The reply (message id).
        reply: String,
        /// What the reply recorded, USD.
        stored_usd: f64,
        /// What LiteLLM billed for its calls, USD.
        billed_usd: f64,
        /// The reply's LLM calls.
        calls: usize,
        /// Of those, the ones LiteLLM billed.
        billed_calls: usize,
    },
    /// A day whose recorded usage is not what LiteLLM billed the user that day (calls billed
    /// that no turn or title recorded: a turn whose usage could not be written, a message
    /// Letta answered after the backend gave up on it; or calls billed twice). Fix: the day's
    /// usage records what LiteLLM billed (the finding stays in the report for the operator).
    DayBilling {
        /// The day (UTC).
        day: String,
        /// What the day's usage recorded, USD.
        recorded_usd: f64,
        /// What LiteLLM billed, USD.
        billed_usd: f64,
    },
}

/// Checks every user in `scope`, repairing what is safe when `fix`.
pub async fn reconcile(state: &AppState, scope: Scope, fix: bool) -> Result<Report, AppError> {
    let started_at = now_rfc3339();
    let identities = identities(state).await?;
    let identities = &identities;
    let everyone = matches!(scope, Scope::All);
    let users: Vec<UserId> = match scope {
        Scope::Users(users) => users,
        Scope::All => known_users(state).await?.into_iter().collect(),
    };
    let mut report = Report {
        started_at,
        fix,
        users_checked: users.len(),
        identities_without_profile: 0,
        skipped_busy: Vec::new(),
        unsettled_turns: 0,
        findings: Vec::new(),
        errors: Vec::new(),
    };
    let checked: HashSet<&str> = users.iter().map(UserId::as_str).collect();
    let mut results = stream::iter(users.iter())
        .map(|user| async move {
            let has_identity = identities.contains(user.as_str());
            (
                user,
                Box::pin(check_user(state, user, has_identity, fix)).await,
            )
        })
        .buffer_unordered(CONCURRENCY);
    while let Some((user, result)) = results.next().await {
        match result {
            Ok(Checked::Busy) => report.skipped_busy.push(user.to_string()),
            Ok(Checked::Nothing) => {
                report.identities_without_profile += usize::from(identities.contains(user.as_str()))
            }
            Ok(Checked::Done {
                findings,
                unsettled,
            }) => {
                report.unsettled_turns += unsettled;
                report
                    .findings
                    .extend(findings.into_iter().map(|(kind, fixed)| Finding {
                        user: user.to_string(),
                        kind,
                        fixed,
                    }));
            }
            Err(e) => report.errors.push(CheckError {
                user: user.to_string(),
                error: e.to_string(),
            }),
        }
    }
    drop(results);
    // Supabase users nobody else knows were not checked: they never used the backend.
    if everyone {
        report.identities_without_profile += identities
            .iter()
            .filter(|id| !checked.contains(id.as_str()))
            .count();
    }
    report.findings.sort_by(|a, b| a.user.cmp(&b.user));
    tracing::info!(
        users = report.users_checked,
        findings = report.findings.len(),
        open = report.open(),
        errors = report.errors.len(),
        "reconciled"
    );
    Ok(report)
}

/// The ids of every Supabase user.
async fn identities(state: &AppState) -> Result<HashSet<String>, AppError> {
    let mut ids = HashSet::new();
    for page in 1.. {
        let users = state.supabase.admin_list_users(page, PAGE).await?;
        let last = users.len() < PAGE as usize;
        ids.extend(users.into_iter().map(|u| u.id));
        if last {
            return Ok(ids);
        }
    }
    Ok(ids)
}

/// Every user that has a profile or anything in LiteLLM or Letta (named the backend's way).
async fn known_users(state: &AppState) -> Result<BTreeSet<UserId>, AppError> {
    let mut users: BTreeSet<UserId> = state.store.profile_ids().await?.into_iter().collect();
    for page in 1.. {
        let ids = state.litellm.user_ids(page, PAGE).await?;
        let last = ids.len() < PAGE as usize;
        users.extend(ids.iter().filter_map(|id| UserId::parse(id).ok()));
        if last {
            break;
        }
    }
    let owner = |named: &Named, prefix: &str, suffix: &str| {
        named
            .name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|id| UserId::parse(id).ok())
    };
    for (listing, prefix, suffix) in [
        (Listing::Providers, "user-", ""),
        (Listing::Agents, "agent-", ""),
        (Listing::Archives, "agent-", "'s Archive"),
    ] {
        let named = state.letta.list_all(listing).await?;
        users.extend(named.iter().filter_map(|n| owner(n, prefix, suffix)));
    }
    Ok(users)
}

/// The name Letta gives the archive of a user's agent.
fn archive_name(user: &UserId) -> String {
    format!("{}'s Archive", agent_name(user))
}

/// What checking one user gave.
enum Checked {
    /// A request holds the user's lease.
    Busy,
    /// No profile and nothing anywhere (maybe a Supabase user that never used the backend).
    Nothing,
    /// Checked: the findings (with whether each was fixed).
    Done {
        findings: Vec<(Kind, bool)>,
        unsettled: usize,
    },
}

async fn check_user(
    state: &AppState,
    user: &UserId,
    has_identity: bool,
    fix: bool,
) -> Result<Checked, AppError> {
    let Some(profile) = state.store.get_profile(user).await? else {
        return orphaned(state, user, fix).await;
    };
    if profile.lock_until.is_some_and(|until| until >= now_epoch()) {
        return Ok(Checked::Busy);
    }
    let now = now_ms();
    let settled = past_grace(state);

    if !has_identity {
        if !settled(&profile.created_at) {
            return Ok(done(Vec::new()));
        }
        // The listing is paged by offset, newest first: a sign-up or a deletion during the scan
        // shifts the pages, and a live user can be missed. Only Supabase's 404 for this very
        // user says the identity is gone; anything else is checked as usual (or an error).
        if state
            .supabase
            .admin_get_user(user.as_str())
            .await?
            .is_none()
        {
            let deletion = Box::pin(accounts::delete_everything(state, user));
            let fixed = fix && repair(state, user, deletion).await?;
            return Ok(done(vec![(Kind::NoIdentity, fixed)]));
        }
    }
    if profile.state != ProvisioningState::Ready {
        if !settled(&profile.updated_at) {
            return Ok(done(Vec::new()));
        }
        let kind = Kind::HalfProvisioned {
            state: profile.state.as_str(),
        };
        let fixed = fix
            && match provisioning::resume(state, profile).await {
                Ok(_) => true,
                Err(AppError::Provisioning(_)) => false,
                Err(e) => return Err(e),
            };
        return Ok(done(vec![(kind, fixed)]));
    }

    let mut findings = Vec::new();
    let litellm = state.litellm.user_info(user.as_str()).await?;
    let provider = state.letta.find_provider(&provider_name(user)).await?;
    let agents = provisioning::agents_of(state, user).await?;
    let agent_id = profile.letta_agent_id.clone().unwrap_or_default();

    let mut missing = Vec::new();
    if litellm.is_none() {
        missing.push("litellm_user");
    }
    let keys = litellm.as_ref().map(|i| i.keys.clone()).unwrap_or_default();
    let own_key = profile.litellm_key_hash.as_deref().unwrap_or_default();
    if litellm.is_some() && !keys.iter().any(|k| k.token == own_key) {
        missing.push("litellm_key");
    }
    if provider.is_none() {
        missing.push("letta_provider");
    }
    if !agents.iter().any(|a| a.id == agent_id) {
        missing.push("letta_agent");
    }
    if !missing.is_empty() {
        let back_to = if missing.contains(&"litellm_user") {
            ProvisioningState::SignedUp
        } else if missing.contains(&"litellm_key") || missing.contains(&"letta_provider") {
            ProvisioningState::LitellmUser
        } else {
            ProvisioningState::LettaProvider
        };
        let fixed = fix && Box::pin(rebuild(state, user, back_to)).await?;
        // The rest is judged on the next run, against what the rebuild made.
        findings.push((Kind::Broken { missing }, fixed));
        return Ok(done(findings));
    }

    // Keys other than the agent's, except short-lived ones not expired yet (a title call's).
    let stale: Vec<String> = keys
        .iter()
        .filter(|k| k.token != own_key && Owner::of(state, k.deployment()) != Owner::Other)
        .filter(|k| {
            k.expires
                .as_deref()
                .is_none_or(|e| epoch_ms(e).is_none_or(|t| t <= now))
        })
        .map(|k| k.token.clone())
        .collect();
    let extra: Vec<String> = agents
        .into_iter()
        .filter(|a| a.id != agent_id && a.created_at.as_deref().is_none_or(&settled))
        .map(|a| a.id)
        .collect();
    // Archives named for the user's agent that no agent has attached (an old agent's archive
    // may be the live agent's too: it goes only when no agent has it).
    let mut loose = Vec::new();
    for archive in state.letta.find_archives(&archive_name(user)).await? {
        if archive.created_at.as_deref().is_none_or(&settled)
            && state.letta.archive_in_use(&archive.id).await? == Some(false)
        {
            loose.push(archive.id);
        }
    }
    if !stale.is_empty() || !extra.is_empty() || !loose.is_empty() {
        let fixed = fix
            && repair(state, user, async {
                state.litellm.delete_keys(&stale).await?;
                for agent in &extra {
                    state.letta.delete_agent_and_archives(agent).await?;
                }
                for archive in &loose {
                    state.letta.delete_archive(archive).await?;
                }
                Ok(())
            })
            .await?;
        if !stale.is_empty() {
            findings.push((Kind::StaleKeys { count: stale.len() }, fixed));
        }
        if !extra.is_empty() {
            findings.push((Kind::ExtraAgents { agents: extra }, fixed));
        }
        if !loose.is_empty() {
            findings.push((Kind::OrphanArchives { archives: loose }, fixed));
        }
    }

    let mut unsettled = 0;
    if litellm.is_some() {
        let (billing, skipped) = billing(state, &profile, fix).await?;
        findings.extend(billing);
        unsettled = skipped;
    }
    Ok(Checked::Done {
        findings,
        unsettled,
    })
}

fn done(findings: Vec<(Kind, bool)>) -> Checked {
    Checked::Done {
        findings,
        unsettled: 0,
    }
}

/// Runs a repair holding the user's lease; false when a request holds it (the next run
/// tries again).
async fn repair(
    state: &AppState,
    user: &UserId,
    work: impl Future<Output = Result<(), AppError>>,
) -> Result<bool, AppError> {
    let busy = "the account is busy".to_string();
    match provisioning::with_lease(state, user, busy, |_| work).await {
        Ok(()) => Ok(true),
        Err(AppError::Provisioning(_)) => Ok(false),
        Err(e) => Err(e),
    }
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

/// Whether a time (RFC 3339) is older than the grace period: younger things may still be in
/// the middle of a request.
fn past_grace(state: &AppState) -> impl Fn(&str) -> bool {
    let grace_ms = state.config.reconcile.grace.as_millis() as i64;
    let now = now_ms();
    move |at| epoch_ms(at).is_some_and(|t| now - t >= grace_ms)
}

/// Things of a user without a profile. Only what is proven this deployment's, and older than
/// the grace period, is deleted: the LiteLLM user marked with this deployment (account
/// deletion removes it last, so it outlives every other leftover), with its keys, provider and
/// archives, and the agents tagged with this deployment (or unmarked ones, when the LiteLLM
/// user is this deployment's). Another deployment's things are not reported at all; unmarked
/// ones that cannot be proven this deployment's are reported and left alone.
async fn orphaned(state: &AppState, user: &UserId, fix: bool) -> Result<Checked, AppError> {
    let litellm = state.litellm.user_info(user.as_str()).await?;
    let record = litellm.as_ref().and_then(|i| i.user_info.as_ref());
    let litellm_owner = Owner::of(state, record.and_then(|r| r.deployment()));
    let litellm_created = record.and_then(|r| r.created_at.clone());
    let past_grace = past_grace(state);
    let settled = |at: Option<&str>| at.is_none_or(&past_grace);
    let provider = state.letta.find_provider(&provider_name(user)).await?;
    let agents: Vec<Agent> = provisioning::agents_of(state, user).await?;
    let archives: Vec<String> = state
        .letta
        .find_archives(&archive_name(user))
        .await?
        .into_iter()
        .filter(|a| settled(a.created_at.as_deref()))
        .map(|a| a.id)
        .collect();
    let litellm_ours = litellm_owner == Owner::Ours;
    let (ours, unproven): (Vec<Agent>, Vec<Agent>) =
        agents
            .into_iter()
            .partition(|a| match Owner::of_agent(state, a) {
                Owner::Ours => true,
                _ => litellm_ours,
            });
    if litellm_owner == Owner::Other && ours.is_empty() {
        // Another deployment's user (an identity both deployments share): none of ours.
        return Ok(Checked::Nothing);
    }
    let (litellm_user, letta_provider) = (
        litellm_owner == Owner::Unmarked && litellm.is_some(),
        !litellm_ours && provider.is_some(),
    );
    let unproven = (litellm_user || letta_provider || !unproven.is_empty()).then(|| {
        let letta_agents = unproven.into_iter().map(|a| a.id).collect();
        let kind = Kind::Unproven {
            litellm_user,
            letta_provider,
            letta_agents,
        };
        (kind, false)
    });
    let litellm = litellm.filter(|_| litellm_ours);
    let provider = provider.filter(|_| litellm_ours);
    let archives = if litellm_ours { archives } else { Vec::new() };
    if litellm.is_none() && provider.is_none() && ours.is_empty() && archives.is_empty() {
        return Ok(match unproven {
            None => Checked::Nothing,
            Some(finding) => done(vec![finding]),
        });
    }
    let young = !settled(litellm_created.as_deref())
        || ours.iter().any(|a| !settled(a.created_at.as_deref()));
    if young {
        // A request may be in the middle of making or deleting the account.
        return Ok(done(Vec::new()));
    }
    let agent_ids: Vec<String> = ours.into_iter().map(|a| a.id).collect();
    let fixed = fix && {
        if litellm_ours {
            // What account deletion would have deleted (another deployment's agents aside).
            accounts::delete_resources(state, user, None).await?;
        } else {
            for agent in &agent_ids {
                state.letta.delete_agent_and_archives(agent).await?;
            }
        }
        for archive in &archives {
            state.letta.delete_archive(archive).await?;
        }
        true
    };
    let mut findings: Vec<(Kind, bool)> = unproven.into_iter().collect();
    findings.push((
        Kind::Orphaned {
            litellm_keys: litellm.map(|i| i.keys.len()),
            letta_provider: provider.is_some(),
            letta_agents: agent_ids,
            letta_archives: archives,
        },
        fixed,
    ));
    Ok(done(findings))
}
