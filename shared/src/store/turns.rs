//! The turn lock (`sk = TURN#<conversation>`, one turn at a time in each conversation) and
//! idempotency records (`sk = IDEM#<key>`, 24 h), both with an expiry; a turn takes both in
//! its starting transaction (`turn_writes`).

use serde::{Deserialize, Serialize};

use super::{
    Store,
    attrs::{Item, conditional, key, s, sdk_error},
    keys::{idempotency_sk, turn_sk, turn_slot_sk, user_pk},
};
use crate::{
    app::{clock::now_epoch, dependency::DependencyError},
    domain::{ConversationId, IdempotencyKey, UserId},
};

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// A turn lock older than this is considered abandoned (an invocation that crashed or timed
/// out): just above the chat function's 300 s timeout, so a user is never locked out for long.
pub const TURN_LOCK_TTL_SECS: i64 = 330;

/// Where the turn behind an idempotency key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnState {
    /// Still being answered.
    Running,
    /// Answered and stored.
    Complete,
    /// The reply broke off; what arrived is stored.
    Interrupted,
}

impl TurnState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Interrupted => "interrupted",
        }
    }
}

/// The idempotency record of one `Idempotency-Key`: the turn's message ids and its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The turn's state.
    pub state: TurnState,
    /// The conversation of the turn.
    pub conversation_id: ConversationId,
    /// The user's message.
    pub user_message_id: String,
    /// The reply.
    pub assistant_message_id: String,
}

/// The lock item of `message_id`'s turn, taken at `now`.
pub(super) fn turn_lock(
    user: &UserId,
    conversation: &ConversationId,
    message_id: &str,
    now: i64,
) -> Result<Attributes, DependencyError> {
    held_by(user, turn_sk(conversation), conversation, message_id, now)
}

/// The item of the turn slot `message_id`'s turn holds, taken at `now` (it expires as the
/// lock does).
pub(super) fn turn_slot(
    user: &UserId,
    slot: u32,
    conversation: &ConversationId,
    message_id: &str,
    now: i64,
) -> Result<Attributes, DependencyError> {
    held_by(user, turn_slot_sk(slot), conversation, message_id, now)
}

type Attributes = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// A turn lock or slot: the turn that holds it (its user message) and since when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Held {
    /// The user message of the turn.
    pub message_id: String,
    /// The turn's conversation.
    #[serde(default)]
    pub conversation_id: Option<ConversationId>,
    /// When it was taken (epoch s).
    #[serde(default)]
    pub locked_at: i64,
}

fn held_by(
    user: &UserId,
    sk: String,
    conversation: &ConversationId,
    message_id: &str,
    now: i64,
) -> Result<Attributes, DependencyError> {
    let held = Held {
        message_id: message_id.to_string(),
        conversation_id: Some(conversation.clone()),
        locked_at: now,
    };
    Item::new(user_pk(user), sk, held)
        .expiring(now + TURN_LOCK_TTL_SECS)
        .into_attributes()
}

impl Store {
    /// The message whose turn holds the conversation's lock, and when it took it (epoch s).
    pub async fn turn_lock_holder(
        &self,
        user: &UserId,
        conversation: &ConversationId,
    ) -> Result<Option<(String, i64)>, DependencyError> {
        let held: Option<Held> = self.get(user_pk(user), turn_sk(conversation)).await?;
        Ok(held.map(|h| (h.message_id, h.locked_at)))
    }

    /// Takes the lock over from `stale`'s turn (one that ended without releasing it); false
    /// when the lock changed meanwhile.
    pub async fn take_over_turn(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        stale: &str,
        message_id: &str,
    ) -> Result<bool, DependencyError> {
        let lock = turn_lock(user, conversation, message_id, now_epoch())?;
        self.take_over(lock, stale).await
    }

    /// Takes a turn slot over from `stale`'s turn (one that ended without releasing it) for
    /// `message_id`'s turn in `conversation`; false when the slot changed meanwhile.
    pub async fn take_over_slot(
        &self,
        user: &UserId,
        slot: u32,
        conversation: &ConversationId,
        stale: &str,
        message_id: &str,
    ) -> Result<bool, DependencyError> {
        let held = turn_slot(user, slot, conversation, message_id, now_epoch())?;
        self.take_over(held, stale).await
    }

    async fn take_over(&self, item: Attributes, stale: &str) -> Result<bool, DependencyError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("message_id = :stale")
            .expression_attribute_values(":stale", s(stale))
            .send()
            .await;
        conditional(result)
    }

    /// Releases the turn lock and the turn slot that `message_id`'s turn still holds.
    pub async fn unlock_turn(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        slot: u32,
        message_id: &str,
    ) -> Result<(), DependencyError> {
        // Boxed: the SDK's futures are large, and the turn's futures hold this one.
        let release = |sk: String| {
            Box::pin(
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(user_pk(user), sk)))
                    .condition_expression("message_id = :m")
                    .expression_attribute_values(":m", s(message_id))
                    .send(),
            )
        };
        let (lock, slot) =
            tokio::join!(release(turn_sk(conversation)), release(turn_slot_sk(slot)));
        conditional(lock)?;
        conditional(slot).map(|_| ())
    }

    /// The record of an idempotency key; `None` when it was never used or has expired.
    pub async fn idempotency_record(
        &self,
        user: &UserId,
        idem_key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyRecord>, DependencyError> {
        #[derive(Deserialize)]
        struct Stored {
            #[serde(flatten)]
            record: IdempotencyRecord,
            #[serde(default)]
            ttl: Option<i64>,
        }
        let stored: Option<Stored> = self
            .get(user_pk(user), idempotency_sk(idem_key.as_str()))
            .await?;
        Ok(stored
            .filter(|s| s.ttl.is_none_or(|t| t >= now_epoch()))
            .map(|s| s.record))
    }

    /// Records how the key's turn ended.
    pub async fn set_idempotency_state(
        &self,
        user: &UserId,
        idem_key: &IdempotencyKey,
        state: TurnState,
    ) -> Result<(), DependencyError> {
        self.set_field(
            user_pk(user),
            idempotency_sk(idem_key.as_str()),
            "state",
            Some(state.as_str()),
        )
        .await
    }

    /// Forgets the key, so a retry with it runs the turn again.
    pub async fn release_idempotency_key(
        &self,
        user: &UserId,
        idem_key: &IdempotencyKey,
    ) -> Result<(), DependencyError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), idempotency_sk(idem_key.as_str()))))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }
}
