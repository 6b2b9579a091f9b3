//! Chat when Letta fails: killed in the middle of a reply, and unreachable before one starts.
//! Nothing is lost: the user's message is stored first, partial replies are kept and marked.

use std::time::Duration;

use futures_util::StreamExt;

use crate::helpers::*;

/// A slow reply (a word every 400 ms) once it has begun: its stream and its events up to the
/// first delta.
async fn slow_reply_begun(
    app: &TestApp,
    token: &str,
) -> (
    impl futures_util::Stream<Item = SseEvent> + Unpin,
    Vec<SseEvent>,
) {
    let res = app
        .chat_request(token, &format!("/slow 400 {LONG_MESSAGE}"), None)
        .await;
    assert_eq!(res.status(), 200);
    let mut stream = sse_events(res);
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        let delta = event.name == "delta";
        events.push(event);
        if delta {
            break;
        }
    }
    (stream, events)
}

#[tokio::test]
async fn letta_dying_mid_stream_keeps_the_partial_reply_and_being_down_is_503() {
    let app = spawn_app_exclusive().await;
    let TestUser { token, .. } = app.ready_user("Fragile").await;
    let _restore = Restart(&["letta"]);

    // Killed mid-stream: an `error` event, and what arrived is stored as `interrupted`.
    // Killed once the reply has started: after its first delta.
    let (mut stream, mut events) = slow_reply_begun(&app, &token).await;
    service("kill", "letta");
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(event) = stream.next().await {
            events.push(event);
        }
    })
    .await
    .expect("the stream ends");
    let last = events.last().unwrap();
    assert_eq!(last.name, "error", "{:?}", names(&events));
    assert_eq!(last.data["code"], "agent_interrupted");
    assert_eq!(last.data["retryable"], true);
    let partial = text_of(&events);
    assert!(
        !partial.is_empty(),
        "some text arrived before the kill: {:?}",
        names(&events)
    );
    let full = format!("echo: {LONG_MESSAGE}");
    assert!(
        full.starts_with(&partial) && partial.len() < full.len(),
        "{partial:?}"
    );

    let history = app.history(&token, "?limit=2").await;
    let (reply, asked) = (&history.body["messages"][0], &history.body["messages"][1]);
    assert_eq!(reply["status"], "interrupted", "{}", history.body);
    assert_eq!(reply["content"], partial.as_str());
    assert_eq!(reply["error"]["code"], "agent_interrupted");
    assert_eq!(asked["role"], "user");

    // Letta down before the turn: 503 with Retry-After, and the message is kept as failed.
    let down = app.chat(&token, "anyone there?", None).await.json();
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.headers["retry-after"], "5");
    assert_eq!(down.body["error"]["service"], "letta");
    let history = app.history(&token, "?limit=1").await;
    assert_eq!(history.body["messages"][0]["content"], "anyone there?");
    assert_eq!(history.body["messages"][0]["status"], "failed");

    // Back up: the same user chats again (the turn lock was released both times).
    service("start", "letta");
    let events = app.chat(&token, "hello again", None).await.events();
    assert_eq!(text_of(&events), "echo: hello again");
}

/// Thaws a frozen service when dropped, so a failing test leaves the stack whole.
struct Thaw(&'static str);

impl Drop for Thaw {
    fn drop(&mut self) {
        service("thaw", self.0);
    }
}

#[tokio::test]
async fn a_letta_that_freezes_mid_reply_ends_the_turn_within_40_s_keeping_what_arrived() {
    let app = spawn_app_exclusive().await;
    let TestUser { token, .. } = app.ready_user("Frozen").await;
    let (mut stream, mut events) = slow_reply_begun(&app, &token).await;
    // A stopped process: its connections stay open, nothing more arrives, not even a ping.
    service("freeze", "letta");
    let thaw = Thaw("letta");
    let frozen = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(event) = stream.next().await {
            events.push(event);
        }
    })
    .await
    .expect("the stream ends");
    let waited = frozen.elapsed();
    println!(
        "frozen Letta: the turn ended {} ms later",
        waited.as_millis()
    );
    let last = events.last().unwrap();
    assert_eq!(last.name, "error", "{:?}", names(&events));
    assert_eq!(last.data["code"], "agent_interrupted");
    assert!(
        waited <= Duration::from_secs(40),
        "the client knew after {waited:?}"
    );
    let partial = text_of(&events);
    assert!(!partial.is_empty(), "{:?}", names(&events));
    drop(thaw);
    let history = app.history(&token, "?limit=2").await;
    let reply = &history.body["messages"][0];
    assert_eq!(reply["status"], "interrupted", "{}", history.body);
    assert_eq!(reply["content"], partial.as_str());
}
