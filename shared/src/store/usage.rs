//! Daily usage items (`sk = USAGE#<yyyy-mm-dd>`): counters added to atomically with `ADD`, and
//! read back for a range of days.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::Update;
use serde::Deserialize;

use super::{
    Store,
    attrs::{Item, build_error, key, n, s, sdk_error, update_item},
    keys::{USAGE_PREFIX, usage_sk, user_pk},
};
use crate::{
    app::dependency::DependencyError,
    domain::{Usage, UserId},
};

/// One day's totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
pub struct DayUsage {
    /// Replies stored that day.
    #[serde(default)]
    pub messages: u64,
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Cost in USD.
    #[serde(default)]
    pub cost_usd: f64,
}

impl Store {
    /// Adds LLM use to the day's usage aggregate, atomically: a turn (`messages` 1) or a call
    /// made for the user outside a turn (a conversation's title, `messages` 0). An `ADD` done
    /// twice counts twice, so it is tried again only when DynamoDB surely did not apply it (the
    /// request was not sent, or was throttled), beyond the SDK's own retries.
    pub async fn add_daily_usage(
        &self,
        user: &UserId,
        day: &str,
        messages: u64,
        usage: &Usage,
        cost_usd: f64,
    ) -> Result<(), DependencyError> {
        let update = self.daily_usage_update(user, day, messages, usage, cost_usd)?;
        let mut attempt = 0u32;
        loop {
            let result = update_item(&self.client, update.clone()).send().await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 4 && not_applied(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(150 << attempt)).await;
                }
                Err(e) => return Err(sdk_error(e)),
            }
        }
    }

    /// [`Store::add_daily_usage`]'s update, also written inside the turn's end transaction.
    pub(super) fn daily_usage_update(
        &self,
        user: &UserId,
        day: &str,
        messages: u64,
        usage: &Usage,
        cost_usd: f64,
    ) -> Result<Update, DependencyError> {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), usage_sk(day))))
            .update_expression(
                "ADD messages :one, prompt_tokens :p, completion_tokens :c, total_tokens :t, cost_usd :cost SET #day = :day",
            )
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":one", n(messages))
            .expression_attribute_values(":p", n(usage.prompt_tokens))
            .expression_attribute_values(":c", n(usage.completion_tokens))
            .expression_attribute_values(":t", n(usage.total_tokens))
            .expression_attribute_values(":cost", n(format!("{cost_usd:.12}")))
            .expression_attribute_values(":day", s(day))
            .build()
            .map_err(build_error)
    }

    /// The stored days between `from` and `to` (`yyyy-mm-dd`, inclusive), by day.
    pub async fn usage_days(
        &self,
        user: &UserId,
        from: &str,
        to: &str,
    ) -> Result<BTreeMap<String, DayUsage>, DependencyError> {
        let mut days = BTreeMap::new();
        self.for_each_page(
            |q| {
                q.key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                    .expression_attribute_values(":pk", s(&user_pk(user)))
                    .expression_attribute_values(":lo", s(&usage_sk(from)))
                    .expression_attribute_values(":hi", s(&usage_sk(to)))
            },
            |page| {
                for item in page.items.unwrap_or_default() {
                    let day = item
                        .get("sk")
                        .and_then(|v| v.as_s().ok())
                        .and_then(|sk| sk.strip_prefix(USAGE_PREFIX))
                        .map(str::to_string);
                    let row: DayUsage = Item::from_attributes(item)?;
                    if let Some(day) = day {
                        days.insert(day, row);
                    }
                }
                Ok(())
            },
        )
        .await?;
        Ok(days)
    }
}

/// Whether a failed write surely was not applied: never sent, or refused for throughput.
fn not_applied<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    use aws_sdk_dynamodb::error::SdkError;
    match err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::DispatchFailure(f) => !f.is_timeout() && !f.is_io(),
        SdkError::ServiceError(s) => matches!(
            s.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
            )
        ),
        _ => false,
    }
}
