//! Faults injected between the backend and its dependencies (`fault_proxy`): idempotent calls
//! are retried with backoff and a message is never sent twice; a dependency that hangs or
//! breaks ends the request with a clear answer in bounded time; nothing accepted is lost.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    fault_proxy::{DYNAMODB_THROTTLED, Fault, FaultProxy},
    helpers::*,
};

const UNAVAILABLE: &str = r#"{"detail":"injected: briefly unavailable"}"#;

#[tokio::test]
async fn reads_are_retried_through_a_5xx_burst_and_a_message_is_never_sent_twice() {
    let letta = FaultProxy::start(&stack_config().letta.base_url).await;
    let url = letta.url.clone();
    let app = spawn_app_configured(|c| c.letta.base_url = url).await;
    let TestUser { token, .. } = app.ready_user("Bursty").await;

    // Two 503s, then Letta: the read succeeds on its third attempt.
    letta.set(Fault::Answer {
        status: 503,
        body: UNAVAILABLE,
        times: 2,
    });
    let before = letta.connections();
    let memory = app.memory(&token).await;
    assert_eq!(memory.status, 200, "{}", memory.body);
    assert_eq!(letta.connections() - before, 3, "two retries");

    // More 503s than retries: a clear 503 naming Letta, with no upstream text.
    letta.set(Fault::Answer {
        status: 503,
        body: UNAVAILABLE,
        times: 3,
    });
    let memory = app.memory(&token).await;
    assert_eq!(memory.status, 503, "{}", memory.body);
    assert_eq!(memory.headers["retry-after"], "5");
    assert_eq!(memory.body["error"]["service"], "letta");
    assert!(
        !memory.body.to_string().contains("injected"),
        "{}",
        memory.body
    );

    // A message is not retried: one 503 is the answer, the message is kept as failed.
    letta.set(Fault::Answer {
        status: 503,
        body: UNAVAILABLE,
        times: 1,
    });
    let before = letta.connections();
    let refused = app.chat(&token, "only once please", None).await.json();
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(letta.connections() - before, 1, "sent once");
    let history = app.history(&token, "?limit=1").await;
    assert_eq!(history.body["messages"][0]["content"], "only once please");
    assert_eq!(history.body["messages"][0]["status"], "failed");
    // Once Letta answers again, so does the agent.
    let events = app.chat(&token, "and now?", None).await.events();
    assert_eq!(text_of(&events), "echo: and now?", "{:?}", names(&events));
}

#[tokio::test]
async fn a_dependency_that_hangs_or_drops_connections_ends_the_request_in_bounded_time() {
    let litellm = FaultProxy::start(&stack_config().litellm.base_url).await;
    let url = litellm.url.clone();
    let app = spawn_app_configured(|c| {
        c.litellm.base_url = url;
        c.http.upstream_timeout = Duration::from_secs(2);
    })
    .await;
    let TestUser { token, .. } = app.ready_user("Patient").await;

    // Never answers: one attempt (a hang is not waited for twice), then 503.
    litellm.set(Fault::Hang);
    let started = Instant::now();
    let budget = app.budget(&token).await;
    assert_eq!(budget.status, 503, "{}", budget.body);
    assert_eq!(budget.body["error"]["service"], "litellm");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // Closes every connection: retried, then 503, quickly.
    litellm.set(Fault::Close);
    let before = litellm.connections();
    let started = Instant::now();
    let budget = app.budget(&token).await;
    assert_eq!(budget.status, 503, "{}", budget.body);
    assert_eq!(
        litellm.connections() - before,
        3,
        "the first try and two retries"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Cuts every answer in the middle of its body: retried like a failed connection, then a
    // 503 (never a 502 "could not be read").
    litellm.set(Fault::ResetAfter(300));
    let before = litellm.connections();
    let budget = app.budget(&token).await;
    assert_eq!(budget.status, 503, "{}", budget.body);
    assert_eq!(budget.body["error"]["service"], "litellm");
    assert_eq!(
        litellm.connections() - before,
        3,
        "the first try and two retries"
    );

    // Slow but answering: fine.
    litellm.set(Fault::Latency(Duration::from_millis(300)));
    let budget = app.budget(&token).await;
    assert_eq!(budget.status, 200, "{}", budget.body);
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_and_a_lasting_one_is_a_503() {
    let dynamodb = FaultProxy::start(stack_config().dynamodb.endpoint.as_deref().unwrap()).await;
    let url = dynamodb.url.clone();
    let app = spawn_app_configured(|c| c.dynamodb.endpoint = Some(url)).await;
    let TestUser { token, .. } = app.ready_user("Throttled").await;

    dynamodb.set(Fault::Answer {
        status: 400,
        body: DYNAMODB_THROTTLED,
        times: 1,
    });
    let profile = app.profile(&token).await;
    assert_eq!(profile.status, 200, "{}", profile.body);

    dynamodb.set(Fault::Answer {
        status: 400,
        body: DYNAMODB_THROTTLED,
        times: 50,
    });
    let profile = app.profile(&token).await;
    assert_eq!(profile.status, 503, "{}", profile.body);
    assert_eq!(profile.body["error"]["service"], "dynamodb");
    assert_eq!(profile.headers["retry-after"], "5");
    dynamodb.set(Fault::Pass);
    assert_eq!(app.profile(&token).await.status, 200);
}

#[tokio::test]
async fn a_connection_reset_mid_stream_keeps_the_partial_reply_and_frees_the_turn() {
    let letta = FaultProxy::start(&stack_config().letta.base_url).await;
    let url = letta.url.clone();
    let app = spawn_app_configured(|c| c.letta.base_url = url).await;
    let TestUser { token, .. } = app.ready_user("Cut").await;
    // Enough of the answer for its headers and the first events, then the connection resets.
    letta.set(Fault::ResetAfter(3_000));
    let events = app
        .chat(
            &token,
            "/slow 50 tell me everything about the long road home",
            None,
        )
        .await
        .events();
    letta.set(Fault::Pass);
    let last = events.last().unwrap();
    assert_eq!(last.name, "error", "{:?}", names(&events));
    assert_eq!(last.data["code"], "agent_interrupted");
    let history = app.history(&token, "?limit=2").await;
    let (reply, asked) = (&history.body["messages"][0], &history.body["messages"][1]);
    assert_eq!(reply["status"], "interrupted", "{}", history.body);
    assert_eq!(reply["content"], text_of(&events).as_str());
    assert_eq!(asked["role"], "user");
    assert_eq!(asked["status"], "complete", "the message reached the agent");
    // The turn lock was released: the next message is answered.
    let next = app.chat(&token, "still there?", None).await.events();
    assert_eq!(names(&next).last(), Some(&"done"), "{:?}", names(&next));
}

/// One request of a flow, as its status and `Retry-After` (a chat stream is a 200).
async fn status_of(app: &TestApp, flow: &str, user: &TestUser) -> (u16, bool) {
    let token = user.token.as_str();
    let reply = match flow {
        "register" => {
            let email = unique_email();
            app.post(
                "/api/v1/auth/register",
                json!({"email": email, "password": "correct-horse-battery"}),
            )
            .await
        }
        "login" => {
            app.post(
                "/api/v1/auth/login",
                json!({"email": user.email, "password": user.password}),
            )
            .await
        }
        "chat" => match app.chat(token, "are you there?", None).await {
            ChatReply::Stream(events) => {
                let last = events.last().map(|e| e.name.clone()).unwrap_or_default();
                assert!(last == "done" || last == "error", "{:?}", names(&events));
                return (200, false);
            }
            ChatReply::Json(reply) => reply,
        },
        "history" => app.history(token, "?limit=5").await,
        "budget" => app.budget(token).await,
        "set budget" => app.set_budget(token, json!({"max_budget": 4.0})).await,
        "memory" => app.memory(token).await,
        "reset" => app.reset(token, json!({"scope": "messages"})).await,
        other => panic!("no flow {other}"),
    };
    (
        reply.status.as_u16(),
        reply.headers.contains_key("retry-after"),
    )
}

#[tokio::test]
async fn every_flow_answers_each_fault_of_each_dependency_clearly_and_works_once_it_ends() {
    let config = stack_config();
    let proxies = [
        ("letta", FaultProxy::start(&config.letta.base_url).await),
        ("litellm", FaultProxy::start(&config.litellm.base_url).await),
        (
            "dynamodb",
            FaultProxy::start(config.dynamodb.endpoint.as_deref().unwrap()).await,
        ),
        (
            "supabase_auth",
            FaultProxy::start(&config.supabase.url).await,
        ),
    ];
    let urls: Vec<String> = proxies.iter().map(|(_, p)| p.url.clone()).collect();
    let app = spawn_app_configured(|c| {
        c.letta.base_url = urls[0].clone();
        c.litellm.base_url = urls[1].clone();
        c.dynamodb.endpoint = Some(urls[2].clone());
        c.dynamodb.attempt_timeout = Duration::from_secs(1);
        c.supabase.url = urls[3].clone();
        c.http.upstream_timeout = Duration::from_secs(2);
        c.rates.requests_per_minute = 100_000;
        c.rates.chat_per_minute = 100_000;
    })
    .await;
    let user = app.ready_user("Faulted").await;
    let mut table: Vec<String> = Vec::new();
    let mut deleted: Vec<String> = Vec::new();
    for (name, proxy) in &proxies {
        let failing = if *name == "dynamodb" {
            Fault::Answer {
                status: 400,
                body: DYNAMODB_THROTTLED,
                times: 10_000,
            }
        } else {
            Fault::Answer {
                status: 503,
                body: UNAVAILABLE,
                times: 10_000,
            }
        };
        for (mode, fault) in [
            ("hangs", Fault::Hang),
            ("closes", Fault::Close),
            ("fails", failing),
        ] {
            let (row, doomed) =
                fault_round(&app, &user, proxy, fault, &format!("{name} that {mode}")).await;
            deleted.push(doomed);
            table.push(format!("{name} {mode}: {row}"));
        }
    }
    for id in &deleted {
        let left = footprint(&app, id).await;
        assert!(
            !left.supabase_user && !left.litellm_user && left.letta_agents == 0,
            "{id}: {left:?}"
        );
    }
    // Nothing orphaned or billed twice for the user who went through every fault.
    let direct = shared::AppState::new({
        let mut c = stack_config();
        c.reconcile.settle = Duration::from_secs(3);
        c
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ids = vec![shared::domain::UserId::parse(&user.id).unwrap()];
    let report = reconciler::run(&direct, ids, false).await.unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    println!("{}", table.join("\n"));
}

/// The flows each fault is tried on.
const FLOWS: [&str; 8] = [
    "register",
    "login",
    "chat",
    "history",
    "budget",
    "set budget",
    "memory",
    "reset",
];

/// Every flow, and an account's deletion, while `proxy` has `fault`: each answers within 30 s,
/// a 503 with `Retry-After` or a success, never another 5xx; then, the fault over, every flow
/// works again and a deletion that stopped finishes. Returns the round's row for the table and
/// the deleted user's id.
async fn fault_round(
    app: &TestApp,
    user: &TestUser,
    proxy: &FaultProxy,
    fault: Fault,
    what: &str,
) -> (String, String) {
    // An account to delete while the dependency is faulty, made while it is not.
    let TestUser {
        password: doomed_password,
        token: doomed_token,
        id: doomed,
        ..
    } = app.ready_user("Doomed").await;
    proxy.set(fault);
    let mut row = Vec::new();
    for flow in FLOWS {
        let started = Instant::now();
        let (status, retry_after) =
            tokio::time::timeout(Duration::from_secs(30), status_of(app, flow, user))
                .await
                .unwrap_or_else(|_| panic!("{flow} with {what}: no answer"));
        assert!(
            status < 500 || (status == 503 && retry_after),
            "{flow} with {what}: {status}"
        );
        assert!(
            status < 400 || status == 503,
            "{flow} with {what}: {status}"
        );
        row.push(format!("{flow} {status} {:.1?}", started.elapsed()));
    }
    let deletion = app
        .delete_account(&doomed_token, Some(&doomed_password))
        .await;
    let status = deletion.status.as_u16();
    assert!(
        status == 204 || status == 503,
        "delete with {what}: {status}"
    );
    row.push(format!("delete {status}"));
    proxy.set(Fault::Pass);

    // Once the fault ends, every flow works again (locks and leases were released).
    for flow in FLOWS {
        let (status, _) = status_of(app, flow, user).await;
        assert!(
            (200..300).contains(&status),
            "{flow} after {what}: {status}"
        );
    }
    if status == 503 {
        // A deletion that stopped part way finishes when asked again.
        let again = app
            .delete_account(&doomed_token, Some(&doomed_password))
            .await;
        assert_eq!(again.status, 204, "{}", again.body);
    }
    (row.join(", "), doomed)
}
