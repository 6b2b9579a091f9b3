//! Personal API keys: make (with a session token only), list, revoke.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use shared::{
    AppError, AppState,
    app::error::ErrorBody,
    domain::{ApiKeyName, SignedInUser, api_key_lifetime},
    flows::api_keys,
    http::{
        ApiJson,
        schemas::KeyName,
        views::{
            self, DeletedView,
            api_keys::{ApiKeysView, CreatedApiKeyView},
        },
    },
};
use utoipa::ToSchema;

/// A new key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    /// What it is for (1–64 characters, not only spaces, no control characters).
    #[schema(value_type = KeyName)]
    name: String,
    /// Days until it expires (1–365, whole); without it, never.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 365)]
    expires_in_days: Option<f64>,
}

/// Makes a personal API key for the OpenAI-compatible routes. The key is in this answer only.
///
/// A session token is needed: a key cannot make keys.
#[utoipa::path(
    post,
    path = "/api/v1/user/api-keys",
    tag = "user",
    request_body = NewKey,
    responses(
        (status = 201, description = "The key, shown once", body = CreatedApiKeyView),
        (status = 409, description = "`api_key_limit` (10 keys) or `provisioning`", body = ErrorBody),
    )
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), AppError> {
    let name = ApiKeyName::parse(&body.name)?;
    let days = api_key_lifetime(body.expires_in_days)?;
    let created = api_keys::create(&state, &user, &name, days).await?;
    Ok((
        StatusCode::CREATED,
        Json(views::api_keys::created(&created)),
    ))
}

/// The user's API keys, without their secret.
#[utoipa::path(
    get,
    path = "/api/v1/user/api-keys",
    tag = "user",
    responses((status = 200, description = "The keys", body = ApiKeysView))
)]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<ApiKeysView>, AppError> {
    let all = api_keys::list(&state, &user).await?;
    Ok(Json(views::api_keys::api_keys(&all)))
}

/// Revokes one of the user's API keys: the next request with it is 401.
#[utoipa::path(
    delete,
    path = "/api/v1/user/api-keys/{id}",
    tag = "user",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Revoked", body = DeletedView),
        (status = 404, description = "No such key of the user's", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<Json<DeletedView>, AppError> {
    api_keys::revoke(&state, &user, &id).await?;
    Ok(Json(views::deleted(&id, None)))
}
