//! Rate-limit counters: one item per limit and fixed window (`sk = RATE#<limit>#<window>`),
//! counted with an atomic `ADD` under the condition that the limit is not used up, and expiring
//! after their window. A request's limits are counted in one round trip: a transaction, so a
//! refused request counts against none of them. For a user, the same transaction checks that
//! the token was issued after the user's sessions were last revoked (`sessions_revoked_at`, on
//! the `REVOKED` item of the same partition: logout and account deletion write it). A token's
//! `iat` is whole seconds, so a token issued in the second of a revocation is refused too: it
//! may have been issued just before it.

use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    types::{CancellationReason, ConditionCheck, TransactWriteItem, Update},
};

use std::net::IpAddr;

use super::{
    Store,
    attrs::{build_error, conditional, key, n, sdk_error, update_item},
    keys::{REVOCATION_SK, account_pk, client_pk, user_limits_pk},
    table,
};
use crate::{
    app::{clock::now_epoch, dependency::DependencyError, error::AppError},
    domain::UserId,
};

/// One rate limit: at most `max` hits per window of `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Its name, as clients see it.
    pub name: &'static str,
    /// Hits allowed per window.
    pub max: u64,
    /// The window, seconds (windows start at multiples of it, UTC).
    pub window_secs: i64,
}

/// What the gate of a user's request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Counted; go on.
    Open,
    /// A limit is used up (nothing was counted).
    Limited(Exceeded),
    /// The token was issued before the user's sessions were revoked (nothing was counted).
    Revoked,
}

/// A limit that is used up: which, and when its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    /// The limit.
    pub limit: &'static str,
    /// Seconds until its window ends.
    pub retry_after: u64,
}

impl RateLimit {
    fn window(&self, now: i64) -> (i64, i64) {
        let start = now - now.rem_euclid(self.window_secs);
        (start, start + self.window_secs)
    }

    fn update(&self, table: &str, pk: &str, now: i64) -> Result<Update, DependencyError> {
        self.add(table, pk, now, 1, true)
    }

    /// Adds `amount` to the window's counter; `checked`: only while it stays within `max`.
    fn add(
        &self,
        table: &str,
        pk: &str,
        now: i64,
        amount: u64,
        checked: bool,
    ) -> Result<Update, DependencyError> {
        let (start, end) = self.window(now);
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(key(
                pk.to_string(),
                format!("RATE#{}#{start}", self.name),
            )))
            .update_expression("ADD hits :amount SET #ttl = :ttl")
            .expression_attribute_names("#ttl", table::TTL_ATTRIBUTE)
            .expression_attribute_values(":amount", n(amount))
            // Kept a minute past the window: DynamoDB's TTL deletes lazily anyway.
            .expression_attribute_values(":ttl", n(end + 60));
        let update = if checked {
            update
                .condition_expression("attribute_not_exists(hits) OR hits <= :room")
                .expression_attribute_values(":room", n(self.max.saturating_sub(amount)))
        } else {
            update
        };
        update.build().map_err(build_error)
    }

    pub(super) fn exceeded(&self, now: i64) -> Exceeded {
        Exceeded {
            limit: self.name,
            retry_after: u64::try_from(self.window(now).1 - now).unwrap_or(1),
        }
    }
}

/// A used-up limit is a 429 naming it, with `Retry-After` until its window ends.
impl From<Exceeded> for AppError {
    fn from(exceeded: Exceeded) -> Self {
        AppError::RateLimited {
            limit: exceeded.limit,
            retry_after: exceeded.retry_after,
        }
    }
}

/// How a transaction of counters went.
enum Outcome {
    Counted,
    Exceeded(Exceeded),
    CheckFailed,
}

impl Store {
    /// Counts one request of a user whose token was issued at `issued_at` (epoch seconds)
    /// against `limits`, in one transaction with the check that the user's sessions were last
    /// revoked in an earlier second than that.
    pub async fn gate_user(
        &self,
        user: &UserId,
        issued_at: i64,
        limits: &[RateLimit],
    ) -> Result<Gate, DependencyError> {
        let check = self.revocation_check(user, issued_at)?;
        match self.hit(&user_limits_pk(user), limits, Some(check)).await? {
            Outcome::Counted => Ok(Gate::Open),
            Outcome::Exceeded(e) => Ok(Gate::Limited(e)),
            Outcome::CheckFailed => Ok(Gate::Revoked),
        }
    }

    /// The check that the user's sessions were last revoked in an earlier second than
    /// `issued_at`, as a transaction's item.
    fn revocation_check(
        &self,
        user: &UserId,
        issued_at: i64,
    ) -> Result<TransactWriteItem, DependencyError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_limits_pk(user), REVOCATION_SK.into())))
            .condition_expression(
                "attribute_not_exists(sessions_revoked_at) OR sessions_revoked_at < :iat",
            )
            .expression_attribute_values(":iat", n(issued_at))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// The gate of a user's request as items of another transaction: one counter update per
    /// limit (in `limits`' order), then the revocation check.
    pub(super) fn gate_items(
        &self,
        user: &UserId,
        issued_at: i64,
        limits: &[RateLimit],
        now: i64,
    ) -> Result<Vec<TransactWriteItem>, DependencyError> {
        let pk = user_limits_pk(user);
        let mut items = Vec::with_capacity(limits.len() + 1);
        for limit in limits {
            let update = limit.update(&self.table, &pk, now)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        items.push(self.revocation_check(user, issued_at)?);
        Ok(items)
    }

    /// Revokes every access token of the user issued before or in the second `at` (epoch
    /// seconds). The record
    /// expires when the longest-lived token it refuses has (Supabase allows one week).
    pub async fn revoke_sessions(&self, user: &UserId, at: i64) -> Result<(), DependencyError> {
        const LONGEST_TOKEN_LIFETIME_SECS: i64 = 7 * 24 * 3600;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_limits_pk(user), REVOCATION_SK.into())))
            .update_expression("SET sessions_revoked_at = :at, #ttl = :ttl")
            .expression_attribute_names("#ttl", table::TTL_ATTRIBUTE)
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":ttl", n(at + LONGEST_TOKEN_LIFETIME_SECS + 3600))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    /// Whether an account's failed password checks (by its normalized email) used `limit` up.
    pub async fn password_failures_exceeded(
        &self,
        email: &str,
        limit: &RateLimit,
    ) -> Result<Option<Exceeded>, DependencyError> {
        let now = now_epoch();
        let (start, _) = limit.window(now);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(
                account_pk(email),
                format!("RATE#{}#{start}", limit.name),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        let hits = out
            .item
            .and_then(|item| item.get("hits")?.as_n().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        Ok((hits >= limit.max).then(|| limit.exceeded(now)))
    }

    /// Counts one failed password check of an account (by its normalized email).
    pub async fn count_password_failure(
        &self,
        email: &str,
        limit: &RateLimit,
    ) -> Result<(), DependencyError> {
        self.count(&account_pk(email), limit, 1).await
    }

    /// Uses `amount` of a user's `quota` (a limit counted in units, not requests) if that
    /// much is left in its window; nothing is counted when it is not.
    pub async fn use_quota(
        &self,
        user: &UserId,
        quota: &RateLimit,
        amount: u64,
    ) -> Result<Option<Exceeded>, DependencyError> {
        let now = now_epoch();
        if amount > quota.max {
            return Ok(Some(quota.exceeded(now)));
        }
        let update = quota.add(&self.table, &user_limits_pk(user), now, amount, true)?;
        let used = conditional(update_item(&self.client, update).send().await)?;
        Ok((!used).then(|| quota.exceeded(now)))
    }

    /// Counts `amount` against a user's `quota` whatever is left (what already happened, such
    /// as the agent's own use during a turn).
    pub async fn count_quota(
        &self,
        user: &UserId,
        quota: &RateLimit,
        amount: u64,
    ) -> Result<(), DependencyError> {
        self.count(&user_limits_pk(user), quota, amount).await
    }

    /// Adds `amount` to `limit`'s counter of the partition `pk`, whatever is left.
    async fn count(&self, pk: &str, limit: &RateLimit, amount: u64) -> Result<(), DependencyError> {
        let update = limit.add(&self.table, pk, now_epoch(), amount, false)?;
        update_item(&self.client, update)
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    /// Counts one hit against a client address's limits; clients whose address is unknown
    /// share one counter.
    pub async fn hit_client(
        &self,
        ip: Option<IpAddr>,
        limits: &[RateLimit],
    ) -> Result<Option<Exceeded>, DependencyError> {
        Ok(match self.hit(&client_pk(ip), limits, None).await? {
            Outcome::Exceeded(e) => Some(e),
            Outcome::Counted | Outcome::CheckFailed => None,
        })
    }

    /// Counts one hit against each limit of the partition `pk` (`LIMIT#USER#…` or `LIMIT#IP#…`), with an
    /// extra condition check in the same transaction; nothing is counted unless all pass.
    async fn hit(
        &self,
        pk: &str,
        limits: &[RateLimit],
        check: Option<TransactWriteItem>,
    ) -> Result<Outcome, DependencyError> {
        let now = now_epoch();
        let mut items = Vec::with_capacity(limits.len() + 1);
        for limit in limits {
            let update = limit.update(&self.table, pk, now)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let checked = check.is_some();
        items.extend(check);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Outcome::Counted),
            Err(e) => e,
        };
        // Which condition failed: the cancellation reasons, in the order of the items.
        let reasons = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                e.cancellation_reasons().to_vec()
            }
            _ => return Err(sdk_error(err)),
        };
        let failed = |r: &CancellationReason| r.code() == Some("ConditionalCheckFailed");
        if checked && reasons.get(limits.len()).is_some_and(failed) {
            return Ok(Outcome::CheckFailed);
        }
        for (limit, reason) in limits.iter().zip(&reasons) {
            if failed(reason) {
                return Ok(Outcome::Exceeded(limit.exceeded(now)));
            }
        }
        // Cancelled for another reason (a concurrent transaction on the same items): retryable.
        Err(sdk_error(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_fixed_and_retry_after_reaches_their_end() {
        let limit = RateLimit {
            name: "per_minute",
            max: 3,
            window_secs: 60,
        };
        assert_eq!(limit.window(125), (120, 180));
        assert_eq!(limit.exceeded(125).retry_after, 55);
        assert_eq!(limit.exceeded(179).retry_after, 1);
    }
}
