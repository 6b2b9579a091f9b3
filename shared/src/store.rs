//! DynamoDB: one table, one item collection per user (`pk = USER#<sub>`), see `design.md`.

use std::time::Instant;

use aws_sdk_dynamodb::{
    Client,
    error::SdkError,
    types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType, TimeToLiveSpecification,
    },
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    config::DynamoDbConfig,
    upstream::{DependencyError, Service},
};

/// The table's definition. `template.yaml` declares the same (a test compares them).
pub mod table {
    pub const PARTITION_KEY: &str = "pk";
    pub const SORT_KEY: &str = "sk";
    /// Epoch seconds; DynamoDB deletes the item some time after. Reads must not rely on it.
    pub const TTL_ATTRIBUTE: &str = "ttl";
}

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

impl Store {
    pub async fn new(config: &DynamoDbConfig) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk_config = loader.load().await;
        Self {
            client: Client::new(&sdk_config),
            table: config.table_name.clone(),
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Liveness of DynamoDB and existence of the table.
    pub async fn health(&self) -> Result<(), DependencyError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// Creates the table when it does not exist (local runs; in AWS the template owns it).
    pub async fn ensure_table(&self) -> Result<bool, DependencyError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => return Ok(false),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(sdk_error(e)),
        }
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("static key schema")
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("static attribute definition")
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(table::PARTITION_KEY, KeyType::Hash))
            .key_schema(key(table::SORT_KEY, KeyType::Range))
            .attribute_definitions(attr(table::PARTITION_KEY))
            .attribute_definitions(attr(table::SORT_KEY))
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Another process created it between our describe and create.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(sdk_error(e)),
        }
        self.wait_active().await?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(table::TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .expect("static TTL specification"),
            )
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(true)
    }

    async fn wait_active(&self) -> Result<(), DependencyError> {
        let start = Instant::now();
        loop {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(sdk_error)?;
            let active = out
                .table()
                .and_then(|t| t.table_status())
                .is_some_and(|s| *s == aws_sdk_dynamodb::types::TableStatus::Active);
            if active {
                return Ok(());
            }
            if start.elapsed().as_secs() > 60 {
                return Err(DependencyError::Timeout {
                    service: Service::DynamoDb,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Writes an item (a serde struct with `pk` and `sk` fields).
    pub async fn put<T: Serialize>(&self, item: &T) -> Result<(), DependencyError> {
        let item = serde_dynamo::to_item(item).map_err(|e| decode_error(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// Reads one item by key; `None` when absent.
    pub async fn get<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<T>, DependencyError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(table::PARTITION_KEY, AttributeValue::S(pk.to_string()))
            .key(table::SORT_KEY, AttributeValue::S(sk.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        out.item
            .map(|item| serde_dynamo::from_item(item).map_err(|e| decode_error(e.to_string())))
            .transpose()
    }

    pub async fn delete(&self, pk: &str, sk: &str) -> Result<(), DependencyError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(table::PARTITION_KEY, AttributeValue::S(pk.to_string()))
            .key(table::SORT_KEY, AttributeValue::S(sk.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }
}

fn decode_error(detail: String) -> DependencyError {
    DependencyError::Decode {
        service: Service::DynamoDb,
        detail,
    }
}

/// Classifies an SDK error: transport problems and throttling are "unavailable".
pub fn sdk_error<E, R>(err: SdkError<E, R>) -> DependencyError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let service = Service::DynamoDb;
    match &err {
        SdkError::TimeoutError(_) => DependencyError::Timeout { service },
        SdkError::DispatchFailure(f) => DependencyError::Unreachable {
            service,
            detail: if f.is_timeout() {
                "timed out".into()
            } else {
                "connection failed".into()
            },
        },
        SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().unwrap_or("Unknown").to_string();
            let throttled = matches!(
                code.as_str(),
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
            );
            DependencyError::Status {
                service,
                status: if throttled { 503 } else { 400 },
                body: format!("{code}: {}", e.message().unwrap_or_default()),
            }
        }
        other => DependencyError::Unreachable {
            service,
            detail: format!("{other}"),
        },
    }
}
