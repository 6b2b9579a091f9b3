//! The logs: no secret reaches a line (every JSON line written during whole account flows is
//! searched for keys, tokens and passwords), and every line of a request, the chat turn's own
//! task included, carries that request's id.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Captures, as production writes them (JSON lines with the current span), the lines of
    /// this test only: the subscriber is this thread's, and `#[tokio::test]` runs the gateway
    /// and every task it spawns on this thread.
    fn start(filter: &str) -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_env_filter(filter)
            .with_writer(move || writer.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Finds `sk-` followed by 16 or more key characters: the shape of LiteLLM keys.
fn litellm_key_like(text: &str) -> Option<String> {
    text.match_indices("sk-").find_map(|(i, _)| {
        let key: String = text[i + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        (key.len() >= 16).then(|| format!("sk-{key}"))
    })
}

#[tokio::test]
async fn no_key_token_or_password_appears_in_the_logs() {
    let (capture, _logs) = Capture::start(
        "debug,hyper=info,h2=info,aws_smithy_runtime=info,aws_config=info,rustls=info",
    );

    let app = spawn_app().await;
    let (email, password, reply) = app.register("Hal").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let login = app.login(&email, &password).await;
    let access = login.body["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let refresh = login.body["session"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.get("/api/v1/auth/me", &access).await.status, 200);
    let wrong = app
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "a-wrong-password"}),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let refreshed = app
        .post("/api/v1/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(refreshed.status, 200);
    let reply = app
        .call(
            Method::DELETE,
            "/api/v1/auth/account",
            Some(&access),
            Some(json!({"password": password})),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);

    let logs = capture.text();
    let lines: Vec<&str> = logs.lines().collect();
    assert!(
        lines.len() > 10,
        "the flows were logged: {} lines",
        lines.len()
    );
    for line in &lines {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.get("level").is_some());
    }
    // Lines written while handling a request carry its id.
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("\"message\":\"response\""))
            .all(|l| l.contains("request_id"))
    );

    let master = app.state.config.litellm.master_key.expose().to_string();
    let jwt_secret = std::env::var("SUPABASE_JWT_SECRET").unwrap();
    let letta_password = app
        .state
        .config
        .letta
        .password
        .as_ref()
        .map(|p| p.expose().to_string());
    for secret in [
        Some(master),
        Some(jwt_secret),
        letta_password,
        Some(access),
        Some(refresh),
        Some(password),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!logs.contains(&secret), "a secret appears in the logs");
    }
    assert_eq!(
        litellm_key_like(&logs),
        None,
        "a LiteLLM key appears in the logs"
    );
}

#[test]
fn the_key_detector_detects_keys() {
    assert_eq!(
        litellm_key_like("x sk-XUYLrQKTN4N1FcEg4IA-wQ y").as_deref(),
        Some("sk-XUYLrQKTN4N1FcEg4IA-wQ")
    );
    assert_eq!(litellm_key_like("task-force sk-short"), None);
}

#[tokio::test]
async fn every_line_of_a_chat_turn_carries_the_request_id() {
    let app = spawn_app().await;
    let (_, _, token, _) = app.ready_user("Iris").await;
    let (capture, _logs) = Capture::start("info");
    let request_id = format!("turn-{}", ulid::Ulid::new());
    let res = app
        .http
        .post(format!("{}/api/v1/chat/message", app.base))
        .bearer_auth(&token)
        .header("x-request-id", &request_id)
        .json(&json!({"content": "hello, how are you?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], request_id.as_str());
    let events = read_chat(res).await.events();
    assert_eq!(names(&events).last(), Some(&"done"), "{:?}", names(&events));

    let logs = capture.text();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |l: &Value| l["message"].as_str().unwrap_or_default().to_string();
    // The turn's own task logs when it is stored; the request's span logs the response.
    for expected in ["turn finished", "response"] {
        assert!(
            lines.iter().any(|l| message(l) == expected),
            "no {expected:?} line in {logs}"
        );
    }
    for line in &lines {
        assert_eq!(
            line["span"]["request_id"].as_str(),
            Some(request_id.as_str()),
            "a line without the request's id: {line}"
        );
    }
}
