//! Attribute helpers, the item envelope (keys beside a domain value) and the mapping of SDK
//! errors: the one copy the store's files share.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    Client,
    error::SdkError,
    operation::update_item::builders::UpdateItemFluentBuilder,
    types::{AttributeValue, Update},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::keys::{PARTITION_KEY, SORT_KEY};
use crate::app::dependency::{DependencyError, Service};

pub(crate) fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The primary key of one item.
pub(crate) fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PARTITION_KEY.to_string(), AttributeValue::S(pk)),
        (SORT_KEY.to_string(), AttributeValue::S(sk)),
    ])
}

/// A domain value stored under its keys (and an optional expiry): the keys stay in the store.
#[derive(Serialize, Deserialize)]
pub(crate) struct Item<T> {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<i64>,
    #[serde(flatten)]
    value: T,
}

impl<T> Item<T> {
    pub(crate) fn new(pk: String, sk: String, value: T) -> Self {
        Self {
            pk,
            sk,
            ttl: None,
            value,
        }
    }

    /// The item expires (DynamoDB deletes it some time after `epoch_secs`).
    pub(crate) fn expiring(mut self, epoch_secs: i64) -> Self {
        self.ttl = Some(epoch_secs);
        self
    }

    pub(crate) fn into_attributes(self) -> Result<HashMap<String, AttributeValue>, DependencyError>
    where
        T: Serialize,
    {
        serde_dynamo::to_item(&self).map_err(|e| decode_error(e.to_string()))
    }
}

impl<T: DeserializeOwned> Item<T> {
    pub(crate) fn from_attributes(
        item: HashMap<String, AttributeValue>,
    ) -> Result<T, DependencyError> {
        serde_dynamo::from_item::<_, Self>(item)
            .map(|i| i.value)
            .map_err(|e| decode_error(e.to_string()))
    }
}

pub(crate) fn decode_error(detail: String) -> DependencyError {
    DependencyError::Decode {
        service: Service::DynamoDb,
        detail,
    }
}

/// A write request that could not be built (a required field missing).
pub(crate) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> DependencyError {
    decode_error(e.to_string())
}

/// A transaction's update sent on its own: one builder serves both, so the expression is
/// written once.
pub(crate) fn update_item(client: &Client, update: Update) -> UpdateItemFluentBuilder {
    let Update {
        key,
        update_expression,
        table_name,
        condition_expression,
        expression_attribute_names,
        expression_attribute_values,
        ..
    } = update;
    client
        .update_item()
        .table_name(table_name)
        .set_key(Some(key))
        .update_expression(update_expression)
        .set_condition_expression(condition_expression)
        .set_expression_attribute_names(expression_attribute_names)
        .set_expression_attribute_values(expression_attribute_values)
}

/// Whether a conditional write was refused because its condition did not hold.
pub(crate) fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    e: &E,
) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

/// `Ok(true)` for a write that happened, `Ok(false)` for one whose condition failed.
pub(crate) fn conditional<O, E, R>(
    result: Result<O, SdkError<E, R>>,
) -> Result<bool, DependencyError>
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(is_condition_failure) => Ok(false),
        Err(e) => Err(sdk_error(e)),
    }
}

/// Classifies an SDK error: transport problems and throttling are "unavailable".
pub(crate) fn sdk_error<E, R>(err: SdkError<E, R>) -> DependencyError
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        name: String,
        count: u64,
        cost: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }

    #[test]
    fn items_carry_keys_beside_the_value_and_round_trip() {
        let row = Row {
            name: "a".into(),
            count: 3,
            cost: 0.25,
            note: None,
        };
        let attrs = Item::new("USER#u".into(), "X#1".into(), &row)
            .expiring(99)
            .into_attributes()
            .unwrap();
        assert_eq!(attrs["pk"], s("USER#u"));
        assert_eq!(attrs["sk"], s("X#1"));
        assert_eq!(attrs["ttl"], n(99));
        assert!(!attrs.contains_key("note"), "None is not written as NULL");
        assert_eq!(Item::<Row>::from_attributes(attrs).unwrap(), row);
    }

    #[test]
    fn whole_numbers_read_back_into_float_fields() {
        let attrs = HashMap::from([
            ("pk".to_string(), s("p")),
            ("sk".to_string(), s("s")),
            ("name".to_string(), s("b")),
            ("count".to_string(), n(1)),
            ("cost".to_string(), n(2)),
        ]);
        let row = Item::<Row>::from_attributes(attrs).unwrap();
        assert_eq!(row.cost, 2.0);
    }
}
