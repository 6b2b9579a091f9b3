//! Extractors that turn bad input into our JSON errors: `ApiJson`, `ApiQuery`, and optional
//! JSON bodies.

use axum::{
    extract::{
        FromRequest, FromRequestParts, Request,
        rejection::{JsonRejection, QueryRejection},
    },
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::app::error::{AppError, ErrorCode};

/// The configured body limit, so rejections can state it.
#[derive(Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// `Json<T>` whose rejections are our JSON errors: 400 malformed, 413 too large,
/// 415 wrong content type, 422 a field with the wrong type or missing (named).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection, limit)),
        }
    }
}

/// A 422 naming the field serde's message names ("missing field `email` at line 1 column 2").
fn invalid_field(detail: String) -> AppError {
    let field = detail
        .split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_else(|| "body".into());
    AppError::validation(field, detail)
}

fn json_rejection(rejection: JsonRejection, limit: usize) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde's message names the field, e.g. "missing field `email` at line 1 column 2".
            let detail = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text());
            invalid_field(detail)
        }
        JsonRejection::JsonSyntaxError(e) => AppError::BadRequest {
            code: ErrorCode::InvalidJson,
            message: format!("the body is not valid JSON: {}", e.body_text()),
        },
        JsonRejection::MissingJsonContentType(_) => AppError::BadRequest {
            code: ErrorCode::UnsupportedMediaType,
            message: "send the body as JSON with Content-Type: application/json".into(),
        },
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge { limit }
        }
        other => AppError::BadRequest {
            code: ErrorCode::BadRequest,
            message: other.body_text(),
        },
    }
}

/// Parses an optional JSON body (empty or `null` means `None`), with the same errors as
/// [`ApiJson`].
pub fn parse_optional_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // `null` is no body too, as the description's optional bodies allow.
    serde_json::from_slice::<Option<T>>(body).map_err(|e| {
        if e.is_data() {
            invalid_field(e.to_string())
        } else {
            AppError::BadRequest {
                code: ErrorCode::InvalidJson,
                message: format!("the body is not valid JSON: {e}"),
            }
        }
    })
}

/// `Query<T>` whose rejections are 400/422 JSON errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                // "Failed to deserialize query string: limit: invalid digit found in string", or
                // serde's "unknown field `x`".
                let detail = e.body_text();
                let path = detail
                    .split(": ")
                    .nth(1)
                    .filter(|p| p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                let field = path
                    .map(str::to_string)
                    .or_else(|| detail.split('`').nth(1).map(str::to_string))
                    .unwrap_or_else(|| "query".into());
                Err(AppError::validation(field, detail))
            }
            Err(other) => Err(AppError::BadRequest {
                code: ErrorCode::BadRequest,
                message: other.body_text(),
            }),
        }
    }
}
