//! The signed-in user: `Authorization: Bearer <access token>`, verified, becomes a
//! [`SignedInUser`]. Every failure is 401 with `WWW-Authenticate: Bearer`.

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{
    app::{error::AppError, secret::Secret},
    domain::{SignedInUser, UserId, is_api_key},
    flows::{api_keys, gate},
    state::AppState,
};

fn unauthorized(message: &str) -> AppError {
    AppError::Unauthorized(message.to_string())
}

/// The signed-in user of a chat turn, whose request is not gated yet: the turn passes the gate
/// itself, in its start transaction on a warm instance (`flows::chat`), so its handler must
/// hand it to the flow before anything else can refuse the request.
pub struct TurnCaller(pub SignedInUser);

impl FromRequestParts<AppState> for TurnCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        verified(parts, state).await.map(Self)
    }
}

/// The caller of an OpenAI-compatible route: a personal API key (`sk-chat-…`) or an access
/// token, verified and not gated yet (the turn passes the gate itself, as a chat turn does).
pub struct ApiCaller(pub SignedInUser);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(parts)?;
        if is_api_key(token) {
            return api_keys::key_user(state, token).await.map(Self);
        }
        verified(parts, state).await.map(Self)
    }
}

impl FromRequestParts<AppState> for SignedInUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let user = verified(parts, state).await?;
        let limits = gate::request_limits(&state.config.rates);
        gate::pass(state, &user.id, gate::issued_at(&user), &limits).await?;
        Ok(user)
    }
}

/// The request's bearer token.
fn bearer(parts: &Parts) -> Result<&str, AppError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("sign in first: send Authorization: Bearer <access token>"))?;
    let (scheme, token) = header
        .split_once(' ')
        .ok_or_else(|| unauthorized("the Authorization header is malformed"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthorized(
            "the Authorization header must be a Bearer token",
        ));
    }
    Ok(token.trim())
}

/// The user whose access token the request carries, verified (an API key is not one: keys
/// open only the OpenAI-compatible routes).
async fn verified(parts: &Parts, state: &AppState) -> Result<SignedInUser, AppError> {
    let token = bearer(parts)?;
    let claims = state.jwt.verify(token).await?;
    let id = UserId::parse(&claims.sub)
        .map_err(|_| unauthorized("the access token's subject is not a user id"))?;
    Ok(SignedInUser {
        id,
        email: claims.email,
        issued_at: claims.iat,
        token: Secret::new(token),
    })
}
