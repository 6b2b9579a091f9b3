//! A loopback tap in front of Letta: it forwards every request and passes each response through
//! as it comes, timestamping the reply text events (`assistant_message`) of Letta's streams the
//! moment they arrive from Letta. The client's own timestamps of the `delta` events it gets
//! from the backend, paired in order, give the relay delay per event.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;

/// The reply text events seen, in order, each with the moment it arrived from Letta; and when
/// each stream was asked for.
#[derive(Clone, Default)]
pub struct Tap(Arc<Mutex<Vec<(Instant, String)>>>, Arc<Mutex<Vec<Instant>>>);

impl Tap {
    /// When the first stream request since the last call arrived (and forgets them all).
    pub fn first_stream_request(&self) -> Option<Instant> {
        self.1
            .lock()
            .ok()
            .and_then(|mut v| v.split_off(0).into_iter().min())
    }

    /// Takes the events seen so far (and forgets them).
    pub fn take(&self) -> Vec<(Instant, String)> {
        self.0
            .lock()
            .map(|mut v| v.split_off(0))
            .unwrap_or_default()
    }

    fn saw(&self, at: Instant, text: String) {
        if let Ok(mut seen) = self.0.lock() {
            seen.push((at, text));
        }
    }
}

#[derive(Clone)]
struct Forward {
    upstream: String,
    http: reqwest::Client,
    tap: Tap,
}

/// SSE events of one stream, split as their bytes arrive.
#[derive(Default)]
struct Events {
    pending: String,
}

impl Events {
    /// The reply texts of the events `chunk` completes.
    fn texts(&mut self, chunk: &[u8]) -> Vec<String> {
        // Lines may end with CRLF; a JSON line never holds a raw CR.
        self.pending.extend(
            String::from_utf8_lossy(chunk)
                .chars()
                .filter(|c| *c != '\r'),
        );
        let mut texts = Vec::new();
        while let Some(end) = self.pending.find("\n\n") {
            let event: String = self.pending.drain(..end + 2).collect();
            for line in event.lines() {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
                    continue;
                };
                if value["message_type"] == "assistant_message"
                    && let Some(text) = value["content"].as_str()
                    && !text.is_empty()
                {
                    texts.push(text.to_string());
                }
            }
        }
        texts
    }
}

async fn forward(State(f): State<Forward>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.uri.path().ends_with("/stream")
        && let Ok(mut asked) = f.tap.1.lock()
    {
        asked.push(Instant::now());
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut upstream = f
        .http
        .request(parts.method.clone(), format!("{}{path}", f.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(a) => a,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    let streaming = parts.uri.path().ends_with("/stream");
    let tap = f.tap.clone();
    let mut events = Events::default();
    let body = answer.bytes_stream().map(move |chunk| {
        let chunk: Bytes = chunk?;
        if streaming {
            let at = Instant::now();
            for text in events.texts(&chunk) {
                tap.saw(at, text);
            }
        }
        Ok::<_, reqwest::Error>(chunk)
    });
    response
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Starts the tap in front of `upstream` (Letta's base URL); returns its URL and the tap.
pub async fn start(upstream: &str) -> (String, Tap) {
    let tap = Tap::default();
    let state = Forward {
        upstream: upstream.trim_end_matches('/').to_string(),
        http: reqwest::Client::new(),
        tap: tap.clone(),
    };
    let app = Router::new().fallback(forward).with_state(state);
    let url = format!("http://{}", crate::serve_loopback(app).await);
    (url, tap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_texts_are_found_across_chunks() {
        let mut events = Events::default();
        let first = b"data: {\"message_type\":\"reasoning_message\",\"reasoning\":\"x\"}\r\n\r\ndata: {\"message_type\":\"assistant_message\",\"con";
        assert!(events.texts(first).is_empty());
        let rest = b"tent\":\"Hel\"}\n\ndata: {\"message_type\":\"assistant_message\",\"content\":\"lo\"}\n\ndata: [DONE]\n\n";
        assert_eq!(events.texts(rest), ["Hel", "lo"]);
    }
}
