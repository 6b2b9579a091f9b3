//! Safety under concurrency and across sessions: one provisioning run at a time (the lease has
//! an owner), revoked sessions, the operator's budget period.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn two_resets_at_once_leave_exactly_one_agent_that_the_profile_points_to() {
    let app = spawn_app().await;
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Twice").await;
    let reset = || app.reset(&token, json!({"scope": "all"}));
    let (a, b) = tokio::join!(reset(), reset());
    let statuses = [a.status.as_u16(), b.status.as_u16()];
    assert!(
        statuses.contains(&200) && statuses.iter().all(|s| [200, 409].contains(s)),
        "{statuses:?}: {} / {}",
        a.body,
        b.body
    );
    for reply in [&a, &b] {
        if reply.status == 409 {
            assert_eq!(
                reply.body["error"]["code"], "provisioning",
                "{}",
                reply.body
            );
            assert!(reply.headers.contains_key("retry-after"));
        }
    }
    let footprint = footprint(&app, &user_id).await;
    assert_eq!(footprint.letta_agents, 1, "{footprint:?}");
    let profile = app.profile(&token).await;
    let agent_id = profile.body["profile"]["agent_id"].as_str().unwrap();
    assert!(
        app.state.letta.get_agent(agent_id).await.unwrap().is_some(),
        "the profile's agent exists"
    );
    // And the account still answers.
    let events = app.chat(&token, "still here?", None).await.events();
    assert_eq!(text_of(&events), "echo: still here?");
}

#[tokio::test]
async fn every_user_key_is_rate_limited_and_capped_in_flight_at_litellm() {
    let app = spawn_app().await;
    let TestUser { id: user_id, .. } = app.ready_user("Keyed").await;
    let info: serde_json::Value = app
        .litellm(reqwest::Method::GET, "/user/info")
        .query(&[("user_id", user_id.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = info["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{info}");
    let litellm = &app.state.config.litellm;
    assert_eq!(keys[0]["rpm_limit"], litellm.key_rpm_limit, "{info}");
    assert_eq!(keys[0]["tpm_limit"], litellm.key_tpm_limit, "{info}");
    // A runaway agent cannot fan out either: calls in flight at once are capped.
    assert_eq!(
        keys[0]["max_parallel_requests"], litellm.key_max_parallel,
        "{info}"
    );
    // The user and the key carry this deployment's mark (the reconciler touches nothing else).
    let deployment = app.state.config.deployment_id.as_str();
    assert_eq!(keys[0]["metadata"]["deployment"], deployment, "{info}");
    assert_eq!(
        info["user_info"]["metadata"]["deployment"], deployment,
        "{info}"
    );
}

/// An upstream that answers everything with an error whose body echoes the request: its body
/// and its `Authorization` header (a master key, a password, a user's key).
async fn echoing_upstream(status: u16) -> String {
    use axum::{body::Bytes, http::HeaderMap, response::IntoResponse};
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| async move {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let echo = format!(
            "ECHOED {auth} {}",
            String::from_utf8_lossy(&body).replace('"', "'")
        );
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"detail": echo, "error": {"message": echo}})),
        )
            .into_response()
    });
    crate::http_tap::serve(app).await
}

fn no_echo(what: &str, text: &str) {
    assert!(
        !text.contains("ECHOED"),
        "{what} carries upstream text: {text}"
    );
    assert!(!text.contains("sk-"), "{what} carries a key: {text}");
}

#[tokio::test]
async fn no_upstream_text_reaches_a_client_a_stored_item_or_health() {
    // One backend at a time: a test holds one share of the stack (a second one could wait
    // behind a test that waits to take the stack exclusively).
    {
        // LiteLLM echoing the master key and the request at sign-up.
        let litellm = echoing_upstream(400).await;
        let app = spawn_app_configured(|c| c.litellm.base_url = litellm.clone()).await;
        let (email, password, reply) = app.register("Echo").await;
        assert!(
            reply.status.is_server_error(),
            "{} {}",
            reply.status,
            reply.body
        );
        no_echo("the register answer", &reply.body.to_string());
        let session = app
            .state
            .supabase
            .sign_in_with_password(&email, &password)
            .await
            .unwrap();
        let profile = app
            .raw_item(&format!("USER#{}", session.user.id), "PROFILE")
            .await
            .expect("the account exists, unfinished");
        assert!(profile.get("provisioning_error").is_some(), "{profile}");
        no_echo("the stored provisioning error", &profile.to_string());
        let health = app.get("/health", "").await;
        assert_eq!(health.status, 503, "{}", health.body);
        no_echo("/health", &health.body.to_string());
    }
    // Letta echoing its password and the request, for a ready user.
    let (token, user_id) = {
        let ready = spawn_app().await;
        let TestUser {
            token, id: user_id, ..
        } = ready.ready_user("Echo Two").await;
        (token, user_id)
    };
    let letta = echoing_upstream(500).await;
    let app = spawn_app_configured(|c| c.letta.base_url = letta.clone()).await;
    for path in [
        "/api/v1/agent/memory",
        "/api/v1/agent/status",
        "/api/v1/user/health",
    ] {
        let reply = app.get(path, &token).await;
        no_echo(path, &reply.body.to_string());
    }
    let turn = app.chat(&token, "my secret words", None).await.json();
    assert_eq!(turn.status, 503, "{}", turn.body);
    no_echo("the chat answer", &turn.body.to_string());
    let stored = app.history(&token, "").await;
    let text = stored.body.to_string();
    assert!(
        text.contains("my secret words"),
        "the message is kept: {text}"
    );
    no_echo("the stored failed message", &text);
    let profile = app
        .raw_item(&format!("USER#{user_id}"), "PROFILE")
        .await
        .unwrap();
    no_echo("the profile", &profile.to_string());
}

/// One user's data, each piece carrying a marker (`BOBMARK`) that must never reach another
/// user, with every id and cursor that names it.
struct Marked {
    conversation: String,
    passage: String,
    history_cursor: String,
    list_cursor: String,
    archival_cursor: String,
}

/// Makes [`Marked`] data for `bob`: a titled conversation with three turns (with idempotency
/// keys `bob-key-0…2`), two archival memories and a second conversation, so every listing has
/// a next page.
async fn marked_data(app: &TestApp, bob: &str) -> Marked {
    // Bob's data, each piece carrying a marker that must never reach Ada.
    let conversation = app
        .create_conversation(bob, json!({"title": "BOBMARK title"}))
        .await;
    let bob_conversation = conversation.body["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        let body =
            json!({"content": format!("BOBMARK message {i}"), "conversation_id": bob_conversation});
        let key = format!("bob-key-{i}");
        read_chat(app.send_chat(bob, body, Some(&key)).await)
            .await
            .events();
    }
    let added = app
        .write_memory(bob, json!({"archival": {"text": "BOBMARK memory"}}))
        .await;
    app.write_memory(bob, json!({"archival": {"text": "BOBMARK memory two"}}))
        .await;
    let passage = added.body["passages"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let history_cursor = app
        .history(bob, &format!("?conversation_id={bob_conversation}&limit=1"))
        .await
        .body["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    app.create_conversation(bob, json!({})).await;
    let list_cursor = app.conversations(bob, "?limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let archival_cursor = app.archival(bob, "?limit=1").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    Marked {
        conversation: bob_conversation,
        passage,
        history_cursor,
        list_cursor,
        archival_cursor,
    }
}

/// Every request that names one of `bob`'s things by a parameter.
fn requests_naming(bob: &Marked) -> Vec<(Method, String, Option<Value>)> {
    let Marked {
        conversation: c,
        passage,
        history_cursor,
        list_cursor,
        archival_cursor,
    } = bob;
    vec![
        (Method::GET, format!("/api/v1/conversations/{c}"), None),
        (
            Method::PATCH,
            format!("/api/v1/conversations/{c}"),
            Some(json!({"title": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/conversations/{c}"), None),
        (
            Method::GET,
            format!("/api/v1/chat/history?conversation_id={c}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/chat/history?before={history_cursor}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/chat/history?conversation_id={c}&before={history_cursor}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/conversations?cursor={list_cursor}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/agent/memory/archival/{passage}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/agent/memory/archival?cursor={archival_cursor}"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/chat/message".to_string(),
            Some(json!({"content": "hi", "conversation_id": c})),
        ),
    ]
}

#[tokio::test]
async fn no_parameter_reaches_another_users_data() {
    let app = spawn_app().await;
    let TestUser { token: ada, .. } = app.ready_user("Ada Matrix").await;
    let TestUser { token: bob, .. } = app.ready_user("Bob Matrix").await;
    let marked = marked_data(&app, &bob).await;
    for (method, path, body) in requests_naming(&marked) {
        let reply = app.call(method.clone(), &path, Some(&ada), body).await;
        let text = reply.body.to_string();
        assert!(!text.contains("BOBMARK"), "{method} {path} leaked: {text}");
        assert!(
            [400, 404].contains(&reply.status.as_u16()) || reply.status == 200,
            "{method} {path}: {} {text}",
            reply.status
        );
    }
    // Everything of Bob's is still there.
    let bobs = app.conversation(&bob, &marked.conversation).await;
    assert_eq!(bobs.body["title"], "BOBMARK title");
    assert_eq!(bobs.body["message_count"], 6);
    let memories = app.archival(&bob, "").await;
    assert_eq!(memories.body["memories"].as_array().unwrap().len(), 2);
    // Bob's idempotency keys mean nothing to Ada: her turn runs, no replay of his.
    let events = app
        .chat(&ada, "ada's own words", Some("bob-key-0"))
        .await
        .events();
    assert_eq!(text_of(&events), "echo: ada's own words");
    assert!(
        !serde_json::to_string(&events.iter().map(|e| &e.data).collect::<Vec<_>>())
            .unwrap()
            .contains("BOBMARK")
    );
}

#[tokio::test]
async fn the_page_comes_with_a_strict_content_security_policy_and_every_answer_with_nosniff() {
    let app = spawn_app().await;
    for path in ["/", "/app.js", "/api/v1/auth/me", "/health"] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        if !path.starts_with("/api") && path != "/health" {
            let csp = header("content-security-policy").expect("a CSP on the page");
            assert_eq!(csp, gateway::CONTENT_SECURITY_POLICY, "{path}");
            assert!(!csp.contains("unsafe-inline"), "{csp}");
        }
    }
}

/// Whether a container on the Docker bridge (another machine, as far as the network goes)
/// connects to `address:port` within 3 s.
async fn reachable_from_a_container(address: &str, port: u16) -> bool {
    let image = std::env::var("SAM_INVOKE_IMAGE")
        .ok()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "public.ecr.aws/lambda/provided:al2023-arm64".into());
    let probe = format!("timeout 3 bash -c 'echo > /dev/tcp/{address}/{port}'");
    let out = tokio::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            "--entrypoint",
            "bash",
        ])
        .args([&image, "-c", &probe])
        .output()
        .await
        .expect("docker (make test starts its daemon)");
    out.status.success()
}

#[tokio::test]
async fn dynamodb_local_is_out_of_reach_of_other_machines() {
    let _stack = share_stack().await;
    let bridge = sam_local::bridge_address()
        .await
        .expect("the Docker bridge");
    let port: u16 = std::env::var("LOCAL_DYNAMODB_PORT")
        .expect("LOCAL_DYNAMODB_PORT (set by make test)")
        .parse()
        .unwrap();
    // DynamoDB Local listens on every interface; the rule the scripts set keeps it to loopback.
    assert!(!reachable_from_a_container(&bridge, port).await);
    // The probe itself works: a port open on the same address is reached.
    let open = tokio::net::TcpListener::bind((bridge.as_str(), 0))
        .await
        .unwrap();
    let open_port = open.local_addr().unwrap().port();
    tokio::spawn(async move { while open.accept().await.is_ok() {} });
    assert!(reachable_from_a_container(&bridge, open_port).await);
}
