//! A user's conversations: threads with the same agent, so the same core and archival memory.
//! The `default` conversation is the agent's own message history (what clients that never name
//! a conversation use); every other one is a Letta conversation of the agent, made on its first
//! message. Titles come from the user or, after the first exchange, from one short LLM call
//! billed to the user.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::{
    app::{clock::now_rfc3339, error::AppError},
    clients::letta::Thread,
    domain::{Conversation, ConversationId, SignedInUser, Title, UserId},
    flows::accounts,
    state::AppState,
    store::{Created, HistoryPage},
};

/// A page of conversations, newest activity first.
pub struct ConversationPage {
    /// The conversations.
    pub conversations: Vec<Conversation>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// A list cursor: the last conversation of a page and the user it belongs to.
#[derive(Serialize, Deserialize)]
struct Cursor {
    u: String,
    a: String,
    c: String,
}

/// Newest activity first; ties broken by id, so the order is total.
fn newest_first(a: &Conversation, b: &Conversation) -> std::cmp::Ordering {
    (&b.last_activity, b.id.as_str()).cmp(&(&a.last_activity, a.id.as_str()))
}

/// Starts a conversation (no Letta call: its Letta conversation is made on the first message).
pub async fn create(
    state: &AppState,
    user: &SignedInUser,
    title: Option<Title>,
) -> Result<Conversation, AppError> {
    accounts::account(state, user).await?;
    let conversation = Conversation::new(ConversationId::generate(), title);
    let max = state.config.rates.conversations_max;
    match state
        .store
        .create_conversation(&user.id, &conversation, max)
        .await?
    {
        Created::Created => Ok(conversation),
        Created::LimitReached => Err(AppError::Conflict {
            code: "conversation_limit",
            message: format!(
                "you have {max} conversations, the most there may be; delete one to start another"
            ),
        }),
        Created::Refused => Err(AppError::Internal(
            "a new conversation could not be stored".into(),
        )),
    }
}

/// One page of the user's conversations, newest activity first.
pub async fn list(
    state: &AppState,
    user: &SignedInUser,
    limit: usize,
    cursor: Option<&str>,
) -> Result<ConversationPage, AppError> {
    let mut all = state.store.conversations(&user.id).await?;
    all.sort_by(newest_first);
    let start = match cursor {
        None => 0,
        Some(cursor) => {
            let (activity, id) = decode_cursor(&user.id, cursor)?;
            // Everything that sorts after the cursor's conversation.
            all.iter()
                .position(|c| (c.last_activity.as_str(), c.id.as_str()) < (&activity, &id))
                .unwrap_or(all.len())
        }
    };
    let rest: Vec<Conversation> = all.into_iter().skip(start).collect();
    let more = rest.len() > limit;
    let conversations: Vec<Conversation> = rest.into_iter().take(limit).collect();
    let next_cursor = if more {
        conversations.last().map(|c| encode_cursor(&user.id, c))
    } else {
        None
    };
    Ok(ConversationPage {
        conversations,
        next_cursor,
    })
}

fn encode_cursor(user: &UserId, c: &Conversation) -> String {
    let cursor = Cursor {
        u: user.to_string(),
        a: c.last_activity.clone(),
        c: c.id.to_string(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

fn decode_cursor(user: &UserId, raw: &str) -> Result<(String, String), AppError> {
    let invalid = || AppError::BadRequest {
        code: "invalid_cursor",
        message: "the cursor is not valid".into(),
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if cursor.u != user.as_str() {
        return Err(invalid());
    }
    Ok((cursor.a, cursor.c))
}

/// One conversation of the user's. The default conversation exists for every user (empty
/// until its first message); any other id that is not the user's is 404.
pub async fn get(
    state: &AppState,
    user: &SignedInUser,
    id: &ConversationId,
) -> Result<Conversation, AppError> {
    let stored = state.store.get_conversation(&user.id, id).await?;
    found(id, stored)
}

/// A page of a conversation's messages, newest first, in one read: a conversation with
/// messages is there; only an empty page asks whether the conversation is (404 for one that is
/// not the user's, never an empty page).
pub async fn history(
    state: &AppState,
    user: &SignedInUser,
    id: &ConversationId,
    limit: u32,
    before: Option<&str>,
) -> Result<HistoryPage, AppError> {
    let page = state.store.history(&user.id, id, limit, before).await?;
    if page.messages.is_empty() && !id.is_default() {
        get(state, user, id).await?;
    }
    Ok(page)
}

/// [`get`] from the conversation as the caller read it (`None`: none stored).
pub fn found(id: &ConversationId, stored: Option<Conversation>) -> Result<Conversation, AppError> {
    match stored {
        Some(conversation) => Ok(conversation),
        None if id.is_default() => Ok(Conversation::new(id.clone(), None)),
        None => Err(ConversationId::not_found()),
    }
}

/// Renames a conversation (the user's title is never replaced by an automatic one).
pub async fn rename(
    state: &AppState,
    user: &SignedInUser,
    id: &ConversationId,
    title: &Title,
) -> Result<Conversation, AppError> {
    if id.is_default() {
        // The default conversation's item may not exist yet: make it, then name it.
        state.store.record_activity(&user.id, id, 0).await?;
    }
    if !state
        .store
        .set_conversation_title(&user.id, id, title, true)
        .await?
    {
        return Err(ConversationId::not_found());
    }
    get(state, user, id).await
}

/// Deletes a conversation: Letta's first, then its stored messages, then the item, so a
/// failure leaves it listed and a retry finishes the job. The default conversation cannot be
/// deleted (`POST /agent/reset` clears it).
pub async fn delete(
    state: &AppState,
    user: &SignedInUser,
    id: &ConversationId,
) -> Result<usize, AppError> {
    if id.is_default() {
        return Err(AppError::Conflict {
            code: "default_conversation",
            message:
                "the default conversation cannot be deleted; reset the agent's messages to clear it"
                    .into(),
        });
    }
    let conversation = get(state, user, id).await?;
    if let Some(letta_id) = &conversation.letta_conversation_id {
        state.letta.delete_conversation(letta_id).await?;
    }
    let deleted = state
        .store
        .delete_conversation_messages(&user.id, id)
        .await?;
    state.store.delete_conversation(&user.id, id).await?;
    Ok(deleted)
}

/// The agent's reset: every Letta conversation is deleted (the next message of a kept
/// conversation starts a new one); with `delete_items` the conversations themselves go too
/// (the caller deletes their messages).
pub(crate) async fn forget_all(
    state: &AppState,
    user: &UserId,
    delete_items: bool,
) -> Result<(), AppError> {
    for conversation in state.store.conversations(user).await? {
        if let Some(letta_id) = &conversation.letta_conversation_id {
            state.letta.delete_conversation(letta_id).await?;
            if !delete_items {
                state
                    .store
                    .clear_letta_conversation(user, &conversation.id)
                    .await?;
            }
        }
    }
    if delete_items {
        state.store.delete_conversations(user).await?;
    }
    Ok(())
}

/// Where a turn of this conversation goes in Letta. A conversation's first turn makes its
/// Letta conversation; a later one has its system prompt recompiled first, because Letta
/// compiles it once and memory changed in another conversation would not reach it otherwise.
/// Called with the conversation's turn lock held.
pub(crate) async fn letta_thread(
    state: &AppState,
    user: &UserId,
    agent_id: &str,
    conversation: &Conversation,
) -> Result<String, AppError> {
    if conversation.id.is_default() {
        return Ok(agent_id.to_string());
    }
    match &conversation.letta_conversation_id {
        Some(letta_id) => {
            state.letta.recompile_conversation(letta_id).await?;
            Ok(letta_id.clone())
        }
        None => {
            let letta_id = state.letta.create_conversation(agent_id).await?;
            state
                .store
                .set_letta_conversation(user, &conversation.id, &letta_id)
                .await?;
            Ok(letta_id)
        }
    }
}

/// The Letta thread a conversation's turn streams on.
pub(crate) fn thread<'a>(conversation: &ConversationId, letta_id: &'a str) -> Thread<'a> {
    if conversation.is_default() {
        Thread::Agent(letta_id)
    } else {
        Thread::Conversation(letta_id)
    }
}

/// What the title model is asked.
const TITLE_INSTRUCTIONS: &str = "Write a short conversation title (at most six words) for the \
exchange below. Answer with the title only, no quotes.";

/// Gives a conversation without a title one after an exchange: one short LLM call on a key of
/// the user's that expires by itself (so LiteLLM bills the user, within the user's budget, and
/// the backend never holds the user's own key), deleted right after; the first words of the
/// user's message when the call fails. Returns the title set, if any.
pub(crate) async fn give_title(
    state: &AppState,
    user: &UserId,
    conversation: &ConversationId,
    model: &str,
    user_text: &str,
    reply_text: &str,
) -> Option<Title> {
    let prompt = format!(
        "User: {}\nAssistant: {}",
        user_text.chars().take(1000).collect::<String>(),
        reply_text.chars().take(1000).collect::<String>()
    );
    let title = match titled_by_model(state, user, model, &prompt).await {
        Ok(Some(title)) => title,
        Ok(None) | Err(_) => Title::summarize(user_text)?,
    };
    match state
        .store
        .set_conversation_title(user, conversation, &title, false)
        .await
    {
        Ok(true) => Some(title),
        Ok(false) => None, // titled meanwhile (by the user) or deleted
        Err(e) => {
            tracing::warn!(error = %e, "could not store the conversation's title");
            None
        }
    }
}

async fn titled_by_model(
    state: &AppState,
    user: &UserId,
    model: &str,
    prompt: &str,
) -> Result<Option<Title>, AppError> {
    let key = state.litellm.short_lived_key(user.as_str(), "2m").await?;
    let answer = state
        .litellm
        .complete(&key, model, TITLE_INSTRUCTIONS, prompt, 24)
        .await;
    if let Err(e) = state.litellm.delete_keys(&[key.expose().to_string()]).await {
        tracing::warn!(error = %e, "could not delete the title key; it expires in two minutes");
    }
    match answer {
        Ok((text, usage)) => {
            // The call is the user's spend: it joins the day's usage (as no message).
            let cost = state
                .models
                .price(&state.litellm, model)
                .await
                .map_or(0.0, |p| {
                    p.cost(usage.prompt_tokens, usage.completion_tokens)
                });
            let day = &now_rfc3339()[..10];
            if let Err(e) = state
                .store
                .add_daily_usage(user, day, 0, &usage, cost)
                .await
            {
                tracing::warn!(error = %e, "could not add the title call to the day's usage");
            }
            Ok(Title::summarize(&text))
        }
        Err(e) => {
            tracing::info!(error = %e, "the title call failed; using the message's first words");
            Err(e.into())
        }
    }
}
