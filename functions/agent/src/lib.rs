//! The `agent` function: the signed-in user's agent — status, core memory, archival memory,
//! reset. Its routes as an axum `Router`, hosted by Lambda (`main.rs`) or the local gateway.

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::Value;
use shared::{
    AppError, AppState,
    agent_ops::{self, ResetScope},
    http::{ApiJson, ApiQuery},
    jwt::AuthUser,
    upstream::Service,
};

/// The dependencies this function needs; `GET /health` checks each.
pub const DEPENDENCIES: &[Service] = &[Service::DynamoDb, Service::Letta, Service::SupabaseAuth];

/// The API routes, without the common layers (the gateway merges these).
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/agent/status", get(status))
        .route("/api/v1/agent/memory", get(memory).post(write_memory))
        .route("/api/v1/agent/memory/archival", get(archival))
        .route("/api/v1/agent/reset", post(reset))
        .with_state(state)
}

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    shared::http::function_router("agent", DEPENDENCIES, api_routes(state.clone()), state)
}

async fn status(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, AppError> {
    Ok(Json(agent_ops::status(&state, &user.id).await?))
}

async fn memory(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, AppError> {
    Ok(Json(agent_ops::memory(&state, &user.id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Archival {
    text: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Either `{label, value}` (replace a block) or `{archival: {text, tags?}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryWrite {
    label: Option<String>,
    value: Option<String>,
    archival: Option<Archival>,
}

async fn write_memory(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<MemoryWrite>,
) -> Result<Json<Value>, AppError> {
    match body {
        MemoryWrite {
            archival: Some(a),
            label: None,
            value: None,
        } => Ok(Json(
            agent_ops::add_archival(&state, &user.id, &a.text, &a.tags).await?,
        )),
        MemoryWrite {
            archival: None,
            label: Some(label),
            value: Some(value),
        } => Ok(Json(
            agent_ops::replace_block(&state, &user.id, &label, &value).await?,
        )),
        MemoryWrite {
            archival: None,
            label: Some(_),
            value: None,
        } => Err(AppError::validation("value", "is required with label")),
        MemoryWrite {
            archival: None,
            label: None,
            value: Some(_),
        } => Err(AppError::validation("label", "is required with value")),
        _ => Err(AppError::validation(
            "body",
            "send either {label, value} or {archival: {text, tags?}}",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchivalQuery {
    query: Option<String>,
    limit: Option<u32>,
}

async fn archival(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ArchivalQuery>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        agent_ops::archival(&state, &user.id, q.query.as_deref(), q.limit.unwrap_or(20)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    scope: String,
    #[serde(default)]
    delete_history: bool,
}

async fn reset(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<Value>, AppError> {
    let scope = match body.scope.as_str() {
        "messages" => ResetScope::Messages,
        "all" => ResetScope::All,
        _ => {
            return Err(AppError::validation(
                "scope",
                "must be \"messages\" or \"all\"",
            ));
        }
    };
    Ok(Json(
        agent_ops::reset(&state, &user.id, scope, body.delete_history).await?,
    ))
}
