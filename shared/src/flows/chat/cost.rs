//! What a turn cost and which model answered it. Each step (LLM call) is priced by the model
//! that answered it, which Letta's provider trace of the step names: it is another than the
//! chosen one when LiteLLM fell back. Without traces, the chosen model's price applies.

use std::time::Duration;

use crate::{domain::Usage, state::AppState};

/// A turn's price.
pub(super) struct Priced {
    /// USD, when the models' prices are known.
    pub(super) cost_usd: Option<f64>,
    /// The LiteLLM name of the model that answered the last step.
    pub(super) model: String,
    /// LiteLLM's request ids of the turn's calls (empty when the steps could not be read).
    pub(super) call_ids: Vec<String>,
}

/// Prices a turn from its steps; `chosen` model and `usage` when the steps cannot be read.
pub(super) async fn price_turn(
    state: &AppState,
    chosen: &str,
    step_ids: &[String],
    usage: &Usage,
) -> Priced {
    if let Some(priced) = price_steps(state, step_ids).await {
        return priced;
    }
    let price = state.models.price(&state.litellm, chosen).await;
    Priced {
        cost_usd: price.map(|p| p.cost(usage.prompt_tokens, usage.completion_tokens)),
        model: chosen.to_string(),
        call_ids: Vec::new(),
    }
}

async fn price_steps(state: &AppState, step_ids: &[String]) -> Option<Priced> {
    let (mut cost, mut model, mut call_ids) = (0.0, None, Vec::new());
    for step_id in step_ids {
        // Letta writes a step's trace without waiting for it; give it a moment once.
        let call = match state.letta.step_call(step_id).await.ok()? {
            Some(call) => call,
            None => {
                tokio::time::sleep(Duration::from_millis(150)).await;
                state.letta.step_call(step_id).await.ok()??
            }
        };
        let answered = state
            .models
            .model_of_answer(&state.litellm, &call.model)
            .await?;
        cost += answered
            .price
            .cost(call.prompt_tokens, call.completion_tokens);
        model = Some(answered.name);
        call_ids.extend(call.id);
    }
    Some(Priced {
        cost_usd: Some(cost),
        model: model?,
        call_ids,
    })
}
