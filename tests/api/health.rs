//! Health and routing of the gateway as a black box, and its start-up refusing a bad
//! configuration.

use std::{process::Command, time::Duration};

use serde_json::Value;

use crate::helpers::*;

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let res = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap())
}

/// Stops the auth server, so it takes the stack exclusively.
#[tokio::test]
async fn health_is_200_with_every_dependency_up_and_503_naming_the_one_that_is_down() {
    let cache = std::time::Duration::from_secs(8);
    let gw = spawn_app_exclusive_configured(|c| c.http.health_cache = cache).await;

    let checked = std::time::Instant::now();
    let (status, headers, body) = get(&format!("{}/health", gw.base)).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains_key("x-request-id"));
    for dep in ["dynamodb", "letta", "litellm", "supabase_auth"] {
        assert_eq!(body["checks"][dep]["status"], "up", "{dep}: {body}");
        assert!(
            body["checks"][dep]["latency_ms"].as_f64().is_some(),
            "{body}"
        );
    }
    for function in ["auth", "chat", "user", "agent"] {
        let (status, _, body) = get(&format!("{}/health/{function}", gw.base)).await;
        assert_eq!(status, 200, "{function}: {body}");
        assert_eq!(body["function"], function);
    }

    let restart = Restart(&["auth"]);
    service("stop", "auth");
    // Checks are reused for a while: a burst of health requests does not reach Supabase.
    let (status, _, cached) = get(&format!("{}/health", gw.base)).await;
    assert!(
        checked.elapsed() < cache,
        "stopping the auth server took longer than the cache lasts"
    );
    assert_eq!(status, 200, "the cached checks: {cached}");
    tokio::time::sleep((cache + Duration::from_millis(200)).saturating_sub(checked.elapsed()))
        .await;
    let (status, headers, body) = get(&format!("{}/health", gw.base)).await;
    drop(restart);
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failing"], serde_json::json!(["supabase_auth"]));
    assert_eq!(body["checks"]["supabase_auth"]["status"], "down");
    assert_eq!(body["checks"]["letta"]["status"], "up");
    // The agent function does not use LiteLLM, so it is not listed there.
    let (_, _, agent) = get(&format!("{}/health/agent", gw.base)).await;
    assert!(agent["checks"].get("litellm").is_none(), "{agent}");

    tokio::time::sleep(cache + std::time::Duration::from_millis(200)).await;
    let (status, _, body) = get(&format!("{}/health", gw.base)).await;
    assert_eq!(status, 200, "after restart: {body}");
}

/// The DynamoDB check reads the configured table: one that does not exist is "down", named
/// in our words, while the other dependencies stay up.
#[tokio::test]
async fn health_names_dynamodb_down_when_the_table_does_not_exist() {
    let mut config = stack_config();
    config.dynamodb.table_name = format!("missing-{}", ulid::Ulid::new());
    let state = shared::AppState::new(config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = gateway::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (status, _, body) = get(&format!("{base}/health/agent")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], serde_json::json!(["dynamodb"]), "{body}");
    assert_eq!(body["checks"]["letta"]["status"], "up", "{body}");
    let error = body["checks"]["dynamodb"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(!error.is_empty() && !error.contains("missing-"), "{body}");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_json_error_shape() {
    let gw = spawn_app().await;
    let (status, _, body) = get(&format!("{}/api/v1/nothing-here", gw.base)).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let res = reqwest::Client::new()
        .delete(format!("{}/health", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[test]
fn a_missing_variable_is_named_and_the_gateway_exits() {
    let out = Command::new(workspace_binary("gateway"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LETTA_BASE_URL", "not-a-url")
        .output()
        .expect("run gateway");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "TABLE_NAME is missing",
        "LITELLM_MASTER_KEY is missing",
        "SUPABASE_URL is missing",
        "LETTA_BASE_URL must be an http(s) URL",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

#[tokio::test]
async fn cors_allows_the_configured_origin_and_no_other() {
    let app = spawn_app_configured(|c| {
        c.http.cors_allowed_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/chat/message", app.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,idempotency-key",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let methods = h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        methods.contains("post") && methods.contains("delete"),
        "{methods}"
    );
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(name), "{headers}");
    }
    assert_eq!(h["access-control-max-age"], "600");

    let refused = preflight("https://evil.example.net").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        refused.headers()
    );

    // A real request from the allowed origin can read the request id and Retry-After.
    let res = client
        .get(format!("{}/health", app.base))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
    let res = client
        .get(format!("{}/health", app.base))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}
