//! What a turn cost and which model answered it. Each step (LLM call) is priced by the model
//! that answered it, which Letta's provider trace of the step names: it is another than the
//! chosen one when LiteLLM fell back. Without traces, the chosen model's price applies.

use std::time::Duration;

use crate::{domain::Usage, state::AppState};

/// The most the step reads of a turn's pricing may take; then the chosen model's price applies
/// (the reconciler checks every turn against LiteLLM's bill).
const STEP_READS: Duration = Duration::from_secs(5);

/// A turn's price.
pub(super) struct Priced {
    /// USD, when the models' prices are known.
    pub(super) cost_usd: Option<f64>,
    /// The LiteLLM name of the model that answered the last step.
    pub(super) model: String,
    /// LiteLLM's request ids of the turn's calls (empty when the steps could not be read).
    pub(super) call_ids: Vec<String>,
    /// The tokens of the calls priced, as their traces tell (`None` without traces).
    pub(super) usage: Option<Usage>,
}

/// Pricing started before the stream ended (Letta had named the stop reason, so the steps
/// were done), for the steps known then: their traces are read while the rest of Letta's
/// stream arrives.
pub(super) struct EarlyPrice {
    steps: Vec<String>,
    task: tokio::task::JoinHandle<Option<Priced>>,
}

/// Which steps a price needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Steps {
    /// Every step: one without a trace leaves the turn to the chosen model's price.
    All,
    /// The steps that finished (a cancelled turn: the step that was running has no trace; its
    /// call reaches the day's usage through the reconciler).
    Finished,
}

/// Starts pricing `steps` in its own task.
pub(super) fn price_early(state: &AppState, steps: &[String], need: Steps) -> EarlyPrice {
    let (state, steps) = (state.clone(), steps.to_vec());
    EarlyPrice {
        steps: steps.clone(),
        task: tokio::spawn(async move { price_steps(&state, &steps, need).await }),
    }
}

/// Prices a turn from its steps; `chosen` model and `usage` when the steps cannot be read.
pub(super) async fn price_turn(
    state: &AppState,
    chosen: &str,
    step_ids: &[String],
    usage: &Usage,
    early: Option<EarlyPrice>,
    need: Steps,
) -> Priced {
    // A healthy Letta answers the step reads in milliseconds; one that froze mid-turn must not
    // hold the turn's end (and the client's error event) for its request timeout.
    let priced = match early {
        Some(early) if early.steps == step_ids => tokio::time::timeout(STEP_READS, early.task)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
        other => {
            if let Some(stale) = other {
                stale.task.abort();
            }
            tokio::time::timeout(STEP_READS, price_steps(state, step_ids, need))
                .await
                .ok()
                .flatten()
        }
    };
    if let Some(priced) = priced {
        return priced;
    }
    let price = state.models.price(&state.litellm, chosen).await;
    Priced {
        cost_usd: price.map(|p| p.cost(usage.prompt_tokens, usage.completion_tokens)),
        model: chosen.to_string(),
        call_ids: Vec::new(),
        usage: None,
    }
}

async fn price_steps(state: &AppState, step_ids: &[String], need: Steps) -> Option<Priced> {
    // The steps' traces are read at the same time.
    let calls = futures_util::future::join_all(step_ids.iter().map(|step_id| async move {
        // Letta writes a step's trace without waiting for it; give it a moment once.
        match state.letta.step_call(step_id).await.ok()? {
            Some(call) => Some(call),
            None => {
                tokio::time::sleep(Duration::from_millis(150)).await;
                state.letta.step_call(step_id).await.ok()?
            }
        }
    }))
    .await;
    let (mut cost, mut model, mut call_ids) = (0.0, None, Vec::new());
    let mut usage = Usage::default();
    for call in calls {
        let call = match call {
            Some(call) => call,
            None if need == Steps::Finished => continue,
            None => return None,
        };
        usage.prompt_tokens += call.prompt_tokens;
        usage.completion_tokens += call.completion_tokens;
        usage.steps += 1;
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
        usage: Some(Usage {
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
            ..usage
        }),
    })
}
