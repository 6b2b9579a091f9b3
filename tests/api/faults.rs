//! Faults injected between the backend and its dependencies (`fault_proxy`): idempotent calls
//! are retried with backoff and a message is never sent twice; a dependency that hangs or
//! breaks ends the request with a clear answer in bounded time; nothing accepted is lost.

use std::time::{Duration, Instant};

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
    let (_, _, token, _) = app.ready_user("Bursty").await;

    // Two 503s, then Letta: the read succeeds on its third attempt.
    letta.set(Fault::Answer {
        status: 503,
        body: UNAVAILABLE,
        times: 2,
    });
    let before = letta.connections();
    let memory = app.get("/api/v1/agent/memory", &token).await;
    assert_eq!(memory.status, 200, "{}", memory.body);
    assert_eq!(letta.connections() - before, 3, "two retries");

    // More 503s than retries: a clear 503 naming Letta, with no upstream text.
    letta.set(Fault::Answer {
        status: 503,
        body: UNAVAILABLE,
        times: 3,
    });
    let memory = app.get("/api/v1/agent/memory", &token).await;
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
    let (_, _, token, _) = app.ready_user("Patient").await;

    // Never answers: one attempt (a hang is not waited for twice), then 503.
    litellm.set(Fault::Hang);
    let started = Instant::now();
    let budget = app.get("/api/v1/user/budget", &token).await;
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
    let budget = app.get("/api/v1/user/budget", &token).await;
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

    // Slow but answering: fine.
    litellm.set(Fault::Latency(Duration::from_millis(300)));
    let budget = app.get("/api/v1/user/budget", &token).await;
    assert_eq!(budget.status, 200, "{}", budget.body);
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_and_a_lasting_one_is_a_503() {
    let dynamodb = FaultProxy::start(stack_config().dynamodb.endpoint.as_deref().unwrap()).await;
    let url = dynamodb.url.clone();
    let app = spawn_app_configured(|c| c.dynamodb.endpoint = Some(url)).await;
    let (_, _, token, _) = app.ready_user("Throttled").await;

    dynamodb.set(Fault::Answer {
        status: 400,
        body: DYNAMODB_THROTTLED,
        times: 1,
    });
    let profile = app.get("/api/v1/user/profile", &token).await;
    assert_eq!(profile.status, 200, "{}", profile.body);

    dynamodb.set(Fault::Answer {
        status: 400,
        body: DYNAMODB_THROTTLED,
        times: 50,
    });
    let profile = app.get("/api/v1/user/profile", &token).await;
    assert_eq!(profile.status, 503, "{}", profile.body);
    assert_eq!(profile.body["error"]["service"], "dynamodb");
    assert_eq!(profile.headers["retry-after"], "5");
    dynamodb.set(Fault::Pass);
    assert_eq!(app.get("/api/v1/user/profile", &token).await.status, 200);
}

#[tokio::test]
async fn a_connection_reset_mid_stream_keeps_the_partial_reply_and_frees_the_turn() {
    let letta = FaultProxy::start(&stack_config().letta.base_url).await;
    let url = letta.url.clone();
    let app = spawn_app_configured(|c| c.letta.base_url = url).await;
    let (_, _, token, _) = app.ready_user("Cut").await;
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
