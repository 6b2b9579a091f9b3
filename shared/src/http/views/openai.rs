//! OpenAI's wire shapes for `/v1/chat/completions` and `/v1/models`: a turn's events as
//! `chat.completion` / `chat.completion.chunk` objects, and every refusal as OpenAI's error
//! shape, so OpenAI's client libraries read them unchanged.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    app::error::{AppError, ErrorCode},
    clients::models::Model,
    flows::chat::TurnError,
};

/// A chat completion request. Fields OpenAI defines and this backend does not use
/// (`temperature`, `tools`, …) are accepted and ignored.
#[derive(Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// The conversation as the client keeps it: only the last `user` message is sent, since
    /// the agent keeps its own history (earlier messages are not replayed).
    pub messages: Vec<RequestMessage>,
    /// Ignored: the user's agent answers with the model the user chose (the answer names it).
    #[serde(default)]
    pub model: Option<String>,
    /// Server-sent `chat.completion.chunk` events, ending with `data: [DONE]`.
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

/// `stream_options`.
#[derive(Deserialize, ToSchema)]
pub struct StreamOptions {
    /// A last chunk with `usage` (and no choices).
    #[serde(default)]
    pub include_usage: bool,
}

/// One message of the request.
#[derive(Deserialize, ToSchema)]
pub struct RequestMessage {
    /// `system`, `user`, `assistant`, `tool`, …
    pub role: String,
    /// Text, or an array of parts of which the `text` ones are read.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub content: Value,
}

impl ChatCompletionRequest {
    /// The text of the last `user` message (`None` when there is none).
    pub fn last_user_text(&self) -> Option<String> {
        let message = self.messages.iter().rev().find(|m| m.role == "user")?;
        Some(match &message.content {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
    }
}

/// Token counts (`usage`).
#[derive(Serialize, ToSchema, Clone, Default)]
pub struct CompletionUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// `chat.completion`: a whole answer.
#[derive(Serialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-<the stored reply's id>`.
    pub id: String,
    #[schema(example = "chat.completion")]
    pub object: &'static str,
    /// Epoch seconds.
    pub created: i64,
    /// The model that answered.
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: CompletionUsage,
}

/// The one choice.
#[derive(Serialize, ToSchema)]
pub struct Choice {
    pub index: u32,
    pub message: AnswerMessage,
    /// `stop`, or `length` when the agent reached its step limit.
    pub finish_reason: &'static str,
}

/// The assistant's message.
#[derive(Serialize, ToSchema)]
pub struct AnswerMessage {
    #[schema(example = "assistant")]
    pub role: &'static str,
    pub content: String,
}

/// `chat.completion.chunk`: one server-sent event of a streamed answer.
#[derive(Serialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    #[schema(example = "chat.completion.chunk")]
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Only on the last chunk, with `stream_options.include_usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
}

/// The one choice of a chunk.
#[derive(Serialize, ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: ChunkDelta,
    pub finish_reason: Option<&'static str>,
}

/// What a chunk adds.
#[derive(Serialize, ToSchema, Default)]
pub struct ChunkDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `GET /v1/models`.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    #[schema(example = "list")]
    object: &'static str,
    data: Vec<ModelObject>,
}

/// A model the user may choose.
#[derive(Serialize, ToSchema)]
pub struct ModelObject {
    id: String,
    #[schema(example = "model")]
    object: &'static str,
    created: i64,
    owned_by: String,
}

pub fn model_list(models: &[Model]) -> ModelList {
    ModelList {
        object: "list",
        data: models
            .iter()
            .map(|m| ModelObject {
                id: m.name.clone(),
                object: "model",
                created: 0,
                owned_by: m.provider.clone(),
            })
            .collect(),
    }
}

/// OpenAI's `finish_reason` for Letta's stop reason.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_steps") => "length",
        _ => "stop",
    }
}

/// OpenAI's error shape: `{"error": {"message", "type", "code", "param"}}`.
#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    error: OpenAiErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorDetail {
    message: String,
    /// `invalid_request_error`, `authentication_error`, `insufficient_quota`,
    /// `rate_limit_error`, `server_error`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// This API's own code (`invalid_api_key`, `insufficient_quota`, `rate_limit_exceeded`,
    /// `turn_in_progress`, …).
    code: String,
    param: Option<String>,
}

/// An error answered in OpenAI's shape, with the status (and `Retry-After`) the API's own
/// error has.
pub struct OpenAiError(pub AppError);

impl From<AppError> for OpenAiError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

/// The type and code OpenAI's clients branch on, for an error of `code` with `status`.
fn kind_and_code(status: StatusCode, code: ErrorCode) -> (&'static str, String) {
    match (status.as_u16(), code) {
        (401, _) => ("authentication_error", "invalid_api_key".into()),
        (402, _) => ("insufficient_quota", "insufficient_quota".into()),
        (429, _) => ("rate_limit_error", "rate_limit_exceeded".into()),
        (s, code) if s >= 500 => ("server_error", code.as_str().into()),
        (_, code) => ("invalid_request_error", code.as_str().into()),
    }
}

impl IntoResponse for OpenAiError {
    /// The API's own answer (its status, `Retry-After`, `WWW-Authenticate`, its log line) with
    /// OpenAI's body.
    fn into_response(self) -> Response {
        let error = self.0;
        let (kind, code) = kind_and_code(error.status(), error.code());
        let body = OpenAiErrorBody {
            error: OpenAiErrorDetail {
                message: error.body().error.message,
                kind,
                code,
                param: None,
            },
        };
        let (parts, _) = error.into_response().into_parts();
        Response::from_parts(parts, Json(body).into_response().into_body())
    }
}

/// A turn's `error` event as OpenAI's error: its status, and the body.
pub fn turn_error(e: &TurnError) -> (StatusCode, OpenAiErrorBody) {
    let status = match e.code {
        ErrorCode::BudgetExceeded => StatusCode::PAYMENT_REQUIRED,
        ErrorCode::BillingKeyRevoked => StatusCode::FORBIDDEN,
        ErrorCode::AgentInterrupted => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    let (kind, code) = kind_and_code(status, e.code);
    let body = OpenAiErrorBody {
        error: OpenAiErrorDetail {
            message: e.message.clone(),
            kind,
            code,
            param: None,
        },
    };
    (status, body)
}
