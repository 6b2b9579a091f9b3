//! A loopback HTTP proxy in front of Letta that forwards every request unchanged but drops some
//! of the assistant text events of its message streams, and their stop reason: the backend then
//! sees a reply that Letta stored but did not (fully) stream, without the sign that the turn
//! ended cleanly that lets it trust the streamed text.

use axum::{Router, body::Body, extract::Request, response::Response};
use futures_util::StreamExt;

use crate::http_tap::{bad_gateway, request_of, send_on, serve};

/// Which assistant text events (counted from 0 within one stream) to drop.
#[derive(Clone, Copy)]
pub(crate) enum Drop {
    /// The first one.
    First,
    /// Every one after the first `n`.
    After(usize),
}

impl Drop {
    fn drops(self, index: usize) -> bool {
        match self {
            Self::First => index == 0,
            Self::After(n) => index >= n,
        }
    }
}

/// Starts the proxy in front of `letta`; returns its base URL.
pub(crate) async fn start(letta: String, drop: Drop) -> String {
    let http = reqwest::Client::new();
    let app = Router::new().fallback(move |request: Request| {
        let (http, letta) = (http.clone(), letta.clone());
        async move { forward(&http, &letta, request, drop).await }
    });
    serve(app).await
}

async fn forward(http: &reqwest::Client, letta: &str, request: Request, drop: Drop) -> Response {
    let (parts, body) = request.into_parts();
    let Some((res, headers)) = send_on(http, letta, request_of(parts, body).await).await else {
        return bad_gateway();
    };
    let sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let status = res.status();
    let body = if sse {
        // Whole events (`data: …\n\n`), each kept or dropped.
        let mut pending = String::new();
        let mut seen = 0usize;
        let events = res.bytes_stream().map(move |chunk| {
            pending.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_default()));
            let mut out = String::new();
            while let Some(end) = pending.find("\n\n") {
                let event: String = pending.drain(..end + 2).collect();
                if event.contains("\"message_type\":\"stop_reason\"") {
                    continue;
                }
                if event.contains("\"message_type\":\"assistant_message\"") {
                    seen += 1;
                    if drop.drops(seen - 1) {
                        continue;
                    }
                }
                out.push_str(&event);
            }
            Ok::<_, std::io::Error>(out)
        });
        Body::from_stream(events)
    } else {
        Body::from(res.bytes().await.unwrap_or_default())
    };
    let mut response = Response::builder().status(status).body(body).unwrap();
    *response.headers_mut() = headers;
    response
}
