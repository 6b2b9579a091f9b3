//! The agent's documents as clients see them (`/api/v1/agent/files`).

use serde::Serialize;
use utoipa::ToSchema;

use crate::clients::letta::FolderFile;

/// One document of the user's, with how far Letta has processed it.
#[derive(Serialize, ToSchema)]
pub struct FileView {
    /// Its id (Letta's `file-…`).
    id: String,
    /// The name it was uploaded with.
    name: String,
    /// Its size.
    bytes: Option<u64>,
    /// `pending`, `parsing`, `embedding`, `completed` (the agent can open and search it) or
    /// `error`.
    #[schema(example = "completed")]
    status: String,
    /// When it was uploaded (RFC 3339).
    created_at: Option<String>,
}

/// The user's documents.
#[derive(Serialize, ToSchema)]
pub struct FilesView {
    files: Vec<FileView>,
}

pub fn file(f: &FolderFile) -> FileView {
    FileView {
        id: f.id.clone(),
        name: f.name().to_string(),
        bytes: f.file_size,
        status: f
            .processing_status
            .clone()
            .unwrap_or_else(|| "pending".into()),
        created_at: f.created_at.clone(),
    }
}

pub fn files(all: &[FolderFile]) -> FilesView {
    FilesView {
        files: all.iter().map(file).collect(),
    }
}
