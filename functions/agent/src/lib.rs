//! The `agent` function: the signed-in user's agent — status, core memory, archival memory
//! (add, list, search, delete), reset. Its routes as an axum `Router`, hosted by Lambda (`main.rs`) or the local gateway.

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::{delete, get, post},
};
use serde::Deserialize;
use serde_json::Value;
use shared::{
    AppError, AppState,
    app::dependency::Service,
    domain::SignedInUser,
    flows::agent::{self, ResetScope},
    http::{ApiJson, ApiQuery, Function, views},
};

/// This function: its name, what its health check covers, its routes.
pub const FUNCTION: Function = Function {
    name: "agent",
    dependencies: &[Service::DynamoDb, Service::Letta, Service::SupabaseAuth],
    routes: api_routes,
};

/// The API routes, without the common layers (the gateway merges these).
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/agent/status", get(status))
        .route("/api/v1/agent/memory", get(memory).post(write_memory))
        .route("/api/v1/agent/memory/archival", get(archival))
        .route(
            "/api/v1/agent/memory/archival/{id}",
            delete(delete_archival),
        )
        .route("/api/v1/agent/reset", post(reset))
        .with_state(state)
}

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    FUNCTION.router(state)
}

async fn status(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<Value>, AppError> {
    let status = agent::status(&state, &user).await?;
    Ok(Json(views::agent_status(&status)))
}

async fn memory(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<Value>, AppError> {
    let blocks = agent::memory(&state, &user).await?;
    Ok(Json(views::memory(&blocks)))
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
    user: SignedInUser,
    ApiJson(body): ApiJson<MemoryWrite>,
) -> Result<Json<Value>, AppError> {
    match body {
        MemoryWrite {
            archival: Some(a),
            label: None,
            value: None,
        } => {
            let added = agent::add_archival(&state, &user, &a.text, &a.tags).await?;
            Ok(Json(views::passages(&added)))
        }
        MemoryWrite {
            archival: None,
            label: Some(label),
            value: Some(value),
        } => {
            let block = agent::replace_block(&state, &user, &label, &value).await?;
            Ok(Json(views::block(&block)))
        }
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
    cursor: Option<String>,
}

async fn archival(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiQuery(q): ApiQuery<ArchivalQuery>,
) -> Result<Json<Value>, AppError> {
    let page = agent::archival(
        &state,
        &user,
        q.query.as_deref(),
        q.limit.unwrap_or(20),
        q.cursor.as_deref(),
    )
    .await?;
    Ok(Json(views::archival(&page)))
}

async fn delete_archival(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    agent::delete_archival(&state, &user, &id).await?;
    Ok(Json(serde_json::json!({"deleted": true, "id": id})))
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
    user: SignedInUser,
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
    let outcome = agent::reset(&state, &user, scope, body.delete_history).await?;
    Ok(Json(views::reset(&outcome)))
}
