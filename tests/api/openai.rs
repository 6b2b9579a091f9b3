//! The developer API: personal API keys (`/api/v1/user/api-keys`) and the OpenAI-compatible
//! routes (`/v1/chat/completions`, `/v1/models`), driven by the official `openai` Python
//! client, which nobody here wrote.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

impl TestApp {
    /// `POST /api/v1/user/api-keys`.
    async fn make_key(&self, token: &str, name: &str) -> Reply {
        self.post_with("/api/v1/user/api-keys", token, json!({ "name": name }))
            .await
    }

    /// A new key of the user's, which must be made: the key itself and its id.
    async fn new_key(&self, token: &str, name: &str) -> (String, String) {
        let made = self.make_key(token, name).await;
        assert_eq!(made.status, 201, "{}", made.body);
        let field = |f: &str| made.body[f].as_str().unwrap().to_string();
        (field("key"), field("id"))
    }

    async fn revoke_key(&self, token: &str, id: &str) -> Reply {
        let path = format!("/api/v1/user/api-keys/{id}");
        self.call(Method::DELETE, &path, Some(token), None).await
    }
}

/// Runs `tests/api/openai_client.py` with the official client: what it saw. (Awaited: the
/// gateway answers it on this test's runtime.)
async fn openai_client(app: &TestApp, keys: [&str; 3]) -> Value {
    let python =
        std::env::var("LOCAL_TOOLS_PYTHON").expect("LOCAL_TOOLS_PYTHON (set by make test)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/api/openai_client.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(&app.base)
        .args(keys)
        .output()
        .await
        .expect("the openai client runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&printed).unwrap_or_else(|e| panic!("{e}: {printed}"))
}

#[tokio::test]
async fn the_official_openai_client_talks_to_the_users_own_agent_with_a_key() {
    let app = spawn_app().await;
    let TestUser {
        token, password, ..
    } = app.ready_user("Ada").await;
    let (key, key_id) = app.new_key(&token, "laptop").await;
    assert!(key.starts_with("sk-chat-") && key.len() > 40, "{key}");
    // A revoked key, and the key of a user whose budget is used up (a cap of 0).
    let (revoked, revoked_id) = app.new_key(&token, "old").await;
    assert_eq!(app.revoke_key(&token, &revoked_id).await.status, 200);
    let broke = app.ready_user("Broke").await;
    let set = app
        .set_budget(&broke.token, json!({"max_budget": 0.0}))
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let (broke_key, _) = app.new_key(&broke.token, "ci").await;

    let seen = openai_client(&app, [&key, &revoked, &broke_key]).await;
    // Not streamed: the agent stored the name in its memory.
    let plain = &seen["plain"];
    assert_eq!(plain["object"], "chat.completion", "{seen}");
    assert_eq!(plain["role"], "assistant");
    assert_eq!(plain["model"], "gpt-4");
    assert_eq!(plain["finish"], "stop");
    assert!(plain["text"].as_str().unwrap().contains("Ada"), "{seen}");
    assert!(plain["usage"]["total_tokens"].as_u64() > Some(0), "{seen}");
    assert!(plain["id"].as_str().unwrap().starts_with("chatcmpl-"));
    // Streamed, asked from memory (only the last user message went to the agent).
    let streamed = &seen["streamed"];
    assert_eq!(streamed["text"], "Your name is Ada.", "{seen}");
    assert_eq!(streamed["finish"], "stop");
    assert_eq!(streamed["ids"], 1, "one id for every chunk");
    assert!(streamed["chunks"].as_u64() > Some(3), "{seen}");
    assert!(
        streamed["usage"]["prompt_tokens"].as_u64() > Some(0),
        "{seen}"
    );
    assert!(seen["models"].as_array().unwrap().contains(&json!("gpt-4")));
    // A revoked key, and a used-up budget, as the client raises them.
    assert_eq!(seen["revoked"]["raised"], "AuthenticationError", "{seen}");
    assert_eq!(seen["revoked"]["code"], "invalid_api_key");
    assert_eq!(seen["broke"]["status"], 402, "{seen}");
    assert_eq!(seen["broke"]["code"], "insufficient_quota");

    // The two turns are the user's, stored like any other; the key's use is recorded.
    let page = app.history(&token, "").await;
    let contents: Vec<&str> = page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents.len(), 4, "{contents:?}");
    assert_eq!(contents[0], "Your name is Ada.");
    assert_eq!(contents[1], "what is my name?");
    let listed = app.get("/api/v1/user/api-keys", &token).await;
    let keys = listed.body["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "the revoked one is gone: {}", listed.body);
    assert_eq!(keys[0]["id"], key_id.as_str());
    assert_eq!(keys[0]["name"], "laptop");
    assert!(keys[0].get("key").is_none(), "never the key again");
    assert_eq!(keys[0]["prefix"], &key[..12]);
    assert!(keys[0]["last_used_at"].is_string(), "{}", listed.body);

    // Logging out (everywhere) refuses the keys made before; a deleted account's keys too.
    let models = |key: String| {
        let app = &app;
        async move {
            app.http
                .get(format!("{}/v1/models", app.base))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(models(key.clone()).await, 200);
    let out = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(out.status, 204);
    assert_eq!(models(key.clone()).await, 401);
    let login = app.login(&broke.email, &broke.password).await;
    let broke_token = login.body["session"]["access_token"].as_str().unwrap();
    let (fresh, _) = app.new_key(broke_token, "after").await;
    assert_eq!(models(fresh.clone()).await, 200);
    let gone = app.delete_account(broke_token, Some(&broke.password)).await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_eq!(models(fresh.clone()).await, 401);
    let hash = shared::domain::api_key_hash(&fresh);
    assert_eq!(
        app.raw_item(&format!("APIKEY#{hash}"), "APIKEY").await,
        None
    );
    let _ = password;
}

#[tokio::test]
async fn keys_are_made_with_a_session_only_ten_at_most_and_only_the_users_own() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Keeper").await;
    let (key, id) = app.new_key(&token, "first").await;
    // A key opens the OpenAI-compatible routes only: never the API's own, never key making.
    let with_key = app.make_key(&key, "by a key").await;
    assert_eq!(with_key.status, 401, "{}", with_key.body);
    assert_eq!(app.get("/api/v1/user/profile", &key).await.status, 401);
    // Another user's key id is no key of theirs.
    let other = app.ready_user("Other").await;
    assert_eq!(app.revoke_key(&other.token, &id).await.status, 404);
    // Bad input.
    let unnamed = app.make_key(&token, "   ").await;
    assert_eq!(unnamed.status, 422, "{}", unnamed.body);
    let forever = app
        .post_with(
            "/api/v1/user/api-keys",
            &token,
            json!({"name": "x", "expires_in_days": 0}),
        )
        .await;
    assert_eq!(forever.status, 422, "{}", forever.body);
    assert_eq!(forever.body["error"]["field"], "expires_in_days");
    // Ten at most.
    for n in 2..=10 {
        app.new_key(&token, &format!("key {n}")).await;
    }
    let eleventh = app.make_key(&token, "eleventh").await;
    assert_eq!(eleventh.status, 409, "{}", eleventh.body);
    assert_eq!(eleventh.body["error"]["code"], "api_key_limit");
    let expiring = app.revoke_key(&token, &id).await;
    assert_eq!(expiring.status, 200);
    let made = app
        .post_with(
            "/api/v1/user/api-keys",
            &token,
            json!({"name": "for a month", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert!(made.body["expires_at"].is_string(), "{}", made.body);
    // The revoked key no longer opens anything; errors are OpenAI's shape.
    let refused = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .bearer_auth(&key)
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn a_turn_through_the_openai_route_costs_and_is_stored_as_through_the_api() {
    let app = spawn_app().await;
    let ours = app.ready_user("Twin").await;
    let theirs = app.ready_user("Twin").await;
    let said = "hello there, how are you today?";
    let events = app.chat(&ours.token, said, None).await.events();
    let usage = events.iter().find(|e| e.name == "usage").unwrap();
    // The same message through the OpenAI route, with a session token this time.
    let answer: Value = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .bearer_auth(&theirs.token)
        .json(&json!({"model": "gpt-4", "messages": [{"role": "user", "content": said}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        text_of(&events).as_str()
    );
    assert_eq!(
        answer["usage"]["prompt_tokens"], usage.data["prompt_tokens"],
        "{answer}"
    );
    let page = app.history(&theirs.token, "?limit=1").await;
    let reply = &page.body["messages"][0];
    assert_eq!(reply["cost_usd"], usage.data["cost_usd"], "{}", page.body);
    assert_eq!(
        format!("chatcmpl-{}", reply["id"].as_str().unwrap()),
        answer["id"].as_str().unwrap()
    );
}
