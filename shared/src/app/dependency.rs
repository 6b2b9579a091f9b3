//! The external systems the backend depends on, and one classification of their failures.
//! It lives below the clients so that clients and the error type both point down to it.

use std::{
    collections::HashMap,
    fmt,
    sync::Mutex,
    time::{Duration, Instant},
};

/// An external system the backend calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// DynamoDB (the table of profiles, messages, usage, locks).
    DynamoDb,
    /// The Letta server (agents and their memory).
    Letta,
    /// The LiteLLM proxy (users, keys, budgets, spend).
    LiteLlm,
    /// Supabase Auth (identities, sessions, JWKS).
    SupabaseAuth,
}

impl Service {
    /// Every dependency.
    pub const ALL: &'static [Service] = &[
        Self::DynamoDb,
        Self::Letta,
        Self::LiteLlm,
        Self::SupabaseAuth,
    ];

    /// The name used in errors, health reports and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::DynamoDb => "dynamodb",
            Self::Letta => "letta",
            Self::LiteLlm => "litellm",
            Self::SupabaseAuth => "supabase_auth",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a call to a dependency failed.
#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    /// The connection failed (refused, reset, DNS).
    #[error("{service} could not be reached ({detail})")]
    Unreachable {
        /// Which dependency.
        service: Service,
        /// What went wrong, without secrets.
        detail: String,
    },
    /// No answer within the timeout.
    #[error("{service} did not answer in time")]
    Timeout {
        /// Which dependency.
        service: Service,
    },
    /// An HTTP (or HTTP-like) error status.
    #[error("{service} answered HTTP {status}: {body}")]
    Status {
        /// Which dependency.
        service: Service,
        /// The status code.
        status: u16,
        /// The start of the error body.
        body: String,
    },
    /// A success answer that could not be decoded.
    #[error("{service} sent a response we could not read: {detail}")]
    Decode {
        /// Which dependency.
        service: Service,
        /// The decoder's message.
        detail: String,
    },
}

impl DependencyError {
    /// The dependency that failed.
    pub fn service(&self) -> Service {
        match self {
            Self::Unreachable { service, .. }
            | Self::Timeout { service }
            | Self::Status { service, .. }
            | Self::Decode { service, .. } => *service,
        }
    }

    /// Down, overloaded or timing out: worth a retry later (503 to our client).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            Self::Decode { .. } => false,
        }
    }

    /// What happened, without a word of the dependency's own text (which may echo a request,
    /// keys included): for clients, stored records and `/health`. The whole error, redacted,
    /// goes to the logs only.
    pub fn summary(&self) -> String {
        match self {
            Self::Unreachable { .. } => "it could not be reached".into(),
            Self::Timeout { .. } => "it did not answer in time".into(),
            Self::Status { status, .. } => format!("it answered HTTP {status}"),
            Self::Decode { .. } => "its answer could not be read".into(),
        }
    }

    /// The HTTP status, when the dependency answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The last health check of each dependency (when it ran, how it went as a summary, how long it
/// took), kept per instance so `GET /health` reuses it for a few seconds.
#[derive(Default)]
pub struct HealthCache(Mutex<HashMap<Service, CheckRecord>>);

/// When a check ran, how it went (a summary on failure), how long it took.
type CheckRecord = (Instant, Result<(), String>, Duration);

impl HealthCache {
    /// The check of `service` if it ran less than `ttl` ago.
    pub fn fresh(&self, service: Service, ttl: Duration) -> Option<(Result<(), String>, Duration)> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&service)
            .filter(|(at, _, _)| at.elapsed() < ttl)
            .map(|(_, result, took)| (result.clone(), *took))
    }

    /// Records a check that just ran.
    pub fn store(&self, service: Service, result: Result<(), String>, took: Duration) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(service, (Instant::now(), result, took));
    }
}
