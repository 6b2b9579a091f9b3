//! The user's agent: status, core memory, archival memory, reset; and profile updates that
//! reach the agent's memory.

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use serde_json::{Value, json};

use crate::{
    AppState,
    domain::{DisplayName, UserId},
    error::AppError,
    profile::{Profile, ProvisioningState},
    provisioning::{self, agent_name, agent_tag},
    store::sdk_error,
};

/// Blocks the user may edit directly.
pub const EDITABLE_BLOCKS: &[&str] = &["human", "persona"];

/// The ready profile and its agent id (provisioning resumed when unfinished).
pub async fn ready_agent(state: &AppState, user: &UserId) -> Result<(Profile, String), AppError> {
    let profile = provisioning::ensure_ready(state, user)
        .await?
        .ok_or_else(|| AppError::NotFound("no account for this user".into()))?;
    let agent_id = profile
        .letta_agent_id
        .clone()
        .ok_or_else(|| AppError::Internal("a ready profile without an agent".into()))?;
    Ok((profile, agent_id))
}

async fn stored_message_count(state: &AppState, user: &UserId) -> Result<u64, AppError> {
    let mut count = 0u64;
    let mut start = None;
    loop {
        let page = state
            .store
            .client()
            .query()
            .table_name(state.store.table_name())
            .key_condition_expression("pk = :pk AND begins_with(sk, :msg)")
            .expression_attribute_values(":pk", AttributeValue::S(user.pk()))
            .expression_attribute_values(":msg", AttributeValue::S("MSG#".into()))
            .select(Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk_error)?;
        count += page.count as u64;
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(count);
        }
    }
}

/// Provisioning state, whether the agent answers, model, message count, last activity, memory
/// block sizes and the number of archival memories.
pub async fn status(state: &AppState, user: &UserId) -> Result<Value, AppError> {
    let profile = state
        .store
        .get_profile(user)
        .await?
        .ok_or_else(|| AppError::NotFound("no account for this user".into()))?;
    let profile = match profile.state {
        ProvisioningState::Ready => profile,
        _ => provisioning::resume(state, profile).await?,
    };
    let agent_id = profile.letta_agent_id.clone().unwrap_or_default();
    let agent = state.letta.get_agent(&agent_id).await;
    let responding = matches!(agent, Ok(Some(_)));
    let blocks = if responding {
        state.letta.blocks(&agent_id).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let passages = if responding {
        state
            .letta
            .list_passages(&agent_id, 1000)
            .await
            .map(|p| p.len())
            .ok()
    } else {
        None
    };
    let last = state
        .store
        .history(user, 1, None)
        .await?
        .messages
        .into_iter()
        .next();
    Ok(json!({
        "state": profile.state.as_str(),
        "agent_id": profile.letta_agent_id,
        "responding": responding,
        "model": profile.model,
        "context_messages": agent.ok().flatten().map(|a| a.message_ids.len()),
        "message_count": stored_message_count(state, user).await?,
        "last_activity": last.map(|m| m.created_at),
        "memory_blocks": blocks.iter().map(|b| json!({"label": b.label, "chars": b.value.chars().count(), "limit": b.limit})).collect::<Vec<_>>(),
        "archival_passages": passages,
    }))
}

pub async fn memory(state: &AppState, user: &UserId) -> Result<Value, AppError> {
    let (_, agent_id) = ready_agent(state, user).await?;
    let blocks = state.letta.blocks(&agent_id).await?;
    Ok(json!({"blocks": blocks}))
}

/// Replaces the value of `human` or `persona`, within the block's limit.
pub async fn replace_block(
    state: &AppState,
    user: &UserId,
    label: &str,
    value: &str,
) -> Result<Value, AppError> {
    if !EDITABLE_BLOCKS.contains(&label) {
        return Err(AppError::validation(
            "label",
            format!("must be one of {}", EDITABLE_BLOCKS.join(", ")),
        ));
    }
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
    let updated = state.letta.update_block(&agent_id, label, value).await?;
    Ok(json!({"block": updated}))
}

pub async fn add_archival(
    state: &AppState,
    user: &UserId,
    text: &str,
    tags: &[String],
) -> Result<Value, AppError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AppError::validation("archival.text", "must not be empty"));
    }
    if text.chars().count() > 10_000 {
        return Err(AppError::validation(
            "archival.text",
            "must be at most 10000 characters",
        ));
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
    let passages = state.letta.insert_passage(&agent_id, text, tags).await?;
    Ok(json!({"passages": passages}))
}

pub async fn archival(
    state: &AppState,
    user: &UserId,
    query: Option<&str>,
    limit: u32,
) -> Result<Value, AppError> {
    if !(1..=100).contains(&limit) {
        return Err(AppError::validation("limit", "must be between 1 and 100"));
    }
    let (_, agent_id) = ready_agent(state, user).await?;
    match query.map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => {
            let results = state.letta.search_passages(&agent_id, q, limit).await?;
            let memories: Vec<Value> = results
                .iter()
                .map(|r| json!({"id": r.get("id"), "text": r.get("content"), "tags": r.get("tags"), "created_at": r.get("timestamp")}))
                .collect();
            Ok(json!({"query": q, "memories": memories}))
        }
        None => {
            let passages = state.letta.list_passages(&agent_id, limit).await?;
            let memories: Vec<Value> = passages
                .iter()
                .map(|p| json!({"id": p.id, "text": p.text, "tags": p.tags, "created_at": p.created_at}))
                .collect();
            Ok(json!({"query": null, "memories": memories}))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetScope {
    Messages,
    All,
}

/// `messages`: the agent forgets the conversation but keeps its memory. `all`: a fresh agent
/// (new blocks, no archival memory); the old one and its archive are deleted. `delete_history`
/// also removes the stored chat history.
pub async fn reset(
    state: &AppState,
    user: &UserId,
    scope: ResetScope,
    delete_history: bool,
) -> Result<Value, AppError> {
    let (profile, agent_id) = ready_agent(state, user).await?;
    let agent_id = match scope {
        ResetScope::Messages => {
            state.letta.reset_messages(&agent_id).await?;
            agent_id
        }
        ResetScope::All => {
            // New agent first, then the profile, then every other agent of the user: a failure
            // at any point leaves the user with a working agent, and a retry cleans up.
            let fresh = provisioning::create_agent(state, &profile).await?;
            state
                .store
                .set_profile_field(user, "letta_agent_id", Some(&fresh.id))
                .await?;
            let mut others: Vec<String> = state
                .letta
                .find_agents_by_name(&agent_name(user))
                .await?
                .into_iter()
                .chain(state.letta.find_agents_by_tag(&agent_tag(user)).await?)
                .map(|a| a.id)
                .filter(|id| *id != fresh.id)
                .collect();
            others.sort();
            others.dedup();
            for old in others {
                state.letta.delete_agent_and_archives(&old).await?;
            }
            fresh.id
        }
    };
    let deleted = if delete_history {
        delete_history_items(state, user).await?
    } else {
        0
    };
    Ok(json!({
        "scope": match scope { ResetScope::Messages => "messages", ResetScope::All => "all" },
        "agent_id": agent_id,
        "history_deleted": deleted,
    }))
}

/// Deletes the stored chat messages (usage aggregates stay: they are billing records).
async fn delete_history_items(state: &AppState, user: &UserId) -> Result<usize, AppError> {
    let mut deleted = 0;
    loop {
        let page = state.store.history(user, 100, None).await?;
        if page.messages.is_empty() {
            return Ok(deleted);
        }
        for m in &page.messages {
            state.store.delete(&user.pk(), &m.sk).await?;
            deleted += 1;
        }
    }
}

/// Sets the display name on the profile and in the agent's `human` block (its `Name:` line).
pub async fn set_display_name(
    state: &AppState,
    user: &UserId,
    name: &DisplayName,
) -> Result<Profile, AppError> {
    let (_, agent_id) = ready_agent(state, user).await?;
    if let Some(block) = state.letta.block(&agent_id, "human").await? {
        let value = with_name_line(&block.value, name.as_str());
        state.letta.update_block(&agent_id, "human", &value).await?;
    }
    state
        .store
        .set_profile_field(user, "display_name", Some(name.as_str()))
        .await?;
    state
        .store
        .get_profile(user)
        .await?
        .ok_or_else(|| AppError::NotFound("no account for this user".into()))
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

/// The account's health in one status: provisioning complete, agent present, LiteLLM user
/// present, budget remaining. `healthy`, `degraded` (usable but needs attention) or `unhealthy`.
pub async fn account_health(state: &AppState, user: &UserId) -> Result<Value, AppError> {
    let profile = state
        .store
        .get_profile(user)
        .await?
        .ok_or_else(|| AppError::NotFound("no account for this user".into()))?;
    let provisioned = profile.state == ProvisioningState::Ready;
    let agent = match &profile.letta_agent_id {
        Some(id) => state
            .letta
            .get_agent(id)
            .await
            .map(|a| a.is_some())
            .map_err(|e| e.to_string()),
        None => Ok(false),
    };
    let litellm = state
        .litellm
        .user_info(user.as_str())
        .await
        .map_err(|e| e.to_string());
    let (litellm_user, remaining) = match &litellm {
        Ok(Some(info)) => (
            Ok(true),
            info.user_info.as_ref().and_then(|u| u.remaining()),
        ),
        Ok(None) => (Ok(false), None),
        Err(e) => (Err(e.clone()), None),
    };
    let check = |ok: &Result<bool, String>| match ok {
        Ok(true) => json!({"ok": true}),
        Ok(false) => json!({"ok": false}),
        Err(e) => json!({"ok": null, "error": e}),
    };
    let budget_ok = remaining.map(|r| r > 0.0);
    let broken = !provisioned || matches!(agent, Ok(false)) || matches!(litellm_user, Ok(false));
    let unknown = agent.is_err() || litellm_user.is_err();
    let status = if broken {
        "unhealthy"
    } else if unknown || budget_ok == Some(false) {
        "degraded"
    } else {
        "healthy"
    };
    Ok(json!({
        "status": status,
        "checks": {
            "provisioning": {"ok": provisioned, "state": profile.state.as_str(), "error": profile.provisioning_error},
            "letta_agent": check(&agent),
            "litellm_user": check(&litellm_user),
            "budget": {"ok": budget_ok, "remaining": remaining},
        },
    }))
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
