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
mod check;
mod orphans;
mod user;

use check::Checked;
use user::check_user;

use crate::{
    app::{clock::now_rfc3339, error::AppError},
    clients::letta::{Listing, Named},
    domain::{ProvisioningState, UserId},
    state::AppState,
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
        /// What is missing.
        missing: Vec<Part>,
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

/// A part of a ready account, in the order provisioning makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The LiteLLM user.
    LitellmUser,
    /// The agent's LiteLLM key.
    LitellmKey,
    /// The Letta provider holding that key.
    LettaProvider,
    /// The Letta agent.
    LettaAgent,
}

impl Part {
    /// The provisioning step that makes this part again (and what follows it).
    fn made_by(self) -> ProvisioningState {
        match self {
            Self::LitellmUser => ProvisioningState::SignedUp,
            Self::LitellmKey | Self::LettaProvider => ProvisioningState::LitellmUser,
            Self::LettaAgent => ProvisioningState::LettaProvider,
        }
    }
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
