//! Personal API keys. A key has two items: its record in the user's partition
//! (`APIKEY#<id>`: name, prefix, hash, dates) and its lookup (`APIKEY#<hash>` / `APIKEY`:
//! whose it is), read when a request presents it. Both are written and deleted in one
//! transaction with the profile's key count, so a key is never half there and the cap holds.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::{
    Store,
    attrs::{Item, build_error, key, n, sdk_error},
    keys::{PROFILE_SK, user_pk},
    turn_writes::failed_conditions,
};
use crate::{app::dependency::DependencyError, domain::UserId};

/// The sort-key prefix of a user's key records.
const RECORD_PREFIX: &str = "APIKEY#";
/// The sort key of a lookup item.
const LOOKUP_SK: &str = "APIKEY";

fn record_sk(id: &str) -> String {
    format!("{RECORD_PREFIX}{id}")
}

fn lookup_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}

/// A key as the user's list shows it (never the key itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Its id (a ULID).
    pub id: String,
    pub name: String,
    /// Its first characters.
    pub prefix: String,
    /// Its SHA-256, hex (the lookup's key).
    pub key_hash: String,
    /// RFC 3339.
    pub created_at: String,
    /// Epoch seconds, for the revocation check (a key made before a logout-everywhere is
    /// refused, as a token issued before it is).
    pub created_epoch: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_epoch: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

/// Whose a presented key is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyOwner {
    pub user_id: String,
    pub key_id: String,
    pub created_epoch: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_epoch: Option<i64>,
}

/// How storing a new key went.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyStored {
    Stored,
    /// The user has `max` keys.
    LimitReached,
}

impl Store {
    /// Stores a new key (its record, its lookup, the count), unless the user has `max` keys.
    pub async fn create_api_key(
        &self,
        user: &UserId,
        record: &ApiKeyRecord,
        max: u64,
    ) -> Result<KeyStored, DependencyError> {
        let owner = KeyOwner {
            user_id: user.to_string(),
            key_id: record.id.clone(),
            created_epoch: record.created_epoch,
            expires_epoch: record.expires_epoch,
        };
        let lookup = Item::new(lookup_pk(&record.key_hash), LOOKUP_SK.into(), owner);
        // DynamoDB deletes an expired key's lookup a day after (reads check the expiry).
        let lookup = match record.expires_epoch {
            Some(at) => lookup.expiring(at + 24 * 3600),
            None => lookup,
        };
        let items = [
            Item::new(user_pk(user), record_sk(&record.id), record).into_attributes()?,
            lookup.into_attributes()?,
        ];
        let mut writes = Vec::new();
        for item in items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK.into())))
            .update_expression("ADD api_key_count :one")
            .condition_expression(
                "attribute_exists(pk) AND \
                 (attribute_not_exists(api_key_count) OR api_key_count < :max)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max))
            .build()
            .map_err(build_error)?;
        writes.push(TransactWriteItem::builder().update(count).build());
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(KeyStored::Stored),
            Err(e) => match e.as_service_error().and_then(failed_conditions) {
                Some(failed) if failed == [2] => Ok(KeyStored::LimitReached),
                _ => Err(sdk_error(e)),
            },
        }
    }

    /// The user's keys, in id (creation) order.
    pub async fn api_keys(&self, user: &UserId) -> Result<Vec<ApiKeyRecord>, DependencyError> {
        self.user_items(user, RECORD_PREFIX).await
    }

    /// Deletes one of the user's keys (record, lookup, count) at once; false when the user has
    /// no key with this id.
    pub async fn delete_api_key(&self, user: &UserId, id: &str) -> Result<bool, DependencyError> {
        let Some(record) = self
            .get::<ApiKeyRecord>(user_pk(user), record_sk(id))
            .await?
        else {
            return Ok(false);
        };
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), PROFILE_SK.into())))
            .update_expression("ADD api_key_count :minus")
            .condition_expression("attribute_exists(pk) AND api_key_count > :zero")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(build_error)?;
        let record_delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), record_sk(id))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_error)?;
        let lookup_delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(lookup_pk(&record.key_hash), LOOKUP_SK.into())))
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(record_delete).build())
            .transact_items(TransactWriteItem::builder().delete(lookup_delete).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Deleted meanwhile by another request.
            Err(e) if e.as_service_error().and_then(failed_conditions) == Some(vec![0]) => {
                Ok(false)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Whose the key with this hash is (a consistent read: a deleted key is refused at once).
    pub async fn api_key_owner(&self, hash: &str) -> Result<Option<KeyOwner>, DependencyError> {
        self.get(lookup_pk(hash), LOOKUP_SK.into()).await
    }

    /// Records that the key was used now.
    pub async fn touch_api_key(
        &self,
        user: &UserId,
        id: &str,
        now: &str,
    ) -> Result<(), DependencyError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), record_sk(id))))
            .update_expression("SET last_used_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", AttributeValue::S(now.to_string()))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| match e.as_service_error() {
                // Deleted meanwhile: nothing to record.
                Some(service) if service.is_conditional_check_failed_exception() => Ok(()),
                _ => Err(sdk_error(e)),
            })
    }

    /// The lookup items of the user's keys (account deletion deletes them with the rest).
    pub(crate) async fn api_key_lookups(
        &self,
        user: &UserId,
    ) -> Result<Vec<std::collections::HashMap<String, AttributeValue>>, DependencyError> {
        Ok(self
            .api_keys(user)
            .await?
            .iter()
            .map(|record| key(lookup_pk(&record.key_hash), LOOKUP_SK.into()))
            .collect())
    }
}
