//! A call the backend makes on the user's behalf (a conversation's title, a voice message's
//! transcript): on a key of the user's that expires by itself after two minutes and is deleted
//! right after, so LiteLLM bills the user within the user's budget and the backend never holds
//! the user's own key; what it cost joins the user's day's usage (as no message).

use crate::{
    app::{clock::today, dependency::DependencyError, error::AppError, secret::Secret},
    domain::{Usage, UserId},
    state::AppState,
};

/// Runs `call` with a short-lived key of `user`'s made for `purpose`: its answer, or 503/502
/// when the key cannot be made.
pub(super) async fn on_users_key<T>(
    state: &AppState,
    user: &UserId,
    purpose: &str,
    call: impl AsyncFnOnce(&Secret) -> Result<T, DependencyError>,
) -> Result<Result<T, DependencyError>, AppError> {
    let litellm = &state.litellm;
    let key = litellm
        .short_lived_key(user.as_str(), "2m", purpose)
        .await?;
    let answer = call(&key).await;
    if let Err(e) = litellm.delete_keys(&[key.expose().to_string()]).await {
        tracing::warn!(error = %e, purpose, "could not delete a short-lived key; it expires in two minutes");
    }
    Ok(answer)
}

/// Adds a call made on the user's behalf to the day's usage.
pub(super) async fn count_on_day(state: &AppState, user: &UserId, usage: &Usage, cost: f64) {
    if let Err(e) = state
        .store
        .add_daily_usage(user, &today(), 0, usage, cost)
        .await
    {
        tracing::warn!(error = %e, "could not add a call on the user's behalf to the day's usage");
    }
}
