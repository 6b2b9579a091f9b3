//! The profile item (`sk = PROFILE`): create, read, conditional state transitions, single
//! fields, and the provisioning lease.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{
    Store,
    attrs::{Item, conditional, decode_error, key, n, s, sdk_error},
    keys::{PROFILE_SK, USER_PREFIX, user_pk},
};
use crate::{
    app::{
        clock::{now_epoch, now_rfc3339},
        dependency::DependencyError,
    },
    domain::{BudgetUsedUp, Profile, ProvisioningState, UserId},
};

/// The provisioning lease one run holds: only it can renew or release it.
#[derive(Debug, Clone)]
pub struct Lease {
    owner: String,
    seconds: i64,
}

/// Fields a state transition sets alongside the new state.
#[derive(Default)]
pub struct Transition {
    /// `(field, value)` pairs.
    pub set: Vec<(&'static str, String)>,
}

fn profile_key(user: &UserId) -> HashMap<String, AttributeValue> {
    key(user_pk(user), PROFILE_SK.into())
}

impl Store {
    /// The user's profile; `None` when there is none.
    pub async fn get_profile(&self, user: &UserId) -> Result<Option<Profile>, DependencyError> {
        self.get(user_pk(user), PROFILE_SK.into()).await
    }

    /// Creates the profile unless one exists; returns the stored one either way.
    pub async fn create_profile(&self, profile: &Profile) -> Result<Profile, DependencyError> {
        let item = Item::new(user_pk(&profile.user_id), PROFILE_SK.into(), profile);
        if self.put_new(item.into_attributes()?, None).await? {
            return Ok(profile.clone());
        }
        Ok(self
            .get_profile(&profile.user_id)
            .await?
            .unwrap_or_else(|| profile.clone()))
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
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key(user)))
            .update_expression(update)
            .condition_expression("#state = :from")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional(result)
    }

    /// Sets (or clears) one string field of the profile; nothing happens without a profile.
    pub async fn set_profile_field(
        &self,
        user: &UserId,
        field: &str,
        value: Option<&str>,
    ) -> Result<(), DependencyError> {
        self.set_field(user_pk(user), PROFILE_SK.into(), field, value)
            .await
    }

    /// Records (or clears) a budget set at or below the period's spend.
    pub async fn set_budget_used_up(
        &self,
        user: &UserId,
        used_up: Option<&BudgetUsedUp>,
    ) -> Result<(), DependencyError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key(user)))
            .condition_expression("attribute_exists(pk)");
        let request = match used_up {
            Some(v) => {
                let value =
                    serde_dynamo::to_attribute_value(v).map_err(|e| decode_error(e.to_string()))?;
                request
                    .update_expression("SET budget_used_up = :v")
                    .expression_attribute_values(":v", value)
            }
            None => request.update_expression("REMOVE budget_used_up"),
        };
        conditional(request.send().await).map(|_| ())
    }

    /// Points the profile at the user's agent and records its architecture, in one write.
    pub async fn set_profile_agent(
        &self,
        user: &UserId,
        agent_id: &str,
        agent_type: &str,
    ) -> Result<(), DependencyError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key(user)))
            .update_expression("SET letta_agent_id = :a, letta_agent_type = :t, updated_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":a", s(agent_id))
            .expression_attribute_values(":t", s(agent_type))
            .expression_attribute_values(":now", s(&now_rfc3339()))
            .send()
            .await;
        conditional(result).map(|_| ())
    }

    /// Reserves `count` archival memories under the cap: false when it would pass `cap`.
    pub async fn reserve_archival(
        &self,
        user: &UserId,
        count: u64,
        cap: u64,
    ) -> Result<bool, DependencyError> {
        self.reserve_counted(user, "archival_passages", count, cap)
            .await
    }

    /// Changes the user's archival memory count by `delta` (memories the agent saved itself,
    /// a deletion, a reservation given back); a decrease below zero is not made.
    pub async fn count_archival(&self, user: &UserId, delta: i64) -> Result<(), DependencyError> {
        self.change_counted(user, "archival_passages", delta).await
    }

    /// Reserves one document under the cap (`FILES_MAX`): false when the user has `cap`.
    pub async fn reserve_file(&self, user: &UserId, cap: u64) -> Result<bool, DependencyError> {
        self.reserve_counted(user, "file_count", 1, cap).await
    }

    /// Changes the user's document count by `delta` (a deletion, a reservation given back).
    pub async fn count_files(&self, user: &UserId, delta: i64) -> Result<(), DependencyError> {
        self.change_counted(user, "file_count", delta).await
    }

    /// Records the user's Letta folder, unless one is recorded: false when another request
    /// recorded its own first.
    pub async fn set_folder(
        &self,
        user: &UserId,
        folder_id: &str,
    ) -> Result<bool, DependencyError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key(user)))
            .update_expression("SET letta_folder_id = :f")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(letta_folder_id)")
            .expression_attribute_values(":f", AttributeValue::S(folder_id.to_string()))
            .send()
            .await;
        conditional(result)
    }

    /// Adds `count` to the profile's `field` unless that passes `cap` (one conditional write).
    async fn reserve_counted(
        &self,
        user: &UserId,
        field: &str,
        count: u64,
        cap: u64,
    ) -> Result<bool, DependencyError> {
        let Some(room) = cap.checked_sub(count) else {
            return Ok(false);
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key(user)))
            .update_expression(format!("ADD {field} :n"))
            .condition_expression(format!(
                "attribute_exists(pk) AND (attribute_not_exists({field}) OR {field} <= :room)"
            ))
            .expression_attribute_values(":n", n(count))
            .expression_attribute_values(":room", n(room))
            .send()
            .await;
        conditional(result)
    }

    /// Adds `delta` to the profile's `field`; a decrease below zero is not made.
    async fn change_counted(
        &self,
        user: &UserId,
        field: &str,
        delta: i64,
    ) -> Result<(), DependencyError> {
        if delta == 0 {
            return Ok(()); // the common insert (one passage, as reserved): nothing to write
        }
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key(user)))
            .update_expression(format!("ADD {field} :d"))
            .expression_attribute_values(":d", n(delta));
        let request = if delta >= 0 {
            request.condition_expression("attribute_exists(pk)")
        } else {
            request
                .condition_expression(format!("attribute_exists(pk) AND {field} >= :least"))
                .expression_attribute_values(":least", n(-delta))
        };
        conditional(request.send().await).map(|_| ())
    }

    /// Sets the user's archival memory count to zero (a new agent with an empty archive).
    pub async fn clear_archival(&self, user: &UserId) -> Result<(), DependencyError> {
        self.set_profile_field(user, "archival_passages", None)
            .await
    }

    /// The id of every user with a profile (a scan of the whole table, for the reconciler).
    pub async fn profile_ids(&self) -> Result<Vec<UserId>, DependencyError> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :profile")
                .expression_attribute_values(":profile", s(PROFILE_SK))
                .projection_expression("pk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            for item in out.items.unwrap_or_default() {
                let pk = item.get("pk").and_then(|v| v.as_s().ok());
                if let Some(id) = pk.and_then(|pk| pk.strip_prefix(USER_PREFIX)) {
                    ids.extend(UserId::parse(id).ok());
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(ids);
            }
        }
    }

    /// Takes the provisioning lease for `seconds`; `None` when another run holds it.
    pub async fn lock_provisioning(
        &self,
        user: &UserId,
        seconds: i64,
    ) -> Result<Option<Lease>, DependencyError> {
        let now = now_epoch();
        let lease = Lease {
            owner: ulid::Ulid::new().to_string(),
            seconds,
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key(user)))
            .update_expression("SET lock_until = :until, lock_owner = :owner")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(lock_until) OR lock_until < :now)",
            )
            .expression_attribute_values(":until", n(now + seconds))
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        Ok(conditional(result)?.then_some(lease))
    }

    /// Renews the lease if this run still holds it; false when it expired and another run
    /// took it (then the run must stop before changing anything).
    pub async fn renew_lease(&self, user: &UserId, lease: &Lease) -> Result<bool, DependencyError> {
        let now = now_epoch();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key(user)))
            .update_expression("SET lock_until = :until")
            .condition_expression("lock_owner = :owner")
            .expression_attribute_values(":until", n(now + lease.seconds))
            .expression_attribute_values(":owner", s(&lease.owner))
            .send()
            .await;
        conditional(result)
    }

    /// Releases the provisioning lease, if this run still holds it.
    pub async fn unlock_provisioning(
        &self,
        user: &UserId,
        lease: &Lease,
    ) -> Result<(), DependencyError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(profile_key(user)))
            .update_expression("REMOVE lock_until, lock_owner")
            .condition_expression("lock_owner = :owner")
            .expression_attribute_values(":owner", s(&lease.owner))
            .send()
            .await;
        conditional(result).map(|_| ())
    }
}
