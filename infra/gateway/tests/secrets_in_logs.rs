//! No secret reaches a log line: every JSON line the backend writes during whole account flows
//! is captured and searched for keys, tokens and passwords.

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

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
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_env_filter(
            "debug,hyper=info,h2=info,aws_smithy_runtime=info,aws_config=info,rustls=info",
        )
        .with_writer(move || writer.clone())
        .init();

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

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
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
