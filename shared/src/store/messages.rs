//! Message items (`sk = MSG#<conversation>#<ulid>`, so a conversation's messages sort by
//! time): write, read, status, pages of a conversation's history newest first with cursors
//! bound to their user, and delete.

use serde::{Deserialize, Serialize};

use super::{
    Store,
    attrs::{Item, s, sdk_error},
    keys::{MESSAGE_PREFIX, conversation_messages_prefix, message_sk, user_pk},
};
use crate::{
    app::dependency::DependencyError,
    domain::{ConversationId, Message, UserId, encode_cursor},
};

/// A page of history: newest first, with the cursor of the next (older) page.
pub struct HistoryPage {
    /// The messages, newest first.
    pub messages: Vec<Message>,
    /// The cursor of the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Where a page of history ends: its last message (a ULID, or the cursor is not valid).
#[derive(Serialize, Deserialize)]
pub struct MessageAt {
    m: ulid::Ulid,
}

impl MessageAt {
    /// The message's id.
    pub fn message_id(&self) -> String {
        self.m.to_string()
    }
}

impl Store {
    /// Writes a message of the user's (replacing an earlier version of it).
    pub async fn put_message(
        &self,
        user: &UserId,
        message: &Message,
    ) -> Result<(), DependencyError> {
        self.put(
            user_pk(user),
            message_sk(&message.conversation_id, &message.id),
            message,
        )
        .await
    }

    /// One of the user's messages; `None` when absent.
    pub async fn get_message(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        id: &str,
    ) -> Result<Option<Message>, DependencyError> {
        self.get(user_pk(user), message_sk(conversation, id)).await
    }

    /// A page of a conversation's messages, newest first, older than `before` (a message id).
    pub async fn history(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        limit: u32,
        before: Option<&str>,
    ) -> Result<HistoryPage, DependencyError> {
        let prefix = conversation_messages_prefix(conversation);
        let upper = match before {
            Some(id) => message_sk(conversation, id),
            // '$' sorts right after '#': every key of the conversation is below it.
            None => format!("{}$", prefix.trim_end_matches('#')),
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(&user_pk(user)))
            .expression_attribute_values(":lo", s(&prefix))
            .expression_attribute_values(":hi", s(&upper))
            .scan_index_forward(false)
            // One more than the page tells whether there is a next page; BETWEEN includes the
            // cursor's own message, which is dropped below.
            .limit(i32::try_from(limit + 1 + u32::from(before.is_some())).unwrap_or(102))
            .send()
            .await
            .map_err(sdk_error)?;
        let mut messages: Vec<Message> = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(Item::from_attributes)
            .collect::<Result<_, _>>()?;
        if let Some(id) = before {
            messages.retain(|m| m.id != id);
        }
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        let next_cursor = if more {
            messages
                .last()
                .and_then(|m| m.id.parse().ok())
                .map(|m| encode_cursor(user, MessageAt { m }))
        } else {
            None
        };
        Ok(HistoryPage {
            messages,
            next_cursor,
        })
    }

    /// The user's messages and the agent's replies (in every conversation) stored at or after
    /// `since` (RFC 3339).
    pub async fn messages_since(
        &self,
        user: &UserId,
        since: &str,
    ) -> Result<Vec<Message>, DependencyError> {
        let mut messages = Vec::new();
        self.for_each_page(
            |q| {
                q.key_condition_expression("pk = :pk AND begins_with(sk, :msg)")
                    .filter_expression("created_at >= :since")
                    .expression_attribute_values(":pk", s(&user_pk(user)))
                    .expression_attribute_values(":msg", s(MESSAGE_PREFIX))
                    .expression_attribute_values(":since", s(since))
            },
            |page| {
                for item in page.items.unwrap_or_default() {
                    messages.push(Item::from_attributes(item)?);
                }
                Ok(())
            },
        )
        .await?;
        Ok(messages)
    }

    /// Deletes every stored message of the user (usage records stay); returns how many.
    pub async fn delete_messages(&self, user: &UserId) -> Result<usize, DependencyError> {
        let keys = self.keys_of(user, MESSAGE_PREFIX).await?;
        self.delete_keys(keys).await
    }

    /// Deletes every stored message of one conversation; returns how many.
    pub async fn delete_conversation_messages(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<usize, DependencyError> {
        let keys = self
            .keys_of(user, &conversation_messages_prefix(conversation))
            .await?;
        self.delete_keys(keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decode_cursor;

    #[test]
    fn a_history_cursor_names_a_message_by_its_ulid() {
        let ada = UserId::parse("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let id = ulid::Ulid::new();
        let cursor = encode_cursor(&ada, MessageAt { m: id });
        let at: MessageAt = decode_cursor(&ada, &cursor).unwrap();
        assert_eq!(at.message_id(), id.to_string());
        let not_a_message = encode_cursor(&ada, serde_json::json!({"m": "y"}));
        assert!(decode_cursor::<MessageAt>(&ada, &not_a_message).is_err());
    }
}
