//! The models a user may choose (LiteLLM's chat models, narrowed by `ALLOWED_MODELS`) and the
//! switch of the user's agent to one of them. The agent keeps calling through the user's own
//! provider and key, so billing does not change; LiteLLM's fallbacks, when the operator
//! declares them, take over when the chosen model fails.

use crate::{
    app::error::AppError,
    clients::models::Model,
    domain::{Profile, SignedInUser},
    flows::{accounts, agent::ready_agent, provisioning::provider_name},
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
        .filter(|m| m.chat && m.priced())
        .filter(|m| allowed.is_empty() || allowed.contains(&m.name))
        .collect())
}

/// Switches the user's agent to `name` (422 naming `model` when it is not a choice), capping
/// the context window at the model's: the agent first, then the profile, so a failure leaves
/// the two agreeing or a retry finishes the switch.
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
    let window = window(&model, state.config.letta.context_window);
    let provider = provider_name(&profile.user_id);
    state
        .letta
        .set_agent_model(&agent_id, &provider, &model.name, window)
        .await?;
    state
        .store
        .set_profile_field(&profile.user_id, "model", Some(&model.name))
        .await?;
    accounts::profile_of(state, user).await
}

/// The deployment's context window, capped at the model's.
fn window(model: &Model, deployment: u32) -> u32 {
    model.context_window.map_or(deployment, |w| {
        u32::try_from(w).unwrap_or(u32::MAX).min(deployment)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::models::Price;

    #[test]
    fn the_window_is_the_deployments_capped_at_the_models() {
        let mut model = Model {
            name: "small".into(),
            provider: "openai".into(),
            provider_model: "small".into(),
            context_window: Some(16000),
            price: Price {
                input_per_token: 0.0,
                output_per_token: 0.0,
            },
            chat: true,
        };
        assert_eq!(window(&model, 32000), 16000);
        model.context_window = Some(1 << 40);
        assert_eq!(window(&model, 32000), 32000);
        model.context_window = None;
        assert_eq!(window(&model, 32000), 32000);
    }
}
