//! `aws-recorder`: a loopback proxy in front of an AWS service stand-in (DynamoDB Local, moto's
//! Secrets Manager) that appends each action a request performs, with its caller, to a JSON
//! lines file, then forwards the request. `make test` puts it in front of DynamoDB Local; the
//! permission test compares what each function did with what its role grants.
//!
//! Environment: `RECORD_LISTEN` (default `127.0.0.1:0`), `RECORD_UPSTREAM` (the stand-in's
//! URL), `RECORD_LOG` (the file). Prints `listening on http://<addr>` once it listens. When the
//! upstream cannot be reached, the client's connection is closed without an answer, as the
//! stand-in's own would be.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use aws_recorder::{Call, actions, caller};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;

struct Recorder {
    upstream: String,
    http: reqwest::Client,
    log: Mutex<std::fs::File>,
}

#[derive(Debug)]
struct Unreachable;

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream could not be reached")
    }
}

impl std::error::Error for Unreachable {}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = env("RECORD_UPSTREAM").ok_or("set RECORD_UPSTREAM")?;
    let log = env("RECORD_LOG").ok_or("set RECORD_LOG")?;
    let listen = env("RECORD_LISTEN").unwrap_or_else(|| "127.0.0.1:0".into());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let recorder = Arc::new(Recorder {
        upstream: upstream.trim_end_matches('/').to_string(),
        http: reqwest::Client::new(),
        log: Mutex::new(log),
    });
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| forward(recorder.clone(), request));
            // An error ends the connection: that is how an unreachable upstream shows.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn forward(
    recorder: Arc<Recorder>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Unreachable> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| Unreachable)?.to_bytes();
    recorder.record(&parts.headers, &body);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = recorder
        .http
        .request(parts.method, format!("{}{path}", recorder.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.map_err(|_| Unreachable)?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response = response.header(name, value);
        }
    }
    let body = answer.bytes().await.map_err(|_| Unreachable)?;
    response.body(Full::new(body)).map_err(|_| Unreachable)
}

impl Recorder {
    fn record(&self, headers: &hyper::HeaderMap, body: &[u8]) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(target) = header("x-amz-target") else {
            return;
        };
        let who = caller(
            ["x-amz-user-agent", "user-agent"]
                .into_iter()
                .filter_map(header),
        );
        let body = serde_json::from_slice(body).unwrap_or_default();
        let mut lines = String::new();
        for (action, resource) in actions(target, &body) {
            let call = Call {
                caller: who.clone(),
                action,
                resource,
            };
            if let Ok(line) = serde_json::to_string(&call) {
                lines.push_str(&line);
                lines.push('\n');
            }
        }
        // One write per request, to a file opened for appending: lines of concurrent requests
        // (and of other recorders on the same file) never interleave.
        if let Ok(mut log) = self.log.lock() {
            let _ = log.write_all(lines.as_bytes());
        }
    }
}
