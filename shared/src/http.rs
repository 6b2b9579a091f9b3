//! The HTTP layers every router gets, and extractors that turn bad input into our JSON errors.

use std::time::Duration;

use axum::{
    Router,
    extract::{
        FromRequest, FromRequestParts, Request,
        rejection::{JsonRejection, QueryRejection},
    },
    http::{HeaderName, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{config::HttpConfig, error::AppError};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A whole function: its API routes, `GET /health` over its dependencies, and the common
/// layers. Lambda hosts this router; the gateway merges the API routes of all four instead.
pub fn function_router(
    name: &'static str,
    dependencies: &'static [crate::upstream::Service],
    api_routes: Router,
    state: crate::AppState,
) -> Router {
    let config = state.config.http.clone();
    let health = Router::new()
        .route(
            "/health",
            axum::routing::get(
                move |axum::extract::State(s): axum::extract::State<crate::AppState>| async move {
                    crate::health::report(&s, name, dependencies).await
                },
            ),
        )
        .with_state(state);
    with_common_layers(api_routes.merge(health), &config)
}

/// Wraps a function's routes with: JSON 404/405 fallbacks, body limit, panic catcher, CORS,
/// tracing spans carrying the request id, and `x-request-id` set and echoed.
pub fn with_common_layers(router: Router, config: &HttpConfig) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            let request_id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            // Path only: query strings may carry user data.
            tracing::info_span!("request", request_id = %request_id, method = %req.method(), path = %req.uri().path())
        })
        .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
            tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_millis() as u64, "response");
        });

    let mut router = router
        .fallback(|| async { AppError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(
            config.body_limit_bytes,
        ))
        .layer(axum::Extension(BodyLimit(config.body_limit_bytes)))
        .layer(CatchPanicLayer::custom(|_| {
            AppError::Internal("handler panicked".into()).into_response()
        }));
    if let Some(cors) = cors_layer(&config.cors_allowed_origins) {
        router = router.layer(cors);
    }
    router
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                IDEMPOTENCY_KEY,
                REQUEST_ID,
            ])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// The configured body limit, so rejections can state it.
#[derive(Clone, Copy)]
struct BodyLimit(usize);

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
            code: "invalid_json",
            message: format!("the body is not valid JSON: {}", e.body_text()),
        },
        JsonRejection::MissingJsonContentType(_) => AppError::BadRequest {
            code: "unsupported_media_type",
            message: "send the body as JSON with Content-Type: application/json".into(),
        },
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge { limit }
        }
        other => AppError::BadRequest {
            code: "bad_request",
            message: other.body_text(),
        },
    }
}

/// Parses an optional JSON body (empty means `None`), with the same errors as [`ApiJson`].
pub fn parse_optional_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        if e.is_data() {
            invalid_field(e.to_string())
        } else {
            AppError::BadRequest {
                code: "invalid_json",
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
                code: "bad_request",
                message: other.body_text(),
            }),
        }
    }
}
