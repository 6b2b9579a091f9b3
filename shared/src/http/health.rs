//! `GET /health`: liveness plus a timed check of each dependency a function uses. Checks are
//! reused for `HEALTH_CACHE_SECS` per instance, so a public endpoint cannot multiply the load on
//! the dependencies; a failure says what happened, never a word of the dependency's own text.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::future::join_all;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    app::{
        dependency::{DependencyError, Service},
        error::RETRY_AFTER_SECS,
    },
    state::AppState,
};

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /health`: 200 when every dependency is up, else 503 naming the ones that are not.
#[derive(Serialize, ToSchema)]
pub struct HealthReport {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    status: &'static str,
    /// The function answering (`gateway` locally).
    function: &'static str,
    /// The backend's version.
    version: &'static str,
    /// Each dependency the function uses, by name (`dynamodb`, `letta`, `litellm`, `supabase_auth`).
    checks: BTreeMap<&'static str, DependencyCheck>,
    /// The dependencies that are down.
    failing: Vec<&'static str>,
}

/// One dependency's check.
#[derive(Serialize, ToSchema)]
pub struct DependencyCheck {
    /// `up` or `down`.
    #[schema(example = "up")]
    status: &'static str,
    /// How long the check took, ms.
    latency_ms: f64,
    /// What happened, in our words (never the dependency's text).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One dependency's state: the cached check when fresh, else a new one.
async fn checked(state: &AppState, service: Service) -> (Result<(), String>, Duration) {
    if let Some(cached) = state.health.fresh(service, state.config.http.health_cache) {
        return cached;
    }
    let start = Instant::now();
    let result = check(state, service).await.map_err(|e| {
        tracing::warn!(dependency = service.name(), error = %e, "health check failed");
        e.summary()
    });
    let took = start.elapsed();
    state.health.store(service, result.clone(), took);
    (result, took)
}

async fn check(state: &AppState, service: Service) -> Result<(), DependencyError> {
    let probe = async {
        match service {
            Service::DynamoDb => state.store.health().await,
            Service::Letta => state.letta.health().await,
            Service::LiteLlm => state.litellm.health().await,
            Service::SupabaseAuth => state.supabase.health().await,
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, probe)
        .await
        .unwrap_or(Err(DependencyError::Timeout { service }))
}

/// Checks every dependency concurrently: 200 when all are up, else 503 naming the failing ones.
pub async fn report(state: &AppState, function: &'static str, deps: &[Service]) -> Response {
    let results = join_all(deps.iter().map(|&service| async move {
        let (result, took) = checked(state, service).await;
        (service, result, took)
    }))
    .await;

    let mut checks = BTreeMap::new();
    let mut failing = Vec::new();
    for (service, result, elapsed) in results {
        let latency_ms = (elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        let check = match result {
            Ok(()) => DependencyCheck {
                status: "up",
                latency_ms,
                error: None,
            },
            Err(summary) => {
                failing.push(service.name());
                DependencyCheck {
                    status: "down",
                    latency_ms,
                    error: Some(summary),
                }
            }
        };
        checks.insert(service.name(), check);
    }
    let healthy = failing.is_empty();
    let body = HealthReport {
        status: if healthy { "ok" } else { "unavailable" },
        function,
        version: env!("CARGO_PKG_VERSION"),
        checks,
        failing,
    };
    if healthy {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        res
    }
}
