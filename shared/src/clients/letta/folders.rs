//! Documents for the agent: one Letta folder per user, attached to the user's agent only.
//! Letta parses each uploaded file, chunks and embeds it, and gives the agent tools to open,
//! grep and search it (`open_files`, `grep_files`, `semantic_search_files`).

use serde::{Deserialize, Serialize};

use super::{Letta, model_choice::FolderEmbedding};
use crate::{
    app::dependency::{DependencyError, Service},
    clients::http::{self as upstream, FilePart},
};

/// A file in a folder, as Letta reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct FolderFile {
    /// Letta's id (`file-…`).
    pub id: String,
    /// The name it was uploaded with (Letta may add a suffix to `file_name` for a duplicate).
    #[serde(default)]
    pub original_file_name: Option<String>,
    #[serde(default)]
    pub file_name: Option<String>,
    /// Bytes.
    #[serde(default)]
    pub file_size: Option<u64>,
    /// `pending`, `parsing`, `embedding`, `completed` or `error`.
    #[serde(default)]
    pub processing_status: Option<String>,
    /// When it was uploaded (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
}

impl FolderFile {
    /// The name the user gave it.
    pub fn name(&self) -> &str {
        self.original_file_name
            .as_deref()
            .or(self.file_name.as_deref())
            .unwrap_or_default()
    }
}

/// `POST /v1/folders/`.
#[derive(Serialize)]
struct NewFolder<'a> {
    name: &'a str,
    description: &'static str,
    #[serde(flatten)]
    embedding: FolderEmbedding<'a>,
}

/// A document to upload.
pub struct Upload<'a> {
    pub name: &'a str,
    pub media_type: &'a str,
    pub bytes: &'a [u8],
}

impl Letta {
    /// A new folder named `name`, embedding as the agents of `provider`'s user do; its id.
    pub async fn create_folder(
        &self,
        name: &str,
        provider: &str,
    ) -> Result<String, DependencyError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let body = NewFolder {
            name,
            description: "The user's documents",
            embedding: FolderEmbedding::new(&self.config, provider),
        };
        let request = self
            .request(reqwest::Method::POST, "/v1/folders/")
            .json(&body);
        let created: Created = upstream::send_json(Service::Letta, request).await?;
        Ok(created.id)
    }

    /// The folders named `name` (ids), oldest first.
    pub async fn folders_named(&self, name: &str) -> Result<Vec<String>, DependencyError> {
        #[derive(Deserialize)]
        struct Folder {
            id: String,
        }
        let request = self
            .request(reqwest::Method::GET, "/v1/folders/")
            .query(&[("name", name), ("limit", "50")]);
        let folders: Vec<Folder> = upstream::send_json(Service::Letta, request).await?;
        Ok(folders.into_iter().map(|f| f.id).collect())
    }

    /// Attaches a folder to an agent (its files become the agent's to open and search).
    pub async fn attach_folder(
        &self,
        agent_id: &str,
        folder_id: &str,
    ) -> Result<(), DependencyError> {
        let path = format!("/v1/agents/{agent_id}/folders/attach/{folder_id}");
        upstream::send(Service::Letta, self.request(reqwest::Method::PATCH, &path))
            .await
            .map(|_| ())
    }

    /// Deletes a folder and its files (absent is fine).
    pub async fn delete_folder(&self, folder_id: &str) -> Result<(), DependencyError> {
        let request = self.request(reqwest::Method::DELETE, &format!("/v1/folders/{folder_id}"));
        upstream::absent_on_404(upstream::send(Service::Letta, request).await).map(|_| ())
    }

    /// Uploads a file; Letta processes it in the background (see `processing_status`).
    pub async fn upload_file(
        &self,
        folder_id: &str,
        upload: &Upload<'_>,
    ) -> Result<FolderFile, DependencyError> {
        let path = format!("/v1/folders/{folder_id}/upload");
        let file = FilePart {
            field: "file",
            file_name: upload.name,
            media_type: upload.media_type,
            bytes: upload.bytes,
        };
        let request = upstream::multipart(self.request(reqwest::Method::POST, &path), &[], &file);
        upstream::send_json(Service::Letta, request).await
    }

    /// The folder's files, newest first as Letta lists them.
    pub async fn folder_files(&self, folder_id: &str) -> Result<Vec<FolderFile>, DependencyError> {
        let path = format!("/v1/folders/{folder_id}/files");
        let request = self
            .request(reqwest::Method::GET, &path)
            .query(&[("limit", "1000")]);
        upstream::send_json(Service::Letta, request).await
    }

    /// Deletes one file of the folder (its passages go with it, and the agent's view of it).
    pub async fn delete_folder_file(
        &self,
        folder_id: &str,
        file_id: &str,
    ) -> Result<(), DependencyError> {
        let path = format!("/v1/folders/{folder_id}/{file_id}");
        let request = self.request(reqwest::Method::DELETE, &path);
        upstream::absent_on_404(upstream::send(Service::Letta, request).await).map(|_| ())
    }
}
