//! The profile item (`pk = USER#<sub>`, `sk = PROFILE`) and its provisioning state machine:
//! `signed_up → litellm_user → letta_provider → letta_agent → ready`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use serde::{Deserialize, Serialize};

use crate::{
    domain::UserId,
    store::{Store, sdk_error, table},
    upstream::{DependencyError, Service},
};

pub const PROFILE_SK: &str = "PROFILE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisioningState {
    SignedUp,
    LitellmUser,
    LettaProvider,
    LettaAgent,
    Ready,
}

impl ProvisioningState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedUp => "signed_up",
            Self::LitellmUser => "litellm_user",
            Self::LettaProvider => "letta_provider",
            Self::LettaAgent => "letta_agent",
            Self::Ready => "ready",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub pk: String,
    pub sk: String,
    pub user_id: UserId,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub state: ProvisioningState,
    pub model: String,
    /// When the Supabase user was created.
    pub user_created_at: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub litellm_key_alias: Option<String>,
    /// SHA-256 of the user's LiteLLM key (LiteLLM's own key id); the key itself is stored only
    /// in Letta's provider, encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub litellm_key_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_agent_id: Option<String>,
    /// Why the last provisioning attempt stopped, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_error: Option<String>,
    /// Epoch seconds until which a provisioning run holds the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_until: Option<i64>,
}

impl Profile {
    pub fn new(
        user_id: UserId,
        email: &str,
        display_name: Option<String>,
        model: &str,
        user_created_at: &str,
    ) -> Self {
        let now = now_rfc3339();
        Self {
            pk: user_id.pk(),
            sk: PROFILE_SK.into(),
            user_id,
            email: email.to_string(),
            display_name,
            state: ProvisioningState::SignedUp,
            model: model.to_string(),
            user_created_at: user_created_at.to_string(),
            created_at: now.clone(),
            updated_at: now,
            litellm_key_alias: None,
            litellm_key_hash: None,
            letta_provider_id: None,
            letta_agent_id: None,
            provisioning_error: None,
            lock_until: None,
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn now_epoch() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn key(user: &UserId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (table::PARTITION_KEY.to_string(), s(&user.pk())),
        (table::SORT_KEY.to_string(), s(PROFILE_SK)),
    ])
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

/// Fields a state transition sets alongside the new state.
#[derive(Default)]
pub struct Transition {
    pub set: Vec<(&'static str, String)>,
}

impl Store {
    pub async fn get_profile(&self, user: &UserId) -> Result<Option<Profile>, DependencyError> {
        self.get(&user.pk(), PROFILE_SK).await
    }

    /// Creates the profile unless one exists; returns the stored one either way.
    pub async fn create_profile(&self, profile: &Profile) -> Result<Profile, DependencyError> {
        let item = serde_dynamo::to_item(profile).map_err(|e| DependencyError::Decode {
            service: Service::DynamoDb,
            detail: e.to_string(),
        })?;
        let put = self
            .client()
            .put_item()
            .table_name(self.table_name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(profile.clone()),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(self
                .get_profile(&profile.user_id)
                .await?
                .unwrap_or_else(|| profile.clone())),
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Moves the profile from `from` to `to` (only if it is still at `from`), setting fields.
    /// Returns false when another run moved it first.
    pub async fn advance_profile(
        &self,
        user: &UserId,
        from: ProvisioningState,
        to: ProvisioningState,
        transition: Transition,
    ) -> Result<bool, DependencyError> {
        let mut expr = vec!["#state = :to".to_string(), "updated_at = :now".to_string()];
        let mut names = HashMap::from([("#state".to_string(), "state".to_string())]);
        let mut values = HashMap::from([
            (":to".to_string(), s(to.as_str())),
            (":from".to_string(), s(from.as_str())),
            (":now".to_string(), s(&now_rfc3339())),
        ]);
        for (i, (field, value)) in transition.set.iter().enumerate() {
            expr.push(format!("#f{i} = :v{i}"));
            names.insert(format!("#f{i}"), field.to_string());
            values.insert(format!(":v{i}"), s(value));
        }
        let mut update = format!("SET {}", expr.join(", "));
        if to == ProvisioningState::Ready {
            update.push_str(" REMOVE provisioning_error");
        }
        let result = self
            .client()
            .update_item()
            .table_name(self.table_name())
            .set_key(Some(key(user)))
            .update_expression(update)
            .condition_expression("#state = :from")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Sets (or clears) one string field of the profile.
    pub async fn set_profile_field(
        &self,
        user: &UserId,
        field: &str,
        value: Option<&str>,
    ) -> Result<(), DependencyError> {
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table_name())
            .set_key(Some(key(user)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#f", field);
        request = match value {
            Some(v) => request
                .update_expression("SET #f = :v")
                .expression_attribute_values(":v", s(v)),
            None => request.update_expression("REMOVE #f"),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(()),
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Takes the provisioning lease for `seconds`; false when another run holds it.
    pub async fn lock_provisioning(
        &self,
        user: &UserId,
        seconds: i64,
    ) -> Result<bool, DependencyError> {
        let now = now_epoch();
        let result = self
            .client()
            .update_item()
            .table_name(self.table_name())
            .set_key(Some(key(user)))
            .update_expression("SET lock_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(lock_until) OR lock_until < :now)",
            )
            .expression_attribute_values(":until", AttributeValue::N((now + seconds).to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }

    pub async fn unlock_provisioning(&self, user: &UserId) -> Result<(), DependencyError> {
        self.client()
            .update_item()
            .table_name(self.table_name())
            .set_key(Some(key(user)))
            .update_expression("REMOVE lock_until")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if e.as_service_error().is_some_and(is_condition_failure) {
                    Ok(())
                } else {
                    Err(sdk_error(e))
                }
            })
    }

    /// Deletes every item of a user's collection; returns how many there were.
    pub async fn delete_user_items(&self, user: &UserId) -> Result<usize, DependencyError> {
        let mut keys = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client()
                .query()
                .table_name(self.table_name())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&user.pk()))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            keys.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let count = keys.len();
        for chunk in keys.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(k.clone()))
                                .build()
                                .expect("key set"),
                        )
                        .build()
                })
                .collect();
            for attempt in 0..5 {
                let out = self
                    .client()
                    .batch_write_item()
                    .request_items(self.table_name(), requests.clone())
                    .send()
                    .await
                    .map_err(sdk_error)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(self.table_name()))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            if !requests.is_empty() {
                return Err(DependencyError::Status {
                    service: Service::DynamoDb,
                    status: 503,
                    body: "some items could not be deleted (throttled)".into(),
                });
            }
        }
        Ok(count)
    }
}
