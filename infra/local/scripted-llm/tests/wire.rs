//! The scripted LLM over HTTP, in the OpenAI wire format LiteLLM and Letta read.

use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_scripted-llm"))
        .env("LLM_PORT", port.to_string())
        .env("SCRIPTED_LLM_CHUNK_DELAY_MS", "1")
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "scripted-llm did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child, format!("http://127.0.0.1:{port}"))
}

fn send_message_tool() -> Value {
    json!([{"type": "function", "function": {"name": "send_message",
        "parameters": {"type": "object", "properties": {"thinking": {"type": "string"}, "message": {"type": "string"}}}}}])
}

#[tokio::test]
async fn streaming_sends_several_chunks_then_usage_then_done() {
    let server = start();
    let res = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.1))
        .json(&json!({
            "model": "gpt-4", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "tell me something long enough to split"}],
            "tools": send_message_tool(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let arguments: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/tool_calls/0/function/arguments")?
                .as_str()
        })
        .collect();
    assert!(chunks.len() > 5, "{text}");
    let args: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(
        args["message"],
        "echo: tell me something long enough to split"
    );
    assert!(
        arguments.starts_with("{\"thinking\""),
        "thinking comes first: {arguments}"
    );
    let usage = &chunks.last().unwrap()["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn plain_completion_and_embeddings() {
    let server = start();
    let http = reqwest::Client::new();
    let body: Value = http
        .post(format!("{}/v1/chat/completions", server.1))
        .json(&json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hi");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let body: Value = http
        .post(format!("{}/v1/embeddings", server.1))
        .json(&json!({"model": "text-embedding-3-small", "input": ["a cat", "a dog"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 1536);

    let res = http
        .post(format!("{}/v1/chat/completions", server.1))
        .json(&json!({"model": "gpt-4", "messages": [{"role": "user", "content": "/fail 503"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
}
