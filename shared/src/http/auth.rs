//! The signed-in user: `Authorization: Bearer <access token>`, verified, becomes a
//! [`SignedInUser`]. Every failure is 401 with `WWW-Authenticate: Bearer`.

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{
    app::{error::AppError, secret::Secret},
    domain::{SignedInUser, UserId},
    http::limits,
    state::AppState,
};

fn unauthorized(message: &str) -> AppError {
    AppError::Unauthorized(message.to_string())
}

impl FromRequestParts<AppState> for SignedInUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                unauthorized("sign in first: send Authorization: Bearer <access token>")
            })?;
        let (scheme, token) = header
            .split_once(' ')
            .ok_or_else(|| unauthorized("the Authorization header is malformed"))?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(unauthorized(
                "the Authorization header must be a Bearer token",
            ));
        }
        let token = token.trim();
        let claims = state.jwt.verify(token).await?;
        let id = UserId::parse(&claims.sub)
            .map_err(|_| unauthorized("the access token's subject is not a user id"))?;
        let issued_at = claims.iat.map_or(0, |iat| i64::try_from(iat).unwrap_or(0));
        limits::check_user(state, &parts.method, parts.uri.path(), &id, issued_at).await?;
        Ok(Self {
            id,
            email: claims.email,
            issued_at: claims.iat,
            token: Secret::new(token),
        })
    }
}
