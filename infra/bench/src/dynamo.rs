//! A loopback proxy in front of DynamoDB Local that counts requests by operation
//! (`X-Amz-Target`), so the bench can say how many reads and writes an endpoint costs.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

/// The operations seen, in order, each with the moment it arrived.
#[derive(Clone, Default)]
pub struct Counter(Arc<Mutex<Vec<(Instant, String)>>>);

impl Counter {
    /// How many operations were seen so far.
    pub fn mark(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// The operations since `mark`, counted by name.
    pub fn since(&self, mark: usize) -> BTreeMap<String, usize> {
        self.between(mark, None)
    }

    /// The operations since `mark` that arrived before `until` (all, without it).
    pub fn between(&self, mark: usize, until: Option<Instant>) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        if let Ok(seen) = self.0.lock() {
            for (at, op) in seen.iter().skip(mark) {
                if until.is_none_or(|until| *at < until) {
                    *counts.entry(op.clone()).or_default() += 1;
                }
            }
        }
        counts
    }
}

/// Whether a DynamoDB operation reads (every other one writes).
pub fn is_read(op: &str) -> bool {
    matches!(
        op,
        "GetItem" | "Query" | "Scan" | "BatchGetItem" | "TransactGetItems" | "DescribeTable"
    )
}

/// Reads and writes of a set of operation counts.
pub fn reads_and_writes(counts: &BTreeMap<String, usize>) -> (usize, usize) {
    let mut rw = (0, 0);
    for (op, n) in counts {
        if is_read(op) {
            rw.0 += n;
        } else {
            rw.1 += n;
        }
    }
    rw
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    counter: Counter,
}

async fn forward(State(p): State<Proxy>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('.').next())
        .unwrap_or("unknown")
        .to_string();
    if let Ok(mut seen) = p.counter.0.lock() {
        seen.push((Instant::now(), target));
    }
    let mut request = p.http.post(&p.upstream).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = answer
                .headers()
                .get("content-type")
                .cloned()
                .unwrap_or_else(|| "application/x-amz-json-1.0".parse().expect("static"));
            let body = answer.bytes().await.unwrap_or_default();
            (status, [("content-type", content_type)], body).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// Starts the proxy in front of `upstream`; returns its URL and the counter.
pub async fn start(upstream: &str) -> (String, Counter) {
    let counter = Counter::default();
    let proxy = Proxy {
        upstream: upstream.trim_end_matches('/').to_string() + "/",
        http: reqwest::Client::new(),
        counter: counter.clone(),
    };
    let app = Router::new().fallback(forward).with_state(proxy);
    let url = format!("http://{}", crate::serve_loopback(app).await);
    (url, counter)
}
