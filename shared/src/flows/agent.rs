//! The user's agent: status, core memory, archival memory, reset.

use serde::{Deserialize, Serialize};

use crate::{
    app::error::{AppError, ErrorCode},
    clients::letta::{Block, Passage},
    domain::{
        PageLimit, Profile, SignedInUser, decode_cursor, encode_cursor, without_controls,
        without_nul,
    },
    flows::{accounts, conversations, migration, provisioning},
    state::AppState,
    store::{Lease, RateLimit},
};

/// Blocks the user may edit directly.
pub const EDITABLE_BLOCKS: &[&str] = &["human", "persona"];
/// The longest archival memory accepted, in characters.
pub const MAX_ARCHIVAL_CHARS: usize = 10_000;

/// The ready profile and its agent id (the account made or its provisioning resumed when
/// needed, the agent moved to the configured type).
pub async fn ready_agent(
    state: &AppState,
    user: &SignedInUser,
) -> Result<(Profile, String), AppError> {
    let stored = state.store.get_profile(&user.id).await?;
    ready_agent_from(state, user, stored).await
}

/// [`ready_agent`] from the profile as the caller read it (`None`: none stored).
pub async fn ready_agent_from(
    state: &AppState,
    user: &SignedInUser,
    stored: Option<Profile>,
) -> Result<(Profile, String), AppError> {
    let profile = accounts::account_from(state, user, stored).await?;
    let profile = migration::ensure_current_type(state, profile).await?;
    let agent_id = profile
        .letta_agent_id
        .clone()
        .ok_or_else(|| AppError::Internal("a ready profile without an agent".into()))?;
    Ok((profile, agent_id))
}

/// What `GET /agent/status` reports.
pub struct AgentStatus {
    /// The profile (state, agent id, model).
    pub profile: Profile,
    /// Whether Letta has the agent.
    pub responding: bool,
    /// Messages in the agent's context window.
    pub context_messages: Option<usize>,
    /// Messages stored in the backend.
    pub message_count: u64,
    /// When the newest stored message was written.
    pub last_activity: Option<String>,
    /// The core memory blocks.
    pub blocks: Vec<Block>,
    /// Archival memories, as counted by the backend (no listing of Letta's passages).
    pub archival_passages: Option<u64>,
}

/// Provisioning state, whether the agent answers, message counts, last activity, memory block
/// sizes and the number of archival memories.
pub async fn status(state: &AppState, user: &SignedInUser) -> Result<AgentStatus, AppError> {
    let profile = accounts::account(state, user).await?;
    let user = &user.id;
    let agent_id = profile.letta_agent_id.clone().unwrap_or_default();
    let agent = state.letta.get_agent(&agent_id).await.ok().flatten();
    let responding = agent.is_some();
    let (blocks, archival_passages) = if responding {
        let blocks = state.letta.blocks(&agent_id).await.unwrap_or_default();
        (blocks, Some(profile.archival_passages))
    } else {
        (Vec::new(), None)
    };
    // Each conversation counts its messages (the turn's writes keep it): one read for both.
    let conversations = state.store.conversations(user).await?;
    let message_count = conversations.iter().map(|c| c.message_count).sum();
    let last_activity = conversations.into_iter().map(|c| c.last_activity).max();
    Ok(AgentStatus {
        context_messages: agent.map(|a| a.message_ids.len()),
        message_count,
        last_activity,
        profile,
        responding,
        blocks,
        archival_passages,
    })
}

/// The agent's core memory blocks.
pub async fn memory(state: &AppState, user: &SignedInUser) -> Result<Vec<Block>, AppError> {
    let (_, agent_id) = ready_agent(state, user).await?;
    Ok(state.letta.blocks(&agent_id).await?)
}

/// Replaces the value of `human` or `persona`, within the block's limit.
pub async fn replace_block(
    state: &AppState,
    user: &SignedInUser,
    label: &str,
    value: &str,
) -> Result<Block, AppError> {
    if !EDITABLE_BLOCKS.contains(&label) {
        return Err(AppError::validation(
            "label",
            format!("must be one of {}", EDITABLE_BLOCKS.join(", ")),
        ));
    }
    without_nul("value", value)?;
    let (_, agent_id) = ready_agent(state, user).await?;
    let block = state
        .letta
        .block(&agent_id, label)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("the agent has no {label} block")))?;
    let chars = value.chars().count();
    if let Some(limit) = block.limit
        && chars as u64 > limit
    {
        return Err(AppError::validation(
            "value",
            format!("is {chars} characters; the {label} block holds at most {limit}"),
        ));
    }
    Ok(state.letta.update_block(&agent_id, label, value).await?)
}

/// The user's daily quota of characters sent to the embedding model (`EMBEDDING_CHARS_PER_DAY`):
/// archival inserts and searches, the user's and the agent's. Letta embeds with its own
/// server-wide key (its OpenAI embedding client takes no BYOK provider), so the operator pays
/// for them; a deletion gives nothing back.
pub(crate) fn embedding_quota(state: &AppState) -> RateLimit {
    RateLimit {
        name: "embedding_chars_per_day",
        max: state.config.rates.embedding_chars_per_day,
        window_secs: 24 * 3600,
    }
}

/// Uses `chars` of the user's embedding quota before Letta embeds them: 429 `rate_limited`
/// (`limit: embedding_chars_per_day`, `Retry-After` until the UTC day ends) when less is left.
pub(crate) async fn embed(
    state: &AppState,
    user: &SignedInUser,
    chars: usize,
) -> Result<(), AppError> {
    let quota = embedding_quota(state);
    match state
        .store
        .use_quota(&user.id, &quota, chars as u64)
        .await?
    {
        None => Ok(()),
        Some(exceeded) => Err(exceeded.into()),
    }
}

/// The longest archival search query, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;

/// Adds a long-term memory (at most 10,000 characters, 20 tags of 1 to 64 characters).
pub async fn add_archival(
    state: &AppState,
    user: &SignedInUser,
    text: &str,
    tags: &[String],
) -> Result<Vec<Passage>, AppError> {
    let text = without_nul("archival.text", text.trim())?;
    if text.is_empty() {
        return Err(AppError::validation("archival.text", "must not be empty"));
    }
    if text.chars().count() > MAX_ARCHIVAL_CHARS {
        return Err(AppError::validation(
            "archival.text",
            format!("must be at most {MAX_ARCHIVAL_CHARS} characters"),
        ));
    }
    for tag in tags {
        without_controls("archival.tags", tag)?;
    }
    if tags.len() > 20
        || tags
            .iter()
            .any(|t| t.trim().is_empty() || t.chars().count() > 64)
    {
        return Err(AppError::validation(
            "archival.tags",
            "at most 20 tags of 1 to 64 characters",
        ));
    }
    let (_, agent_id) = ready_agent(state, user).await?;
    // Counted before Letta is called: the characters against the daily quota, the memory
    // within the cap (each one conditional write).
    embed(state, user, text.chars().count()).await?;
    let cap = state.config.letta.archival_max_passages;
    if !state.store.reserve_archival(&user.id, 1, cap).await? {
        return Err(AppError::Conflict {
            code: ErrorCode::ArchivalMemoryFull,
            message: format!(
                "archival memory holds at most {cap} memories; delete some to add more"
            ),
        });
    }
    let inserted = state.letta.insert_passage(&agent_id, text, tags).await;
    // Letta may store a long text as several passages; a failed insert gives its place back.
    let extra = inserted.as_ref().map_or(-1, |p| p.len() as i64 - 1);
    if let Err(e) = state.store.count_archival(&user.id, extra).await {
        tracing::warn!(error = %e, extra, "could not correct the archival memory count");
    }
    Ok(inserted?)
}

/// One archival memory as the user sees it.
pub struct Memory {
    /// Letta's passage id.
    pub id: Option<String>,
    /// The text.
    pub text: String,
    pub tags: Option<Vec<String>>,
    /// When it was stored.
    pub created_at: Option<String>,
}

/// A page of archival memories: a semantic search with `query` (best first, one page), else
/// newest first, `cursor` naming the last memory of the previous page.
pub struct ArchivalPage {
    /// The query, trimmed.
    pub query: Option<String>,
    /// The memories.
    pub memories: Vec<Memory>,
    /// The cursor of the next page (listing only); `None` on the last.
    pub next_cursor: Option<String>,
}

/// Whether `id` can be a passage id (`passage-<uuid>`); others name no memory of anyone's.
fn is_passage_id(id: &str) -> bool {
    id.strip_prefix("passage-")
        .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok())
}

/// Deletes one of the user's archival memories; 404 for an id that is not in the user's
/// agent's archives (another user's passage included).
pub async fn delete_archival(
    state: &AppState,
    user: &SignedInUser,
    id: &str,
) -> Result<(), AppError> {
    let not_found = || AppError::NotFound("no such archival memory".into());
    if !is_passage_id(id) {
        return Err(not_found());
    }
    let (_, agent_id) = ready_agent(state, user).await?;
    for archive in state.letta.agent_archive_ids(&agent_id).await? {
        if state.letta.delete_passage(&archive, id).await? {
            if let Err(e) = state.store.count_archival(&user.id, -1).await {
                tracing::warn!(error = %e, "could not count the deleted archival memory");
            }
            return Ok(());
        }
    }
    Err(not_found())
}

/// Where a page of archival memories ends: its last passage.
#[derive(Serialize, Deserialize)]
struct PassageAt {
    p: String,
}

/// Archival memories: a semantic search with `query`, else the newest.
pub async fn archival(
    state: &AppState,
    user: &SignedInUser,
    query: Option<&str>,
    limit: PageLimit,
    cursor: Option<&str>,
) -> Result<ArchivalPage, AppError> {
    let after: Option<PassageAt> = cursor.map(|c| decode_cursor(&user.id, c)).transpose()?;
    if after.as_ref().is_some_and(|at| !is_passage_id(&at.p)) {
        return Err(AppError::BadRequest {
            code: ErrorCode::InvalidCursor,
            message: "the cursor is not valid".into(),
        });
    }
    let limit = limit.get();
    let query = query.map(str::trim).filter(|q| !q.is_empty());
    if let Some(q) = query {
        without_nul("query", q)?;
    }
    if query.is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
        return Err(AppError::validation(
            "query",
            format!("must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let (_, agent_id) = ready_agent(state, user).await?;
    if let Some(q) = query {
        embed(state, user, q.chars().count()).await?;
    }
    let mut next_cursor = None;
    let memories = match query {
        Some(q) => state
            .letta
            .search_passages(&agent_id, q, limit)
            .await?
            .into_iter()
            .map(|r| Memory {
                id: r.id,
                text: r.content,
                tags: r.tags,
                created_at: r.timestamp,
            })
            .collect(),
        None => {
            // One more than the page tells whether there is a next one.
            let mut passages = state
                .letta
                .list_passages(&agent_id, limit + 1, after.as_ref().map(|at| at.p.as_str()))
                .await?;
            if passages.len() > limit as usize {
                passages.truncate(limit as usize);
                next_cursor = passages.last().map(|p| {
                    let at = PassageAt { p: p.id.clone() };
                    encode_cursor(&user.id, at)
                });
            }
            passages
                .into_iter()
                .map(|p| Memory {
                    id: Some(p.id),
                    text: p.text,
                    tags: p.tags,
                    created_at: p.created_at,
                })
                .collect()
        }
    };
    Ok(ArchivalPage {
        query: query.map(str::to_string),
        memories,
        next_cursor,
    })
}

/// What a reset clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetScope {
    /// The conversation; memory stays.
    Messages,
    /// Everything: a fresh agent replaces the old one.
    All,
}

impl ResetScope {
    /// The name clients send and get back.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::All => "all",
        }
    }
}

/// What a reset did.
pub struct ResetOutcome {
    /// What was cleared.
    pub scope: ResetScope,
    /// The agent now serving the user.
    pub agent_id: String,
    /// Stored messages deleted.
    pub history_deleted: usize,
}

/// `messages`: the agent forgets its conversations but keeps its memory. `all`: a fresh agent
/// (new blocks, no archival memory); the old one and its archive are deleted. `delete_history`
/// also removes the stored chat history (usage records stay: they are billing records).
pub async fn reset(
    state: &AppState,
    user: &SignedInUser,
    scope: ResetScope,
    delete_history: bool,
) -> Result<ResetOutcome, AppError> {
    let (profile, agent_id) = ready_agent(state, user).await?;
    let agent_id = match scope {
        ResetScope::Messages => {
            state.letta.reset_messages(&agent_id).await?;
            agent_id
        }
        ResetScope::All => {
            // One replacement at a time: two at once would each delete the other's agent.
            let busy = "your assistant is being reset; try again in a few seconds".to_string();
            let profile = &profile;
            provisioning::with_lease(state, &user.id, busy, |lease| async move {
                replace_agent(state, profile, &lease).await
            })
            .await?
        }
    };
    // The agent forgets every conversation; their stored history goes only on request.
    conversations::forget_all(state, &user.id, delete_history).await?;
    let history_deleted = if delete_history {
        state.store.delete_messages(&user.id).await?
    } else {
        0
    };
    Ok(ResetOutcome {
        scope,
        agent_id,
        history_deleted,
    })
}

/// New agent first, then the profile, then every other agent of the user: a failure at any
/// point leaves the user with a working agent, and a retry cleans up. Runs under the lease,
/// re-checked before anything is deleted.
async fn replace_agent(
    state: &AppState,
    profile: &Profile,
    lease: &Lease,
) -> Result<String, AppError> {
    let user = &profile.user_id;
    let fresh = provisioning::create_agent(state, profile).await?;
    let agent_type = fresh
        .agent_type
        .as_deref()
        .unwrap_or(&state.config.letta.agent_type);
    state
        .store
        .set_profile_agent(user, &fresh.id, agent_type)
        .await?;
    state.store.clear_archival(user).await?;
    // The user's documents are the user's, not the agent's memory: the new agent has them.
    if let Some(folder) = &profile.letta_folder_id {
        state.letta.attach_folder(&fresh.id, folder).await?;
    }
    let others: Vec<String> = provisioning::agents_of(state, user)
        .await?
        .into_iter()
        .map(|a| a.id)
        .filter(|id| *id != fresh.id)
        .collect();
    provisioning::still_leased(state, user, lease).await?;
    for old in others {
        state
            .letta
            .delete_agent_and_archives(&old, &provisioning::agent_tag(user))
            .await?;
    }
    Ok(fresh.id)
}
