//! Chat end to end against the real stack: SSE relay, stored history and usage, memory,
//! paging, idempotency, concurrency, disconnects, budgets and bad input.

use std::time::Duration;

use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn a_turn_streams_deltas_that_add_up_to_the_stored_reply() {
    let app = spawn_app().await;
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Ivy").await;
    let events = app.chat(&token, LONG_MESSAGE, None).await.events();
    let kinds = names(&events);
    assert_eq!(kinds.first(), Some(&"start"), "{kinds:?}");
    assert_eq!(&kinds[kinds.len() - 2..], ["usage", "done"], "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == "delta").count() >= 2,
        "several deltas: {kinds:?}"
    );
    assert!(kinds.contains(&"reasoning"), "{kinds:?}");
    let ids: Vec<u64> = events.iter().map(|e| e.id.parse().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "every event has an increasing id: {ids:?}"
    );
    let streamed = text_of(&events);
    assert_eq!(streamed, format!("echo: {LONG_MESSAGE}"));

    let start = &events[0].data;
    let done = &events.last().unwrap().data;
    assert_eq!(done["stop_reason"], "end_turn");
    assert!(done["latency_ms"].as_u64().unwrap() > 0);
    assert_eq!(done["message_id"], start["message_id"]);
    let usage = &events[events.len() - 2].data;
    let (prompt, completion) = (
        usage["prompt_tokens"].as_f64().unwrap(),
        usage["completion_tokens"].as_f64().unwrap(),
    );
    assert!(prompt > 0.0 && completion > 0.0);
    let expected_cost = prompt * 0.00003 + completion * 0.00006;
    assert!(
        (usage["cost_usd"].as_f64().unwrap() - expected_cost).abs() < 1e-9,
        "{usage}"
    );

    let history = app.history(&token, "").await;
    assert_eq!(history.status, 200, "{}", history.body);
    let messages = history.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let (reply, asked) = (&messages[0], &messages[1]);
    assert_eq!(reply["role"], "assistant");
    assert_eq!(reply["id"], start["message_id"]);
    assert_eq!(
        reply["content"],
        streamed.as_str(),
        "the stored reply is what was streamed"
    );
    assert_eq!(reply["status"], "complete");
    assert_eq!(reply["usage"]["prompt_tokens"], usage["prompt_tokens"]);
    assert_eq!(reply["cost_usd"], usage["cost_usd"]);
    assert_eq!(reply["model"], "gpt-4");
    assert!(reply["latency_ms"].as_u64().is_some() && reply["ttft_ms"].as_u64().is_some());
    assert!(reply["reasoning"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(asked["role"], "user");
    assert_eq!(asked["content"], LONG_MESSAGE);
    assert_eq!(asked["status"], "complete");
    assert_eq!(asked["id"], start["user_message_id"]);

    // The day's usage aggregate counts the turn and the title call (the conversation's first
    // exchange, billed to the user too, as no message); LiteLLM billed exactly that much.
    let title = events.iter().find(|e| e.name == "title").expect("a title");
    assert_eq!(title.data["conversation_id"], "default");
    let day = &reply["created_at"].as_str().unwrap()[..10];
    let aggregate = app
        .raw_item(&format!("USER#{user_id}"), &format!("USAGE#{day}"))
        .await
        .expect("the day's usage item");
    assert_eq!(aggregate["messages"], 1);
    let total_cost = aggregate["cost_usd"].as_f64().unwrap();
    assert!(
        aggregate["prompt_tokens"].as_f64().unwrap() > prompt,
        "{aggregate}"
    );
    assert!(total_cost > expected_cost, "{aggregate}");
    let spend = eventually("LiteLLM spend", Duration::from_secs(30), || {
        let app = &app;
        let user_id = user_id.clone();
        async move {
            app.state
                .litellm
                .user_info(&user_id)
                .await
                .ok()??
                .user_info
                .map(|u| u.spend)
                .filter(|s| (s - total_cost).abs() < 1e-9)
        }
    })
    .await;
    assert!((spend - total_cost).abs() < 1e-9);
}

#[tokio::test]
async fn the_agent_remembers_a_fact_from_an_earlier_turn() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Someone").await;
    let told = app
        .chat(&token, "Hello! My name is Zed Quill.", None)
        .await
        .events();
    let kinds = names(&told);
    assert!(
        kinds.contains(&"tool_call") && kinds.contains(&"tool_result"),
        "{kinds:?}"
    );
    let call = told.iter().find(|e| e.name == "tool_call").unwrap();
    // The core memory tool: the `Name:` line of the human block is replaced.
    assert_eq!(call.data["name"], "core_memory_replace");
    assert!(
        call.data["arguments"]
            .as_str()
            .unwrap()
            .contains("Zed Quill")
    );
    assert!(text_of(&told).contains("Zed Quill"), "{}", text_of(&told));

    let asked = app.chat(&token, "What is my name?", None).await.events();
    assert_eq!(text_of(&asked), "Your name is Zed Quill.");
    let history = app.history(&token, "?limit=1").await;
    assert_eq!(
        history.body["messages"][0]["content"],
        "Your name is Zed Quill."
    );
    let stored_calls =
        app.history(&token, "?limit=4").await.body["messages"][2]["tool_calls"].clone();
    assert_eq!(
        stored_calls[0]["name"], "core_memory_replace",
        "{stored_calls}"
    );
    assert!(stored_calls[0]["result"].as_str().is_some());
}

#[tokio::test]
async fn history_pages_newest_first_with_cursors_bound_to_the_user() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Pager").await;
    for i in 0..6 {
        let events = app
            .chat(&token, &format!("message number {i}"), None)
            .await
            .events();
        assert_eq!(names(&events).last(), Some(&"done"));
    }
    let mut seen = Vec::new();
    let mut query = "?limit=5".to_string();
    let mut pages = 0;
    loop {
        let page = app.history(&token, &query).await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        seen.extend(
            page.body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=5&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 12);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, no duplicates");
    let newest = app.history(&token, "?limit=1").await;
    assert_eq!(
        newest.body["messages"][0]["content"],
        "echo: message number 5"
    );

    for bad in ["?limit=0", "?limit=101", "?limit=abc"] {
        let reply = app.history(&token, bad).await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.body);
        assert_eq!(reply.body["error"]["field"], "limit");
    }
    for cursor in ["garbage", "eyJ1IjoieCIsIm0iOiJ5In0"] {
        let reply = app.history(&token, &format!("?before={cursor}")).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.body["error"]["code"], "invalid_cursor");
    }
    // Another user can neither see these messages nor use this user's cursor.
    let TestUser { token: other, .. } = app.ready_user("Other").await;
    let mine = app.history(&token, "?limit=5").await.body["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let theirs = app.history(&other, "").await;
    assert_eq!(theirs.body["messages"], json!([]));
    let stolen = app.history(&other, &format!("?before={mine}")).await;
    assert_eq!(stolen.status, 400);
}

/// How many times the user's agent received `text` (Letta's own message list, plain HTTP).
async fn letta_received(app: &TestApp, token: &str, text: &str) -> usize {
    let agent = app.agent_id(token).await;
    let request = app.letta(
        reqwest::Method::GET,
        &format!("/v1/agents/{agent}/messages?limit=200"),
    );
    let messages: Vec<serde_json::Value> = request.send().await.unwrap().json().await.unwrap();
    messages
        .iter()
        .filter(|m| m["message_type"] == "user_message" && m["content"].to_string().contains(text))
        .count()
}

#[tokio::test]
async fn a_repeated_idempotency_key_replays_the_stored_reply() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Idem").await;
    let first = app
        .chat(&token, "say this once", Some("key-123"))
        .await
        .events();
    let again = app
        .chat(&token, "say this once", Some("key-123"))
        .await
        .events();
    assert_eq!(again[0].data["replayed"], true);
    assert_eq!(again[0].data["message_id"], first[0].data["message_id"]);
    assert_eq!(text_of(&again), text_of(&first));
    assert_eq!(names(&again).last(), Some(&"done"));
    let history = app.history(&token, "").await;
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        letta_received(&app, &token, "say this once").await,
        1,
        "the agent was reached once"
    );
    // Another key is another turn.
    let other = app
        .chat(&token, "say this once", Some("key-456"))
        .await
        .events();
    assert_ne!(other[0].data["message_id"], first[0].data["message_id"]);
    assert_eq!(letta_received(&app, &token, "say this once").await, 2);
    // The same key from another user is that user's own request, not a replay.
    let TestUser {
        token: stranger, ..
    } = app.ready_user("Idem Two").await;
    let theirs = app
        .chat(&stranger, "say this once", Some("key-123"))
        .await
        .events();
    assert_ne!(theirs[0].data["replayed"], true, "{:?}", theirs[0]);
    assert_ne!(theirs[0].data["message_id"], first[0].data["message_id"]);
    assert_eq!(names(&theirs).last(), Some(&"done"));
    assert_eq!(letta_received(&app, &stranger, "say this once").await, 1);
    let bad = app.chat(&token, "x", Some("has spaces in it")).await.json();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], "invalid_idempotency_key");
}

#[tokio::test]
async fn one_turn_at_a_time_and_a_gone_client_still_gets_its_turn_stored() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Busy").await;
    let slow = format!("/slow 150 {LONG_MESSAGE}");
    let res = app.chat_request(&token, &slow, Some("slow-1")).await;
    assert_eq!(res.status(), 200);

    // While that turn runs: a second send is refused, and so is the same key.
    let second = app.chat(&token, "are you there?", None).await.json();
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.body["error"]["code"], "turn_in_progress");
    let same_key = app.chat(&token, &slow, Some("slow-1")).await.json();
    assert_eq!(same_key.status, 409, "{}", same_key.body);

    // Read until the first delta, then hang up.
    {
        use eventsource_stream::Eventsource;
        use futures_util::StreamExt;
        let mut stream = res.bytes_stream().eventsource();
        while let Some(event) = stream.next().await {
            if event.unwrap().event == "delta" {
                break;
            }
        }
    }
    let reply = eventually(
        "the reply stored after the client left",
        Duration::from_secs(60),
        || {
            let app = &app;
            let token = token.clone();
            async move {
                let page = app.history(&token, "?limit=1").await;
                let m = page.body["messages"][0].clone();
                (m["role"] == "assistant" && m["status"] == "complete").then_some(m)
            }
        },
    )
    .await;
    assert_eq!(reply["content"], format!("echo: {LONG_MESSAGE}"));
    // The lock is released (just after the reply is stored): the next turn goes through.
    let next = eventually("the next turn", Duration::from_secs(10), || {
        let (app, token) = (&app, &token);
        async move {
            match app.chat(token, "and now?", None).await {
                ChatReply::Stream(events) => Some(events),
                ChatReply::Json(reply) => {
                    assert_eq!(reply.status, 409, "{}", reply.body);
                    None
                }
            }
        }
    })
    .await;
    assert_eq!(text_of(&next), "echo: and now?");
}

#[tokio::test]
async fn an_exhausted_budget_is_402_with_spend_and_limit() {
    let app = spawn_app().await;
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Spender").await;
    app.state
        .litellm
        .update_user_budget(&user_id, 0.000001, None)
        .await
        .unwrap();
    // The call that crosses the budget is let through; the next one is refused by LiteLLM
    // inside the stream (an `error` event; the message kept, the turn marked failed) ...
    let first = app.chat(&token, "spend a little", None).await.events();
    assert_eq!(names(&first).last(), Some(&"done"));
    let refused_in_stream = eventually("LiteLLM's refusal", Duration::from_secs(30), || {
        let app = &app;
        let token = token.clone();
        async move {
            let events = app.chat(&token, "and a little more", None).await.events();
            let last = events.last()?.clone();
            (last.name == "error").then_some(last)
        }
    })
    .await;
    assert_eq!(refused_in_stream.data["code"], "budget_exceeded");
    assert_eq!(refused_in_stream.data["retryable"], false);
    let history = app.history(&token, "?limit=2").await;
    let (reply, asked) = (&history.body["messages"][0], &history.body["messages"][1]);
    assert_eq!(reply["status"], "failed", "{}", history.body);
    assert_eq!(reply["error"]["code"], "budget_exceeded");
    assert_eq!(asked["content"], "and a little more");
    // ... and from then on every message is a plain 402 before Letta: nothing stored.
    let refused = app.chat(&token, "one more?", None).await.json();
    assert_eq!(refused.status, 402, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "budget_exceeded");
    assert!(refused.body["error"]["spend"].as_f64().unwrap() > 0.0);
    assert_eq!(refused.body["error"]["limit"].as_f64().unwrap(), 0.000001);
    let after = app.history(&token, "?limit=1").await;
    assert_eq!(
        after.body["messages"][0]["id"], reply["id"],
        "nothing stored"
    );
}

#[tokio::test]
async fn bad_chat_input_is_a_clear_4xx() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Typo").await;
    for (content, status, code) in [("", 400, "empty_content"), ("   \n ", 400, "empty_content")] {
        let reply = app.chat(&token, content, None).await.json();
        assert_eq!(reply.status, status);
        assert_eq!(reply.body["error"]["code"], code);
    }
    let long = "x".repeat(32_001);
    let reply = app.chat(&token, &long, None).await.json();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.body["error"]["code"], "content_too_long");
    assert_eq!(reply.body["error"]["field"], "content");
    let missing = app
        .call(
            reqwest::Method::POST,
            "/api/v1/chat/message",
            Some(&token),
            Some(json!({"text": "hi"})),
        )
        .await;
    assert_eq!(missing.status, 422);
    let anonymous = app
        .call(
            reqwest::Method::POST,
            "/api/v1/chat/message",
            None,
            Some(json!({"content": "hi"})),
        )
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        app.call(reqwest::Method::GET, "/api/v1/chat/history", None, None)
            .await
            .status,
        401
    );
    // Nothing was stored for refused input.
    assert_eq!(app.history(&token, "").await.body["messages"], json!([]));
}

/// A chat turn through a Letta whose stream drops some assistant text (a tap in front of it),
/// with agents of `agent_type`.
async fn turn_through_a_lossy_letta(
    agent_type: &str,
    drop: crate::letta_tap::Drop,
    message: &str,
) -> (Vec<SseEvent>, Value) {
    let letta = stack_config().letta.base_url;
    let tap = crate::letta_tap::start(letta, drop).await;
    let app = spawn_app_configured(|c| {
        c.letta.base_url = tap;
        c.letta.agent_type = agent_type.to_string();
    })
    .await;
    let TestUser { token, .. } = app.ready_user("Reader").await;
    let events = app.chat(&token, message, None).await.events();
    assert_eq!(names(&events).last(), Some(&"done"), "{:?}", names(&events));
    let history = app.history(&token, "?limit=1").await;
    (events, history.body["messages"][0].clone())
}

/// Agents that reply in plain content: the backend trusts their stream when it ends with a
/// stop reason, and reads the reply back from Letta otherwise.
const PLAIN_CONTENT_AGENT: &str = "letta_v1_agent";

#[tokio::test]
async fn a_reply_letta_did_not_fully_stream_is_completed_from_its_stored_copy() {
    // The end of the reply never streamed: the rest comes as one more delta.
    let message = "what did you store at the end";
    let (events, stored) = turn_through_a_lossy_letta(
        PLAIN_CONTENT_AGENT,
        crate::letta_tap::Drop::After(2),
        message,
    )
    .await;
    let reply = format!("echo: {message}");
    let deltas = names(&events).iter().filter(|n| **n == "delta").count();
    assert!(deltas >= 2, "{:?}", names(&events));
    assert_eq!(
        text_of(&events),
        reply,
        "the deltas add up to the stored reply"
    );
    assert_eq!(stored["content"], reply.as_str());
    let done = &events.last().unwrap().data;
    assert_eq!(done["text_corrected"], false);
    assert!(done.get("text").is_none_or(Value::is_null), "{done}");
}

#[tokio::test]
async fn a_reply_whose_start_never_streamed_is_corrected_in_done() {
    // Text missing from the start cannot be appended: `done` carries the stored reply.
    let message = "what did you store at the start";
    let (events, stored) =
        turn_through_a_lossy_letta(PLAIN_CONTENT_AGENT, crate::letta_tap::Drop::First, message)
            .await;
    let reply = format!("echo: {message}");
    assert_ne!(text_of(&events), reply, "the tap dropped the first delta");
    let done = &events.last().unwrap().data;
    assert_eq!(done["text_corrected"], true, "{done}");
    assert_eq!(done["text"], reply.as_str());
    assert_eq!(stored["content"], reply.as_str());
}

#[tokio::test]
async fn a_plain_content_reply_that_never_streamed_comes_from_its_stored_copy() {
    // Nothing streamed: all of it arrives as one delta.
    let message = "what did you store at all";
    let (events, stored) = turn_through_a_lossy_letta(
        PLAIN_CONTENT_AGENT,
        crate::letta_tap::Drop::After(0),
        message,
    )
    .await;
    let reply = format!("echo: {message}");
    assert_eq!(names(&events).iter().filter(|n| **n == "delta").count(), 1);
    assert_eq!(text_of(&events), reply);
    assert_eq!(stored["content"], reply.as_str());
    assert_eq!(events.last().unwrap().data["text_corrected"], false);
}

#[tokio::test]
async fn a_long_reply_in_fine_token_shapes_streams_token_by_token() {
    // Real models stream a word (or less) a chunk; the scripted model does the same by default.
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Tess").await;
    let words = "tell me about the sea and the sky and the long road home before the night comes";
    let events = app.chat(&token, words, None).await.events();
    let kinds = names(&events);
    let usage_at = kinds
        .iter()
        .position(|k| *k == "usage")
        .expect("a usage event");
    let deltas_before_usage = kinds[..usage_at].iter().filter(|k| **k == "delta").count();
    let reply = format!("echo: {words}");
    assert!(reply.split_whitespace().count() >= 12);
    assert!(
        deltas_before_usage >= 4,
        "{deltas_before_usage} deltas before usage: {kinds:?}"
    );
    let done = &events.last().unwrap().data;
    assert_eq!(events.last().unwrap().name, "done", "{kinds:?}");
    assert_eq!(done["text_corrected"], false);
    assert_eq!(text_of(&events), reply);
    let history = app.history(&token, "?limit=1").await;
    assert_eq!(history.body["messages"][0]["content"], reply.as_str());
    // One LLM call for a plain turn (no heartbeat step).
    assert_eq!(
        events[usage_at].data["steps"], 1,
        "{}",
        events[usage_at].data
    );
}

#[tokio::test]
async fn a_slow_turn_gets_keep_alive_comments_and_numbered_events_and_the_request_id() {
    let app = spawn_app_configured(|c| c.http.sse_keep_alive = Duration::from_secs(1)).await;
    let TestUser { token, .. } = app.ready_user("Slow").await;
    let request_id = format!("slow-{}", ulid::Ulid::new());
    let res = app
        .http
        .post(format!("{}/api/v1/chat/message", app.base))
        .bearer_auth(&token)
        .header("x-request-id", &request_id)
        .json(&json!({"content": "/slow 1300 /coarse hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], request_id.as_str());
    let raw = res.text().await.unwrap();
    let keep_alives = raw.lines().filter(|l| *l == ": keep-alive").count();
    assert!(
        keep_alives >= 1,
        "no keep-alive comment in a stream silent for 1.3 s: {raw}"
    );
    let ids: Vec<u64> = raw
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().expect("a numeric id"))
        .collect();
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert!(ids.len() >= 3, "{raw}");
    assert_eq!(ids, expected, "event ids count from 1 without gaps");
    assert!(raw.contains("event: done"), "{raw}");
}

#[tokio::test]
async fn a_warm_turn_sees_what_changed_since_the_instance_remembered_it() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Warm").await;
    let conversation = app.new_conversation(&token, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The second turn starts on what the first left in this instance's memory.
    for text in ["first", "second"] {
        let events = app.chat_in(&token, &conversation, text).await.events();
        assert_eq!(text_of(&events), format!("echo: {text}"));
    }
    // Deleted meanwhile (as by another instance): the warm start's condition fails, the turn
    // reads again and answers 404, and nothing is stored.
    let deleted = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/conversations/{conversation}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let gone = app.chat_in(&token, &conversation, "third").await.json();
    assert_eq!(gone.status, 404, "{}", gone.body);

    // A warm default conversation, then a logout: the revocation is checked inside the warm
    // start's own transaction.
    for text in ["one", "two"] {
        let events = app.chat(&token, text, None).await.events();
        assert_eq!(text_of(&events), format!("echo: {text}"));
    }
    let out = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.body);
    let refused = app.chat(&token, "three", None).await.json();
    assert_eq!(refused.status, 401, "{}", refused.body);
    // Also when the turn would be refused for itself (an invalid body): the gate answers first.
    let invalid = app
        .call(
            reqwest::Method::POST,
            "/api/v1/chat/message",
            Some(&token),
            Some(json!({"content": ""})),
        )
        .await;
    assert_eq!(invalid.status, 401, "{}", invalid.body);
}
