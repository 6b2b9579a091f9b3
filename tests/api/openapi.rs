//! The OpenAPI description: the committed `docs/openapi.json` is what the code describes, the
//! gateway serves it with Swagger UI (its assets from the crate, no CDN), and schemathesis,
//! fuzzing every operation with a real user's token, finds no 5xx and no answer outside it.

use std::path::PathBuf;

use serde_json::Value;

use crate::helpers::*;

fn committed() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let text = std::fs::read_to_string(path).expect("docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is JSON")
}

#[test]
fn the_committed_description_is_the_one_the_code_makes() {
    let made: Value = serde_json::from_str(&gateway::openapi_json()).unwrap();
    assert!(
        made == committed(),
        "docs/openapi.json differs from the code's description: run `make openapi` and commit it"
    );
    assert_eq!(made["openapi"], "3.1.0");
}

#[test]
fn every_operation_is_described_with_its_errors_and_security() {
    let doc = committed();
    let mut operations = 0;
    let mut public = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let id = format!("{method} {path}");
            assert!(op["summary"].is_string(), "{id}: a summary");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{id}: a success"
            );
            for status in ["429", "500", "503"] {
                assert!(responses.contains_key(status), "{id}: {status}");
            }
            if op["security"] == serde_json::json!([{}]) {
                public.push(id);
            } else {
                assert!(responses.contains_key("401"), "{id}: a token is needed");
            }
        }
    }
    public.sort();
    assert_eq!(
        public,
        [
            "get /health",
            "post /api/v1/auth/login",
            "post /api/v1/auth/refresh",
            "post /api/v1/auth/register"
        ],
        "the operations without a token"
    );
    for id in ["/api/v1/auth/register", "/health"] {
        let item = &doc["paths"][id];
        let op = if item["post"].is_object() {
            &item["post"]
        } else {
            &item["get"]
        };
        assert!(op["responses"]["401"].is_null(), "{id} never answers 401");
    }
    assert_eq!(
        operations, 38,
        "every route of the four functions and /health"
    );
    let stream = &doc["paths"]["/api/v1/chat/message"]["post"]["responses"]["200"]["content"];
    assert!(stream["text/event-stream"].is_object(), "{stream}");
    let schemas = &doc["components"]["schemas"];
    let events: Vec<&str> = schemas["ChatEventView"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            // `data` is the event's JSON, with the schema of that event.
            let data = &v["properties"]["data"];
            assert_eq!(data["contentMediaType"], "application/json", "{v}");
            let name = data["contentSchema"]["$ref"].as_str().unwrap();
            let name = name.trim_start_matches("#/components/schemas/");
            assert!(schemas[name].is_object(), "{name} is described");
            v["properties"]["event"]["enum"][0].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        events,
        [
            "transcript",
            "start",
            "reasoning",
            "tool_call",
            "tool_result",
            "delta",
            "usage",
            "done",
            "error",
            "title"
        ]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_gateway_serves_the_description_and_swagger_ui_without_a_cdn() {
    let app = spawn_app().await;
    let served: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        served == committed(),
        "the served description is the committed one"
    );
    let page = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no asset from another origin: {html}"
    );
    let config = app
        .http
        .get(format!("{}/docs/swagger-initializer.js", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(config.contains("/openapi.json"), "{config}");
    let bundle = app
        .http
        .get(format!("{}/docs/swagger-ui-bundle.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(
        bundle.bytes().await.unwrap().len() > 100_000,
        "the vendored bundle"
    );
}

/// Runs schemathesis; returns every (status, method, url) it recorded.
async fn schemathesis(
    app: &TestApp,
    token: &str,
    args: &[&str],
    har: &PathBuf,
) -> Vec<(u16, String, String)> {
    let bin = std::env::var("LOCAL_SCHEMATHESIS").expect("LOCAL_SCHEMATHESIS (set by make test)");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/api/schemathesis.toml");
    let out = tokio::process::Command::new(bin)
        .args(["--config-file", config, "run"])
        .arg(format!("{}/openapi.json", app.base))
        .args(["--url", &app.base])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        // Every check: answers as described, and no request the description allows refused.
        .args(["--checks", "all"])
        .args([
            "--seed",
            "20261123",
            "--request-timeout",
            "90",
            "--workers",
            "2",
        ])
        .args(["--report", "har", "--report-har-path"])
        .arg(har)
        .args(args)
        .env("NO_COLOR", "1")
        // Its cache of examples goes with its reports, not into the source tree.
        .current_dir(har.parent().expect("a report folder"))
        .output()
        .await
        .expect("schemathesis runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{printed}"
    );
    let har: Value = serde_json::from_str(&std::fs::read_to_string(har).unwrap()).unwrap();
    har["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["response"]["status"].as_u64().unwrap_or(0) as u16,
                e["request"]["method"].as_str().unwrap_or("").to_string(),
                e["request"]["url"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn schemathesis_finds_no_5xx_and_no_answer_outside_the_description() {
    let app = spawn_app_configured(|c| {
        // The fuzzing is one user's traffic; the limits are tested elsewhere.
        c.rates.requests_per_minute = 100_000;
        c.rates.chat_per_minute = 100_000;
        c.rates.chat_per_day = 100_000;
        c.rates.auth_per_minute = 100_000;
        c.rates.password_failures = 100_000;
        c.rates.embedding_chars_per_day = 100_000_000;
    })
    .await;
    let TestUser { token, .. } = app.ready_user("Fuzz").await;
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/schemathesis"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let examples = std::env::var("FUZZ_EXAMPLES").unwrap_or_else(|_| "30".into());
    let mut requests = schemathesis(
        &app,
        &token,
        &[
            "--exclude-operation-id",
            "logout",
            "--exclude-operation-id",
            "set_budget",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            &examples,
        ],
        &dir.join("all.har"),
    )
    .await;
    // Signing out ends the token the rest of the run needs, and a budget of 0 (the fuzzer
    // sends it early) would refuse every chat turn: both go last, with their own user.
    let TestUser { token: other, .. } = app.ready_user("Fuzz out").await;
    requests.extend(
        schemathesis(
            &app,
            &other,
            &[
                "--include-operation-id",
                "set_budget",
                "--include-operation-id",
                "logout",
                "--max-examples",
                &examples,
            ],
            &dir.join("last.har"),
        )
        .await,
    );
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for (status, _, _) in &requests {
        *by_status.entry(*status).or_default() += 1;
    }
    let operations: std::collections::BTreeSet<String> = requests
        .iter()
        .map(|(_, method, url)| format!("{method} {}", url.split('?').next().unwrap_or(url)))
        .collect();
    // 429s by area (method and the path's first two segments, ids as `{id}`): the limits are
    // raised so the operations are exercised, not refused.
    let mut limited = std::collections::BTreeMap::<String, usize>::new();
    for (status, method, url) in requests.iter().filter(|r| r.0 == 429) {
        let path = url.split("/api/v1/").nth(1).unwrap_or("health");
        let path = path.split('?').next().unwrap_or(path);
        let word = |s: &&str| s.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        let area: Vec<&str> = path
            .split('/')
            .take(2)
            .map(|s| if word(&s) { s } else { "{id}" })
            .collect();
        *limited
            .entry(format!("{method} {} {status}", area.join("/")))
            .or_default() += 1;
    }
    println!(
        "schemathesis: {} requests, by status {by_status:?}, {} distinct method+path; \
         throttled (429) by area: {limited:?}",
        requests.len(),
        operations.len()
    );
    let throttled = by_status.get(&429).copied().unwrap_or(0);
    assert!(
        throttled * 20 <= requests.len(),
        "at most 5% of the requests are refused by a rate limit: {throttled}"
    );
    assert!(
        requests.len() >= 1000,
        "at least 1,000 requests: {}",
        requests.len()
    );
    let server_errors: Vec<_> = requests.iter().filter(|(s, _, _)| *s >= 500).collect();
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:?}");
}
