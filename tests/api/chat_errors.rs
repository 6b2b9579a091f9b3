//! The chat errors the README documents, caused with the real services: the scripted model's
//! `/fail`, LiteLLM's own key deletion and budget update (plain HTTP to its admin API).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::*;
use reqwest::Method;

/// POSTs to LiteLLM's admin API with the master key (plain HTTP).
async fn litellm_admin(app: &TestApp, path: &str, body: Value) {
    let res = app
        .litellm(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "{path}: {}",
        res.text().await.unwrap()
    );
}

/// Deletes every LiteLLM key of the user, as an operator revoking them would.
async fn revoke_keys(app: &TestApp, user_id: &str) {
    let keys: Value = app
        .litellm(Method::GET, &format!("/key/list?user_id={user_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = keys["keys"].clone();
    assert!(!keys.as_array().unwrap().is_empty(), "the user has a key");
    litellm_admin(app, "/key/delete", json!({"keys": keys})).await;
}

/// Sends `message` (its first step streams slowly), runs `meanwhile` once the stream has
/// started, and returns every event of the turn.
async fn act_during_a_turn(
    app: &TestApp,
    token: &str,
    message: &str,
    meanwhile: impl std::future::Future<Output = ()>,
) -> Vec<SseEvent> {
    let res = app.chat_request(token, message, None).await;
    assert_eq!(res.status(), 200);
    let mut stream = sse_events(res);
    let mut events = vec![stream.next().await.expect("start")];
    assert_eq!(events[0].name, "start");
    meanwhile.await;
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(e) = stream.next().await {
            events.push(e);
        }
    })
    .await
    .expect("the stream ends");
    events
}

/// The last stored message of the user's default conversation.
async fn last_message(app: &TestApp, token: &str) -> Value {
    let history = app.history(token, "?limit=1").await;
    assert_eq!(history.status, 200, "{}", history.body);
    history.body["messages"][0].clone()
}

#[tokio::test]
async fn a_model_that_keeps_failing_ends_the_stream_with_llm_error() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Failing").await;
    // The stream starts as soon as Letta takes the message: a failing model is an `error`
    // event, not a plain JSON answer.
    let events = app.chat(&token, "/fail 500", None).await.events();
    assert_eq!(
        names(&events).first(),
        Some(&"start"),
        "{:?}",
        names(&events)
    );
    let last = events.last().unwrap();
    assert_eq!(last.name, "error", "{:?}", names(&events));
    assert_eq!(last.data["code"], "llm_error");
    assert_eq!(last.data["retryable"], true);
    let stored = last_message(&app, &token).await;
    assert_eq!(stored["status"], "failed", "{stored}");
    assert_eq!(stored["error"]["code"], "llm_error");
}

#[tokio::test]
async fn a_revoked_key_is_an_error_event_at_the_first_call_or_within_the_turn() {
    let app = spawn_app().await;
    // At the first call: LiteLLM refuses at once; the stream has started (`start` comes as
    // soon as Letta takes the message), so the refusal is its `error` event.
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Revoked").await;
    revoke_keys(&app, &user_id).await;
    let events = app.chat(&token, "hello?", None).await.events();
    assert_eq!(names(&events), ["start", "usage", "error"], "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last.data["code"], "billing_key_revoked");
    assert_eq!(last.data["retryable"], false);
    let stored = last_message(&app, &token).await;
    assert_eq!(stored["status"], "failed");
    assert_eq!(stored["error"]["code"], "billing_key_revoked");

    // Within the stream: the key is deleted while the agent's first step streams (slowly),
    // so its next step is refused.
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Revoked Later").await;
    let events = act_during_a_turn(
        &app,
        &token,
        "/slow 700 remember that Ivo collects stamps",
        revoke_keys(&app, &user_id),
    )
    .await;
    let last = events.last().unwrap();
    assert_eq!(last.name, "error", "{:?}", names(&events));
    assert_eq!(last.data["code"], "billing_key_revoked", "{:?}", last.data);
    assert_eq!(last.data["retryable"], false);
}

#[tokio::test]
async fn a_budget_used_up_mid_turn_ends_the_stream_with_budget_exceeded() {
    let app = spawn_app().await;
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Thrifty").await;
    // The operator (or another request) sets the budget to nothing while the turn runs.
    let no_budget = litellm_admin(
        &app,
        "/user/update",
        json!({"user_id": user_id, "max_budget": 0.0}),
    );
    let events = act_during_a_turn(
        &app,
        &token,
        "/slow 700 remember that Ivo collects coins",
        no_budget,
    )
    .await;
    let last = events.last().unwrap();
    assert_eq!(last.name, "error", "{:?}", names(&events));
    assert_eq!(last.data["code"], "budget_exceeded", "{:?}", last.data);
    // What arrived before is kept, marked.
    let stored = last_message(&app, &token).await;
    assert_eq!(stored["error"]["code"], "budget_exceeded", "{stored}");
}

#[tokio::test]
async fn a_valid_token_of_a_user_supabase_does_not_know_is_401_and_makes_nothing() {
    let app = spawn_app().await;
    let stranger = uuid_like();
    let token = sign_hs256(&claims_for(&stranger, now()));
    for path in [
        "/api/v1/auth/me",
        "/api/v1/agent/status",
        "/api/v1/user/profile",
    ] {
        let reply = app.get(path, &token).await;
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
    }
    let reply = app
        .post_with("/api/v1/chat/message", &token, json!({"content": "hi"}))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(footprint(&app, &stranger).await.dynamodb_items, 0);
}

/// A random UUID-shaped user id.
fn uuid_like() -> String {
    let hex = format!("{:032x}", ulid::Ulid::new().0);
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
