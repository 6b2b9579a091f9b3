//! The user and agent endpoints against the real stack: profile, usage, budget, account health,
//! agent status, memory (core and archival) and reset; each only ever for the token's user.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn profile_can_be_read_and_renamed_and_the_agent_learns_the_new_name() {
    let app = spawn_app().await;
    let TestUser { email, token, .. } = app.ready_user("Old Name").await;
    let profile = app.profile(&token).await;
    assert_eq!(profile.status, 200, "{}", profile.body);
    assert_eq!(profile.body["profile"]["display_name"], "Old Name");
    assert_eq!(profile.body["profile"]["email"], email.as_str());
    assert_eq!(profile.body["profile"]["state"], "ready");
    assert_eq!(profile.body["profile"]["model"], "gpt-4");

    let renamed = app
        .update_profile(&token, json!({"display_name": "Nova Reyes"}))
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["profile"]["display_name"], "Nova Reyes");
    let human = app.human_block(&token).await;
    assert!(
        human["value"]
            .as_str()
            .unwrap()
            .contains("Name: Nova Reyes"),
        "{human}"
    );
    // The scripted model answers from the memory Letta puts in its prompt.
    let events = app.chat(&token, "What is my name?", None).await.events();
    assert_eq!(text_of(&events), "Your name is Nova Reyes.");

    for bad in [
        json!({"display_name": ""}),
        json!({"display_name": "x".repeat(65)}),
        json!({"name": "x"}),
    ] {
        let reply = app.update_profile(&token, bad.clone()).await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.body);
    }
}

#[tokio::test]
async fn usage_counts_turns_per_day_and_ranges_are_checked() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Counter").await;
    // A conversation the user named gets no title call: the day holds exactly the two turns.
    let named = app.rename_conversation(&token, "default", "Counting").await;
    assert_eq!(named.status, 200, "{}", named.body);
    for i in 0..2 {
        let events = app
            .chat(&token, &format!("count me {i}"), None)
            .await
            .events();
        assert_eq!(names(&events).last(), Some(&"done"));
    }
    let usage = app.usage(&token, "").await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    let days = usage.body["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "the last 30 days by default");
    let today = days.last().unwrap();
    assert_eq!(today["messages"], 2);
    assert!(today["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(usage.body["totals"]["messages"], 2);
    assert_eq!(
        usage.body["totals"]["prompt_tokens"],
        today["prompt_tokens"]
    );
    let history = app.history(&token, "?limit=4").await;
    let stored_cost: f64 = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["cost_usd"].as_f64())
        .sum();
    assert!((today["cost_usd"].as_f64().unwrap() - stored_cost).abs() < 1e-9);
    assert!(usage.body["current_period"]["spend_usd"].as_f64().is_some());

    let date = today["date"].as_str().unwrap();
    let range = app.usage(&token, &format!("?from={date}&to={date}")).await;
    assert_eq!(range.body["days"].as_array().unwrap().len(), 1);
    for (query, field) in [
        ("?from=2020-01-01&to=2021-06-01", "from"),
        ("?from=yesterday", "from"),
        ("?to=2026-02-30", "to"),
        ("?from=2026-05-02&to=2026-05-01", "from"),
    ] {
        let reply = app.usage(&token, query).await;
        assert_eq!(reply.status, 422, "{query}: {}", reply.body);
        assert_eq!(reply.body["error"]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn a_budget_is_the_users_to_set_within_the_operators_bounds_and_reaches_litellm() {
    let app = spawn_app().await;
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Budgeter").await;
    let budget = app.budget(&token).await;
    assert_eq!(budget.status, 200, "{}", budget.body);
    assert_eq!(
        budget.body["max_budget"], 5.0,
        "the documented default budget"
    );
    assert_eq!(budget.body["budget_duration"], "1mo");
    assert!(budget.body["spend_lag_seconds"].as_i64().is_some());

    // The amount is the user's; the period stays the operator's.
    let set = app
        .set_budget(
            &token,
            json!({"max_budget": 12.5, "budget_duration": "1mo"}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["max_budget"], 12.5);
    assert_eq!(set.body["budget_duration"], "1mo");
    let litellm = app
        .state
        .litellm
        .user_info(&user_id)
        .await
        .unwrap()
        .unwrap()
        .user_info
        .unwrap();
    assert_eq!(litellm.max_budget, Some(12.5));
    assert_eq!(litellm.budget_duration.as_deref(), Some("1mo"));
    let ceiling = 50.0; // USER_MAX_BUDGET's documented default
    for (body, field) in [
        (json!({"max_budget": -1}), "max_budget"),
        (json!({"max_budget": ceiling + 1.0}), "max_budget"),
        (
            json!({"max_budget": 1, "budget_duration": "2d"}),
            "budget_duration",
        ),
        // A shorter period would multiply the cap: 50 a day is 30 times 50 a month.
        (
            json!({"max_budget": ceiling, "budget_duration": "1d"}),
            "budget_duration",
        ),
        (json!({"max_budget": "lots"}), "body"),
    ] {
        let reply = app.set_budget(&token, body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
        if field != "body" {
            assert_eq!(reply.body["error"]["field"], field);
        }
    }
    let over = app
        .set_budget(&token, json!({"max_budget": ceiling + 1.0}))
        .await;
    assert!(
        over.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&ceiling.to_string()),
        "names the bound: {}",
        over.body
    );
}

#[tokio::test]
async fn a_zero_budget_refuses_the_next_turn_and_a_raised_one_lets_the_user_chat_again() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Spender").await;
    // A budget of zero is enforced on the very next chat turn, before Letta is called (LiteLLM
    // would enforce it only once its cache of the user expires).
    let zero = app.set_budget(&token, json!({"max_budget": 0})).await;
    assert_eq!(zero.status, 200, "{}", zero.body);
    let stored_before = app.history(&token, "?limit=100").await.body["messages"]
        .as_array()
        .map(Vec::len);
    let ChatReply::Json(refused) = app.chat(&token, "one more?", None).await else {
        panic!("the next turn after a zero budget streamed");
    };
    assert_eq!(refused.status, 402, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "budget_exceeded");
    assert_eq!(refused.body["error"]["limit"], 0.0);
    let stored_after = app.history(&token, "?limit=100").await.body["messages"]
        .as_array()
        .map(Vec::len);
    assert_eq!(stored_before, stored_after, "a refused turn stores nothing");
    let health = app.account_health(&token).await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(
        health.body["status"], "degraded",
        "no budget left: {}",
        health.body
    );
    assert_eq!(health.body["checks"]["budget"]["ok"], false);
    assert_eq!(health.body["checks"]["letta_agent"]["ok"], true);
    assert_eq!(health.body["checks"]["litellm_user"]["ok"], true);
    assert_eq!(health.body["checks"]["provisioning"]["ok"], true);

    // Raised again, the budget lets the user chat (once LiteLLM's cache has the new cap too).
    let raised = app.set_budget(&token, json!({"max_budget": 5})).await;
    assert_eq!(raised.status, 200, "{}", raised.body);
    let streamed = eventually(
        "chat allowed again after raising the budget",
        std::time::Duration::from_secs(120),
        || {
            let app = &app;
            let token = token.clone();
            async move {
                match app.chat(&token, "back again", None).await {
                    ChatReply::Stream(events) => Some(events),
                    ChatReply::Json(reply) => {
                        assert_eq!(reply.status, 402, "{}", reply.body);
                        None
                    }
                }
            }
        },
    )
    .await;
    assert_eq!(
        streamed.last().map(|e| e.name.as_str()),
        Some("done"),
        "{:?}",
        streamed.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn agent_status_memory_and_archival_search() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Mem").await;
    let status = app.agent_status(&token).await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body["state"], "ready");
    assert_eq!(status.body["responding"], true);
    assert_eq!(status.body["message_count"], 0);
    assert_eq!(status.body["archival_passages"], 0);
    let labels: Vec<&str> = status.body["memory_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["label"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"human") && labels.contains(&"persona"),
        "{labels:?}"
    );

    let human = app.human_block(&token).await;
    assert!(human["limit"].as_u64().unwrap() > 0 && human["description"].as_str().is_some());

    // Written through the API, used by the agent.
    let write = app
        .write_memory(
            &token,
            json!({"label": "human", "value": "The user's name is Quinn Vale."}),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.body);
    let events = app.chat(&token, "what's my name?", None).await.events();
    assert_eq!(text_of(&events), "Your name is Quinn Vale.");

    let added = app.write_memory(&token, json!({"archival": {"text": "Quinn keeps three beehives on the roof.", "tags": ["hobby"]}})).await;
    assert_eq!(added.status, 200, "{}", added.body);
    app.write_memory(
        &token,
        json!({"archival": {"text": "The weather in Lisbon was sunny."}}),
    )
    .await;
    let found = app.archival(&token, "?query=beehives%20roof&limit=1").await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(
        found.body["memories"][0]["text"],
        "Quinn keeps three beehives on the roof."
    );
    let listed = app.archival(&token, "").await;
    assert_eq!(listed.body["memories"].as_array().unwrap().len(), 2);
    let status = app.agent_status(&token).await;
    assert_eq!(status.body["archival_passages"], 2);
    assert_eq!(status.body["message_count"], 2);
    assert!(status.body["last_activity"].as_str().is_some());

    for (body, field) in [
        (json!({"label": "system", "value": "x"}), "label"),
        (
            json!({"label": "human", "value": "x".repeat(5001)}),
            "value",
        ),
        (json!({"label": "human"}), "value"),
        (json!({"archival": {"text": "  "}}), "archival.text"),
        (
            json!({"label": "human", "value": "x", "archival": {"text": "y"}}),
            "body",
        ),
    ] {
        let reply = app.write_memory(&token, body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
        assert_eq!(reply.body["error"]["field"], field, "{body}");
    }
    let reply = app.archival(&token, "?limit=0").await;
    assert_eq!(reply.status, 422);
}

/// A user whose agent knows their name (Rory Finch) and holds one archival memory; returns
/// the user and the agent's id.
async fn remembered_user(app: &TestApp) -> (TestUser, String) {
    let user = app.ready_user("Resetter").await;
    let token = &user.token;
    let told = app
        .chat(token, "my name is Rory Finch", None)
        .await
        .events();
    assert!(names(&told).contains(&"tool_call"));
    assert_eq!(names(&told).last(), Some(&"done"));
    let added = app
        .write_memory(token, json!({"archival": {"text": "Rory likes kites."}}))
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let status = app.agent_status(token).await;
    assert_eq!(status.status, 200, "{}", status.body);
    let first_agent = status.body["agent_id"].as_str().unwrap().to_string();
    (user, first_agent)
}

#[tokio::test]
async fn reset_messages_clears_the_context_and_keeps_memory_and_history() {
    let app = spawn_app().await;
    let (TestUser { token, .. }, first_agent) = remembered_user(&app).await;
    let reset = app.reset(&token, json!({"scope": "messages"})).await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    let status = app.agent_status(&token).await;
    assert_eq!(status.body["agent_id"], first_agent.as_str());
    assert!(
        status.body["context_messages"].as_u64().unwrap() <= 1,
        "the context is cleared: {}",
        status.body
    );
    assert_eq!(status.body["archival_passages"], 1);
    assert_eq!(
        text_of(&app.chat(&token, "What is my name?", None).await.events()),
        "Your name is Rory Finch."
    );
    assert!(
        app.history(&token, "").await.body["messages"]
            .as_array()
            .unwrap()
            .len()
            >= 4,
        "history is kept"
    );
}

#[tokio::test]
async fn reset_all_makes_a_new_agent_and_deletes_the_old_one_with_its_archive() {
    let app = spawn_app().await;
    let (
        TestUser {
            token, id: user_id, ..
        },
        first_agent,
    ) = remembered_user(&app).await;
    let archives = app
        .state
        .letta
        .agent_archive_ids(&first_agent)
        .await
        .unwrap();
    assert!(!archives.is_empty(), "the old agent has an archive to lose");
    let usage_before = app.usage(&token, "").await;
    assert_eq!(usage_before.status, 200, "{}", usage_before.body);
    assert!(
        usage_before.body["totals"]["messages"].as_u64().unwrap() >= 1,
        "{}",
        usage_before.body
    );
    let reset = app
        .reset(&token, json!({"scope": "all", "delete_history": true}))
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    let new_agent = reset.body["agent_id"].as_str().unwrap().to_string();
    assert_ne!(new_agent, first_agent);
    assert!(
        app.state
            .letta
            .get_agent(&first_agent)
            .await
            .unwrap()
            .is_none(),
        "the old agent is gone"
    );
    for archive in archives {
        let get = app.letta(Method::GET, &format!("/v1/archives/{archive}"));
        assert_eq!(
            get.send().await.unwrap().status(),
            404,
            "the old archive is gone"
        );
    }
    assert_eq!(app.history(&token, "").await.body["messages"], json!([]));
    // Usage is billing history: `delete_history` keeps it.
    let usage_after = app.usage(&token, "").await;
    assert_eq!(usage_after.status, 200, "{}", usage_after.body);
    assert_eq!(usage_after.body["totals"], usage_before.body["totals"]);
    let status = app.agent_status(&token).await;
    assert_eq!(status.body["agent_id"], new_agent.as_str());
    assert_eq!(status.body["archival_passages"], 0);
    assert_eq!(
        text_of(&app.chat(&token, "What is my name?", None).await.events()),
        "Your name is Resetter."
    );
    assert_eq!(footprint(&app, &user_id).await.letta_agents, 1);
    // Again: still exactly one agent.
    let again = app.reset(&token, json!({"scope": "all"})).await;
    assert_eq!(again.status, 200);
    assert_eq!(footprint(&app, &user_id).await.letta_agents, 1);
    let bad = app.reset(&token, json!({"scope": "everything"})).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["error"]["field"], "scope");
}

#[tokio::test]
async fn a_second_user_sees_none_of_the_first_users_data() {
    let app = spawn_app().await;
    let TestUser { token: alice, .. } = app.ready_user("Alice").await;
    let TestUser { token: bob, .. } = app.ready_user("Bob").await;
    app.write_memory(
        &alice,
        json!({"archival": {"text": "Alice's secret recipe uses saffron."}}),
    )
    .await;
    app.write_memory(
        &alice,
        json!({"label": "human", "value": "Name: Alice. Allergic to nuts."}),
    )
    .await;
    app.chat(&alice, "alice was here", None).await.events();

    let memory = app.memory(&bob).await.body.to_string();
    assert!(!memory.contains("Alice"), "{memory}");
    let hers = app.archival(&alice, "?query=saffron").await;
    assert_eq!(
        hers.body["memories"][0]["text"],
        "Alice's secret recipe uses saffron."
    );
    let his = app.archival(&bob, "?query=saffron").await;
    assert_eq!(his.body["memories"], json!([]), "{}", his.body);
    assert_eq!(app.history(&bob, "").await.body["messages"], json!([]));
    let usage = app.usage(&bob, "").await;
    assert_eq!(usage.body["totals"]["messages"], 0);
    let alice_agent = app.agent_status(&alice).await.body["agent_id"].clone();
    assert_ne!(app.agent_status(&bob).await.body["agent_id"], alice_agent);
    // Nothing in any request names a user: ids in bodies or queries are refused, not obeyed.
    let reply = app.archival(&bob, "?user_id=x").await;
    assert_eq!(reply.status, 422);
}

#[tokio::test]
async fn every_user_and_agent_endpoint_requires_a_token() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/api/v1/user/profile"),
        (Method::PATCH, "/api/v1/user/profile"),
        (Method::GET, "/api/v1/user/usage"),
        (Method::GET, "/api/v1/user/budget"),
        (Method::POST, "/api/v1/user/budget"),
        (Method::GET, "/api/v1/user/health"),
        (Method::GET, "/api/v1/agent/status"),
        (Method::GET, "/api/v1/agent/memory"),
        (Method::POST, "/api/v1/agent/memory"),
        (Method::GET, "/api/v1/agent/memory/archival"),
        (Method::POST, "/api/v1/agent/reset"),
    ] {
        let reply = app.call(method.clone(), path, None, Some(json!({}))).await;
        assert_eq!(reply.status, 401, "{method} {path}");
        assert_eq!(reply.body["error"]["code"], "unauthorized");
    }
}

/// The agent's archival memories as `GET /agent/status` counts them.
async fn counted(app: &TestApp, token: &str) -> u64 {
    let s = app.agent_status(token).await;
    assert_eq!(s.status, 200, "{}", s.body);
    s.body["archival_passages"].as_u64().unwrap()
}

/// Letta's own count of the agent's archival memories, through its API.
async fn letta_passages(app: &TestApp, token: &str) -> usize {
    let agent = app.agent_id(token).await;
    let request = app.letta(
        Method::GET,
        &format!("/v1/agents/{agent}/archival-memory?limit=1000"),
    );
    let passages: Vec<Value> = request.send().await.unwrap().json().await.unwrap();
    passages.len()
}

#[tokio::test]
async fn archival_memory_is_capped_before_letta_and_counted_without_listing_it() {
    let app = spawn_app_configured(|c| c.letta.archival_max_passages = 3).await;
    let TestUser { token, .. } = app.ready_user("Capped").await;
    let add = |text: &str| app.write_memory(&token, json!({"archival": {"text": text}}));
    for text in ["Zed plays the oboe.", "Zed lives in Porto."] {
        let reply = add(text).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // What the agent saves itself in a chat counts too.
    let events = app
        .chat(&token, "remember that Zed drinks green tea", None)
        .await
        .events();
    assert!(
        events
            .iter()
            .any(|e| e.name == "tool_call" && e.data["name"] == "archival_memory_insert"),
        "{events:?}"
    );
    assert_eq!(names(&events).last(), Some(&"done"));
    assert_eq!(counted(&app, &token).await, 3);
    assert_eq!(letta_passages(&app, &token).await, 3);

    let refused = add("Zed once sailed to Madeira.").await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "archival_memory_full");
    assert_eq!(
        letta_passages(&app, &token).await,
        3,
        "Letta was not called"
    );

    // Deleting one makes room for one.
    let listed = app.archival(&token, "").await;
    let id = listed.body["memories"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/agent/memory/archival/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(counted(&app, &token).await, 2);
    assert_eq!(add("Zed once sailed to Madeira.").await.status, 200);
    assert_eq!(add("One too many.").await.status, 409);
    assert_eq!(letta_passages(&app, &token).await, 3);

    // A full reset starts an empty archive and an empty count.
    let reset = app.reset(&token, json!({"scope": "all"})).await;
    assert!(reset.status.is_success(), "{}", reset.body);
    assert_eq!(counted(&app, &token).await, 0);
    assert_eq!(add("A fresh start.").await.status, 200);
}
