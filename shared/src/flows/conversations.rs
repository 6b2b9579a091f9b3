//! A user's conversations: threads with the same agent, so the same core and archival memory.
//! The `default` conversation is the agent's own message history (what clients that never name
//! a conversation use); every other one is a Letta conversation of the agent, made on its first
//! message. Titles come from the user or, after the first exchange, from one short LLM call
//! billed to the user.

use serde::{Deserialize, Serialize};

use crate::{
    app::error::{AppError, ErrorCode},
    domain::{
        Conversation, ConversationId, PageLimit, SignedInUser, Title, UserId, decode_cursor,
        encode_cursor,
    },
    flows::accounts,
    state::AppState,
    store::{Created, HistoryPage, MessageAt},
};

/// A page of conversations, newest activity first.
pub struct ConversationPage {
    /// The conversations.
    pub conversations: Vec<Conversation>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Where a page of conversations ends: the last one's activity and id.
#[derive(Serialize, Deserialize)]
struct ConversationAt {
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
            code: ErrorCode::ConversationLimit,
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
    limit: PageLimit,
    cursor: Option<&str>,
) -> Result<ConversationPage, AppError> {
    let mut all = state.store.conversations(&user.id).await?;
    all.sort_by(newest_first);
    let start = match cursor {
        None => 0,
        Some(cursor) => {
            let ConversationAt { a: activity, c: id } = decode_cursor(&user.id, cursor)?;
            // Everything that sorts after the cursor's conversation.
            all.iter()
                .position(|c| (c.last_activity.as_str(), c.id.as_str()) < (&activity, &id))
                .unwrap_or(all.len())
        }
    };
    let rest: Vec<Conversation> = all.into_iter().skip(start).collect();
    let more = rest.len() > limit.items();
    let conversations: Vec<Conversation> = rest.into_iter().take(limit.items()).collect();
    let next_cursor = if more {
        conversations.last().map(|c| {
            let at = ConversationAt {
                a: c.last_activity.clone(),
                c: c.id.to_string(),
            };
            encode_cursor(&user.id, at)
        })
    } else {
        None
    };
    Ok(ConversationPage {
        conversations,
        next_cursor,
    })
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
    limit: PageLimit,
    cursor: Option<&str>,
) -> Result<HistoryPage, AppError> {
    let before: Option<MessageAt> = cursor.map(|c| decode_cursor(&user.id, c)).transpose()?;
    let before = before.map(|at| at.message_id());
    let page = state
        .store
        .history(&user.id, id, limit.get(), before.as_deref())
        .await?;
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
            code: ErrorCode::DefaultConversation,
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
