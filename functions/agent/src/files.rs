//! Documents for the agent: upload (multipart, one file), list with processing status, delete.

use axum::{
    Json,
    extract::{Multipart, Path, State, multipart::MultipartRejection},
    http::StatusCode,
};
use serde::Deserialize;
use shared::{
    AppError, AppState,
    app::error::ErrorBody,
    domain::{Document, SignedInUser},
    flows::files,
    http::{
        multipart,
        views::{
            self, DeletedView,
            files::{FileView, FilesView},
        },
    },
};
use utoipa::ToSchema;

/// A document (`multipart/form-data`): this one field, no other.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes the form; it is read field by field
pub(crate) struct FileForm {
    /// Text (.txt), Markdown (.md) or PDF, at most `FILE_MAX_BYTES` (5 MB); its file name is
    /// kept as the document's name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Gives the agent a document to open and search: parsed, chunked and embedded by Letta after
/// the answer (`status` tells how far).
#[utoipa::path(
    post,
    path = "/api/v1/agent/files",
    tag = "agent",
    request_body(content = FileForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Uploaded; `status` is where its processing stands", body = FileView),
        (status = 409, description = "`file_limit` (`FILES_MAX` documents) or `provisioning`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: above `FILE_MAX_BYTES`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not a form, or a file that is neither text, Markdown nor PDF (the accepted ones named)", body = ErrorBody),
        (status = 422, description = "A missing or empty `file`, or another field", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the day's embedding quota (`embedding_chars_per_day`) cannot take it", body = ErrorBody),
    )
)]
pub(crate) async fn upload_file(
    State(state): State<AppState>,
    user: SignedInUser,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<FileView>), AppError> {
    let max = state.config.letta.file_max_bytes;
    let (name, bytes) = multipart::read_upload(form, "file", max, &[])
        .await?
        .require_file("file")?;
    let document = Document::parse(name.as_deref(), bytes, max)?;
    let uploaded = files::upload(&state, &user, &document).await?;
    Ok((StatusCode::CREATED, Json(views::files::file(&uploaded))))
}

/// The user's documents, with how far each is processed.
#[utoipa::path(
    get,
    path = "/api/v1/agent/files",
    tag = "agent",
    responses((status = 200, description = "The documents", body = FilesView))
)]
pub(crate) async fn list_files(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<FilesView>, AppError> {
    let all = files::list(&state, &user).await?;
    Ok(Json(views::files::files(&all)))
}

/// Removes one of the user's documents from the agent.
#[utoipa::path(
    delete,
    path = "/api/v1/agent/files/{id}",
    tag = "agent",
    params(("id" = String, Path, description = "The document's id")),
    responses(
        (status = 200, description = "Deleted", body = DeletedView),
        (status = 404, description = "No such document of the user's", body = ErrorBody),
    )
)]
pub(crate) async fn delete_file(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<Json<DeletedView>, AppError> {
    files::delete(&state, &user, &id).await?;
    Ok(Json(views::deleted(&id, None)))
}
