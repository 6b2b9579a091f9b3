//! The layers every router gets: JSON 404/405 fallbacks, body limit, panic catcher, CORS,
//! tracing spans carrying the request id, `x-request-id` set and echoed, and the request's
//! deadline (Lambda's) for the dependency calls it makes.

use std::time::Duration;

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue, Method, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    app::{config::HttpConfig, deadline, error::AppError},
    http::extract::BodyLimit,
};

/// Runs the request within its Lambda invocation's deadline (none in the local gateway).
async fn with_deadline(request: Request, next: Next) -> Response {
    let at = request
        .extensions()
        .get::<lambda_http::Context>()
        .map(|c| deadline::from_lambda(c.deadline));
    deadline::within(at, next.run(request)).await
}

/// The request id header, set when the caller sent none and echoed on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The chat endpoint's idempotency header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

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
        }))
        .layer(middleware::from_fn(with_deadline));
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
