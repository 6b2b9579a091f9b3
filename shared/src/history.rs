//! Chat items in the user's collection: messages (`MSG#<ulid>`), daily usage
//! (`USAGE#<yyyy-mm-dd>`), the turn lock (`TURN`) and idempotency records (`IDEM#<key>`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    domain::UserId,
    error::AppError,
    profile::now_epoch,
    store::{Store, sdk_error, table},
    upstream::{DependencyError, Service},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// `pending`: stored, the agent not reached yet; `complete`; `interrupted`: the reply broke off
/// (what arrived is kept); `failed`: the agent never produced a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Pending,
    Complete,
    Interrupted,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub steps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub pk: String,
    pub sk: String,
    pub id: String,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub letta_message_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

impl Message {
    pub fn new(
        user: &UserId,
        id: &ulid::Ulid,
        role: Role,
        content: String,
        status: MessageStatus,
    ) -> Self {
        Self {
            pk: user.pk(),
            sk: format!("MSG#{id}"),
            id: id.to_string(),
            role,
            content,
            status,
            created_at: crate::profile::now_rfc3339(),
            reply_to: None,
            reasoning: None,
            tool_calls: Vec::new(),
            letta_message_ids: Vec::new(),
            letta_run_id: None,
            usage: None,
            cost_usd: None,
            model: None,
            ttft_ms: None,
            latency_ms: None,
            error: None,
            stop_reason: None,
        }
    }

    /// The message as clients see it.
    pub fn view(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            for internal in ["pk", "sk", "letta_message_ids", "letta_run_id"] {
                obj.remove(internal);
            }
        }
        v
    }
}

/// Idempotency record of one `Idempotency-Key`: the turn's message ids and its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub pk: String,
    pub sk: String,
    pub state: String,
    pub user_message_id: String,
    pub assistant_message_id: String,
    pub ttl: i64,
}

pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// A turn lock older than this is considered abandoned (an invocation that crashed or timed
/// out): just above the chat function's 300 s timeout, so a user is never locked out for long.
pub const TURN_LOCK_TTL_SECS: i64 = 330;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (table::PARTITION_KEY.to_string(), s(&pk)),
        (table::SORT_KEY.to_string(), s(&sk)),
    ])
}

fn conditional_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

/// A page of history: newest first, with the cursor of the next (older) page.
pub struct Page {
    pub messages: Vec<Message>,
    pub next_cursor: Option<String>,
}

/// Cursors name the last message of a page and the user they belong to.
#[derive(Serialize, Deserialize)]
struct Cursor {
    u: String,
    m: String,
}

pub fn encode_cursor(user: &UserId, message_id: &str) -> String {
    let json = serde_json::to_vec(&Cursor {
        u: user.to_string(),
        m: message_id.to_string(),
    })
    .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// The message id a cursor points at; 400 for a cursor that is malformed or not this user's.
pub fn decode_cursor(user: &UserId, cursor: &str) -> Result<String, AppError> {
    let invalid = || AppError::BadRequest {
        code: "invalid_cursor",
        message: "the cursor is not valid".into(),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if cursor.u != user.as_str() || cursor.m.parse::<ulid::Ulid>().is_err() {
        return Err(invalid());
    }
    Ok(cursor.m)
}

impl Store {
    /// Takes the per-user turn lock; false when another turn holds it.
    pub async fn lock_turn(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<bool, DependencyError> {
        let now = now_epoch();
        let result = self
            .client()
            .put_item()
            .table_name(self.table_name())
            .item(table::PARTITION_KEY, s(&user.pk()))
            .item(table::SORT_KEY, s("TURN"))
            .item("message_id", s(message_id))
            .item(table::TTL_ATTRIBUTE, n(now + TURN_LOCK_TTL_SECS))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", table::TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }

    pub async fn unlock_turn(
        &self,
        user: &UserId,
        message_id: &str,
    ) -> Result<(), DependencyError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.table_name())
            .set_key(Some(key(user.pk(), "TURN".into())))
            .condition_expression("message_id = :m")
            .expression_attribute_values(":m", s(message_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => Ok(()),
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Records a new idempotency key; returns the existing record when the key was used before
    /// (and has not expired).
    pub async fn claim_idempotency_key(
        &self,
        user: &UserId,
        idem_key: &str,
        user_message_id: &str,
        assistant_message_id: &str,
    ) -> Result<Option<IdempotencyRecord>, DependencyError> {
        let now = now_epoch();
        let record = IdempotencyRecord {
            pk: user.pk(),
            sk: format!("IDEM#{idem_key}"),
            state: "running".into(),
            user_message_id: user_message_id.to_string(),
            assistant_message_id: assistant_message_id.to_string(),
            ttl: now + IDEMPOTENCY_TTL_SECS,
        };
        let item = serde_dynamo::to_item(&record).map_err(|e| decode(e.to_string()))?;
        let result = self
            .client()
            .put_item()
            .table_name(self.table_name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", table::TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => {
                self.get::<IdempotencyRecord>(&user.pk(), &format!("IDEM#{idem_key}"))
                    .await
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    pub async fn set_idempotency_state(
        &self,
        user: &UserId,
        idem_key: &str,
        state: &str,
    ) -> Result<(), DependencyError> {
        self.client()
            .update_item()
            .table_name(self.table_name())
            .set_key(Some(key(user.pk(), format!("IDEM#{idem_key}"))))
            .update_expression("SET #state = :s")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":s", s(state))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    pub async fn release_idempotency_key(
        &self,
        user: &UserId,
        idem_key: &str,
    ) -> Result<(), DependencyError> {
        self.delete(&user.pk(), &format!("IDEM#{idem_key}")).await
    }

    pub async fn put_message(&self, message: &Message) -> Result<(), DependencyError> {
        self.put(message).await
    }

    pub async fn get_message(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<Option<Message>, DependencyError> {
        self.get(&user.pk(), &format!("MSG#{id}")).await
    }

    pub async fn set_message_status(
        &self,
        user: &UserId,
        id: &str,
        status: MessageStatus,
    ) -> Result<(), DependencyError> {
        let status = serde_json::to_value(status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.client()
            .update_item()
            .table_name(self.table_name())
            .set_key(Some(key(user.pk(), format!("MSG#{id}"))))
            .update_expression("SET #status = :s")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(&status))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// Adds one turn to the day's usage aggregate, atomically.
    pub async fn add_daily_usage(
        &self,
        user: &UserId,
        day: &str,
        usage: &Usage,
        cost_usd: f64,
    ) -> Result<(), DependencyError> {
        self.client()
            .update_item()
            .table_name(self.table_name())
            .set_key(Some(key(user.pk(), format!("USAGE#{day}"))))
            .update_expression(
                "ADD messages :one, prompt_tokens :p, completion_tokens :c, total_tokens :t, cost_usd :cost SET #day = :day",
            )
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":p", n(usage.prompt_tokens))
            .expression_attribute_values(":c", n(usage.completion_tokens))
            .expression_attribute_values(":t", n(usage.total_tokens))
            .expression_attribute_values(":cost", n(format!("{cost_usd:.12}")))
            .expression_attribute_values(":day", s(day))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// A page of the user's messages, newest first, older than `before` (a message id).
    pub async fn history(
        &self,
        user: &UserId,
        limit: u32,
        before: Option<&str>,
    ) -> Result<Page, DependencyError> {
        let upper = match before {
            Some(id) => format!("MSG#{id}"),
            None => "MSG$".to_string(), // '$' sorts right after '#': every MSG# key is below it
        };
        let out = self
            .client()
            .query()
            .table_name(self.table_name())
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(&user.pk()))
            .expression_attribute_values(":lo", s("MSG#"))
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
            .map(|item| serde_dynamo::from_item(item).map_err(|e| decode(e.to_string())))
            .collect::<Result<_, _>>()?;
        // BETWEEN is inclusive: drop the cursor's own message.
        if let Some(id) = before {
            messages.retain(|m| m.id != id);
        }
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        let next_cursor = if more {
            messages.last().map(|m| encode_cursor(user, &m.id))
        } else {
            None
        };
        Ok(Page {
            messages,
            next_cursor,
        })
    }
}

fn decode(detail: String) -> DependencyError {
    DependencyError::Decode {
        service: Service::DynamoDb,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_user() {
        let ada = UserId::parse("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let bob = UserId::parse("00000000-0000-4000-8000-000000000001").unwrap();
        let id = ulid::Ulid::new().to_string();
        let cursor = encode_cursor(&ada, &id);
        assert_eq!(decode_cursor(&ada, &cursor).unwrap(), id);
        assert!(decode_cursor(&bob, &cursor).is_err());
        assert!(decode_cursor(&ada, "not-base64!").is_err());
        assert!(decode_cursor(&ada, &URL_SAFE_NO_PAD.encode(r#"{"u":"x","m":"y"}"#)).is_err());
    }

    #[test]
    fn views_hide_internal_fields() {
        let user = UserId::parse("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let mut m = Message::new(
            &user,
            &ulid::Ulid::new(),
            Role::Assistant,
            "hi".into(),
            MessageStatus::Complete,
        );
        m.letta_run_id = Some("run-1".into());
        let v = m.view();
        assert!(v.get("pk").is_none() && v.get("letta_run_id").is_none());
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["status"], "complete");
    }
}
