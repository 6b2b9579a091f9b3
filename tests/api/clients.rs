//! Each client reaches its real local service (run through `make test`, which starts them).

use std::time::Duration;

use serde_json::{Value, json};
use shared::{
    AppState,
    app::dependency::{DependencyError, Service},
    clients::{
        letta::{Agent, AgentSpec, LettaMessage},
        supabase::{self, SignUp},
    },
    domain::{ConversationId, Message, MessageStatus, Role, UserId},
};

use crate::helpers::{StackGuard, eventually, share_stack, stack_config};

/// The clients on the stack's configuration, with a share of the stack held.
async fn state() -> (AppState, StackGuard) {
    let stack = share_stack().await;
    let state = AppState::new(stack_config()).await;
    shared::store::table::ensure_table(&state.store)
        .await
        .expect("table");
    (state, stack)
}

/// The reply texts among a turn's messages.
fn assistant_texts(messages: &[LettaMessage]) -> Vec<&str> {
    messages
        .iter()
        .filter_map(|m| match m {
            LettaMessage::Assistant { content, .. } => Some(content.as_str()),
            _ => None,
        })
        .collect()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

#[tokio::test]
async fn dynamodb_put_then_get_round_trips_an_item() {
    let (state, _stack) = state().await;
    state.store.health().await.expect("health");
    let user = UserId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    let conversation = ConversationId::generate();
    let mut item = Message::new(
        &conversation,
        &ulid::Ulid::new(),
        Role::Assistant,
        "héllo".into(),
        MessageStatus::Complete,
    );
    item.cost_usd = Some(0.125);
    item.letta_message_ids = vec!["message-1".into(), "message-2".into()];
    state.store.put_message(&user, &item).await.expect("put");
    let back = state
        .store
        .get_message(&user, &conversation, &item.id)
        .await
        .expect("get");
    assert_eq!(
        serde_json::to_value(back.as_ref()).unwrap(),
        serde_json::to_value(Some(&item)).unwrap()
    );
    assert_eq!(
        state.store.delete_user_items(&user).await.expect("delete"),
        1
    );
    assert!(
        state
            .store
            .get_message(&user, &conversation, &item.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn spend_of(state: &AppState, user_id: &str) -> f64 {
    state
        .litellm
        .user_info(user_id)
        .await
        .expect("user info")
        .and_then(|i| i.user_info)
        .map(|u| u.spend)
        .unwrap_or(0.0)
}

#[tokio::test]
async fn litellm_user_key_is_billed_for_its_chat_completion() {
    let (state, _stack) = state().await;
    state.litellm.health().await.expect("health");
    let user_id = unique("test-user");
    let user = state
        .litellm
        .new_user(&user_id, &format!("{user_id}-key"), 1.0, "1mo")
        .await
        .expect("user/new");
    assert_eq!(user.user_id, user_id);
    assert!(user.key.expose().starts_with("sk-"));

    let http = reqwest::Client::new();
    let res = http
        .post(format!(
            "{}/v1/chat/completions",
            state.config.litellm.base_url
        ))
        .bearer_auth(user.key.expose())
        .json(&json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    let prompt = body["usage"]["prompt_tokens"].as_f64().unwrap();
    let completion = body["usage"]["completion_tokens"].as_f64().unwrap();
    let expected = prompt * 0.00003 + completion * 0.00006;

    let spend = eventually("spend on the user's key", Duration::from_secs(20), || {
        let state = state.clone();
        let user_id = user_id.clone();
        async move { Some(spend_of(&state, &user_id).await).filter(|s| *s > 0.0) }
    })
    .await;
    assert!(
        (spend - expected).abs() < 1e-9,
        "spend {spend} != tokens × price {expected}"
    );

    let info = state.litellm.user_info(&user_id).await.unwrap().unwrap();
    assert_eq!(info.user_info.unwrap().max_budget, Some(1.0));
    state.litellm.delete_user(&user_id).await.expect("delete");
    assert!(state.litellm.user_info(&user_id).await.unwrap().is_none());
}

/// A LiteLLM user, a Letta provider holding its key and an agent on that provider, made with
/// the product's clients; returns the provider's id and the agent.
async fn byok_agent(state: &AppState, user_id: &str) -> (String, Agent) {
    let user = state
        .litellm
        .new_user(user_id, &format!("{user_id}-key"), 1.0, "1mo")
        .await
        .expect("user/new");
    let provider_name = format!("user-{user_id}");
    let provider = state
        .letta
        .create_provider(
            &provider_name,
            &user.key,
            &format!("{}/v1", state.config.letta.litellm_url_for_letta),
        )
        .await
        .expect("provider");
    assert_eq!(
        state
            .letta
            .find_provider(&provider_name)
            .await
            .unwrap()
            .map(|p| p.id),
        Some(provider.id.clone())
    );

    let tags = vec![format!("user:{user_id}")];
    let spec = AgentSpec {
        name: &format!("agent-{user_id}"),
        provider_name: &provider_name,
        model: &state.config.letta.model,
        human: "Name: Test",
        persona: "I am a helpful assistant.",
        tags: &tags,
    };
    let agent = state.letta.create_agent(&spec).await.expect("agent");
    assert_eq!(agent.llm_config["provider_name"], provider_name.as_str());
    (provider.id, agent)
}

#[tokio::test]
async fn letta_agent_on_a_byok_provider_answers_and_bills_its_user() {
    let (state, _stack) = state().await;
    state.letta.health().await.expect("health");
    let user_id = unique("test-letta");
    let (provider_id, agent) = byok_agent(&state, &user_id).await;

    let reply = state
        .letta
        .send_message(&agent.id, "hello agent")
        .await
        .expect("message");
    let said = assistant_texts(&reply.messages);
    assert_eq!(said, vec!["echo: hello agent"], "{:?}", reply.messages);

    // Memory: the scripted model stores the name with a memory tool (core_memory_replace of
    // the `Name:` line), then answers from the human block that Letta puts in its system prompt.
    let told = state
        .letta
        .send_message(&agent.id, "Hi, my name is Grace Hopper.")
        .await
        .expect("message");
    assert!(
        told.messages
            .iter()
            .any(|m| matches!(m, LettaMessage::ToolCall { .. })),
        "{:?}",
        told.messages
    );
    let asked = state
        .letta
        .send_message(&agent.id, "What is my name?")
        .await
        .expect("message");
    let answer = assistant_texts(&asked.messages);
    assert_eq!(
        answer,
        vec!["Your name is Grace Hopper."],
        "{:?}",
        asked.messages
    );

    // The agent's LLM calls went through LiteLLM on this user's key.
    let spend = eventually(
        "the agent's spend on the user's key",
        Duration::from_secs(20),
        || {
            let state = state.clone();
            let user_id = user_id.clone();
            async move { Some(spend_of(&state, &user_id).await).filter(|s| *s > 0.0) }
        },
    )
    .await;
    assert!(spend > 0.0);

    state
        .letta
        .delete_agent(&agent.id)
        .await
        .expect("delete agent");
    assert!(state.letta.get_agent(&agent.id).await.unwrap().is_none());
    state
        .letta
        .delete_provider(&provider_id)
        .await
        .expect("delete provider");
    state
        .litellm
        .delete_user(&user_id)
        .await
        .expect("delete user");
}

#[tokio::test]
async fn supabase_sign_up_sign_in_and_get_user() {
    let (state, _stack) = state().await;
    state.supabase.health().await.expect("health");
    let email = format!("{}@example.com", unique("client"));
    let SignUp::Session(session) = state
        .supabase
        .sign_up(&email, "a-long-password", json!({"display_name": "Ann"}))
        .await
        .unwrap()
    else {
        panic!("the local stack confirms emails automatically");
    };
    assert_eq!(session.user.email.as_deref(), Some(email.as_str()));
    assert_eq!(session.token_type, "bearer");

    let again = state
        .supabase
        .sign_in_with_password(&email, "a-long-password")
        .await
        .unwrap();
    let user = state
        .supabase
        .get_user(again.access_token.expose())
        .await
        .unwrap();
    assert_eq!(user.id, session.user.id);
    assert_eq!(user.user_metadata["display_name"], "Ann");

    let wrong = state
        .supabase
        .sign_in_with_password(&email, "not-the-password")
        .await
        .unwrap_err();
    assert_eq!(
        supabase::error_code(&wrong).as_deref(),
        Some("invalid_credentials")
    );
    assert!(matches!(wrong, DependencyError::Status { status: 400, .. }));

    let taken = state
        .supabase
        .sign_up(&email, "a-long-password", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        supabase::error_code(&taken).as_deref(),
        Some("user_already_exists")
    );

    state.supabase.admin_delete_user(&user.id).await.unwrap();
    let gone = state
        .supabase
        .sign_in_with_password(&email, "a-long-password")
        .await
        .unwrap_err();
    assert_eq!(
        supabase::error_code(&gone).as_deref(),
        Some("invalid_credentials")
    );
}

#[tokio::test]
async fn an_unreachable_service_is_classified_as_unavailable() {
    let mut config = shared::Config::from_env().expect("env");
    config.letta.base_url = "http://127.0.0.1:9".into();
    config.litellm.base_url = "http://127.0.0.1:9".into();
    let state = AppState::new(config).await;
    let err = state.letta.health().await.unwrap_err();
    assert!(err.is_unavailable());
    assert_eq!(err.service(), Service::Letta);
    let err = state
        .litellm
        .new_user("x", "x", 1.0, "1mo")
        .await
        .unwrap_err();
    assert!(err.is_unavailable());
}
