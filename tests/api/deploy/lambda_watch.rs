//! Each function runs under `cargo lambda watch` (the Lambda runtime emulator) and answers its
//! health check at `/lambda-url/<function>/health`: the same router, hosted by `lambda_http`.
//! As in AWS, the functions get no secret in their environment: they read them at cold start
//! from Secrets Manager (moto's server plays it here) through `SECRETS_ID`.

use super::permissions::Recorder;
use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        // The emulator spawns one process per function: end the whole group.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// moto's server, playing Secrets Manager on a loopback port, behind the AWS recorder.
struct SecretsManager {
    _process: Watch,
    /// moto itself, for setting secrets up.
    moto: String,
    /// The recorder in front of it, for the functions.
    recorder: Recorder,
}

impl SecretsManager {
    async fn start(python: &std::path::Path) -> Self {
        let port = free_port();
        let process = Watch(
            Command::new(python.parent().unwrap().join("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("moto_server (installed by make test)"),
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{endpoint}/moto-api/")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self {
            _process: process,
            recorder: Recorder::start(&endpoint),
            moto: endpoint,
        }
    }

    /// Creates the secret `id` holding the stack's secret variables (their values in this
    /// process's environment, which `make test` sets; the optional ones it leaves out are
    /// left out here too).
    async fn create(&self, id: &str) {
        let values: serde_json::Map<String, serde_json::Value> =
            shared::app::secrets::SECRET_VARIABLES
                .iter()
                .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?.into())))
                .collect();
        let res = reqwest::Client::new()
            .post(&self.moto)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "secretsmanager.CreateSecret")
            // moto routes by the credential scope's service; it checks no signature.
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
            )
            .json(&serde_json::json!({
                "Name": id,
                "SecretString": serde_json::Value::Object(values).to_string(),
            }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn every_function_and_every_sample_event_works_under_cargo_lambda_watch() {
    let _stack = crate::helpers::share_stack().await;
    let python = PathBuf::from(
        std::env::var("LOCAL_TOOLS_PYTHON").expect("LOCAL_TOOLS_PYTHON (set by make test)"),
    );
    // cargo-lambda finds Zig as `python3 -m ziglang` with the first python3 on PATH: its venv goes first.
    let path = path_with_cargo_lambda(&python);
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let port = free_port();
    let secrets = SecretsManager::start(&python).await;
    let secret_id = format!("chat-backend-test-{}/all", std::process::id());
    secrets.create(&secret_id).await;
    let mut watch = Command::new("cargo");
    for name in shared::app::secrets::SECRET_VARIABLES {
        watch.env_remove(name);
    }
    let _watch = Watch(
        watch
            .env("SECRETS_ID", &secret_id)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &secrets.recorder.url)
            .args([
                "lambda",
                "watch",
                "--disable-cors",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(&workspace)
            .env("PATH", &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cargo lambda watch"),
    );
    let http = reqwest::Client::new();
    for function in ["auth", "chat", "user", "agent"] {
        let url = format!("http://127.0.0.1:{port}/lambda-url/{function}/health");
        let start = Instant::now();
        let (status, body) = loop {
            // The first request builds and starts the function.
            match http
                .get(&url)
                .timeout(Duration::from_secs(300))
                .send()
                .await
            {
                Ok(res) => break (res.status().as_u16(), res.text().await.unwrap_or_default()),
                Err(e) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(300),
                        "{function}: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        assert_eq!(status, 200, "{function}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["function"], function);
        assert_eq!(body["status"], "ok");
    }

    // Chat under Lambda response streaming: events arrive one by one, not at the end.
    let base = format!("http://127.0.0.1:{port}/lambda-url");
    let email = format!("lw-{}@example.com", std::process::id());
    let registered: serde_json::Value = http
        .post(format!("{base}/auth/api/v1/auth/register"))
        .json(&serde_json::json!({"email": email, "password": "long-enough-pw", "display_name": "Lambda"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["session"]["access_token"]
        .as_str()
        .expect("registered through the auth function");
    let sent = Instant::now();
    let res = http
        .post(format!("{base}/chat/api/v1/chat/message"))
        .bearer_auth(token)
        .json(&serde_json::json!({"content": "/slow 150 one two three four five six seven eight nine ten eleven twelve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut arrivals = Vec::new();
    {
        use eventsource_stream::Eventsource;
        use futures_util::StreamExt;
        let mut stream = res.bytes_stream().eventsource();
        while let Some(event) = stream.next().await {
            let event = event.expect("valid SSE");
            arrivals.push((sent.elapsed().as_millis(), event.event));
        }
    }
    for (ms, name) in &arrivals {
        println!("+{ms:>6} ms  {name}");
    }
    let first_delta = arrivals
        .iter()
        .find(|(_, n)| n == "delta")
        .expect("a delta")
        .0;
    let last = arrivals.last().unwrap();
    assert_eq!(last.1, "done");
    assert!(
        last.0 - first_delta >= 600,
        "events arrive as they are produced, not at the end: {arrivals:?}"
    );

    invoke_every_sample_event(&workspace, &path, port);
}

fn path_with_cargo_lambda(python: &std::path::Path) -> String {
    format!(
        "{}:{}",
        python.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `cargo lambda invoke <function> --data-file events/<event>.json`, with the placeholders of the
/// sample events (the email, the tokens) filled in. Returns the invoke's output.
fn invoke(
    workspace: &std::path::Path,
    path: &str,
    port: u16,
    event: &str,
    fill: &[(&str, &str)],
) -> String {
    let out = invoke_output(workspace, path, port, event, fill);
    assert!(
        out.status.success(),
        "{event}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The invoke's whole output, whether it succeeded or not.
fn invoke_output(
    workspace: &std::path::Path,
    path: &str,
    port: u16,
    event: &str,
    fill: &[(&str, &str)],
) -> std::process::Output {
    let function = event.split('-').next().unwrap();
    let mut text = std::fs::read_to_string(workspace.join(format!("events/{event}.json")))
        .expect("event file");
    for (from, to) in fill {
        text = text.replace(from, to);
    }
    let file = std::env::temp_dir().join(format!("event-{}-{event}.json", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let out = Command::new("cargo")
        .args([
            "lambda",
            "invoke",
            function,
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
            "--data-file",
        ])
        .arg(&file)
        .current_dir(workspace)
        .env("PATH", path)
        .output()
        .expect("cargo lambda invoke");
    let _ = std::fs::remove_file(&file);
    out
}

/// A buffered function's answer: (status code, body as JSON).
fn answer(output: &str) -> (u64, serde_json::Value) {
    let payload: serde_json::Value =
        serde_json::from_str(output.trim()).unwrap_or_else(|e| panic!("{e}: {output}"));
    let body = payload["body"]
        .as_str()
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b).unwrap())
        .unwrap_or_default();
    (payload["statusCode"].as_u64().unwrap(), body)
}

fn invoke_every_sample_event(workspace: &std::path::Path, path: &str, port: u16) {
    let email = format!("events-{}@example.com", std::process::id());
    let mut fill: Vec<(&str, String)> = vec![("new-user@example.com", email)];
    let run = |event: &str, fill: &[(&str, String)]| {
        let pairs: Vec<(&str, &str)> = fill.iter().map(|(a, b)| (*a, b.as_str())).collect();
        invoke(workspace, path, port, event, &pairs)
    };
    let expect = |event: &str, fill: &[(&str, String)], status: u64| {
        let (code, body) = answer(&run(event, fill));
        assert_eq!(code, status, "{event}: {body}");
        body
    };
    expect("auth-health", &fill, 200);
    expect("auth-register", &fill, 201);
    let login = expect("auth-login", &fill, 200);
    fill.push((
        "REFRESH_TOKEN",
        login["session"]["refresh_token"]
            .as_str()
            .unwrap()
            .to_string(),
    ));
    let refreshed = expect("auth-refresh", &fill, 200);
    fill.push((
        "ACCESS_TOKEN",
        refreshed["session"]["access_token"]
            .as_str()
            .unwrap()
            .to_string(),
    ));
    expect("auth-me", &fill, 200);
    // The chat and user functions stream: the invoke prints the body itself.
    let streamed = |event: &str, fill: &[(&str, String)]| -> String { run(event, fill) };
    let json_of = |event: &str, fill: &[(&str, String)]| -> serde_json::Value {
        let out = streamed(event, fill);
        let body: serde_json::Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{event}: {e}: {out}"));
        assert!(body.get("error").is_none(), "{event}: {body}");
        body
    };
    for event in [
        "user-health",
        "user-profile",
        "user-profile-update",
        "user-usage",
        "user-budget",
        "user-budget-update",
        "user-account-health",
    ] {
        json_of(event, &fill);
    }
    let models = json_of("user-models", &fill);
    assert!(!models["models"].as_array().unwrap().is_empty(), "{models}");
    for event in [
        "agent-health",
        "agent-status",
        "agent-memory",
        "agent-memory-update",
        "agent-archival-search",
    ] {
        expect(event, &fill, 200);
    }
    let listed = expect("agent-archival-search", &fill, 200);
    let mut with_passage = fill.clone();
    with_passage.push((
        "PASSAGE_ID",
        listed["memories"][0]["id"].as_str().unwrap().to_string(),
    ));
    expect("agent-archival-delete", &with_passage, 200);
    expect("agent-reset", &fill, 200);
    let health = json_of("chat-health", &fill);
    assert_eq!(health["status"], "ok");
    let stream = streamed("chat-message", &fill);
    assert!(
        stream.contains("event: start") && stream.contains("event: done"),
        "{stream}"
    );
    let history = json_of("chat-history", &fill);
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    // cargo-lambda's `invoke` takes a streamed answer whose status is not 200 for an error
    // ("invalid error payload"), so the 201 of a creation shows as a failed invoke here; the
    // list below shows what the event made. (Function URLs pass the 201 through.)
    let pairs: Vec<(&str, &str)> = fill.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let create = invoke_output(workspace, path, port, "chat-conversation-create", &pairs);
    let stderr = String::from_utf8_lossy(&create.stderr);
    assert!(
        create.status.success() || stderr.contains("invalid error payload"),
        "chat-conversation-create: {stderr}"
    );
    let listed = json_of("chat-conversations", &fill);
    let conversations = listed["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 2, "{listed}");
    let created = conversations
        .iter()
        .find(|c| c["title"] == "Trip to Lisbon")
        .unwrap_or_else(|| panic!("the event's conversation: {listed}"));
    let mut with_id = fill.clone();
    with_id.push((
        "CONVERSATION_ID",
        created["id"].as_str().unwrap().to_string(),
    ));
    json_of("chat-conversation", &with_id);
    let renamed = json_of("chat-conversation-rename", &with_id);
    assert_eq!(renamed["title"], "Lisbon in May");
    let deleted = json_of("chat-conversation-delete", &with_id);
    assert_eq!(deleted["deleted"], true);
    let export = streamed("user-export", &fill);
    let last: serde_json::Value =
        serde_json::from_str(export.trim().lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "end", "{export}");
    expect("auth-logout", &fill, 204);
    // Logout revoked the token: deletion signs in again first.
    let login = expect("auth-login", &fill, 200);
    let fresh = login["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut signed_in: Vec<(&str, String)> = fill
        .into_iter()
        .filter(|(k, _)| *k != "ACCESS_TOKEN")
        .collect();
    signed_in.push(("ACCESS_TOKEN", fresh));
    expect("auth-delete-account", &signed_in, 204);
}
