//! The logs: no secret reaches a line (every JSON line written during whole account flows is
//! searched for keys, tokens and passwords), and every line of a request, the chat turn's own
//! task included, carries that request's id.

use std::collections::BTreeSet;

use crate::{helpers::*, run_log::Capture};
use serde_json::{Value, json};

/// The `request_id` of the request a line was written for, if any.
fn request_id_of(line: &Value) -> Option<&str> {
    line["span"]["request_id"].as_str()
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

/// Notes a reply's `x-request-id`.
fn seen(ids: &mut BTreeSet<String>, reply: &Reply) {
    ids.insert(reply.headers["x-request-id"].to_str().unwrap().to_string());
}

/// Registers, logs in (rightly and wrongly), asks who it is and refreshes; returns the access
/// token, the refresh token and the password.
async fn account_traffic(app: &TestApp, ids: &mut BTreeSet<String>) -> (String, String, String) {
    let (email, password, reply) = app.register("Hal").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    seen(ids, &reply);
    let login = app.login(&email, &password).await;
    assert_eq!(login.status, 200, "{}", login.body);
    seen(ids, &login);
    let access = login.body["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let refresh = login.body["session"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let me = app.me(&access).await;
    assert_eq!(me.status, 200);
    seen(ids, &me);
    let wrong = app
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "a-wrong-password"}),
        )
        .await;
    assert_eq!(wrong.status, 401);
    seen(ids, &wrong);
    let refreshed = app.refresh(&refresh).await;
    assert_eq!(refreshed.status, 200);
    seen(ids, &refreshed);
    (access, refresh, password)
}

/// A chat turn, the user's and the agent's flows, then the account's deletion.
async fn use_traffic(app: &TestApp, access: &str, password: &str, ids: &mut BTreeSet<String>) {
    // A chat turn, the user's and the agent's flows.
    let res = app.chat_request(access, "hello, how are you?", None).await;
    ids.insert(res.headers()["x-request-id"].to_str().unwrap().to_string());
    let events = read_chat(res).await.events();
    assert_eq!(names(&events).last(), Some(&"done"), "{:?}", names(&events));
    for path in [
        "/api/v1/user/usage",
        "/api/v1/user/budget",
        "/api/v1/agent/status",
    ] {
        let reply = app.get(path, access).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        seen(ids, &reply);
    }
    let reply = app
        .update_profile(access, json!({"display_name": "Hal 2"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    seen(ids, &reply);
    let reply = app
        .write_memory(
            access,
            json!({"archival": {"text": "Hal keeps a logbook."}}),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    seen(ids, &reply);
    let reply = app.delete_account(access, Some(password)).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    seen(ids, &reply);
}

#[tokio::test]
async fn no_key_token_or_password_appears_in_the_logs() {
    let app = spawn_app().await;
    let (capture, _capturing) = Capture::start();
    // Every reply's x-request-id, to compare with the ids the response lines carry.
    let mut ids = BTreeSet::new();
    let (access, refresh, password) = account_traffic(&app, &mut ids).await;
    use_traffic(&app, &access, &password, &mut ids).await;

    let logs = capture.text();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 10, "the flows were logged: {}", lines.len());
    assert!(lines.iter().all(|l| l.get("level").is_some()));
    // One response line per request, each with that request's id.
    let logged: BTreeSet<String> = lines
        .iter()
        .filter(|l| l["message"] == "response")
        .map(|l| {
            request_id_of(l)
                .expect("a response line with a request id")
                .to_string()
        })
        .collect();
    assert_eq!(logged, ids, "the response lines name the requests' ids");

    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name}"));
    let secrets = [
        env("LITELLM_MASTER_KEY"),
        env("SUPABASE_JWT_SECRET"),
        env("SUPABASE_SERVICE_ROLE_KEY"),
        env("SUPABASE_ANON_KEY"),
        env("LETTA_API_KEY"),
        access,
        refresh,
        password,
    ];
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !logs.contains(secret.as_str()),
            "a secret appears in the logs"
        );
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
    let TestUser { token, .. } = app.ready_user("Iris").await;
    let (capture, _capturing) = Capture::start();
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
    // Debug lines of connection pools may come from tasks of no request; the rest may not.
    for line in lines.iter().filter(|l| l["level"] != "DEBUG") {
        assert_eq!(
            request_id_of(line),
            Some(request_id.as_str()),
            "a line without the request's id: {line}"
        );
    }
}
