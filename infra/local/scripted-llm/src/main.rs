//! A scripted, deterministic OpenAI-compatible model server for local runs and tests.
//!
//! It speaks the wire format LiteLLM and Letta use (`/v1/chat/completions` with and without
//! streaming, `stream_options.include_usage`, `/v1/embeddings`, `/v1/models`,
//! `/v1/audio/transcriptions` with a deterministic transcript: see `transcribe.rs`), and it behaves
//! like a small, predictable agent model:
//! - "my name is X" makes it store the name in the `human` block: `memory_replace` of the
//!   `Name:` line (else `memory_insert`) with Letta's v1 tools, `core_memory_append` with MemGPT's;
//! - "remember that X" makes it call `archival_memory_insert`;
//! - "what does my document say about X?" makes it call `grep_files` (when the agent has a
//!   folder) and quote what it found;
//! - "what is my name?" makes it answer from the memory it finds in the system prompt;
//! - "/tool NAME {json}" makes it call tool NAME with those arguments;
//! - "/loop" makes it a runaway model: it calls `conversation_search` at every step, so only
//!   Letta's `max_steps` ends the turn ("/slow MS /loop": every step streams slowly);
//! - "/slow MS rest" waits MS milliseconds between streamed chunks, then handles "rest";
//! - a system prompt asking for a "conversation title" gets "Chat: " and the first five words
//!   of the exchange's user line;
//! - "/fail STATUS" answers with that HTTP status (an upstream failure);
//! - "/fail-on MODEL STATUS rest" fails so only when MODEL is asked, else handles "rest" (so a
//!   LiteLLM fallback to another model answers);
//! - it streams in OpenAI's fine token shapes (content word by word, tool arguments as `{"`,
//!   key, `":"`, words, `"}`), as real models do; "/coarse rest" streams ~10-byte chunks instead;
//! - anything else gets `echo: <text>`, through `send_message` when offered (with `thinking`
//!   first) or as plain content, after native reasoning (`reasoning_content`) as reasoning
//!   models send it.
//!
//! Except after "/loop", it only calls a non-terminal tool when the newest message is the
//! user's own, so it never loops on Letta's heartbeat steps. Every answer carries a usage block.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use futures_util::stream;
use serde_json::{Map, Value, json};

mod script;
mod transcribe;

use script::{Action, Plan};

#[derive(Clone)]
struct Settings {
    chunk_delay: Duration,
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("LLM_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8399);
    let chunk_delay = std::env::var("SCRIPTED_LLM_CHUNK_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_millis(20));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| {
            eprintln!("scripted-llm: cannot listen on {addr}: {e}");
            std::process::exit(1)
        });
    eprintln!("scripted-llm listening on http://{addr}");
    axum::serve(listener, app(Settings { chunk_delay }))
        .await
        .expect("server error");
}

fn app(settings: Settings) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/v1/audio/transcriptions", post(transcribe::transcriptions))
        .route("/audio/transcriptions", post(transcribe::transcriptions))
        // Audio up to the backend's 5 MB, with the form around it.
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024))
        .with_state(settings)
}

const MODELS: &[&str] = &[
    "gpt-4",
    "gpt-4o-mini",
    "text-embedding-3-small",
    "whisper-1",
];

async fn models() -> Json<Value> {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "scripted"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message, "type": "scripted_error", "code": status.as_u16()}})))
        .into_response()
}

async fn chat(State(settings): State<Settings>, Json(request): Json<Value>) -> Response {
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "messages is required");
    };
    let tools = script::Tools::from_request(&request);
    let plan = script::plan(messages, &tools);
    if let Some(status) = plan.fail {
        return error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "scripted failure",
        );
    }
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("gpt-4")
        .to_string();
    if let Some((failing, status)) = &plan.fail_on
        && *failing == model
    {
        return error(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "scripted failure of this model",
        );
    }
    let prompt_tokens = script::count_tokens(&Value::Array(messages.clone()).to_string())
        + request
            .get("tools")
            .map_or(0, |t| script::count_tokens(&t.to_string()));
    // Unique per completion, as OpenAI's are: LiteLLM keys its spend logs by this id and
    // drops a second row with the same one.
    static COMPLETIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nth = COMPLETIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!(
        "chatcmpl-{:016x}{nth:08x}",
        script::fnv(&format!(
            "{prompt_tokens}{messages:?}{:?}",
            std::time::SystemTime::now()
        ))
    );
    let streaming = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let delay = plan.chunk_delay.unwrap_or(settings.chunk_delay);
    if streaming {
        stream_reply(id, model, plan, prompt_tokens, include_usage, delay)
    } else {
        Json(full_reply(&id, &model, &plan, prompt_tokens)).into_response()
    }
}

fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

fn completion_tokens(plan: &Plan) -> u64 {
    match &plan.action {
        Action::Say(text) => script::count_tokens(text),
        Action::CallTool { name, arguments } => {
            script::count_tokens(name) + script::count_tokens(&arguments.to_string())
        }
    }
}

fn full_reply(id: &str, model: &str, plan: &Plan, prompt_tokens: u64) -> Value {
    let (message, finish) = match &plan.action {
        Action::Say(text) => (json!({"role": "assistant", "content": text}), "stop"),
        Action::CallTool { name, arguments } => (
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_{}", &id[9..]), "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()}
            }]}),
            "tool_calls",
        ),
    };
    json!({
        "id": id, "object": "chat.completion", "created": 1_700_000_000u64, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(prompt_tokens, completion_tokens(plan)),
    })
}

/// Splits text into pieces of about `size` bytes the way tokenizers do: whitespace starts a
/// piece (" word"), it never ends one, so a stream has many chunks.
fn pieces(text: &str, size: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        if ch.is_whitespace() && current.len() >= size && !current.ends_with(char::is_whitespace) {
            out.push(std::mem::take(&mut current));
        }
        current.push(ch);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Tool-call arguments as OpenAI streams them: compact JSON cut into small tokens — `{"`, a
/// key, `":"`, the value word by word (" word"), `","`, …, `"}`. Their concatenation is the JSON.
fn argument_tokens(arguments: &Value) -> Vec<String> {
    let Some(map) = arguments.as_object() else {
        return vec![arguments.to_string()];
    };
    let mut tokens = vec![String::from("{")];
    let mut previous_was_string = false;
    for (i, (key, value)) in map.iter().enumerate() {
        let opening = if i == 0 {
            "\""
        } else if previous_was_string {
            "\",\""
        } else {
            ",\""
        };
        tokens.push(opening.to_string());
        tokens.push(
            serde_json::to_string(key)
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
        );
        match value {
            Value::String(text) => {
                tokens.push("\":\"".into());
                let escaped = serde_json::to_string(text).unwrap_or_default();
                tokens.extend(pieces(&escaped[1..escaped.len() - 1], 1));
                previous_was_string = true;
            }
            other => {
                tokens.push("\":".into());
                tokens.push(other.to_string());
                previous_was_string = false;
            }
        }
    }
    tokens.push(if previous_was_string { "\"}" } else { "}" }.to_string());
    // Merge the lone `{` with the first quote, as OpenAI does (`{"`).
    let first = tokens.remove(0);
    tokens[0].insert_str(0, &first);
    tokens.retain(|t| !t.is_empty());
    tokens
}

fn stream_reply(
    id: String,
    model: String,
    plan: Plan,
    prompt_tokens: u64,
    include_usage: bool,
    delay: Duration,
) -> Response {
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let mut events: Vec<Value> = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    let finish = match &plan.action {
        Action::Say(text) => {
            let size = if plan.coarse { 6 } else { 0 };
            if let Some(reasoning) = &plan.reasoning {
                events.extend(
                    pieces(reasoning, size)
                        .into_iter()
                        .map(|p| chunk(json!({"reasoning_content": p}), None)),
                );
            }
            events.extend(
                pieces(text, size)
                    .into_iter()
                    .map(|p| chunk(json!({"content": p}), None)),
            );
            "stop"
        }
        Action::CallTool { name, arguments } => {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": format!("call_{}", &id[9..]), "type": "function",
                    "function": {"name": name, "arguments": ""}}]}),
                None,
            ));
            let tokens = if plan.coarse {
                pieces(&arguments.to_string(), 10)
            } else {
                argument_tokens(arguments)
            };
            events.extend(tokens.into_iter().map(|p| {
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                    None,
                )
            }));
            "tool_calls"
        }
    };
    events.push(chunk(json!({}), Some(finish)));
    if include_usage {
        events.push(json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": model,
            "choices": [], "usage": usage(prompt_tokens, completion_tokens(&plan)),
        }));
    }
    let mut frames: Vec<Bytes> = events
        .into_iter()
        .map(|e| Bytes::from(format!("data: {e}\n\n")))
        .collect();
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let body = stream::unfold(
        (frames.into_iter(), true),
        move |(mut it, first)| async move {
            let frame = it.next()?;
            if !first {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, Infallible>(frame), (it, false)))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .expect("static response parts")
}

async fn embeddings(Json(request): Json<Value>) -> Response {
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect(),
        _ => return error(StatusCode::BAD_REQUEST, "input is required"),
    };
    let dim = request
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(1536)
        .clamp(8, 4096) as usize;
    let mut total = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            total += script::count_tokens(text);
            json!({"object": "embedding", "index": index, "embedding": script::embed(text, dim)})
        })
        .collect();
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("text-embedding-3-small");
    let mut body = Map::new();
    body.insert("object".into(), json!("list"));
    body.insert("data".into(), Value::Array(data));
    body.insert("model".into(), json!(model));
    body.insert(
        "usage".into(),
        json!({"prompt_tokens": total, "total_tokens": total}),
    );
    Json(Value::Object(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_tokens_concatenate_to_the_json() {
        let args = json!({"thinking": "I will answer.", "message": "Your name is \"Ada\".", "request_heartbeat": false});
        let tokens = argument_tokens(&args);
        assert_eq!(tokens[0], "{\"");
        assert!(tokens.contains(&"\":\"".to_string()));
        assert!(tokens.len() > 8, "{tokens:?}");
        let joined: String = tokens.concat();
        assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), args);
    }

    #[test]
    fn pieces_cover_the_text_in_several_chunks() {
        let text = "Nice to meet you, Ada! I will remember that.";
        let parts = pieces(text, 6);
        assert!(parts.len() >= 4, "{parts:?}");
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| !p.ends_with(' ')), "{parts:?}");
    }
}
