//! Conversations, model choice with fallback, archival memory deletion and paging, and the data
//! export, against the real stack: two users with two conversations each, memory shared across
//! one user's conversations and nothing seen across users.

use std::time::Duration;

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

/// The agent's conversations as Letta lists them (plain HTTP, not the backend's client).
async fn letta_conversations(app: &TestApp, agent_id: &str) -> Vec<String> {
    let letta = &app.state.config.letta;
    let mut request = app
        .http
        .get(format!("{}/v1/conversations/", letta.base_url))
        .query(&[("agent_id", agent_id)]);
    if let Some(password) = &letta.api_key {
        request = request.bearer_auth(password.expose());
    }
    let listed: Vec<Value> = request.send().await.unwrap().json().await.unwrap();
    listed
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn event<'a>(events: &'a [SseEvent], name: &str) -> &'a SseEvent {
    events
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

/// A new conversation's id.
async fn new_conversation_id(app: &TestApp, token: &str, body: Option<Value>) -> String {
    let made = app.new_conversation(token, body).await;
    made["id"].as_str().unwrap().to_string()
}

/// The contents of a conversation's stored history, newest first.
async fn history_texts(app: &TestApp, token: &str, id: &str) -> Vec<String> {
    let page = app.history(token, &format!("?conversation_id={id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn conversations_share_memory_and_keep_their_own_history() {
    let app = spawn_app().await;
    let TestUser { token: ada, .. } = app.ready_user("Ada").await;
    let work = app
        .new_conversation(&ada, Some(json!({"title": "  Work  "})))
        .await;
    assert_eq!(work["title"], "Work");
    assert_eq!(work["title_by_user"], true);
    assert_eq!(work["message_count"], 0);
    let work_id = work["id"].as_str().unwrap().to_string();
    let trip_id = new_conversation_id(&app, &ada, None).await;

    // A fact told in one conversation is known in another (one agent, one memory), also in
    // one whose prompt Letta compiled before the fact was told.
    let hello = app.chat_in(&ada, &trip_id, "hello there").await.events();
    assert_eq!(text_of(&hello), "echo: hello there");
    let told = app
        .chat_in(&ada, &work_id, "my name is Grace Hopper.")
        .await
        .events();
    assert_eq!(
        event(&told, "start").data["conversation_id"],
        work_id.as_str()
    );
    assert!(names(&told).contains(&"done"), "{told:?}");
    let asked = app
        .chat_in(&ada, &trip_id, "What is my name?")
        .await
        .events();
    assert_eq!(text_of(&asked), "Your name is Grace Hopper.");
    // The default conversation (no id) knows it too.
    let default = app.chat(&ada, "What is my name?", None).await.events();
    assert_eq!(event(&default, "start").data["conversation_id"], "default");
    assert_eq!(text_of(&default), "Your name is Grace Hopper.");

    // The first exchange titles an untitled conversation (the scripted model's title, billed
    // to the user); a title the user gave stays.
    let title = event(&hello, "title");
    assert_eq!(title.data["conversation_id"], trip_id.as_str());
    assert_eq!(title.data["title"], "Chat: hello there");
    assert!(!names(&told).contains(&"title"), "{told:?}");
    assert!(!names(&asked).contains(&"title"), "{asked:?}");

    // Each conversation keeps its own history.
    let work_history = history_texts(&app, &ada, &work_id).await;
    assert_eq!(work_history.len(), 2);
    assert_eq!(work_history[1], "my name is Grace Hopper.");
    assert_eq!(
        history_texts(&app, &ada, &trip_id).await,
        [
            "Your name is Grace Hopper.",
            "What is my name?",
            "echo: hello there",
            "hello there"
        ]
    );
    assert_eq!(history_texts(&app, &ada, "default").await.len(), 2);
}

#[tokio::test]
async fn conversations_are_listed_newest_first_and_another_users_are_404_everywhere() {
    let app = spawn_app().await;
    let TestUser { token: ada, .. } = app.ready_user("Ada").await;
    let TestUser { token: bob, .. } = app.ready_user("Bob").await;
    let work_id = new_conversation_id(&app, &ada, Some(json!({"title": "Work"}))).await;
    let trip_id = new_conversation_id(&app, &ada, None).await;
    let bob_id = new_conversation_id(&app, &bob, None).await;
    app.chat_in(&ada, &trip_id, "hello there").await.events();
    app.chat(&ada, "hello again", None).await.events();

    // The list: newest activity first, counts, pages with a cursor bound to the user.
    let list = app.conversations(&ada, "?limit=2").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let ids: Vec<&str> = list.body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["default", trip_id.as_str()]);
    assert_eq!(list.body["conversations"][1]["message_count"], 2);
    let cursor = list.body["next_cursor"].as_str().expect("a next page");
    let rest = app.conversations(&ada, &format!("?cursor={cursor}")).await;
    assert_eq!(rest.body["conversations"][0]["id"], work_id.as_str());
    assert_eq!(rest.body["next_cursor"], Value::Null);
    let stolen = app.conversations(&bob, &format!("?cursor={cursor}")).await;
    assert_eq!(stolen.status, 400, "{}", stolen.body);

    // Another user's conversation is 404 everywhere, never a leak.
    for reply in [
        app.conversation(&ada, &bob_id).await,
        app.delete_conversation(&ada, &bob_id).await,
        app.history(&ada, &format!("?conversation_id={bob_id}"))
            .await,
        app.conversation(&ada, "not-an-id").await,
        app.rename_conversation(&ada, &bob_id, "mine now").await,
        app.chat_in(&ada, &bob_id, "hello").await.json(),
    ] {
        assert_eq!(reply.status, 404, "{}", reply.body);
    }
    let bobs = app.conversations(&bob, "").await;
    assert_eq!(bobs.body["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(bobs.body["conversations"][0]["message_count"], 0);
}

#[tokio::test]
async fn a_conversation_is_renamed_deleted_with_its_history_and_a_reset_leaves_none() {
    let app = spawn_app().await;
    let TestUser { token: ada, .. } = app.ready_user("Ada").await;
    let trip_id = new_conversation_id(&app, &ada, None).await;
    app.chat_in(&ada, &trip_id, "hello there").await.events();
    let work_id = new_conversation_id(&app, &ada, None).await;
    app.chat_in(&ada, &work_id, "to work").await.events();

    let renamed = app.rename_conversation(&ada, &trip_id, "Trip").await;
    assert_eq!(renamed.body["title"], "Trip", "{}", renamed.body);
    let bad = app.rename_conversation(&ada, &trip_id, "").await;
    assert_eq!(bad.status, 422, "{}", bad.body);

    // Deleted: the conversation, its stored history and its Letta conversation go.
    let agent_id = app.agent_id(&ada).await;
    assert_eq!(letta_conversations(&app, &agent_id).await.len(), 2);
    let deleted = app.delete_conversation(&ada, &trip_id).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["messages_deleted"], 2);
    assert_eq!(
        letta_conversations(&app, &agent_id).await.len(),
        1,
        "its Letta conversation is gone too"
    );
    assert_eq!(app.conversation(&ada, &trip_id).await.status, 404);
    let gone = app
        .history(&ada, &format!("?conversation_id={trip_id}"))
        .await;
    assert_eq!(gone.status, 404);
    let default = app.delete_conversation(&ada, "default").await;
    assert_eq!(default.status, 409, "{}", default.body);

    // A reset that deletes the history leaves no conversation, here or in Letta.
    let reset = app
        .reset(&ada, json!({"scope": "messages", "delete_history": true}))
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    let list = app.conversations(&ada, "").await;
    assert_eq!(list.body["conversations"], json!([]), "{}", list.body);
    assert!(letta_conversations(&app, &agent_id).await.is_empty());
}

#[tokio::test]
async fn two_conversations_of_one_user_stream_at_the_same_time() {
    let app = spawn_app().await;
    let TestUser { token, .. } = app.ready_user("Parallel").await;
    let first = app.new_conversation(&token, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let slow = "/slow 60 one two three four five six";
    let (a, b, c) = tokio::join!(
        app.chat_in(&token, &first, slow),
        app.chat_in(&token, "default", slow),
        async {
            // The same conversation twice at once: the second waits its turn (409).
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.chat_in(&token, &first, "hello").await
        }
    );
    for events in [a.events(), b.events()] {
        assert_eq!(text_of(&events), "echo: one two three four five six");
        assert!(names(&events).contains(&"done"), "{events:?}");
    }
    let busy = c.json();
    assert_eq!(busy.status, 409, "{}", busy.body);
    assert_eq!(busy.body["error"]["code"], "turn_in_progress");
}

#[tokio::test]
async fn conversations_are_capped_per_user_and_a_deletion_frees_a_place() {
    let app = spawn_app_configured(|c| c.rates.conversations_max = 3).await;
    let TestUser { token, .. } = app.ready_user("Capped").await;
    // The default conversation, made by its first message, is not counted.
    let events = app.chat_in(&token, "default", "hello").await.events();
    assert_eq!(text_of(&events), "echo: hello");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.new_conversation(&token, None).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let create = || app.call(Method::POST, "/api/v1/conversations", Some(&token), None);
    let refused = create().await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "conversation_limit");
    let listed = app.conversations(&token, "?limit=100").await;
    assert_eq!(
        listed.body["conversations"].as_array().unwrap().len(),
        4,
        "{}",
        listed.body
    );

    // A deletion counts off in the same write: one more may be made, and no more.
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/conversations/{}", ids[0]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(create().await.status, 201);
    assert_eq!(create().await.status, 409);

    // A reset that deletes the history starts the count again.
    let reset = app
        .reset(&token, json!({"scope": "messages", "delete_history": true}))
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    for _ in 0..3 {
        assert_eq!(create().await.status, 201);
    }
    assert_eq!(create().await.status, 409);
}

#[tokio::test]
async fn a_user_has_at_most_three_turns_running_across_conversations() {
    let app = spawn_app().await;
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Busy").await;
    let mut ids = vec!["default".to_string()];
    for _ in 0..3 {
        ids.push(
            app.new_conversation(&token, None).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let slow = "/slow 150 one two three four five six";
    let (a, b, c, (refused, repeated)) = tokio::join!(
        // ids[0] is the default conversation: this one carries an Idempotency-Key.
        app.chat(&token, slow, Some("busy-key")),
        app.chat_in(&token, &ids[1], slow),
        app.chat_in(&token, &ids[2], slow),
        async {
            // A fourth conversation while three turns run: refused before anything is stored.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let refused = app.chat_in(&token, &ids[3], "hello").await;
            // A retry of a running turn is answered as any retry is, not as a fourth turn.
            let repeated = app.chat(&token, slow, Some("busy-key")).await;
            (refused, repeated)
        }
    );
    let repeated = repeated.json();
    assert_eq!(repeated.status, 409, "{}", repeated.body);
    assert_eq!(repeated.body["error"]["code"], "turn_in_progress");
    let ended: Vec<Vec<SseEvent>> = vec![a.events(), b.events(), c.events()];
    for events in &ended {
        assert_eq!(text_of(events), "echo: one two three four five six");
    }
    let refused = refused.json();
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "too_many_turns");
    let history = app
        .get(
            &format!("/api/v1/chat/history?conversation_id={}", ids[3]),
            &token,
        )
        .await;
    assert_eq!(history.body["messages"], json!([]), "{}", history.body);

    // The three ended and released their slots: the fourth conversation gets its turn.
    let later = app.chat_in(&token, &ids[3], "hello").await.events();
    assert_eq!(text_of(&later), "echo: hello");

    // Turns whose end could not release their slots (DynamoDB failing at that moment) do not
    // lock the user out: a slot whose turn has ended is taken over.
    let table = dynamodb(&app.state.config).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (slot, (events, conversation)) in ended.iter().zip(&ids).enumerate() {
        let message = event(events, "start").data["user_message_id"].clone();
        let text = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_string());
        let number = |v: i64| aws_sdk_dynamodb::types::AttributeValue::N(v.to_string());
        table
            .put_item()
            .table_name(app.state.store.table_name())
            .item("pk", text(&format!("USER#{user_id}")))
            .item("sk", text(&format!("TURNSLOT#{slot}")))
            .item("message_id", text(message.as_str().unwrap()))
            .item("conversation_id", text(conversation))
            .item("locked_at", number(now))
            .item("ttl", number(now + 300))
            .send()
            .await
            .unwrap();
    }
    let after = app.chat_in(&token, &ids[3], "still here").await.events();
    assert_eq!(text_of(&after), "echo: still here");
}

#[tokio::test]
async fn a_model_that_keeps_calling_tools_stops_at_the_step_limit() {
    let app = spawn_app_configured(|c| c.letta.max_steps = 3).await;
    let TestUser { token, .. } = app.ready_user("Runaway").await;
    let conversation = app
        .new_conversation(&token, Some(json!({"title": "Loop"})))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let events = app
        .chat_in(&token, &conversation, "/loop forever")
        .await
        .events();
    let done = event(&events, "done");
    assert_eq!(done.data["stop_reason"], "max_steps", "{events:?}");
    // Three steps (one LLM call and one search each), and not one more.
    let searches = names(&events).iter().filter(|n| **n == "tool_call").count();
    assert_eq!(searches, 3, "{events:?}");
}

#[tokio::test]
async fn models_can_be_chosen_and_a_failing_model_falls_back_billed_to_the_user() {
    let app = spawn_app().await;
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Chooser").await;
    let models = app.models(&token).await;
    assert_eq!(models.status, 200, "{}", models.body);
    assert_eq!(models.body["default"], "gpt-4");
    let listed: Vec<&Value> = models.body["models"].as_array().unwrap().iter().collect();
    let mini = listed
        .iter()
        .find(|m| m["name"] == "gpt-4o-mini")
        .expect("gpt-4o-mini listed");
    assert_eq!(mini["input_price_per_1m_tokens"], 0.15);
    assert_eq!(mini["output_price_per_1m_tokens"], 0.6);
    assert_eq!(mini["context_window"], 128000);
    assert!(
        !listed.iter().any(|m| m["name"] == "text-embedding-3-small"),
        "embedding models are no choice"
    );

    // gpt-4 fails; LiteLLM's fallback (gpt-4o-mini) answers, on the user's key, and the turn
    // is priced as the model that answered. (A named conversation, so no title call is billed
    // besides the turn.)
    let named = app
        .call(
            Method::PATCH,
            "/api/v1/conversations/default",
            Some(&token),
            Some(json!({"title": "Models"})),
        )
        .await;
    assert_eq!(named.status, 200, "{}", named.body);
    assert_eq!(named.body["title"], "Models");
    let spend_before = litellm_spend(&app, &user_id).await;
    let events = app
        .chat(&token, "/fail-on gpt-4 429 hello fallback", None)
        .await
        .events();
    assert_eq!(text_of(&events), "echo: hello fallback");
    let usage = &event(&events, "usage").data;
    assert_eq!(usage["model"], "gpt-4o-mini", "{usage}");
    let expected = usage["prompt_tokens"].as_f64().unwrap() * 0.15e-6
        + usage["completion_tokens"].as_f64().unwrap() * 0.6e-6;
    let cost = usage["cost_usd"].as_f64().unwrap();
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    let spend = eventually(
        "LiteLLM books the fallback",
        Duration::from_secs(30),
        || {
            let app = &app;
            let user_id = user_id.clone();
            async move {
                let spend = litellm_spend(app, &user_id).await;
                (spend > spend_before).then_some(spend)
            }
        },
    )
    .await;
    assert!(
        (spend - spend_before - cost).abs() < 1e-6,
        "LiteLLM booked {} for a turn we priced {cost}",
        spend - spend_before
    );

    // The user chooses gpt-4o-mini: the agent switches, still on the user's own provider.
    let chosen = app.choose_model(&token, "gpt-4o-mini").await;
    assert_eq!(chosen.status, 200, "{}", chosen.body);
    assert_eq!(chosen.body["profile"]["model"], "gpt-4o-mini");
    let agent_id = chosen.body["profile"]["agent_id"].as_str().unwrap();
    let agent = app.state.letta.get_agent(agent_id).await.unwrap().unwrap();
    assert_eq!(agent.llm_config["model"], "gpt-4o-mini");
    assert_eq!(
        agent.llm_config["provider_name"],
        format!("user-{user_id}").as_str()
    );
    let events = app.chat(&token, "hello small model", None).await.events();
    assert_eq!(event(&events, "start").data["model"], "gpt-4o-mini");
    assert_eq!(event(&events, "usage").data["model"], "gpt-4o-mini");

    let unknown = app.choose_model(&token, "gpt-5-imaginary").await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert_eq!(unknown.body["error"]["field"], "model");
}

async fn litellm_spend(app: &TestApp, user_id: &str) -> f64 {
    app.state
        .litellm
        .user_info(user_id)
        .await
        .unwrap()
        .and_then(|i| i.user_info)
        .map_or(0.0, |u| u.spend)
}

#[tokio::test]
async fn the_operator_can_narrow_the_models() {
    let app = spawn_app_configured(|c| c.letta.allowed_models = vec!["gpt-4".into()]).await;
    let TestUser { token, .. } = app.ready_user("Narrow").await;
    assert_eq!(app.model_names(&token).await, ["gpt-4"]);
    let refused = app.choose_model(&token, "gpt-4o-mini").await;
    assert_eq!(refused.status, 422, "{}", refused.body);
}

#[tokio::test]
async fn an_unpriced_model_is_neither_a_choice_nor_the_default() {
    // LiteLLM serves house-model without a price: its calls would cost 0 and no budget would
    // stop them. Listing it in ALLOWED_MODELS does not make it a choice.
    let app = spawn_app_configured(|c| {
        c.letta.allowed_models = vec!["gpt-4".into(), "house-model".into()]
    })
    .await;
    let served =
        shared::clients::models::parse_model_info(&app.state.litellm.model_info().await.unwrap());
    assert!(
        served
            .iter()
            .any(|m| m.name == "house-model" && !m.priced()),
        "{served:?}"
    );
    let TestUser { token, .. } = app.ready_user("Unpriced").await;
    assert_eq!(app.model_names(&token).await, ["gpt-4"]);
    let refused = app.choose_model(&token, "house-model").await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["error"]["field"], "model");

    // As the default, the function refuses to start, naming the variable.
    let mut config = stack_config();
    config.letta.model = "house-model".into();
    let refused = shared::AppState::start(config)
        .await
        .err()
        .expect("refused");
    assert!(
        refused
            .to_string()
            .contains("LETTA_MODEL (house-model) has no price"),
        "{refused}"
    );
    let mut config = stack_config();
    config.letta.model = "gpt-5-imaginary".into();
    let refused = shared::AppState::start(config)
        .await
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("not a model LiteLLM serves"),
        "{refused}"
    );
    assert!(shared::AppState::start(stack_config()).await.is_ok());
}

#[tokio::test]
async fn embedded_characters_are_bounded_per_day_and_a_deletion_gives_none_back() {
    let app = spawn_app_configured(|c| c.rates.embedding_chars_per_day = 100).await;
    let TestUser { token, .. } = app.ready_user("Embedder").await;
    let add = |text: String| app.write_memory(&token, json!({"archival": {"text": text}}));
    let (app, token) = (&app, &token);
    let search = |query: String| async move {
        let path = format!("/api/v1/agent/memory/archival?query={query}");
        app.get(&path, token).await
    };
    let first = add("a".repeat(60)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let refused = add("b".repeat(60)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["limit"], "embedding_chars_per_day");
    assert!(refused.headers.contains_key("retry-after"));
    // Deleting the memory gives its characters back to nobody.
    let id = first.body["passages"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/agent/memory/archival/{id}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(add("b".repeat(60)).await.status, 429);
    // Searches embed their query: bounded in length, counted too.
    let long = search("q".repeat(1001)).await;
    assert_eq!(long.status, 422, "{}", long.body);
    assert_eq!(long.body["error"]["field"], "query");
    assert_eq!(search("q".repeat(30)).await.status, 200);
    assert_eq!(search("q".repeat(20)).await.status, 429);

    // The agent's own inserts count as they happen.
    let TestUser { token: other, .. } = app.ready_user("AgentEmbedder").await;
    let fact = "the spare key is under the third flowerpot on the left";
    let events = app
        .chat_in(&other, "default", &format!("remember that {fact}"))
        .await
        .events();
    assert!(names(&events).contains(&"tool_call"), "{events:?}");
    let status = app.agent_status(&other).await;
    assert_eq!(status.body["archival_passages"], 1, "{}", status.body);
    let refused = app
        .write_memory(
            &other,
            json!({"archival": {"text": "c".repeat(100 - fact.len() + 1)}}),
        )
        .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
}

#[tokio::test]
async fn archival_memories_page_and_delete_only_the_users_own() {
    let app = spawn_app().await;
    let TestUser { token: ada, .. } = app.ready_user("Archivist").await;
    let TestUser { token: bob, .. } = app.ready_user("Other").await;
    for i in 0..5 {
        let added = app
            .write_memory(
                &ada,
                json!({"archival": {"text": format!("fact number {i}")}}),
            )
            .await;
        assert_eq!(added.status, 200, "{}", added.body);
    }
    let bob_fact = app
        .write_memory(&bob, json!({"archival": {"text": "bob's secret"}}))
        .await;
    let bob_passage = bob_fact.body["passages"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", bob_fact.body))
        .to_string();

    // Pages of two, newest first, through all five.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let page = app
            .get(&format!("/api/v1/agent/memory/archival{query}"), &ada)
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        for m in page.body["memories"].as_array().unwrap() {
            seen.push(m["text"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..5).rev().map(|i| format!("fact number {i}")).collect();
    assert_eq!(seen, expected);
    let bad = app.archival(&ada, "?cursor=xyz").await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // Bob's passage cannot be deleted with Ada's token, and stays.
    for id in [bob_passage.as_str(), "passage-not-a-uuid", "anything"] {
        let reply = app
            .call(
                Method::DELETE,
                &format!("/api/v1/agent/memory/archival/{id}"),
                Some(&ada),
                None,
            )
            .await;
        assert_eq!(reply.status, 404, "{id}: {}", reply.body);
    }
    let bobs = app.archival(&bob, "").await;
    assert_eq!(bobs.body["memories"][0]["text"], "bob's secret");

    let newest = app.archival(&ada, "?limit=1").await;
    let id = newest.body["memories"][0]["id"].as_str().unwrap();
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/agent/memory/archival/{id}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let left = app.archival(&ada, "?limit=10").await;
    let texts: Vec<&str> = left.body["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 4);
    assert!(!texts.contains(&"fact number 4"), "{texts:?}");
}

#[tokio::test]
async fn the_export_holds_every_message_and_everything_else_the_backend_keeps() {
    let app = spawn_app().await;
    let TestUser {
        email,
        token,
        id: user_id,
        ..
    } = app.ready_user("Exporter").await;
    let TestUser { token: other, .. } = app.ready_user("Someone Else").await;
    app.chat(&other, "not yours", None).await.events();
    let side = app.new_conversation(&token, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut sent = vec![];
    for text in ["first words", "second words"] {
        app.chat(&token, text, None).await.events();
        sent.push(text.to_string());
    }
    app.chat_in(&token, &side, "side words").await.events();
    sent.push("side words".into());
    app.write_memory(&token, json!({"archival": {"text": "exported fact"}}))
        .await;

    let lines = app.export(&token).await;
    let of = |kind: &str| -> Vec<&Value> { lines.iter().filter(|l| l["type"] == kind).collect() };
    assert_eq!(lines[0]["type"], "profile");
    assert_eq!(lines[0]["email"], email.as_str());
    assert_eq!(lines[0]["user_id"], user_id.as_str());
    let messages = of("message");
    for text in &sent {
        assert!(
            messages
                .iter()
                .any(|m| m["role"] == "user" && m["content"] == text.as_str()),
            "{text} missing from the export"
        );
    }
    assert_eq!(messages.len(), 6, "three turns, two messages each");
    assert!(!messages.iter().any(|m| m["content"] == "not yours"));
    assert_eq!(of("conversation").len(), 2);
    assert_eq!(of("usage").len(), 1);
    assert_eq!(of("usage")[0]["messages"], 3);
    assert!(of("memory_block").iter().any(|b| b["label"] == "human"));
    assert_eq!(of("archival_memory")[0]["text"], "exported fact");
    let end = lines.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["counts"]["messages"], 6);
    assert!(lines.iter().all(|l| l.get("pk").is_none()));
    assert!(
        !serde_json::to_string(&lines).unwrap().contains("sk-"),
        "no key material in an export"
    );
}
