//! Each function with one dependency down: a clear 503 `dependency_unavailable` naming it,
//! with `Retry-After`, from every function that needs it, and the account health that says
//! what is wrong. Stops services, so it takes the stack exclusively.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Asserts a 503 that names `service` and says when to retry.
fn assert_unavailable(what: &str, reply: &Reply, service: &str) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.body);
    assert_eq!(reply.headers["retry-after"], "5", "{what}");
    assert_eq!(
        reply.body["error"]["code"], "dependency_unavailable",
        "{what}"
    );
    assert_eq!(reply.body["error"]["service"], service, "{what}");
}

async fn register(app: &TestApp) -> Reply {
    app.post(
        "/api/v1/auth/register",
        json!({"email": unique_email(), "password": "long-enough-pw", "display_name": "Out"}),
    )
    .await
}

async fn account_health(app: &TestApp, token: &str) -> Value {
    let reply = app.account_health(token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn every_function_answers_503_naming_the_dependency_that_is_down() {
    let app = spawn_app_exclusive().await;
    let _restart = Restart(&["letta", "litellm", "dynamodb"]);
    let TestUser { token, .. } = app.ready_user("Outage").await;
    assert_eq!(account_health(&app, &token).await["status"], "healthy");

    service("stop", "dynamodb");
    for (function, method, path) in [
        ("auth", Method::GET, "/api/v1/auth/me"),
        ("chat", Method::GET, "/api/v1/chat/history"),
        ("user", Method::GET, "/api/v1/user/profile"),
        ("agent", Method::GET, "/api/v1/agent/status"),
    ] {
        let reply = app.call(method, path, Some(&token), None).await;
        assert_unavailable(function, &reply, "dynamodb");
    }
    assert_unavailable("register", &register(&app).await, "dynamodb");
    service("start", "dynamodb");

    service("stop", "letta");
    let chat = app.chat(&token, "anyone?", None).await.json();
    assert_unavailable("chat", &chat, "letta");
    assert_unavailable("agent", &app.memory(&token).await, "letta");
    assert_unavailable("auth", &register(&app).await, "letta");
    // The account is fine, its agent cannot be checked: degraded, with no upstream text.
    let health = account_health(&app, &token).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["checks"]["letta_agent"]["error"], "it could not be reached",
        "a summary only: {health}"
    );
    service("start", "letta");

    service("stop", "litellm");
    assert_unavailable("user", &app.budget(&token).await, "litellm");
    assert_unavailable("auth", &register(&app).await, "litellm");
    let health = account_health(&app, &token).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["checks"]["litellm_user"]["error"], "it could not be reached",
        "a summary only: {health}"
    );
    service("start", "litellm");

    assert_eq!(account_health(&app, &token).await["status"], "healthy");
    // An agent that is gone makes the account unhealthy.
    let agent = app.agent_id(&token).await;
    let delete = app.letta(Method::DELETE, &format!("/v1/agents/{agent}"));
    assert!(delete.send().await.unwrap().status().is_success());
    let health = account_health(&app, &token).await;
    assert_eq!(health["status"], "unhealthy", "{health}");
}
