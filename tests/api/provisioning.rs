//! Provisioning that stopped part-way, as DynamoDB records it: a run holding the lease makes
//! others wait (409 `provisioning`); once free, the next request of any function finishes the
//! job, finding what earlier tries made but did not record (no duplicates), rotating the key
//! they may have left behind.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use crate::helpers::*;

/// Moves the user's profile back to `state`, as a run that stopped there leaves it; with
/// `held_by_another_run`, its lease is held for a minute by a run that is not this test's.
async fn rewind(app: &TestApp, user_id: &str, state: &str, held_by_another_run: bool) {
    let mut update = dynamodb(&app.state.config)
        .await
        .update_item()
        .table_name(app.state.store.table_name())
        .key("pk", AttributeValue::S(format!("USER#{user_id}")))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":state", AttributeValue::S(state.into()));
    update = if held_by_another_run {
        update
            .update_expression("SET #state = :state, lock_until = :until, lock_owner = :owner")
            .expression_attribute_values(":until", AttributeValue::N((now() + 60).to_string()))
            .expression_attribute_values(":owner", AttributeValue::S("another-run".into()))
    } else {
        update.update_expression("SET #state = :state REMOVE lock_until, lock_owner")
    };
    update.send().await.expect("rewind the profile");
}

fn one_of_everything() -> Footprint {
    Footprint {
        supabase_user: true,
        litellm_user: true,
        litellm_keys: 1,
        letta_providers: 1,
        letta_agents: 1,
        letta_archives: 0,
        dynamodb_items: 1,
    }
}

#[tokio::test]
async fn a_held_lease_is_409_and_any_function_resumes_without_duplicates() {
    let app = spawn_app().await;
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Halfway").await;
    let agent_before = app.me(&token).await.body["profile"]["agent_id"].clone();

    // Every step made its thing, but the record says `signed_up` and another run holds the lease.
    rewind(&app, &user_id, "signed_up", true).await;
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/agent/status"),
        (reqwest::Method::POST, "/api/v1/chat/message"),
        (reqwest::Method::POST, "/api/v1/user/budget"),
    ] {
        let body = match path {
            "/api/v1/chat/message" => Some(json!({"content": "hello"})),
            "/api/v1/user/budget" => Some(json!({"max_budget": 5})),
            _ => None,
        };
        let reply = app.call(method, path, Some(&token), body).await;
        assert_eq!(reply.status, 409, "{path}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], "provisioning", "{path}");
    }

    // The lease is free: a user-function request resumes from `signed_up`. The LiteLLM user
    // exists ("already exists"), the provider gets a new key and the old one is deleted, the
    // agent is found rather than made again.
    rewind(&app, &user_id, "signed_up", false).await;
    let reply = app.set_budget(&token, json!({"max_budget": 5})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let me = app.me(&token).await;
    assert_eq!(me.body["profile"]["state"], "ready");
    assert_eq!(me.body["profile"]["agent_id"], agent_before);
    assert_eq!(footprint(&app, &user_id).await, one_of_everything());
    // The rotated key is the one the agent bills to: a turn completes.
    let events = app.chat(&token, "still there?", None).await.events();
    assert_eq!(
        text_of(&events),
        "echo: still there?",
        "{:?}",
        names(&events)
    );

    // An agent-function request resumes from the provider step.
    rewind(&app, &user_id, "letta_provider", false).await;
    let status = app.agent_status(&token).await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body["state"], "ready");
    assert_eq!(status.body["agent_id"], agent_before);
    let after = footprint(&app, &user_id).await;
    assert_eq!(
        Footprint {
            dynamodb_items: 1, // plus the turn's messages, conversation and usage
            ..after
        },
        one_of_everything()
    );
}
