//! The table's definition, and (for local runs only) its creation. `template.yaml` declares
//! the same table; a test compares the two.

pub use super::keys::{PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};

#[cfg(feature = "local")]
pub use local::ensure_table;

/// Creating the table: the local gateway's `--create-table` and the tests. Lambda binaries are
/// built without the `local` feature, so this code is not in them (in AWS the template owns the
/// table).
#[cfg(feature = "local")]
mod local {
    use std::time::Instant;

    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };

    use super::{PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
    use crate::{
        app::dependency::{DependencyError, Service},
        store::{Store, attrs::sdk_error},
    };

    /// Creates the table when it does not exist (local runs; in AWS the template owns it).
    pub async fn ensure_table(store: &Store) -> Result<bool, DependencyError> {
        match store
            .client
            .describe_table()
            .table_name(&store.table)
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
        let created = store
            .client
            .create_table()
            .table_name(&store.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(PARTITION_KEY, KeyType::Hash))
            .key_schema(key(SORT_KEY, KeyType::Range))
            .attribute_definitions(attr(PARTITION_KEY))
            .attribute_definitions(attr(SORT_KEY))
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
        wait_active(store).await?;
        store
            .client
            .update_time_to_live()
            .table_name(&store.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .expect("static TTL specification"),
            )
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(true)
    }

    async fn wait_active(store: &Store) -> Result<(), DependencyError> {
        let start = Instant::now();
        loop {
            let out = store
                .client
                .describe_table()
                .table_name(&store.table)
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
}
