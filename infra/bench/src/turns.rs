//! One chat turn timed from the client's side, through the backend or straight to Letta's own
//! stream on the same agent: time to the first event, to the first reply text, to the end.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// Where a turn goes.
#[derive(Clone)]
pub enum Target {
    /// `POST /api/v1/chat/message` on the gateway, with the user's token.
    Backend {
        /// The gateway's base URL.
        base: String,
        /// The user's access token.
        token: String,
    },
    /// `POST /v1/agents/{id}/messages/stream` on Letta, `stream_tokens: true`.
    Letta {
        /// Letta's base URL.
        base: String,
        /// Letta's password, if it has one.
        password: Option<String>,
        /// The user's agent.
        agent_id: String,
    },
}

/// The times of one turn, from sending the request.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The first event of any kind.
    pub first_event: Duration,
    /// The first piece of reply text.
    pub first_text: Duration,
    /// The end of the stream.
    pub end: Duration,
    /// The prompt tokens of the backend's `usage` event.
    pub prompt_tokens: Option<u64>,
}

/// Sends `text` and times the stream; an error names what went wrong.
pub async fn turn(http: &reqwest::Client, target: &Target, text: &str) -> Result<Timing, String> {
    turn_traced(http, target, text, &mut Vec::new()).await
}

/// [`turn`], also noting when each piece of reply text arrived, with the text.
pub async fn turn_traced(
    http: &reqwest::Client,
    target: &Target,
    text: &str,
    texts: &mut Vec<(Instant, String)>,
) -> Result<Timing, String> {
    let request = match target {
        Target::Backend { base, token } => http
            .post(format!("{base}/api/v1/chat/message"))
            .bearer_auth(token)
            .json(&json!({"content": text})),
        Target::Letta {
            base,
            password,
            agent_id,
        } => {
            let request = http
                .post(format!("{base}/v1/agents/{agent_id}/messages/stream"))
                .json(&json!({
                    "messages": [{"role": "user", "content": text}],
                    "streaming": true,
                    "stream_tokens": true,
                    "include_pings": true,
                }));
            match password {
                Some(p) => request.bearer_auth(p),
                None => request,
            }
        }
    };
    let started = Instant::now();
    let response = request.send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut events = response.bytes_stream().eventsource();
    let (mut first_event, mut first_text, mut prompt_tokens) = (None, None, None);
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| e.to_string())?;
        let arrived = Instant::now();
        let at = arrived.duration_since(started);
        first_event.get_or_insert(at);
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        let text = match target {
            Target::Backend { .. } => event.event == "delta",
            Target::Letta { .. } => data["message_type"] == "assistant_message",
        };
        if text {
            first_text.get_or_insert(at);
            let piece = match target {
                Target::Backend { .. } => &data["text"],
                Target::Letta { .. } => &data["content"],
            };
            if let Some(piece) = piece.as_str().filter(|p| !p.is_empty()) {
                texts.push((arrived, piece.to_string()));
            }
        }
        if event.event == "usage" {
            prompt_tokens = data["prompt_tokens"].as_u64();
        }
        if event.event == "error" || data["message_type"] == "error_message" {
            return Err(format!("an error event: {}", event.data));
        }
    }
    let end = started.elapsed();
    Ok(Timing {
        first_event: first_event.ok_or("no event")?,
        first_text: first_text.ok_or("no reply text")?,
        end,
        prompt_tokens,
    })
}

/// The `q` quantile (0–1) of `values`, by nearest rank.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds, one decimal.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(5));
        assert_eq!(quantile(&v, 0.95), Duration::from_millis(10));
        assert_eq!(quantile(&v, 0.0), Duration::from_millis(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
