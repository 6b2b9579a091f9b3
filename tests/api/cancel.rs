//! Stop: `POST /api/v1/conversations/{id}/cancel` stops the turn where it spends (Letta
//! cancels its run), from any instance; the turn's stream ends with `done` (`cancelled`), the
//! reply keeps what arrived, and no further LLM call is billed.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use crate::helpers::*;

/// The LLM calls LiteLLM billed to the user so far (all time): their spends.
async fn billed_calls(app: &TestApp, user_id: &str) -> Vec<f64> {
    let logs = app
        .state
        .litellm
        .spend_logs(user_id, "2020-01-01 00:00:00", "2100-01-01 00:00:00")
        .await
        .expect("LiteLLM's spend logs");
    logs.into_iter().map(|log| log.spend).collect()
}

/// Reads events up to and including the first one named `name`.
async fn read_until(
    stream: &mut (impl futures_util::Stream<Item = SseEvent> + Unpin),
    name: &str,
) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        let found = event.name == name;
        events.push(event);
        if found {
            return events;
        }
    }
    panic!(
        "the stream ended before a `{name}` event: {:?}",
        names(&events)
    );
}

#[tokio::test]
async fn stop_ends_the_turn_and_its_spending_from_another_instance() {
    // Two instances of the backend: the turn streams on `a`, Stop reaches `b`.
    let (a, b) = (spawn_app().await, spawn_app().await);
    let TestUser { token, id, .. } = a.ready_user("Stopper").await;
    let new = a.new_conversation(&token, Some(json!({"title": "Stop"})));
    let conversation = new.await["id"].as_str().unwrap().to_string();

    // Nothing is running: 409; another user's conversation: 404.
    let idle = b.cancel_turn(&token, &conversation).await;
    assert_eq!(idle.status, 409, "{}", idle.body);
    assert_eq!(idle.body["error"]["code"], "no_turn_in_progress");
    let stranger = a.ready_user("Stranger").await;
    let theirs = b.cancel_turn(&stranger.token, &conversation).await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);

    // A runaway model (it searches again after every result, up to 10 steps), every step
    // slow; stopped once its first step is done, while the second is running.
    let body = json!({"content": "/slow 250 /loop until stopped", "conversation_id": conversation});
    let mut stream = sse_events(a.send_chat(&token, body, None).await);
    let mut events = read_until(&mut stream, "tool_result").await;
    // Meanwhile a turn in the default conversation, which Stop must leave alone.
    let other = a
        .chat_request(&token, "/slow 100 a turn elsewhere", None)
        .await;
    assert_eq!(other.status(), 200);
    let asked = Instant::now();
    let cancel = b.cancel_turn(&token, &conversation).await;
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    assert_eq!(cancel.body["status"], "cancelling");
    assert_eq!(cancel.body["conversation_id"], conversation.as_str());
    tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(event) = stream.next().await {
            events.push(event);
        }
    })
    .await
    .expect("the stream ends within 2 s of the cancel");
    let stopped_in = asked.elapsed();
    let done = events.last().expect("events");
    assert_eq!(done.name, "done", "{:?}", names(&events));
    assert_eq!(done.data["stop_reason"], "cancelled");

    // The other conversation's turn was not stopped.
    let elsewhere = match read_chat(other).await {
        ChatReply::Stream(events) => events,
        ChatReply::Json(reply) => panic!("{} {}", reply.status, reply.body),
    };
    let last = elsewhere.last().unwrap();
    assert_eq!(last.data["stop_reason"], "end_turn", "{elsewhere:?}");

    // Stored as `cancelled`, with what arrived: the finished search.
    let page = a
        .history(&token, &format!("?limit=1&conversation_id={conversation}"))
        .await;
    let reply = &page.body["messages"][0];
    assert_eq!(reply["role"], "assistant", "{}", page.body);
    assert_eq!(reply["status"], "cancelled");
    assert_eq!(reply["stop_reason"], "cancelled");
    assert_eq!(reply["tool_calls"][0]["name"], "conversation_search");
    assert!(reply["tool_calls"][0]["result"].is_string(), "{reply}");

    // LiteLLM billed at most the step that was running besides the finished one: watched for
    // as long as a few more slow steps would take (2.5 s each), no more calls appear. The
    // turn elsewhere adds two: its reply and its conversation's title.
    let settle = Instant::now();
    let mut calls = Vec::new();
    while settle.elapsed() < Duration::from_secs(8) {
        calls = billed_calls(&a, &id).await;
        assert!(
            calls.len() <= 2 + 2,
            "{} calls billed after a stop at step two ({stopped_in:?})",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        calls.len() >= 3,
        "the finished step is billed too: {calls:?}"
    );
    // What the turn recorded is no more than LiteLLM billed (the step cut short reaches the
    // day's usage through the reconciler), and the finished step counts.
    let cost = reply["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "{reply}");
    assert!(cost <= calls.iter().sum::<f64>() + 1e-9);
    assert!(reply["usage"]["steps"].as_u64() >= Some(1), "{reply}");

    // The conversation is free again: the next message is answered.
    let next = a.chat_in(&token, &conversation, "and now?").await.events();
    assert_eq!(next.last().unwrap().data["stop_reason"], "end_turn");
    // And a Stop after the turn ended has nothing to stop.
    let late = b.cancel_turn(&token, &conversation).await;
    assert_eq!(late.status, 409, "{}", late.body);
}
