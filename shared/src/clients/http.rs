//! Calls to dependencies over HTTP: one HTTP client per cold start, and every failure mapped to
//! a [`DependencyError`].

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::app::dependency::{DependencyError, Service};

/// Classifies a reqwest failure: timeouts, undecodable bodies, and connection problems.
pub fn from_reqwest(service: Service, err: reqwest::Error) -> DependencyError {
    if err.is_timeout() {
        DependencyError::Timeout { service }
    } else if err.is_decode() {
        DependencyError::Decode {
            service,
            detail: err.to_string(),
        }
    } else {
        // Connection refused, reset, DNS: the error text carries no secrets (no headers).
        let detail = std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "connection failed".into());
        DependencyError::Unreachable { service, detail }
    }
}
/// Longest piece of a dependency's error body kept in messages and logs.
const MAX_ERROR_BODY: usize = 600;

/// An upstream error body with what could be a secret cut out: LiteLLM keys (`sk-…`), JWTs
/// (`eyJ….….…`), the word after `Bearer` (whatever its shape: Letta's password is one) and
/// anything after `password`. It is only ever logged.
pub fn redact(text: &str) -> String {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut after_bearer = false;
    while let Some(start) = rest.find(|c: char| is_key_char(c)) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !is_key_char(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        let secret = after_bearer
            || (word.starts_with("sk-") && word.len() > 8)
            || (word.starts_with("eyJ") && word.matches('.').count() >= 2);
        after_bearer = word.eq_ignore_ascii_case("bearer");
        out.push_str(if secret { "[redacted]" } else { word });
        rest = &rest[end..];
    }
    out.push_str(rest);
    match out.to_ascii_lowercase().find("password") {
        Some(at) => format!("{}password [redacted]", &out[..at]),
        None => out,
    }
}

/// Sends a request and returns the response when its status is a success.
pub async fn send(service: Service, request: RequestBuilder) -> Result<Response, DependencyError> {
    let response = request.send().await.map_err(|e| from_reqwest(service, e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let mut body = redact(&response.text().await.unwrap_or_default());
    if body.len() > MAX_ERROR_BODY {
        let cut = (0..=MAX_ERROR_BODY)
            .rev()
            .find(|i| body.is_char_boundary(*i))
            .unwrap_or(0);
        body.truncate(cut);
        body.push('…');
    }
    Err(DependencyError::Status {
        service,
        status: status.as_u16(),
        body,
    })
}

/// Sends a request and decodes a JSON success body.
pub async fn send_json<T: DeserializeOwned>(
    service: Service,
    request: RequestBuilder,
) -> Result<T, DependencyError> {
    let response = send(service, request).await?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| from_reqwest(service, e))?;
    serde_json::from_slice(&bytes).map_err(|e| DependencyError::Decode {
        service,
        detail: e.to_string(),
    })
}

/// Treats a 404 as "absent".
pub fn absent_on_404<T>(result: Result<T, DependencyError>) -> Result<Option<T>, DependencyError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(DependencyError::Status { status, .. }) if status == StatusCode::NOT_FOUND.as_u16() => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What every client of the backend shares: connect timeout, pooling, user agent.
fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(Duration::from_secs(50))
        .user_agent(concat!("chat-backend/", env!("CARGO_PKG_VERSION")))
}

/// One HTTP client per cold start, shared by every dependency client.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    builder()
        .timeout(timeout)
        .build()
        .expect("the HTTP client settings are static and valid")
}

/// A client for long streams: no total timeout, but a read timeout so a silent peer is noticed.
pub fn stream_client(read_timeout: Duration) -> reqwest::Client {
    builder()
        .read_timeout(read_timeout)
        .build()
        .expect("the HTTP client settings are static and valid")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn keys_tokens_and_passwords_are_cut_from_error_bodies() {
        let body = r#"{"error": "invalid key sk-abcdef1234567890 for user", "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"}"#;
        let clean = redact(body);
        assert!(
            !clean.contains("sk-abcdef") && !clean.contains("eyJhbG"),
            "{clean}"
        );
        assert!(clean.contains("invalid key [redacted] for user"), "{clean}");
        assert_eq!(redact("no secrets: sk- here"), "no secrets: sk- here");
        let with_password = redact(r#"{"email": "a@b.c", "password": "hunter22"}"#);
        assert!(!with_password.contains("hunter22"), "{with_password}");
        // A bearer credential of any shape (Letta's server password is one).
        let echoed = redact(r#"{"detail": "ECHOED Bearer local-letta-pw.123 next"}"#);
        assert_eq!(echoed, r#"{"detail": "ECHOED Bearer [redacted] next"}"#);
    }
}
