//! A Lambda runtime API emulator on loopback: a release bootstrap is spawned against it, the
//! way Lambda starts a function, and timed from spawn to its first response; its resident
//! memory is read after a series of invocations.

use std::{
    collections::HashMap,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// How an invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// The function answered (the response body, streamed or not, is complete).
    Response(Bytes),
    /// The function reported an error.
    Error(String),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>;
/// An event to deliver, and where its outcome goes.
type Invocation = (Value, oneshot::Sender<Outcome>);

#[derive(Clone)]
struct Emulator {
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Invocation>>>,
    pending: Pending,
    next_id: Arc<Mutex<u64>>,
    /// When the function first asked for an event: its init was over.
    first_poll: Arc<OnceLock<Instant>>,
}

async fn next(State(e): State<Emulator>) -> Response {
    e.first_poll.get_or_init(Instant::now);
    let Some((event, done)) = e.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let id = {
        let mut n = e.next_id.lock().expect("the id counter");
        *n += 1;
        format!("bench-{n}")
    };
    e.pending.lock().expect("pending").insert(id.clone(), done);
    let deadline = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 300_000;
    (
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:bench".into(),
            ),
            ("lambda-runtime-trace-id", "Root=1-bench".into()),
            ("content-type", "application/json".into()),
        ],
        event.to_string(),
    )
        .into_response()
}

fn settle(e: &Emulator, id: &str, outcome: Outcome) -> StatusCode {
    if let Some(done) = e.pending.lock().expect("pending").remove(id) {
        let _ = done.send(outcome);
    }
    StatusCode::ACCEPTED
}

async fn response(
    State(e): State<Emulator>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    settle(&e, &id, Outcome::Response(body))
}

async fn error(
    State(e): State<Emulator>,
    UrlPath(id): UrlPath<String>,
    _: HeaderMap,
    body: Bytes,
) -> StatusCode {
    settle(
        &e,
        &id,
        Outcome::Error(String::from_utf8_lossy(&body).into()),
    )
}

/// A running emulator: queue events with [`Runtime::invoke`].
pub struct Runtime {
    /// `host:port` for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    events: mpsc::Sender<Invocation>,
    first_poll: Arc<OnceLock<Instant>>,
}

impl Runtime {
    /// Starts the emulator on a loopback port.
    pub async fn start() -> Self {
        let (events, queue) = mpsc::channel(64);
        let first_poll = Arc::<OnceLock<Instant>>::default();
        let emulator = Emulator {
            queue: Arc::new(tokio::sync::Mutex::new(queue)),
            pending: Arc::default(),
            next_id: Arc::default(),
            first_poll: first_poll.clone(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route(
                "/2018-06-01/runtime/init/error",
                post(|body: Bytes| async move {
                    eprintln!("bench: init error: {}", String::from_utf8_lossy(&body));
                    StatusCode::ACCEPTED
                }),
            )
            .with_state(emulator);
        let address = crate::serve_loopback(app).await.to_string();
        Self {
            address,
            events,
            first_poll,
        }
    }

    /// Queues one invocation and waits for its outcome.
    pub async fn invoke(&self, event: Value) -> Outcome {
        let (done, outcome) = oneshot::channel();
        if self.events.send((event, done)).await.is_err() {
            return Outcome::Error("the emulator stopped".into());
        }
        match tokio::time::timeout(Duration::from_secs(120), outcome).await {
            Ok(Ok(outcome)) => outcome,
            _ => Outcome::Error("no answer within 120 s".into()),
        }
    }
}

/// What one bootstrap showed.
#[derive(Debug, Clone)]
pub struct Start {
    /// Spawn → its first response complete (init and the first invocation).
    pub first_response: Duration,
    /// Spawn → the function's first request for an event (its init alone).
    pub init: Option<Duration>,
    /// The first response's (`GET /health`) slowest dependency check: its name and ms.
    pub slowest_check: Option<(String, f64)>,
    /// Resident memory after every invocation, KiB.
    pub rss_kib: u64,
    /// Invocations that failed.
    pub errors: usize,
}

/// The health report inside a function's response to the runtime API: a buffered response is
/// `{"statusCode", "body": "<json>"}`; a streamed one is its prelude, eight zero bytes, then the
/// body. Returns the slowest of its `checks` (name, `latency_ms`).
fn slowest_check(response: &[u8]) -> Option<(String, f64)> {
    let report: Value = match response.windows(8).position(|w| w == [0; 8]) {
        Some(at) => serde_json::from_slice(&response[at + 8..]).ok()?,
        None => {
            let buffered: Value = serde_json::from_slice(response).ok()?;
            serde_json::from_str(buffered["body"].as_str()?).ok()?
        }
    };
    report["checks"]
        .as_object()?
        .iter()
        .filter_map(|(name, check)| Some((name.clone(), check["latency_ms"].as_f64()?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The resident memory of `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Spawns `binary` under a fresh emulator, invokes `first` as soon as it is spawned, then each
/// of `events`; reports the time to the first response and the memory after the last.
pub async fn start_and_run(
    binary: &Path,
    name: &str,
    first: Value,
    events: Vec<Value>,
) -> Result<Start, String> {
    let runtime = Runtime::start().await;
    let spawned = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let pid = child.id().unwrap_or(0);
    let first_outcome = runtime.invoke(first).await;
    let first_response = spawned.elapsed();
    let init = runtime
        .first_poll
        .get()
        .map(|at| at.saturating_duration_since(spawned));
    let slowest_check = match &first_outcome {
        Outcome::Response(body) => slowest_check(body),
        Outcome::Error(_) => None,
    };
    let mut errors = usize::from(matches!(first_outcome, Outcome::Error(_)));
    if let Outcome::Error(e) = &first_outcome {
        eprintln!("bench: {name}: the first invocation failed: {e}");
    }
    for event in events {
        if let Outcome::Error(e) = runtime.invoke(event).await {
            eprintln!("bench: {name}: an invocation failed: {e}");
            errors += 1;
        }
    }
    let rss_kib = rss_kib(pid);
    let _ = child.kill().await;
    Ok(Start {
        first_response,
        init,
        slowest_check,
        rss_kib,
        errors,
    })
}

/// The sample function URL event `events/<file>.json` with the caller's token.
pub fn sample_event(workspace: &Path, file: &str, token: &str) -> Result<Value, String> {
    let path = workspace.join("events").join(format!("{file}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut event: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(headers) = event["headers"].as_object_mut()
        && headers.contains_key("authorization")
    {
        headers.insert("authorization".into(), format!("Bearer {token}").into());
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_check_is_read_from_a_buffered_or_a_streamed_health_response() {
        let report = r#"{"status":"ok","checks":{"dynamodb":{"status":"up","latency_ms":42.5},"letta":{"status":"up","latency_ms":7.1}}}"#;
        let buffered = serde_json::json!({ "statusCode": 200, "body": report }).to_string();
        let mut streamed = br#"{"statusCode":200,"headers":{}}"#.to_vec();
        streamed.extend_from_slice(&[0; 8]);
        streamed.extend_from_slice(report.as_bytes());
        for response in [buffered.as_bytes(), &streamed] {
            assert_eq!(slowest_check(response), Some(("dynamodb".into(), 42.5)));
        }
        assert_eq!(slowest_check(b"not json"), None);
    }
}
