//! The LiteLLM image of the llm-gateway stack (`infra/aws/litellm/Dockerfile`, built by
//! `infra/local/litellm-image.sh`) run as a second LiteLLM beside the local one: against the
//! local stack's LiteLLM database it answers readiness, and it serves a chat completion on a
//! user's own key through the scripted model. The container gets the local model list
//! (`infra/local/litellm.config.yaml`) in place of the image's production one, which needs
//! Redis and real providers.

use std::{process::Command, time::Duration};

use serde_json::{Value, json};

use crate::helpers::{eventually, free_port, share_stack};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} (set by make test)"))
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The container, removed when the test ends however it ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[tokio::test]
async fn the_gateway_image_answers_readiness_and_serves_a_users_key() {
    let _stack = share_stack().await;
    let image = env("LITELLM_IMAGE");
    assert_eq!(
        docker(&["image", "inspect", "-f", "{{.Config.User}}", &image]),
        "10001:10001",
        "the image runs as a non-root user"
    );
    let port = free_port();
    let config = format!(
        "{}/../infra/local/litellm.config.yaml:/etc/litellm/local.yaml:ro",
        env!("CARGO_MANIFEST_DIR")
    );
    let master = env("LITELLM_MASTER_KEY");
    let id = docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "-v",
        &config,
        "-e",
        &format!("DATABASE_URL={}", env("LOCAL_LITELLM_DATABASE_URL")),
        "-e",
        &format!("SCRIPTED_LLM_BASE={}", env("LOCAL_SCRIPTED_LLM_BASE")),
        "-e",
        "LITELLM_MASTER_KEY",
        "-e",
        "DISABLE_SCHEMA_UPDATE=true",
        &image,
        "litellm",
        "--config",
        "/etc/litellm/local.yaml",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--num_workers",
        "1",
    ]);
    let _container = Container(id.clone());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    // LiteLLM takes 30 to 60 s to start here (reference: litellm-proxy.md).
    let started = std::time::Instant::now();
    let ready: Value = eventually(
        "the container's readiness",
        Duration::from_secs(240),
        || async {
            let res = http
                .get(format!("{base}/health/readiness"))
                .send()
                .await
                .ok()?;
            let body: Value = res.json().await.ok()?;
            (body["db"] == "connected").then_some(body)
        },
    )
    .await;
    println!(
        "litellm image ready in {:.0} s: {ready}",
        started.elapsed().as_secs_f64()
    );

    let user = format!("image-test-{}", uuid::Uuid::new_v4());
    let made: Value = http
        .post(format!("{base}/key/generate"))
        .bearer_auth(&master)
        .json(&json!({"user_id": user, "models": ["gpt-4o-mini"], "max_budget": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = made["key"].as_str().unwrap_or_else(|| panic!("{made}"));
    let res = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let answer: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    assert!(!content.is_empty(), "{answer}");
    // The key's own model list holds: another model is refused.
    let refused = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4", "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let deleted = http
        .post(format!("{base}/key/delete"))
        .bearer_auth(&master)
        .json(&json!({"keys": [key]}))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let size: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", &image])
        .parse()
        .unwrap();
    println!("litellm image size: {} MB", size / 1_000_000);
}
