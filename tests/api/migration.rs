//! Existing users' agents move to the configured architecture on their next request, keeping
//! their memory: a user whose agent a previous version made (`memgpt_v2_agent`) sends a message
//! and finds the account on `letta_v1_agent` with its blocks and archival passages.

use serde_json::json;
use shared::domain::UserId;

use crate::helpers::*;

/// The previous version (agents replied through `send_message`) with a user who told it
/// `told` and gave it `memory` as a long-term memory; the app and the user's token and id.
pub(crate) async fn previous_version_user(
    name: &str,
    told: &str,
    memory: &str,
) -> (TestApp, String, String) {
    let old = spawn_app_configured(|c| c.letta.agent_type = "memgpt_v2_agent".into()).await;
    let TestUser {
        token, id: user_id, ..
    } = old.ready_user(name).await;
    let told = old.chat(&token, told, None).await.events();
    assert_eq!(names(&told).last(), Some(&"done"), "{:?}", names(&told));
    let added = old
        .write_memory(&token, json!({"archival": {"text": memory}}))
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    (old, token, user_id)
}

#[tokio::test]
async fn an_old_type_agent_moves_to_the_new_type_with_its_memory() {
    let (old, token, user_id) = previous_version_user(
        "Mira",
        "my name is Mira Stone",
        "Mira grows tomatoes on her balcony.",
    )
    .await;
    let user = UserId::parse(&user_id).unwrap();
    let before = old.state.store.get_profile(&user).await.unwrap().unwrap();
    let old_agent = before.letta_agent_id.clone().unwrap();
    let agent = old
        .state
        .letta
        .get_agent(&old_agent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(agent.agent_type.as_deref(), Some("memgpt_v2_agent"));
    drop(old);

    // This version: the next message moves the agent first, then is answered by the new one.
    let app = spawn_app().await;
    assert_eq!(app.state.config.letta.agent_type, "letta_v1_agent");
    let asked = app.chat(&token, "What is my name?", None).await.events();
    assert_eq!(text_of(&asked), "Your name is Mira Stone.");
    let after = app.state.store.get_profile(&user).await.unwrap().unwrap();
    let new_agent = after.letta_agent_id.clone().unwrap();
    assert_ne!(new_agent, old_agent);
    assert_eq!(after.letta_agent_type.as_deref(), Some("letta_v1_agent"));
    let agent = app
        .state
        .letta
        .get_agent(&new_agent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(agent.agent_type.as_deref(), Some("letta_v1_agent"));
    assert!(
        app.state
            .letta
            .get_agent(&old_agent)
            .await
            .unwrap()
            .is_none(),
        "the old agent is deleted"
    );

    // Memory blocks and archival passages came along.
    let human = app.human_block(&token).await;
    assert!(
        human["value"].as_str().unwrap().contains("Mira Stone"),
        "{human}"
    );
    let found = app.archival(&token, "?query=tomatoes%20balcony").await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(
        found.body["memories"][0]["text"],
        "Mira grows tomatoes on her balcony."
    );
    // Exactly one agent is left, and nothing else changed.
    let footprint = footprint(&app, &user_id).await;
    assert_eq!(footprint.letta_agents, 1, "{footprint:?}");
    assert_eq!(footprint.letta_providers, 1, "{footprint:?}");

    // The move happens once: the next turn goes straight to the new agent.
    let again = app.chat(&token, "hello again", None).await.events();
    assert_eq!(text_of(&again), "echo: hello again");
    let same = app.state.store.get_profile(&user).await.unwrap().unwrap();
    assert_eq!(same.letta_agent_id.as_deref(), Some(new_agent.as_str()));
}
