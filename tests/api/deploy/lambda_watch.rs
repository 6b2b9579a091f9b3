//! Each function runs under `cargo lambda watch` (the Lambda runtime emulator) and answers its
//! health check at `/lambda-url/<function>/health`: the same router, hosted by `lambda_http`;
//! a chat turn's events arrive one by one through Lambda response streaming (SAM's emulator
//! prints a stream only once it has ended, so `sam_local` runs the sample events instead).
//! As in AWS, the functions get no secret in their environment: they read them at cold start
//! from Secrets Manager (moto's server plays it here) through `SECRETS_ID`.

use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::free_port;

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

/// Secrets Manager (moto) behind the AWS recorder, with one secret holding the stack's secret
/// variables (their values in this process's environment, which `make test` sets; the optional
/// ones it leaves out are left out here too).
struct SecretsManager {
    _moto: sam_local::Moto,
    /// The recorder in front of moto, for the functions.
    recorder: aws_recorder::Running,
}

impl SecretsManager {
    async fn start(python: &std::path::Path, secret_id: &str) -> Self {
        let moto = sam_local::Moto::start(&python.parent().unwrap().join("moto_server"))
            .await
            .expect("moto_server (installed by make test)");
        let values: serde_json::Map<String, serde_json::Value> =
            shared::app::secrets::SECRET_VARIABLES
                .iter()
                .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?.into())))
                .collect();
        moto.create_secret(secret_id, &values).await.unwrap();
        let log = std::env::var("AWS_CALLS_LOG").expect("AWS_CALLS_LOG (set by make test)");
        let recorder = aws_recorder::spawn(
            &crate::helpers::workspace_binary("aws-recorder"),
            log.as_ref(),
            &moto.url,
        )
        .await
        .expect("aws-recorder (built by make test)");
        Self {
            _moto: moto,
            recorder,
        }
    }
}

/// `cargo lambda watch` serving every function on a free port, its secret in moto: the port,
/// and what must live as long as the test.
async fn watch_functions() -> (u16, Watch, SecretsManager) {
    let python = PathBuf::from(
        std::env::var("LOCAL_TOOLS_PYTHON").expect("LOCAL_TOOLS_PYTHON (set by make test)"),
    );
    // cargo-lambda finds Zig as `python3 -m ziglang` with the first python3 on PATH: its venv goes first.
    let path = path_with_cargo_lambda(&python);
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let port = free_port();
    let secret_id = format!("chat-backend-test-{}/all", std::process::id());
    let secrets = SecretsManager::start(&python, &secret_id).await;
    let mut watch = Command::new("cargo");
    for name in shared::app::secrets::SECRET_VARIABLES {
        watch.env_remove(name);
    }
    let watch = Watch(
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
    (port, watch, secrets)
}

/// Each function's `GET /health`, waited for while the first request builds and starts it.
async fn every_function_healthy(http: &reqwest::Client, port: u16) {
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
}

/// A new account's access token, registered through the auth function.
async fn registered_token(http: &reqwest::Client, base: &str) -> String {
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
    token.to_string()
}

/// A slow reply's events, each with the milliseconds since the message was sent.
async fn streamed_turn(http: &reqwest::Client, base: &str, token: &str) -> Vec<(u128, String)> {
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
    arrivals
}

#[tokio::test]
async fn every_function_answers_and_chat_streams_event_by_event_under_cargo_lambda_watch() {
    let _stack = crate::helpers::share_stack().await;
    let (port, _watch, _secrets) = watch_functions().await;
    let http = reqwest::Client::new();
    every_function_healthy(&http, port).await;

    // Chat under Lambda response streaming: events arrive one by one, not at the end.
    let base = format!("http://127.0.0.1:{port}/lambda-url");
    let token = registered_token(&http, &base).await;
    let arrivals = streamed_turn(&http, &base, &token).await;
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
}

fn path_with_cargo_lambda(python: &std::path::Path) -> String {
    format!(
        "{}:{}",
        python.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}
