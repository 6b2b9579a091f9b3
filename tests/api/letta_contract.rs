//! The requests the backend sends to Letta with `LETTA_SERVER_KIND=cloud`, held to the hosted
//! Letta API's contract: letta-client 1.12's request types (`tests/contract/letta_contract.py`).
//! A proxy in front of the local Letta 0.16.8 (the stand-in of that API) writes down every
//! request while a cloud-configured backend does what users do; 0.16.8 refuses some cloud
//! bodies (an agent made or switched by a model handle of a user's provider), which does not
//! matter here: what is checked is what was sent.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use axum::{Router, body::Body, extract::Request, response::Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use shared::app::config::LettaKind;

use crate::{
    helpers::*,
    http_tap::{bad_gateway, request_of, send_on, serve},
};

/// The requests the proxy saw, as the checker reads them.
type Recorded = Arc<Mutex<Vec<Value>>>;

/// Starts the recording proxy in front of `letta`; returns its URL.
async fn start_recorder(letta: String, recorded: Recorded) -> String {
    let http = reqwest::Client::new();
    let app = Router::new().fallback(move |request: Request| {
        let (http, letta, recorded) = (http.clone(), letta.clone(), recorded.clone());
        async move { forward(&http, &letta, request, &recorded).await }
    });
    serve(app).await
}

async fn forward(
    http: &reqwest::Client,
    letta: &str,
    request: Request,
    recorded: &Recorded,
) -> Response {
    let (parts, body) = request.into_parts();
    let query: serde_json::Map<String, Value> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect()
        })
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (project, bearer) = (
        header("x-project"),
        header("authorization").is_some_and(|a| a.starts_with("Bearer ")),
    );
    let (method, path) = (parts.method.to_string(), parts.uri.path().to_string());
    let outgoing = request_of(parts, body).await;
    let body: Option<Value> = serde_json::from_slice(outgoing.body()).ok();
    recorded
        .lock()
        .unwrap()
        .push(json!({"method": method, "path": path, "query": query,
        "body": body, "project": project, "bearer": bearer}));
    let Some((res, headers)) = send_on(http, letta, outgoing).await else {
        return bad_gateway();
    };
    let status = res.status();
    let stream = res
        .bytes_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    let mut response = Response::builder()
        .status(status)
        .body(Body::from_stream(stream))
        .unwrap();
    *response.headers_mut() = headers;
    response
}

/// Runs the checker on the requests in `file`: its exit status and what it printed.
fn check(file: &Path) -> (bool, String) {
    let python =
        std::env::var("LOCAL_TOOLS_PYTHON").expect("LOCAL_TOOLS_PYTHON (set by make test)");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contract/letta_contract.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(file)
        .output()
        .expect("the contract checker runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write_requests(name: &str, requests: &[Value]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/letta-contract");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    let lines: Vec<String> = requests.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    file
}

/// What a user does: chat in the default thread and a conversation, a Stop, memory, archival memory,
/// a document,
/// a model switch, a reset, the export and the account's deletion.
async fn use_account(app: &TestApp, token: &str) {
    app.chat(token, "Hello there", None).await;
    let conversation = app.new_conversation(token, None).await;
    let id = conversation["id"].as_str().unwrap();
    app.chat_in(token, id, "And hello here").await;
    // Stop: a slow runaway turn, cancelled once its first step is done.
    let body = json!({"content": "/slow 200 /loop until stopped", "conversation_id": id});
    let mut stream = sse_events(app.send_chat(token, body, None).await);
    while let Some(event) = stream.next().await {
        if event.name == "tool_result" {
            break;
        }
    }
    let stopped = app.cancel_turn(token, id).await;
    assert_eq!(stopped.status, 202, "{}", stopped.body);
    while stream.next().await.is_some() {}
    app.write_memory(
        token,
        json!({"label": "human", "value": "The user is Ada."}),
    )
    .await;
    let added = app
        .write_memory(
            token,
            json!({"archival": {"text": "Ada keeps bees.", "tags": ["hobby"]}}),
        )
        .await;
    app.archival(token, "").await;
    app.archival(token, "?query=bees").await;
    if let Some(passage) = added.body["id"].as_str() {
        let path = format!("/api/v1/agent/memory/archival/{passage}");
        app.call(reqwest::Method::DELETE, &path, Some(token), None)
            .await;
    }
    // A document: the folder made, attached, the file uploaded, listed and deleted.
    let uploaded = app
        .upload(token, "bees.txt", b"Ada keeps bees.".to_vec())
        .await
        .body;
    app.get("/api/v1/agent/files", token).await;
    if let Some(file) = uploaded["id"].as_str() {
        let path = format!("/api/v1/agent/files/{file}");
        app.call(reqwest::Method::DELETE, &path, Some(token), None)
            .await;
    }
    let models = app.model_names(token).await;
    app.choose_model(token, models.last().unwrap()).await;
    app.delete_conversation(token, id).await;
    app.reset(token, json!({"scope": "messages"})).await;
    app.export(token).await;
    app.get("/api/v1/health", token).await;
}

#[tokio::test]
async fn every_request_to_the_hosted_letta_api_is_one_its_official_client_makes() {
    let recorded: Recorded = Arc::default();
    let letta = stack_config().letta.base_url;
    let recorder = start_recorder(letta, recorded.clone()).await;
    // A user made ready by the self-hosted backend, then served by the cloud one.
    let local = spawn_app().await;
    let user = local.ready_user("Ada").await;
    let cloud = spawn_app_configured(|c| {
        c.letta.base_url = recorder;
        c.letta.kind = LettaKind::Cloud;
        c.letta.project = Some("contract-test".into());
    })
    .await;
    use_account(&cloud, &user.token).await;
    // Sign-up through the cloud backend: its provider and agent, which 0.16.8 refuses (503,
    // "sign in again shortly"); the self-hosted backend finishes the account at sign-in.
    let (email, password, registered) = cloud.register("Bo").await;
    assert_eq!(registered.status, 503, "{}", registered.body);
    let login = local.login(&email, &password).await;
    let token = login.body["session"]["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", login.body))
        .to_string();
    cloud.delete_account(&token, Some(&password)).await;
    cloud
        .delete_account(&user.token, Some(&user.password))
        .await;

    let requests = recorded.lock().unwrap().clone();
    for request in &requests {
        assert_eq!(request["project"], "contract-test", "{request}");
        assert_eq!(request["bearer"], true, "{request}");
    }
    let sent: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["path"]))
        .collect();
    for wanted in [
        "POST \"/v1/providers/\"",
        "POST \"/v1/agents/\"",
        "PATCH \"/v1/agents/",
        "/messages/stream\"",
        "POST \"/v1/conversations/",
        "GET \"/v1/runs/\"",
        "POST \"/v1/folders/\"",
        "/upload\"",
        "/folders/attach/",
        "/messages/cancel\"",
        "/archival-memory\"",
        "/core-memory/blocks/human\"",
        "/reset-messages\"",
        "DELETE \"/v1/providers/",
    ] {
        assert!(
            sent.iter().any(|s| s.contains(wanted)),
            "no {wanted} among {sent:#?}"
        );
    }
    let (passed, report) = check(&write_requests("cloud.jsonl", &requests));
    println!("{report}");
    assert!(passed, "{report}");
}

#[tokio::test]
async fn the_checker_refuses_the_self_hosted_agent_body_and_passes_the_cloud_one() {
    let mut config = stack_config().letta;
    let spec = shared::clients::letta::AgentSpec {
        name: "agent-1",
        provider_name: "user-1",
        model: "gpt-4",
        human: "Name: Ada",
        persona: "I help.",
        tags: &["user:1".to_string()],
    };
    let request = |config: &shared::app::config::LettaConfig| {
        json!({"method": "POST", "path": "/v1/agents/", "query": {},
               "body": serde_json::to_value(spec.body(config)).unwrap()})
    };
    config.kind = LettaKind::SelfHosted;
    let (passed, report) = check(&write_requests("self-hosted.jsonl", &[request(&config)]));
    assert!(!passed, "{report}");
    assert!(
        report.contains("POST /v1/agents/ body.llm_config: deprecated in AgentCreateParams"),
        "{report}"
    );
    config.kind = LettaKind::Cloud;
    let (passed, report) = check(&write_requests("cloud-agent.jsonl", &[request(&config)]));
    assert!(passed, "{report}");
}
