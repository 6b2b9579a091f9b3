//! Provisioning interrupted by stopping LiteLLM, then Letta, in the middle of registration;
//! resumed by later requests once they are back, with no duplicates anywhere.

use crate::helpers::*;
use shared::{
    clients::letta::LettaMessage,
    domain::{ProvisioningState, UserId},
};

/// Whatever happens in the test, the services come back up.
#[tokio::test]
async fn provisioning_stopped_by_outages_resumes_without_duplicates() {
    let app = spawn_app_exclusive().await;
    let _restore = Restart(&["litellm", "letta"]);

    // LiteLLM down during registration: 503, the account exists at `signed_up`.
    service("stop", "litellm");
    let (email, password, reply) = app.register("Gus").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.headers["retry-after"], "5");
    assert_eq!(reply.body["error"]["code"], "dependency_unavailable");
    assert_eq!(reply.body["error"]["service"], "litellm");
    let session = app
        .state
        .supabase
        .sign_in_with_password(&email, &password)
        .await
        .unwrap();
    let user = UserId::parse(&session.user.id).unwrap();
    let profile = app.state.store.get_profile(&user).await.unwrap().unwrap();
    assert_eq!(profile.state, ProvisioningState::SignedUp);
    assert!(profile.provisioning_error.unwrap().contains("litellm"));
    assert!(
        profile.lock_until.is_none(),
        "the lease is released after a failure"
    );

    // LiteLLM back, Letta down: login resumes and stops at the provider.
    service("start", "litellm");
    service("stop", "letta");
    let login = app.login(&email, &password).await;
    assert_eq!(login.status, 503, "{}", login.body);
    assert_eq!(login.body["error"]["service"], "letta");
    let profile = app.state.store.get_profile(&user).await.unwrap().unwrap();
    assert_eq!(profile.state, ProvisioningState::LitellmUser);

    // Letta back: `me` finishes the job.
    service("start", "letta");
    let me = app
        .get("/api/v1/auth/me", session.access_token.expose())
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["profile"]["state"], "ready");
    assert_eq!(me.body["profile"]["display_name"], "Gus");
    let expected = Footprint {
        supabase_user: true,
        litellm_user: true,
        litellm_keys: 1,
        letta_providers: 1,
        letta_agents: 1,
        letta_archives: 0, // Letta makes an agent's archive with its first memory
        dynamodb_items: 1,
    };
    assert_eq!(footprint(&app, user.as_str()).await, expected);

    // The key the provider holds is the one LiteLLM still has: the agent can call the model.
    let agent_id = me.body["profile"]["agent_id"].as_str().unwrap();
    let reply = app
        .state
        .letta
        .send_message(agent_id, "hello after the outages")
        .await
        .unwrap();
    assert!(
        reply
            .messages
            .iter()
            .any(|m| matches!(m, LettaMessage::Assistant { content, .. } if content == "echo: hello after the outages")),
        "{:?}",
        reply.messages
    );

    // Signing in again changes nothing.
    let login = app.login(&email, &password).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(footprint(&app, user.as_str()).await, expected);
}
