//! Conversation items (`sk = CONV#<id>`): create, read, list, activity (last message and
//! count, one update per stored message), titles, Letta's conversation id, delete.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::{
    Store,
    attrs::{Item, build_error, conditional, key, n, s, sdk_error, update_item},
    keys::{CONVERSATION_PREFIX, PROFILE_SK, conversation_sk, user_pk},
    known::KnownFacts,
    turn_writes::failed_conditions,
};
use crate::{
    app::{clock::now_rfc3339, dependency::DependencyError},
    domain::{Conversation, ConversationId, Title, UserId},
};

/// How storing a new conversation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Stored and counted.
    Created,
    /// The user has `max` conversations already; nothing was written.
    LimitReached,
    /// One with its id exists (or the profile is gone); nothing was written.
    Refused,
}

impl Store {
    /// Stores a new conversation and counts it on the profile (`conversation_count`) in one
    /// transaction, unless the user has `max` already. The default conversation, made by its
    /// first message, is not counted.
    pub async fn create_conversation(
        &self,
        user: &UserId,
        conversation: &Conversation,
        max: u64,
    ) -> Result<Created, DependencyError> {
        let item = Item::new(
            user_pk(user),
            conversation_sk(&conversation.id),
            conversation,
        );
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item.into_attributes()?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK.into())))
            .update_expression("ADD conversation_count :one")
            .condition_expression(
                "attribute_exists(pk) AND \
                 (attribute_not_exists(conversation_count) OR conversation_count < :max)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max))
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::Created),
            Err(e) => match e.as_service_error().and_then(failed_conditions) {
                Some(failed) if failed == [1] => {
                    // The profile exists (a request got here through it): the count is full.
                    Ok(Created::LimitReached)
                }
                Some(_) => Ok(Created::Refused),
                None => Err(sdk_error(e)),
            },
        }
    }

    /// One of the user's conversations; `None` when absent.
    pub async fn get_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, DependencyError> {
        self.get(user_pk(user), conversation_sk(id)).await
    }

    /// Every conversation of the user, in key order (a user's conversations are few and small:
    /// one query page holds about 4,000 of them).
    pub async fn conversations(&self, user: &UserId) -> Result<Vec<Conversation>, DependencyError> {
        self.user_items(user, CONVERSATION_PREFIX).await
    }

    /// Records `added` new messages in a conversation: last activity is now, the count grows.
    /// The default conversation is created by its first message; another conversation that
    /// was deleted meanwhile is left deleted.
    pub async fn record_activity(
        &self,
        user: &UserId,
        id: &ConversationId,
        added: u64,
    ) -> Result<(), DependencyError> {
        let update = self.activity_update(user, id, added)?;
        conditional(update_item(&self.client, update).send().await).map(|_| ())
    }

    /// [`Store::record_activity`]'s update, also written inside the turn's transactions.
    pub(super) fn activity_update(
        &self,
        user: &UserId,
        id: &ConversationId,
        added: u64,
    ) -> Result<Update, DependencyError> {
        self.known_activity_update(user, id, added, None)
    }

    /// [`Store::activity_update`], with `known`: only while the conversation is as this
    /// instance knows it ([`KnownFacts::conversation_condition`]).
    pub(super) fn known_activity_update(
        &self,
        user: &UserId,
        id: &ConversationId,
        added: u64,
        known: Option<&KnownFacts>,
    ) -> Result<Update, DependencyError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), conversation_sk(id))))
            .update_expression(
                "SET last_activity = :now, created_at = if_not_exists(created_at, :now), \
                 id = if_not_exists(id, :id) ADD message_count :added",
            )
            .expression_attribute_values(":now", s(&now_rfc3339()))
            .expression_attribute_values(":id", s(id.as_str()))
            .expression_attribute_values(":added", n(added));
        let update = match known {
            Some(known) => {
                let mut values = HashMap::new();
                let condition = known.conversation_condition(&mut values);
                values
                    .into_iter()
                    .fold(update.condition_expression(condition), |u, (k, v)| {
                        u.expression_attribute_values(k, v)
                    })
            }
            None if id.is_default() => update,
            None => update.condition_expression("attribute_exists(pk)"),
        };
        update.build().map_err(build_error)
    }

    /// Sets the title. A title the user gives always wins; an automatic one only lands on a
    /// conversation still without a title. Returns false when nothing was set.
    pub async fn set_conversation_title(
        &self,
        user: &UserId,
        id: &ConversationId,
        title: &Title,
        by_user: bool,
    ) -> Result<bool, DependencyError> {
        let condition = if by_user {
            "attribute_exists(pk)"
        } else {
            "attribute_exists(pk) AND attribute_not_exists(title)"
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), conversation_sk(id))))
            .condition_expression(condition)
            .update_expression("SET title = :title, title_by_user = :by_user")
            .expression_attribute_values(":title", s(title.as_str()))
            .expression_attribute_values(
                ":by_user",
                aws_sdk_dynamodb::types::AttributeValue::Bool(by_user),
            )
            .send()
            .await;
        conditional(result)
    }

    /// Records the Letta conversation that carries this conversation's turns.
    pub async fn set_letta_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
        letta_conversation_id: &str,
    ) -> Result<(), DependencyError> {
        self.set_field(
            user_pk(user),
            conversation_sk(id),
            "letta_conversation_id",
            Some(letta_conversation_id),
        )
        .await
    }

    /// Forgets the Letta conversation (the next message makes a new one).
    pub async fn clear_letta_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<(), DependencyError> {
        self.set_field(
            user_pk(user),
            conversation_sk(id),
            "letta_conversation_id",
            None,
        )
        .await
    }

    /// Deletes the conversation item (its messages are deleted first, by the caller) and
    /// counts it off the profile, in one transaction; one already gone is left alone.
    pub async fn delete_conversation(
        &self,
        user: &UserId,
        id: &ConversationId,
    ) -> Result<(), DependencyError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), conversation_sk(id))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_error)?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK.into())))
            .update_expression("ADD conversation_count :minus_one")
            .condition_expression("attribute_exists(pk) AND conversation_count > :zero")
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(build_error)?;
        // The writes' positions, which a failed condition names.
        const DELETE: usize = 0;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete.clone()).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error().and_then(failed_conditions) {
                // The delete (the first write) found nothing: already gone.
                Some(failed) if failed.contains(&DELETE) => Ok(()),
                // Nothing to count off (a conversation made before the count existed).
                Some(_) => {
                    let single = self
                        .client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(delete.key().clone()))
                        .send()
                        .await;
                    single.map(|_| ()).map_err(sdk_error)
                }
                None => Err(sdk_error(e)),
            },
        }
    }

    /// Deletes every conversation item of the user and sets the count to 0; returns how many.
    pub async fn delete_conversations(&self, user: &UserId) -> Result<usize, DependencyError> {
        let keys = self.keys_of(user, CONVERSATION_PREFIX).await?;
        let deleted = self.delete_keys(keys).await?;
        let reset = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK.into())))
            .update_expression("SET conversation_count = :zero")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(build_error)?;
        conditional(update_item(&self.client, reset).send().await)?;
        Ok(deleted)
    }
}
