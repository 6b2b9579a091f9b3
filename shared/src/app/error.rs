//! One error type for every handler, rendered as one JSON shape:
//! `{"error": {"code": "snake_case", "message": "human sentence", ...details}}`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::dependency::{DependencyError, Service};

/// Seconds a client should wait before retrying after a dependency failure.
pub const RETRY_AFTER_SECS: u64 = 5;
/// Seconds a client should wait while another request finishes setting the account up.
pub const PROVISIONING_RETRY_AFTER_SECS: u64 = 2;

/// Declares the codes once: the variant, its name on the wire, what it means.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)+) => {
        /// The stable machine-readable codes, by status (the API description lists them).
        /// Their wire names are the variants in snake_case (a unit test holds `as_str` to it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &[Self] = &[$(Self::$variant,)+];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }
    };
}

error_codes! {
    // 400
    /// The body is not JSON.
    InvalidJson = "invalid_json",
    /// A body that is not `application/json`.
    UnsupportedMediaType = "unsupported_media_type",
    /// Malformed input of another kind.
    BadRequest = "bad_request",
    /// A page cursor that is not one the API gave (or not this user's).
    InvalidCursor = "invalid_cursor",
    /// An `Idempotency-Key` that is not 1–128 visible ASCII characters.
    InvalidIdempotencyKey = "invalid_idempotency_key",
    /// A chat message with no text.
    EmptyContent = "empty_content",
    // 401
    /// No valid access token.
    Unauthorized = "unauthorized",
    /// A wrong email or password (the same for both).
    InvalidCredentials = "invalid_credentials",
    // 402
    /// The budget of the period is used up.
    BudgetExceeded = "budget_exceeded",
    // 403
    /// The email address is not confirmed yet.
    EmailNotConfirmed = "email_not_confirmed",
    /// Deleting the account needs the password (or a fresh sign-in).
    ReauthenticationRequired = "reauthentication_required",
    /// The user's LiteLLM key no longer works.
    BillingKeyRevoked = "billing_key_revoked",
    // 404, 405
    /// No such resource of the user's.
    NotFound = "not_found",
    /// The path exists, the method does not.
    MethodNotAllowed = "method_not_allowed",
    // 409
    /// Another request is setting the account up (or resetting or deleting it).
    Provisioning = "provisioning",
    /// An account with this email exists.
    EmailTaken = "email_taken",
    /// A turn of this conversation is running.
    TurnInProgress = "turn_in_progress",
    /// A cancel found no turn of this conversation running.
    NoTurnInProgress = "no_turn_in_progress",
    /// The user's concurrent turns are all running.
    TooManyTurns = "too_many_turns",
    /// The user has `CONVERSATIONS_MAX` conversations.
    ConversationLimit = "conversation_limit",
    /// The default conversation cannot be deleted.
    DefaultConversation = "default_conversation",
    /// The archival memory holds `ARCHIVAL_MAX_PASSAGES` memories.
    ArchivalMemoryFull = "archival_memory_full",
    /// The user has `FILES_MAX` documents.
    FileLimit = "file_limit",
    /// The user has 10 API keys.
    ApiKeyLimit = "api_key_limit",
    // 413, 422, 429
    /// A body above `BODY_LIMIT_BYTES`.
    PayloadTooLarge = "payload_too_large",
    /// A chat message above `CHAT_MAX_CHARS`.
    ContentTooLong = "content_too_long",
    /// A voice message in which no words were heard.
    NoSpeech = "no_speech",
    /// A field with a value that is not allowed (`field` names it).
    ValidationFailed = "validation_failed",
    /// A rate limit is used up (`limit` names it).
    RateLimited = "rate_limited",
    // 5xx, and a chat turn's `error` event
    /// The model failed during a turn.
    LlmError = "llm_error",
    /// A turn's reply broke off (what arrived is kept).
    AgentInterrupted = "agent_interrupted",
    /// A dependency answered in a way the backend cannot use.
    UpstreamError = "upstream_error",
    /// A dependency is down or overloaded.
    DependencyUnavailable = "dependency_unavailable",
    /// A bug; details only in the logs.
    InternalError = "internal_error",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every way a request can fail, each with its status and stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: malformed input.
    #[error("{message}")]
    BadRequest {
        /// The stable code.
        code: ErrorCode,
        /// A sentence for the client.
        message: String,
    },
    /// 422: a field with a value that is not allowed.
    #[error("{field}: {message}")]
    Validation {
        /// The field, as the client named it.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// 413: a body above the limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 413: a chat message above the limit.
    #[error("content is {actual} characters long; the limit is {limit}")]
    ContentTooLong {
        /// The limit, in characters.
        limit: usize,
        /// The message's length.
        actual: usize,
    },
    /// 415: a file of a type the endpoint does not take (`unsupported_media_type`).
    #[error("{what} must be one of: {accepted}")]
    UnsupportedMedia {
        /// What was sent (`audio`, `file`).
        what: &'static str,
        /// The types it takes.
        accepted: &'static str,
    },
    /// 422 `no_speech`: a voice message in which no words were heard.
    #[error("no speech was heard in the audio")]
    NoSpeech,
    /// 401: no valid access token.
    #[error("{0}")]
    Unauthorized(String),
    /// 401: wrong email or password (the same for both).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// 403: signed in, but not allowed.
    #[error("{message}")]
    Forbidden {
        /// The stable code.
        code: ErrorCode,
        /// A sentence for the client.
        message: String,
    },
    /// 402: LiteLLM refused the user's key: the budget is used up.
    #[error("budget exceeded: spent {spend:.6} of {limit:.6} USD")]
    BudgetExceeded {
        /// What was spent, USD.
        spend: f64,
        /// The cap, USD.
        limit: f64,
    },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with the state (a turn in progress, provisioning, …).
    #[error("{message}")]
    Conflict {
        /// The stable code.
        code: ErrorCode,
        /// A sentence for the client.
        message: String,
    },
    /// 429 `rate_limited`: a rate limit is used up until its window ends.
    #[error("too many requests: the limit {limit} is used up; retry in {retry_after} s")]
    RateLimited {
        /// The limit's name (`chat_per_minute`, …).
        limit: &'static str,
        /// Seconds until its window ends.
        retry_after: u64,
    },
    /// 409 `provisioning`: another request is setting the account up; retry shortly.
    #[error("{0}")]
    Provisioning(String),
    /// 503: a dependency is down or overloaded; retry later.
    #[error("{service} is unavailable: {message}")]
    Unavailable {
        /// Which dependency.
        service: Service,
        /// What happened.
        message: String,
    },
    /// 502: a dependency answered in a way we cannot use.
    #[error("{service} answered unexpectedly: {message}")]
    Upstream {
        /// Which dependency.
        service: Service,
        /// What happened.
        message: String,
    },
    /// 500: a bug; details only in the logs.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// A 422 naming `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation { .. } | Self::NoSpeech => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMedia { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } | Self::ContentTooLong { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Unauthorized(_) | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::BudgetExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } | Self::Provisioning(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Forbidden { code, .. } => *code,
            Self::Validation { .. } => ErrorCode::ValidationFailed,
            Self::Provisioning(_) => ErrorCode::Provisioning,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::ContentTooLong { .. } => ErrorCode::ContentTooLong,
            Self::UnsupportedMedia { .. } => ErrorCode::UnsupportedMediaType,
            Self::NoSpeech => ErrorCode::NoSpeech,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::BudgetExceeded { .. } => ErrorCode::BudgetExceeded,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable { .. } => ErrorCode::DependencyUnavailable,
            Self::Upstream { .. } => ErrorCode::UpstreamError,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Provisioning(_) | Self::RateLimited { .. }
        )
    }

    /// Seconds to wait before retrying, for the errors that say so (`Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Unavailable { .. } => Some(RETRY_AFTER_SECS),
            Self::Provisioning(_) => Some(PROVISIONING_RETRY_AFTER_SECS),
            Self::RateLimited { retry_after, .. } => Some((*retry_after).max(1)),
            _ => None,
        }
    }

    /// The JSON body: `{"error": {code, message, …details}}`.
    pub fn body(&self) -> ErrorBody {
        let mut error = ErrorDetail {
            code: self.code(),
            // Never echo internal details to clients; they are logged instead.
            message: match self {
                Self::Internal(_) => "Something went wrong on our side.".to_string(),
                other => other.to_string(),
            },
            field: None,
            limit_bytes: None,
            limit_chars: None,
            spend: None,
            limit: None,
            service: None,
            retry_after: self.retry_after(),
        };
        match self {
            Self::Validation { field, .. } => error.field = Some(field.clone()),
            Self::UnsupportedMedia { what, .. } => error.field = Some((*what).into()),
            Self::PayloadTooLarge { limit } => error.limit_bytes = Some(*limit),
            Self::ContentTooLong { limit, .. } => {
                error.field = Some("content".into());
                error.limit_chars = Some(*limit);
            }
            Self::BudgetExceeded { spend, limit } => {
                error.spend = Some(*spend);
                error.limit = Some(Limit::Usd(*limit));
            }
            Self::RateLimited { limit, .. } => error.limit = Some(Limit::Name(limit)),
            Self::Unavailable { service, .. } | Self::Upstream { service, .. } => {
                error.service = Some(service.name());
            }
            _ => {}
        }
        ErrorBody { error }
    }
}

/// Every error's body: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong: a stable `code`, a sentence, and the details the code has.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence for the user.
    pub message: String,
    /// `validation_failed`, `content_too_long`: the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `payload_too_large`: the limit, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<usize>,
    /// `content_too_long`: the limit, characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_chars: Option<usize>,
    /// `budget_exceeded`: spent this period, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spend: Option<f64>,
    /// `budget_exceeded`: the cap, USD; `rate_limited`: the limit's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// `dependency_unavailable`, `upstream_error`: the dependency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'static str>,
    /// Seconds to wait before retrying (also the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// A limit that was reached: a cap in USD or a rate limit's name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Limit {
    /// The budget's cap, USD.
    Usd(f64),
    /// The rate limit's name (`chat_per_minute`, …).
    Name(&'static str),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code().as_str(), error = %self, "request failed");
        } else {
            tracing::info!(code = self.code().as_str(), error = %self, "request rejected");
        }
        let mut response = (status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<DependencyError> for AppError {
    /// Only the summary travels on (to clients and stored records); the detail is logged here.
    fn from(err: DependencyError) -> Self {
        let service = err.service();
        tracing::warn!(dependency = service.name(), error = %err, "dependency call failed");
        let message = err.summary();
        if err.is_unavailable() {
            Self::Unavailable { service, message }
        } else {
            Self::Upstream { service, message }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_on_the_wire_as_its_name() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        assert_eq!(ErrorCode::ALL.len(), 34);
    }
    use axum::body::to_bytes;

    async fn render(err: AppError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let res = err.into_response();
        let status = res.status();
        let headers = res.headers().clone();
        let body = to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn unavailable_is_503_with_retry_after_and_names_the_service() {
        let (status, headers, body) = render(AppError::Unavailable {
            service: Service::Letta,
            message: "connection refused".into(),
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "5");
        assert_eq!(body["error"]["code"], "dependency_unavailable");
        assert_eq!(body["error"]["service"], "letta");
    }

    #[tokio::test]
    async fn unauthorized_carries_www_authenticate() {
        let (status, headers, body) = render(AppError::Unauthorized("token expired".into())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(body["error"]["message"], "token expired");
    }

    #[tokio::test]
    async fn internal_details_stay_out_of_the_body() {
        let (status, _, body) = render(AppError::Internal("db password is hunter2".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("hunter2"));
        assert_eq!(body["error"]["code"], "internal_error");
    }

    #[tokio::test]
    async fn validation_names_the_field() {
        let (status, _, body) =
            render(AppError::validation("email", "is not an email address")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["field"], "email");
    }
}
