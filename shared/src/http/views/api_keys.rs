//! API keys as clients see them: never the key, except once, when it is made.

use serde::Serialize;
use utoipa::ToSchema;

use crate::{flows::api_keys::CreatedKey, store::ApiKeyRecord};

/// One of the user's keys (without its secret).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    id: String,
    name: String,
    /// The key's first characters, to tell keys apart.
    #[schema(example = "sk-chat-3fZq")]
    prefix: String,
    created_at: String,
    /// When it stops working; `null`: never.
    expires_at: Option<String>,
    /// When it last opened a request; `null`: never used.
    last_used_at: Option<String>,
}

/// The user's keys.
#[derive(Serialize, ToSchema)]
pub struct ApiKeysView {
    api_keys: Vec<ApiKeyView>,
}

/// A key just made: `key` is shown this once (only its hash is stored).
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKeyView {
    id: String,
    name: String,
    /// The key: send it as `Authorization: Bearer <key>` to `/v1/chat/completions` and
    /// `/v1/models`. It is not shown again.
    key: String,
    prefix: String,
    created_at: String,
    expires_at: Option<String>,
}

pub fn api_key(r: &ApiKeyRecord) -> ApiKeyView {
    ApiKeyView {
        id: r.id.clone(),
        name: r.name.clone(),
        prefix: r.prefix.clone(),
        created_at: r.created_at.clone(),
        expires_at: r.expires_at.clone(),
        last_used_at: r.last_used_at.clone(),
    }
}

pub fn api_keys(all: &[ApiKeyRecord]) -> ApiKeysView {
    ApiKeysView {
        api_keys: all.iter().map(api_key).collect(),
    }
}

pub fn created(c: &CreatedKey) -> CreatedApiKeyView {
    CreatedApiKeyView {
        id: c.record.id.clone(),
        name: c.record.name.clone(),
        key: c.key.expose().to_string(),
        prefix: c.record.prefix.clone(),
        created_at: c.record.created_at.clone(),
        expires_at: c.record.expires_at.clone(),
    }
}
