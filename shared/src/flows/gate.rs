//! The gate of a signed-in user's request: counted against the user's rate limits and refused
//! when the token was issued before the user's sessions were revoked, in one DynamoDB request
//! (see `store::limits`). Every request passes it before any work; a chat turn on a warm
//! instance folds it into its start transaction instead (see `chat`).

use crate::{
    app::{config::RateLimitConfig as Rates, error::AppError},
    domain::{SignedInUser, UserId},
    state::AppState,
    store::{Gate, RateLimit},
};

const MINUTE: i64 = 60;
const DAY: i64 = 24 * 3600;

/// The limits a chat turn counts against.
pub fn chat_limits(rates: &Rates) -> [RateLimit; 2] {
    [
        RateLimit {
            name: "chat_per_minute",
            max: rates.chat_per_minute,
            window_secs: MINUTE,
        },
        RateLimit {
            name: "chat_per_day",
            max: rates.chat_per_day,
            window_secs: DAY,
        },
    ]
}

/// The limit any other request counts against.
pub fn request_limits(rates: &Rates) -> [RateLimit; 1] {
    [RateLimit {
        name: "requests_per_minute",
        max: rates.requests_per_minute,
        window_secs: MINUTE,
    }]
}

/// The token's `iat` as the gate compares it (epoch seconds; 0 when absent).
pub fn issued_at(user: &SignedInUser) -> i64 {
    user.issued_at
        .map_or(0, |iat| i64::try_from(iat).unwrap_or(0))
}

/// Counts one request of `user` against `limits`; refuses a revoked token.
pub async fn pass(
    state: &AppState,
    user: &UserId,
    issued_at: i64,
    limits: &[RateLimit],
) -> Result<(), AppError> {
    match state.store.gate_user(user, issued_at, limits).await? {
        Gate::Open => Ok(()),
        Gate::Limited(exceeded) => Err(exceeded.into()),
        Gate::Revoked => Err(revoked()),
    }
}

/// The answer to a token issued before the user's sessions were revoked.
pub fn revoked() -> AppError {
    AppError::Unauthorized("this session was signed out; sign in again".into())
}
