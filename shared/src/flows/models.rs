//! The models a user may choose (LiteLLM's chat models, narrowed by `ALLOWED_MODELS`) and the
//! switch of the user's agent to one of them. The agent keeps calling through the user's own
//! provider and key, so billing does not change; LiteLLM's fallbacks, when the operator
//! declares them, take over when the chosen model fails.

use serde_json::{Value, json};

use crate::{
    app::error::AppError,
    clients::models::Model,
    domain::{Profile, SignedInUser},
    flows::{accounts, agent::ready_agent},
    state::AppState,
};

/// The models users may choose, in LiteLLM's order: its chat models with a price (an unpriced
/// model's spend stays 0 and no budget stops it), narrowed by `ALLOWED_MODELS`.
pub async fn choices(state: &AppState) -> Result<Vec<Model>, AppError> {
    let allowed = &state.config.letta.allowed_models;
    Ok(state
        .models
        .models(&state.litellm)
        .await?
        .into_iter()
        .filter(|m| !m.embedding && m.priced())
        .filter(|m| allowed.is_empty() || allowed.contains(&m.name))
        .collect())
}

/// Switches the user's agent to `name` (422 naming `model` when it is not a choice): the
/// agent's `llm_config` first, then the profile, so a failure leaves the two agreeing or a
/// retry finishes the switch.
pub async fn set_model(
    state: &AppState,
    user: &SignedInUser,
    name: &str,
) -> Result<Profile, AppError> {
    let model = choices(state)
        .await?
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| {
            AppError::validation("model", "is not one of the models in GET /api/v1/models")
        })?;
    let (profile, agent_id) = ready_agent(state, user).await?;
    let agent = state
        .letta
        .get_agent(&agent_id)
        .await?
        .ok_or_else(|| AppError::Internal("the ready profile's agent is gone".into()))?;
    let config = switched(&agent.llm_config, &model, state.config.letta.context_window);
    state.letta.set_agent_model(&agent_id, &config).await?;
    state
        .store
        .set_profile_field(&profile.user_id, "model", Some(&model.name))
        .await?;
    accounts::profile_of(state, user).await
}

/// The agent's `llm_config` on another model: the deployment's context window, capped at the
/// model's; provider, endpoint and the rest kept.
fn switched(llm_config: &Value, model: &Model, context_window: u32) -> Value {
    let mut config = llm_config.clone();
    let window = model.context_window.map_or(u64::from(context_window), |w| {
        w.min(u64::from(context_window))
    });
    config["model"] = json!(model.name);
    config["context_window"] = json!(window);
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::models::Price;

    #[test]
    fn a_switch_keeps_the_provider_and_caps_the_window() {
        let config = json!({"model": "gpt-4", "provider_name": "user-1",
                            "provider_category": "byok", "context_window": 32000});
        let model = Model {
            name: "small".into(),
            provider: "openai".into(),
            provider_model: "small".into(),
            context_window: Some(16000),
            price: Price {
                input_per_token: 0.0,
                output_per_token: 0.0,
            },
            embedding: false,
        };
        let out = switched(&config, &model, 32000);
        assert_eq!(out["model"], "small");
        assert_eq!(out["provider_name"], "user-1");
        assert_eq!(out["context_window"], 16000);
    }
}
