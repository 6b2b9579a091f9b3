//! Everything that talks to DynamoDB: one table, one item collection per user
//! (`pk = USER#<sub>`). No other module builds a DynamoDB request; the rest of the code asks
//! the store for domain values. Key formats live in [`keys`].

mod api_keys;
mod attrs;
mod conversations;
mod keys;
mod known;
mod limits;
mod messages;
mod profiles;
pub mod table;
mod turn_writes;
mod turns;
mod usage;

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    Client,
    operation::query::{QueryOutput, builders::QueryFluentBuilder},
    types::{AttributeValue, DeleteRequest, WriteRequest},
};

pub use api_keys::{ApiKeyRecord, KeyOwner, KeyStored};
pub use conversations::Created;
pub use known::{KnownFacts, ProfileFacts, TurnCache, rememberable};
pub use limits::{Exceeded, Gate, RateLimit};
pub use messages::{HistoryPage, MessageAt};
pub use profiles::{Lease, Transition};
pub use turn_writes::{TurnEnd, TurnReads, TurnStart, Unread};
pub use turns::{Held, IDEMPOTENCY_TTL_SECS, IdempotencyRecord, TURN_LOCK_TTL_SECS, TurnState};
pub use usage::DayUsage;

use crate::{
    app::{
        config::DynamoDbConfig,
        dependency::{DependencyError, Service},
    },
    domain::UserId,
};
use attrs::{Item, conditional, n, s, sdk_error};

/// The table and the client that reaches it, built once per cold start.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    /// A store on the configured table (and DynamoDB Local's endpoint, when set).
    pub async fn new(config: &DynamoDbConfig) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .operation_attempt_timeout(config.attempt_timeout)
            .operation_timeout(config.attempt_timeout * 3)
            .build();
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk_config = loader.load().await;
        Self {
            client: Client::new(&sdk_config),
            table: config.table_name.clone(),
        }
    }

    /// The same table and connections, with `function` named in every request's user agent
    /// (see [`crate::app::aws`]): each function's store is its own.
    pub fn for_function(&self, function: &str) -> Self {
        let config = self
            .client
            .config()
            .to_builder()
            .app_name(crate::app::aws::app_name(function))
            .build();
        Self {
            client: Client::from_conf(config),
            table: self.table.clone(),
        }
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Liveness of DynamoDB, existence of the table and the right to read it: a `GetItem` of a
    /// key no item has (a data-plane read as cheap as any; `DescribeTable` took 40–100 ms on
    /// DynamoDB Local, see docs/benchmarks.md, and needs a permission nothing else uses).
    pub async fn health(&self) -> Result<(), DependencyError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(attrs::key("HEALTH".into(), "HEALTH".into())))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// Writes `value` as the item `(pk, sk)`, replacing what was there.
    async fn put<T: serde::Serialize>(
        &self,
        pk: String,
        sk: String,
        value: &T,
    ) -> Result<(), DependencyError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Item::new(pk, sk, value).into_attributes()?))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// Reads one item by key (strongly consistent); `None` when absent.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<T>, DependencyError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(attrs::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        out.item.map(Item::<T>::from_attributes).transpose()
    }

    /// Writes a new item unless one with its key exists (for an item with an expiry: one that
    /// has not expired at `now`). Returns false when it exists.
    async fn put_new(
        &self,
        item: HashMap<String, AttributeValue>,
        now: Option<i64>,
    ) -> Result<bool, DependencyError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match now {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(now) => request
                .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
                .expression_attribute_names("#ttl", table::TTL_ATTRIBUTE)
                .expression_attribute_values(":now", n(now)),
        };
        conditional(request.send().await)
    }

    /// Sets (or, with `None`, removes) one string attribute of an item that exists; an item
    /// that is gone is left alone.
    async fn set_field(
        &self,
        pk: String,
        sk: String,
        field: &str,
        value: Option<&str>,
    ) -> Result<(), DependencyError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(attrs::key(pk, sk)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#f", field);
        let request = match value {
            Some(v) => request
                .update_expression("SET #f = :v")
                .expression_attribute_values(":v", s(v)),
            None => request.update_expression("REMOVE #f"),
        };
        conditional(request.send().await).map(|_| ())
    }

    /// A query on this table, from its first page to its last; `page` sees each page.
    /// The one page-walking loop of the store.
    async fn for_each_page(
        &self,
        query: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
        mut page: impl FnMut(QueryOutput) -> Result<(), DependencyError>,
    ) -> Result<(), DependencyError> {
        let mut start = None;
        loop {
            let out = query(self.client.query().table_name(&self.table))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            start = out.last_evaluated_key.clone();
            page(out)?;
            if start.is_none() {
                return Ok(());
            }
        }
    }

    /// A user's items whose sort key starts with `prefix`, decoded, in key order.
    async fn user_items<T: serde::de::DeserializeOwned>(
        &self,
        user: &UserId,
        prefix: &str,
    ) -> Result<Vec<T>, DependencyError> {
        let mut found = Vec::new();
        self.for_each_page(
            |q| {
                q.key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":pk", s(&keys::user_pk(user)))
                    .expression_attribute_values(":prefix", s(prefix))
            },
            |page| {
                for item in page.items.unwrap_or_default() {
                    found.push(attrs::Item::from_attributes(item)?);
                }
                Ok(())
            },
        )
        .await?;
        Ok(found)
    }

    /// The keys of a user's items whose sort key starts with `prefix` (all items for "").
    async fn keys_of(
        &self,
        user: &UserId,
        prefix: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, DependencyError> {
        let mut found = Vec::new();
        self.for_each_page(
            |q| {
                let q = q
                    .expression_attribute_values(":pk", s(&keys::user_pk(user)))
                    .projection_expression("pk, sk");
                // DynamoDB refuses an empty string in a key condition: no prefix, no condition.
                if prefix.is_empty() {
                    q.key_condition_expression("pk = :pk")
                } else {
                    q.key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                        .expression_attribute_values(":prefix", s(prefix))
                }
            },
            |out| {
                found.extend(out.items.unwrap_or_default());
                Ok(())
            },
        )
        .await?;
        Ok(found)
    }

    /// Deletes items by key, 25 per batch, retrying what DynamoDB leaves unprocessed.
    async fn delete_keys(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<usize, DependencyError> {
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
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests.clone())
                    .send()
                    .await
                    .map_err(sdk_error)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
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

    /// Deletes every item of a user's collection; returns how many there were.
    /// The lookups of the user's API keys go too (they live outside the user's partition).
    pub async fn delete_user_items(&self, user: &UserId) -> Result<usize, DependencyError> {
        let lookups = self.api_key_lookups(user).await?;
        self.delete_keys(lookups).await?;
        let keys = self.keys_of(user, "").await?;
        self.delete_keys(keys).await
    }
}
