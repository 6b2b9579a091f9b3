//! The `agent` function: the signed-in user's agent — status, core memory, archival memory
//! (add, list, search, delete), documents (`files.rs`), reset. Its routes as an axum `Router`, hosted by Lambda (`main.rs`) or the local gateway.

mod files;

use axum::{
    Json, Router,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use shared::{
    AppError, AppState,
    app::{dependency::Service, error::ErrorBody},
    domain::{PageLimit, SignedInUser},
    flows::agent::{self, ResetScope},
    http::{
        ApiJson, ApiQuery, Function,
        views::{
            self, DeletedView,
            agent::{
                AgentStatusView, ArchivalView, BlockReplacedView, MemoryView, PassagesView,
                ResetView,
            },
        },
    },
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// This function: its name, what its health check covers, its routes.
pub const FUNCTION: Function = Function {
    name: "agent",
    dependencies: &[Service::DynamoDb, Service::Letta, Service::SupabaseAuth],
    routes: api_routes,
};

/// The API routes and their description, without the common layers (the gateway merges these).
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(memory, write_memory))
        .routes(routes!(archival))
        .routes(routes!(delete_archival))
        .routes(routes!(reset))
        .routes(routes!(files::list_files))
        .routes(routes!(files::delete_file))
        // A document is larger than the common body limit: its form reads the file with its
        // own (`FILE_MAX_BYTES`).
        .merge(
            OpenApiRouter::new()
                .routes(routes!(files::upload_file))
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
}

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    FUNCTION.router(state)
}

/// The agent: whether Letta has it, its model, context and memory sizes, stored messages.
#[utoipa::path(
    get,
    path = "/api/v1/agent/status",
    tag = "agent",
    responses(
        (status = 200, description = "The agent's status", body = AgentStatusView),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn status(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<AgentStatusView>, AppError> {
    let status = agent::status(&state, &user).await?;
    Ok(Json(views::agent::agent_status(&status)))
}

/// The agent's core memory blocks.
#[utoipa::path(
    get,
    path = "/api/v1/agent/memory",
    tag = "agent",
    responses(
        (status = 200, description = "The blocks", body = MemoryView),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn memory(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<MemoryView>, AppError> {
    let blocks = agent::memory(&state, &user).await?;
    Ok(Json(views::agent::memory(&blocks)))
}

/// An archival memory to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Archival {
    /// The text, at most 10,000 characters, not blank, no NUL character (Letta splits a long
    /// one into several memories).
    #[schema(max_length = 10000, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
    text: String,
    /// Tags to find it by (at most 20, each 1–64 characters).
    #[serde(default)]
    #[schema(max_items = 20, inline, value_type = Vec<TagName>)]
    tags: Vec<String>,
}

/// A tag (1–64 characters, not only spaces, no control characters).
#[derive(ToSchema)]
#[schema(value_type = String, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
struct TagName(#[allow(dead_code, reason = "a description only")] String);

/// A reset's scope.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "a description only: ResetBody parses the scope")]
enum ScopeName {
    /// The agent forgets the conversation, keeps its memory.
    Messages,
    /// A new agent.
    All,
}

/// An editable core memory block.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum BlockName {
    /// What the agent knows of the user.
    Human,
    /// The agent's own persona.
    Persona,
}

/// Replaces a core memory block.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "a description only: MemoryWrite parses the body")]
struct ReplaceBlock {
    /// The block.
    label: BlockName,
    /// Its new text (within its limit; no NUL character).
    #[schema(pattern = r"^[^\x00]*$")]
    value: String,
}

/// Adds an archival memory.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "a description only: MemoryWrite parses the body")]
struct AddArchival {
    /// The memory.
    archival: Archival,
}

/// What `POST /agent/memory` takes, as its description shows it: one of two shapes.
/// [`MemoryWrite`] parses it, to say which field is missing when a body is neither.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "a description only: MemoryWrite parses the body")]
enum MemoryWriteBody {
    /// Replaces a core memory block.
    Block(ReplaceBlock),
    /// Adds an archival memory.
    Archival(AddArchival),
}

/// Either `{label, value}` (replace a block) or `{archival: {text, tags?}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryWrite {
    /// The block to replace (`human` or `persona`), with `value`.
    label: Option<String>,
    /// The block's new text (within its limit), with `label`.
    value: Option<String>,
    /// An archival memory to add, alone.
    archival: Option<Archival>,
}

/// What a memory write made.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum MemoryWritten {
    /// The archival memories added.
    Passages(PassagesView),
    /// The block replaced.
    Block(BlockReplacedView),
}

/// Replaces a core memory block, or adds an archival memory.
#[utoipa::path(
    post,
    path = "/api/v1/agent/memory",
    tag = "agent",
    request_body = MemoryWriteBody,
    responses(
        (status = 200, description = "`{block}` after a replacement, `{passages}` after an addition", body = MemoryWritten),
        (status = 404, description = "No such block", body = ErrorBody),
        (status = 409, description = "`archival_memory_full` or `provisioning`", body = ErrorBody),
    )
)]
async fn write_memory(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiJson(body): ApiJson<MemoryWrite>,
) -> Result<Json<MemoryWritten>, AppError> {
    match body {
        MemoryWrite {
            archival: Some(a),
            label: None,
            value: None,
        } => {
            let added = agent::add_archival(&state, &user, &a.text, &a.tags).await?;
            Ok(Json(MemoryWritten::Passages(views::agent::passages(
                &added,
            ))))
        }
        MemoryWrite {
            archival: None,
            label: Some(label),
            value: Some(value),
        } => {
            let block = agent::replace_block(&state, &user, &label, &value).await?;
            Ok(Json(MemoryWritten::Block(views::agent::block(&block))))
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ArchivalQuery {
    /// A search (by meaning, at most 1,000 characters, no NUL character); without it, the
    /// memories newest first.
    #[param(max_length = 1000, pattern = r"^[^\x00]*$")]
    query: Option<String>,
    /// Memories per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page (listing only).
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// The agent's archival memories: a search or a listing.
#[utoipa::path(
    get,
    path = "/api/v1/agent/memory/archival",
    tag = "agent",
    params(ArchivalQuery),
    responses(
        (status = 200, description = "A page of memories", body = ArchivalView),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn archival(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiQuery(q): ApiQuery<ArchivalQuery>,
) -> Result<Json<ArchivalView>, AppError> {
    let page = agent::archival(
        &state,
        &user,
        q.query.as_deref(),
        PageLimit::parse(q.limit, 20)?,
        q.cursor.as_deref(),
    )
    .await?;
    Ok(Json(views::agent::archival(&page)))
}

/// Deletes one of the agent's archival memories.
#[utoipa::path(
    delete,
    path = "/api/v1/agent/memory/archival/{id}",
    tag = "agent",
    params(("id" = String, Path, description = "The memory's id")),
    responses(
        (status = 200, description = "Deleted", body = DeletedView),
        (status = 404, description = "No such memory of the agent's", body = ErrorBody),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn delete_archival(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<Json<DeletedView>, AppError> {
    agent::delete_archival(&state, &user, &id).await?;
    Ok(Json(views::deleted(&id, None)))
}

/// What to reset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    /// `messages` (the agent forgets the conversation, keeps its memory) or `all` (a new agent).
    #[schema(value_type = ScopeName)]
    scope: String,
    /// Also delete the stored history.
    #[serde(default)]
    delete_history: bool,
}

/// Resets the agent.
#[utoipa::path(
    post,
    path = "/api/v1/agent/reset",
    tag = "agent",
    request_body = ResetBody,
    responses(
        (status = 200, description = "Reset", body = ResetView),
        (status = 409, description = "`turn_in_progress`, or `provisioning` (another reset, or setup, holds the account)", body = ErrorBody),
    )
)]
async fn reset(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<ResetView>, AppError> {
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
    Ok(Json(views::agent::reset(&outcome)))
}
