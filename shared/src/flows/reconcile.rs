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

use crate::{
    app::{
        clock::{now_epoch, now_rfc3339},
        error::AppError,
    },
    clients::{
        letta::{Listing, Named},
        litellm::SpendLog,
    },
    domain::{Message, MessageStatus, Profile, ProvisioningState, Role, Usage, UserId},
    flows::{
        accounts,
        provisioning::{self, agent_name, agent_tag, provider_name},
    },
    state::AppState,
};

/// Users checked at once.
const CONCURRENCY: usize = 4;
/// Clock difference tolerated between the backend and LiteLLM, ms.
const SLACK_MS: i64 = 200;
/// How long Letta may go on with a turn the backend gave up on (stream cut, timeout), ms.
const ABANDONED_TURN_MS: i64 = 10 * 60_000;
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
    /// LiteLLM or Letta hold things of a user without a profile (an account deletion that
    /// stopped part way, or things made outside the backend). Fix: delete them.
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
    /// A profile whose Supabase user is gone (deleted in Supabase, or a deletion that
    /// stopped). Fix: delete the rest of the account.
    NoIdentity,
    /// Provisioning stopped and no request resumed it within the grace period.
    /// Fix: resume it.
    HalfProvisioned {
        /// Where it stopped.
        state: &'static str,
    },
    /// A ready account pointing at things that no longer exist. Not fixed: the account's
    /// health endpoint tells the user, and an agent reset rebuilds what can be rebuilt.
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
    /// Turns (one, or several that overlapped) whose stored cost is not what LiteLLM billed
    /// for the calls made during them. Fix, for a turn that did not complete (its reply was
    /// cut, so the backend could not know every call): record what LiteLLM billed. A
    /// complete turn billed differently is only reported: it is an error somewhere.
    TurnBilling {
        /// The replies (message ids).
        replies: Vec<String>,
        /// What the backend recorded, USD.
        stored_usd: f64,
        /// What LiteLLM billed, USD.
        billed_usd: f64,
        /// LLM calls the turns recorded.
        steps: u64,
        /// Calls LiteLLM billed.
        billed_calls: usize,
    },
    /// A day whose recorded usage is not what LiteLLM billed the user that day (calls
    /// billed that no turn or title recorded, or recorded twice). Only reported.
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
    let grace_ms = state.config.reconcile.grace.as_millis() as i64;
    let now = now_ms();
    let settled = |at: &str| epoch_ms(at).is_some_and(|t| now - t >= grace_ms);

    if !has_identity {
        if !settled(&profile.created_at) {
            return Ok(Checked::Done {
                findings: Vec::new(),
                unsettled: 0,
            });
        }
        let deletion = Box::pin(accounts::delete_everything(state, user));
        let fixed = fix && repair(state, user, deletion).await?;
        return Ok(done(vec![(Kind::NoIdentity, fixed)]));
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
    let agents = agents_of(state, user).await?;
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
    if !agents.iter().any(|a| a.0 == agent_id) {
        missing.push("letta_agent");
    }
    if !missing.is_empty() {
        findings.push((Kind::Broken { missing }, false));
    }

    // Keys other than the agent's, except short-lived ones not expired yet (a title call's).
    let stale: Vec<String> = keys
        .iter()
        .filter(|k| k.token != own_key)
        .filter(|k| {
            k.expires
                .as_deref()
                .is_none_or(|e| epoch_ms(e).is_none_or(|t| t <= now))
        })
        .map(|k| k.token.clone())
        .collect();
    let extra: Vec<String> = agents
        .iter()
        .filter(|(id, created)| *id != agent_id && created.as_deref().is_none_or(settled))
        .map(|(id, _)| id.clone())
        .collect();
    let attached: HashSet<String> = if agent_id.is_empty() {
        HashSet::new()
    } else {
        crate::clients::http::absent_on_404(state.letta.agent_archive_ids(&agent_id).await)?
            .unwrap_or_default()
            .into_iter()
            .collect()
    };
    let loose: Vec<String> = state
        .letta
        .find_archives(&archive_name(user))
        .await?
        .into_iter()
        .filter(|a| !attached.contains(&a.id))
        .filter(|a| a.created_at.as_deref().is_none_or(settled))
        .map(|a| a.id)
        .collect();
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

/// The user's agents (by name or tag), with when each was made.
async fn agents_of(
    state: &AppState,
    user: &UserId,
) -> Result<Vec<(String, Option<String>)>, AppError> {
    let mut agents: Vec<(String, Option<String>)> = state
        .letta
        .find_agents_by_name(&agent_name(user))
        .await?
        .into_iter()
        .chain(state.letta.find_agents_by_tag(&agent_tag(user)).await?)
        .map(|a| (a.id, a.created_at))
        .collect();
    agents.sort();
    agents.dedup_by(|a, b| a.0 == b.0);
    Ok(agents)
}

/// Things of a user without a profile.
async fn orphaned(state: &AppState, user: &UserId, fix: bool) -> Result<Checked, AppError> {
    let litellm = state.litellm.user_info(user.as_str()).await?;
    let provider = state.letta.find_provider(&provider_name(user)).await?;
    let agents: Vec<String> = agents_of(state, user)
        .await?
        .into_iter()
        .map(|a| a.0)
        .collect();
    let archives: Vec<String> = state
        .letta
        .find_archives(&archive_name(user))
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    if litellm.is_none() && provider.is_none() && agents.is_empty() && archives.is_empty() {
        return Ok(Checked::Nothing);
    }
    let fixed = fix && {
        accounts::delete_resources(state, user, None).await?;
        for archive in &archives {
            state.letta.delete_archive(archive).await?;
        }
        true
    };
    let kind = Kind::Orphaned {
        litellm_keys: litellm.map(|i| i.keys.len()),
        letta_provider: provider.is_some(),
        letta_agents: agents,
        letta_archives: archives,
    };
    Ok(done(vec![(kind, fixed)]))
}

/// A turn as the spend check sees it: the reply, and the time LiteLLM's calls for it may
/// have started in (ms; [`SLACK_MS`] more on each side allows for the clocks' difference).
struct Window {
    reply: Message,
    start: i64,
    end: i64,
}

/// Compares the user's turns and days of the lookback period with LiteLLM's spend logs:
/// - each group of overlapping turns (several conversations may run at once) must have
///   recorded what the calls made on the agent's key during it cost (its key alias is
///   `user-<id>-…`; a title's short-lived key has none);
/// - each whole day must have recorded, in the day's usage, what LiteLLM billed the user that
///   day (every call: turns and titles). This holds after a user deletes history or a
///   conversation, which removes turns but not the day's usage.
///
/// Returns the findings and how many turns were too recent to judge.
async fn billing(
    state: &AppState,
    profile: &Profile,
    fix: bool,
) -> Result<(Vec<(Kind, bool)>, usize), AppError> {
    let user = &profile.user_id;
    let now = now_ms();
    let settle_ms = state.config.reconcile.settle.as_millis() as i64;
    let since = now - state.config.reconcile.lookback.as_millis() as i64;
    let messages = state.store.messages_since(user, &rfc3339(since)).await?;
    let logs = state
        .litellm
        .spend_logs(
            user.as_str(),
            &litellm_time(since),
            &litellm_time(now + 60_000),
        )
        .await?;
    let calls: Vec<(i64, &SpendLog)> = logs
        .iter()
        .filter(|l| l.spend > 0.0 && l.status.as_deref() != Some("failure"))
        .filter_map(|l| Some((epoch_ms(&l.start_time)?, l)))
        .filter(|(t, _)| *t >= since)
        .collect();
    let alias = format!("user-{user}-");
    let agent_calls: Vec<(i64, &SpendLog)> = calls
        .iter()
        .filter(|(_, l)| l.key_alias().is_some_and(|a| a.starts_with(&alias)))
        .copied()
        .collect();

    let mut findings = Vec::new();
    let mut unsettled = 0;
    let mut open_since = i64::MAX;
    // Each call counts for one group at most (the first whose range, with the slack, holds it).
    let mut taken = vec![false; agent_calls.len()];
    for group in groups(windows(messages, now)) {
        let start = group[0].start - SLACK_MS;
        let end = group.iter().map(|w| w.end).max().unwrap_or(start) + SLACK_MS;
        let inside: Vec<&SpendLog> = agent_calls
            .iter()
            .zip(taken.iter_mut())
            .filter(|((t, _), taken)| !**taken && *t >= start && *t <= end)
            .map(|((_, l), taken)| {
                *taken = true;
                *l
            })
            .collect();
        if end > now - settle_ms {
            unsettled += group.len();
            open_since = open_since.min(start);
            continue;
        }
        if start < since {
            continue;
        }
        let billed: f64 = inside.iter().map(|l| l.spend).sum();
        let stored: f64 = group.iter().filter_map(|w| w.reply.cost_usd).sum();
        if same_amount(billed, stored) {
            continue;
        }
        let steps = group
            .iter()
            .filter_map(|w| w.reply.usage.as_ref().map(|u| u.steps))
            .sum();
        // The bill is the truth for a single turn whose reply was cut.
        let reply = &group[0].reply;
        let repairable = group.len() == 1 && reply.status != MessageStatus::Complete;
        let fixed = fix && repairable && {
            record_cost(state, user, reply, billed).await?;
            true
        };
        findings.push((
            Kind::TurnBilling {
                replies: group.iter().map(|w| w.reply.id.clone()).collect(),
                stored_usd: stored,
                billed_usd: billed,
                steps,
                billed_calls: inside.len(),
            },
            fixed,
        ));
    }

    // Whole days after `since`, up to the day of a turn still running or settling.
    let first_day = day_of(&rfc3339(since + 24 * 3600 * 1000));
    let today = day_of(&rfc3339(now));
    let busy_from = if open_since != i64::MAX {
        Some(day_of(&rfc3339(open_since)))
    } else if calls.iter().any(|(t, _)| *t > now - settle_ms) {
        Some(today.clone())
    } else {
        None
    };
    let recorded = state.store.usage_days(user, &first_day, &today).await?;
    let mut billed_by_day: std::collections::BTreeMap<String, f64> = Default::default();
    for (t, log) in &calls {
        *billed_by_day.entry(day_of(&rfc3339(*t))).or_default() += log.spend;
    }
    let days: BTreeSet<&String> = billed_by_day.keys().chain(recorded.keys()).collect();
    for day in days {
        if *day < first_day || busy_from.as_ref().is_some_and(|b| day >= b) {
            continue;
        }
        let billed = billed_by_day.get(day).copied().unwrap_or(0.0);
        // Read after this run's fixes, which add to their days.
        let stored = recorded.get(day).map_or(0.0, |d| d.cost_usd);
        if !same_amount(billed, stored) {
            findings.push((
                Kind::DayBilling {
                    day: day.clone(),
                    recorded_usd: stored,
                    billed_usd: billed,
                },
                false,
            ));
        }
    }
    Ok((findings, unsettled))
}

/// Equal to within float rounding (LiteLLM and the backend add the same prices).
fn same_amount(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-6 * a.abs().max(b.abs())
}

fn day_of(rfc3339: &str) -> String {
    rfc3339.chars().take(10).collect()
}

/// Each reply's window: from its user message (stored before Letta is called; its ULID holds
/// the time) to the reply's storing. A reply that did not complete may have been given up
/// on while Letta went on: its window runs on until the next message of its conversation
/// (or [`ABANDONED_TURN_MS`]).
fn windows(messages: Vec<Message>, now: i64) -> Vec<Window> {
    let asked: Vec<(String, i64)> = messages
        .iter()
        .filter(|m| m.role == Role::User)
        .filter_map(|m| Some((m.conversation_id.to_string(), ulid_ms(&m.id)?)))
        .collect();
    messages
        .into_iter()
        .filter(|m| m.role == Role::Assistant)
        .filter_map(|reply| {
            let start = ulid_ms(reply.reply_to.as_deref()?)?;
            let stored = epoch_ms(&reply.created_at)?;
            let end = if reply.status == MessageStatus::Complete {
                stored
            } else {
                let conversation = reply.conversation_id.to_string();
                let next = asked
                    .iter()
                    .filter(|(c, t)| *c == conversation && *t > start)
                    .map(|(_, t)| *t)
                    .min();
                // Up to the next message: the slack added later stops just before it.
                next.map_or(now, |t| t - SLACK_MS - 1)
                    .min(stored + ABANDONED_TURN_MS)
                    .max(stored)
            };
            Some(Window { reply, start, end })
        })
        .collect()
}

/// Windows in groups of overlapping ones (turns of several conversations at once), by start.
fn groups(mut windows: Vec<Window>) -> Vec<Vec<Window>> {
    windows.sort_by_key(|w| w.start);
    let mut groups: Vec<Vec<Window>> = Vec::new();
    for w in windows {
        match groups.last_mut() {
            Some(g) if g.iter().map(|x| x.end).max().unwrap_or(0) > w.start => g.push(w),
            _ => groups.push(vec![w]),
        }
    }
    groups
}

/// Records what LiteLLM billed for a reply that was cut, and adds the difference to its day.
async fn record_cost(
    state: &AppState,
    user: &UserId,
    reply: &Message,
    billed: f64,
) -> Result<(), AppError> {
    let difference = billed - reply.cost_usd.unwrap_or(0.0);
    let mut updated = reply.clone();
    updated.cost_usd = Some(billed);
    state.store.put_message(user, &updated).await?;
    let day = day_of(&reply.created_at);
    state
        .store
        .add_daily_usage(user, &day, 0, &Usage::default(), difference)
        .await?;
    tracing::info!(user = %user, reply = %reply.id, "recorded the billed cost of a cut reply");
    Ok(())
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Epoch ms of an RFC 3339 time (a time without an offset is UTC, as Letta writes them).
fn epoch_ms(at: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let parsed = time::OffsetDateTime::parse(at, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{at}Z"), &Rfc3339))
        .ok()?;
    Some((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn ulid_ms(id: &str) -> Option<i64> {
    ulid::Ulid::from_string(id)
        .ok()
        .map(|u| u.timestamp_ms() as i64)
}

fn at(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn rfc3339(ms: i64) -> String {
    at(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// LiteLLM's spend-log time filter format (UTC).
fn litellm_time(ms: i64) -> String {
    let t = at(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ConversationId;

    fn asked(id: &ulid::Ulid) -> Message {
        let conversation = ConversationId::default_conversation();
        Message::new(
            &conversation,
            id,
            Role::User,
            "hi".into(),
            MessageStatus::Complete,
        )
    }

    fn reply(user_id: &ulid::Ulid, status: MessageStatus, stored_ms: i64) -> Message {
        let conversation = ConversationId::default_conversation();
        let mut m = Message::new(
            &conversation,
            &ulid::Ulid::new(),
            Role::Assistant,
            "hi".into(),
            status,
        );
        m.reply_to = Some(user_id.to_string());
        m.created_at = rfc3339(stored_ms);
        m
    }

    #[test]
    fn a_cut_reply_keeps_its_window_open_until_the_next_message_and_overlaps_group() {
        let t0 = 1_700_000_000_000;
        let first = ulid::Ulid::from_parts(t0 as u64, 1);
        let unanswered = ulid::Ulid::from_parts((t0 + 30_000) as u64, 2);
        let second = ulid::Ulid::from_parts((t0 + 60_000) as u64, 3);
        let windows = windows(
            vec![
                asked(&first),
                reply(&first, MessageStatus::Interrupted, t0 + 5_000),
                asked(&unanswered),
                asked(&second),
                reply(&second, MessageStatus::Complete, t0 + 65_000),
            ],
            t0 + 3_600_000,
        );
        assert_eq!(windows.len(), 2);
        assert_eq!(
            (windows[0].start, windows[0].end),
            (t0, t0 + 30_000 - SLACK_MS - 1)
        );
        assert_eq!(
            (windows[1].start, windows[1].end),
            (t0 + 60_000, t0 + 65_000)
        );
        assert_eq!(groups(windows).len(), 2, "apart");

        let at = |ms: i64, n: u128| ulid::Ulid::from_parts((t0 + ms) as u64, n);
        let (next, meanwhile) = (at(5_050, 4), at(4_000, 5));
        let grouped = |second: &ulid::Ulid, stored: i64| {
            groups(super::windows(
                vec![
                    reply(&first, MessageStatus::Complete, t0 + 5_000),
                    reply(second, MessageStatus::Complete, t0 + stored),
                ],
                t0 + 3_600_000,
            ))
            .len()
        };
        assert_eq!(grouped(&next, 9_000), 2, "one right after the other");
        assert_eq!(
            grouped(&meanwhile, 9_000),
            1,
            "at once, in two conversations"
        );
        assert!(same_amount(0.1 + 0.2, 0.3) && !same_amount(0.3, 0.3001));
    }

    #[test]
    fn times_parse_with_or_without_an_offset_and_format_for_litellm() {
        let ms = epoch_ms("2026-11-22T20:26:20.180+00:00").unwrap();
        assert_eq!(epoch_ms("2026-11-22T20:26:20.180000Z"), Some(ms));
        assert_eq!(epoch_ms("2026-11-22T20:26:20.180"), Some(ms));
        assert_eq!(litellm_time(ms), "2026-11-22 20:26:20");
    }
}
