//! Calls to dependencies over HTTP: one HTTP client per cold start, and every failure mapped to
//! a [`DependencyError`].

use std::{
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::Duration,
};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::app::{
    deadline,
    dependency::{DependencyError, Service},
};

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

/// Retries of an idempotent call after its first attempt (`UPSTREAM_RETRIES`), set at cold start.
static RETRIES: AtomicU32 = AtomicU32::new(2);
/// The timeout of a call that sets none of its own (`UPSTREAM_TIMEOUT_SECS`), set at cold start.
static TIMEOUT_MS: AtomicU64 = AtomicU64::new(45_000);
/// The first backoff; each next one doubles, with full jitter, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Sets, from the configuration, how many times an idempotent call is retried and how long a
/// call may take at most.
pub fn configure(retries: u32, timeout: Duration) {
    RETRIES.store(retries, Ordering::Relaxed);
    TIMEOUT_MS.store(timeout.as_millis() as u64, Ordering::Relaxed);
}

/// The configured timeout of a call (`UPSTREAM_TIMEOUT_SECS`).
fn upstream_timeout() -> Duration {
    Duration::from_millis(TIMEOUT_MS.load(Ordering::Relaxed))
}

/// Whether a failed attempt may be tried again: the connection failed (before an answer or in
/// the middle of one), or the
/// dependency said it is overloaded or briefly unavailable. Never after a timeout: a dependency
/// that hangs is not waited for twice.
fn retryable(error: &DependencyError) -> bool {
    match error {
        DependencyError::Unreachable { .. } => true,
        DependencyError::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
        _ => false,
    }
}

/// A random wait in `0..=limit` (full jitter), so retries of many clients spread out.
fn jitter(limit: Duration) -> Duration {
    let random = (ulid::Ulid::new().random() & 0xffff_ffff) as u64;
    limit.mul_f64(random as f64 / u32::MAX as f64)
}

/// Sends a request and returns the response when its status is a success. Reads and deletes
/// (GET, HEAD, PUT, DELETE: doing them twice is harmless) are retried with jittered backoff
/// when the failure is [`retryable`]; other methods (a message sent to the agent, a key made)
/// never are. No attempt waits, and no retry starts, past the request's deadline.
pub async fn send(service: Service, request: RequestBuilder) -> Result<Response, DependencyError> {
    send_reading(service, request, |response| async move { Ok(response) }).await
}

/// Sends a request and decodes a JSON success body; retried as [`send`], the reading of the
/// body included (a connection cut in the middle of the answer is retried too).
pub async fn send_json<T: DeserializeOwned>(
    service: Service,
    request: RequestBuilder,
) -> Result<T, DependencyError> {
    send_reading(service, request, |response| async move {
        // reqwest reports a body that broke off as a decoding error: it is the connection's.
        let bytes = response
            .bytes()
            .await
            .map_err(|e| match from_reqwest(service, e) {
                DependencyError::Decode { .. } => DependencyError::Unreachable {
                    service,
                    detail: "the answer was cut off".into(),
                },
                other => other,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            if e.is_eof() {
                // Valid so far, then over: the connection ended in the middle of the answer.
                DependencyError::Unreachable {
                    service,
                    detail: "the answer was cut off".into(),
                }
            } else {
                DependencyError::Decode {
                    service,
                    detail: e.to_string(),
                }
            }
        })
    })
    .await
}

/// [`send`], with `read` turning each successful response into the result inside the retries.
async fn send_reading<T, F, Fut>(
    service: Service,
    request: RequestBuilder,
    read: F,
) -> Result<T, DependencyError>
where
    F: Fn(Response) -> Fut,
    Fut: std::future::Future<Output = Result<T, DependencyError>>,
{
    let (client, built) = request.build_split();
    let request = built.map_err(|e| from_reqwest(service, e))?;
    let idempotent = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE
    );
    let retries = if idempotent {
        RETRIES.load(Ordering::Relaxed)
    } else {
        0
    };
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        let result = match send_once(service, &client, &request).await {
            Ok(response) => read(response).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if attempt < retries && retryable(&e) => {
                let wait = jitter(backoff);
                // Room for the wait and a useful attempt after it, or no retry.
                if deadline::remaining().is_some_and(|left| left < wait + MIN_ATTEMPT) {
                    return Err(e);
                }
                tracing::info!(dependency = %service, attempt, error = %e.summary(), "retrying");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The least time worth giving an attempt.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);

/// One attempt, given at most the time the request has left.
async fn send_once(
    service: Service,
    client: &reqwest::Client,
    request: &reqwest::Request,
) -> Result<Response, DependencyError> {
    let mut attempt = request.try_clone().ok_or_else(|| DependencyError::Decode {
        service,
        detail: "a streaming request body cannot be sent twice".into(),
    })?;
    // Within a deadline: its own timeout (a stream's is long) or the configured one, cut to
    // the time left. Without one, the client's timeout applies.
    if let Some(left) = deadline::remaining() {
        if left.is_zero() {
            return Err(DependencyError::Timeout { service });
        }
        let own = attempt.timeout().copied().unwrap_or_else(upstream_timeout);
        *attempt.timeout_mut() = Some(own.min(left));
    }
    let response = client
        .execute(attempt)
        .await
        .map_err(|e| from_reqwest(service, e))?;
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

/// How long a pooled connection may stay idle before it is dropped: below the 5 s after which
/// uvicorn (Letta's and LiteLLM's server) closes an idle connection. A connection reused as the
/// server closes it fails the request, and a POST (the message sent to the agent) is never
/// retried: most likely the 503 the 50-user load saw (Letta "could not be reached" 0.8 s into a
/// turn's POST, with Letta up all along). A function idle longer than this
/// connects again (a TCP, and for a remote server a TLS, handshake).
const POOL_IDLE: Duration = Duration::from_secs(4);

/// What every client of the backend shares: connect timeout, pooling, user agent.
fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(POOL_IDLE)
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

/// A file in a `multipart/form-data` body.
pub struct FilePart<'a> {
    /// The form field's name.
    pub field: &'a str,
    /// The file's name (quotes and control characters are replaced).
    pub file_name: &'a str,
    /// Its media type (a fixed one the caller chose, never the client's).
    pub media_type: &'a str,
    pub bytes: &'a [u8],
}

/// `request` with a `multipart/form-data` body (RFC 7578): `fields`, then `file`. Made as
/// bytes, not with reqwest's streaming form, so it is sent (timed, cloned for its attempt) like
/// every other request.
pub fn multipart(
    request: RequestBuilder,
    fields: &[(&str, &str)],
    file: &FilePart<'_>,
) -> RequestBuilder {
    let boundary = format!("chat-backend-{}", ulid::Ulid::new());
    let file_name: String = file
        .file_name
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut body = Vec::with_capacity(file.bytes.len() + 512);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\nContent-Type: {}\r\n\r\n",
            file.field, file.media_type
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    request
        .header(
            reqwest::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_before_an_answer_and_overload_answers_are_retried() {
        let service = Service::Letta;
        let status = |status| DependencyError::Status {
            service,
            status,
            body: String::new(),
        };
        for yes in [429, 502, 503, 504] {
            assert!(retryable(&status(yes)), "{yes}");
        }
        for no in [400, 401, 404, 409, 422, 500] {
            assert!(!retryable(&status(no)), "{no}");
        }
        assert!(retryable(&DependencyError::Unreachable {
            service,
            detail: "refused".into()
        }));
        assert!(!retryable(&DependencyError::Timeout { service }));
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(400)) <= Duration::from_millis(400));
        }
    }

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
