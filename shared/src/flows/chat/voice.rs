//! A voice message: the audio is transcribed through LiteLLM on a short-lived key of the
//! user's, as titles are (see `on_users_key`: LiteLLM bills the user per second of audio), the
//! cost joins the day's usage, and the transcript goes to the agent as the user's message,
//! like any other.

use super::{
    failure::TurnFailure,
    on_users_key::{count_on_day, on_users_key},
};
use crate::{
    app::{dependency::DependencyError, error::AppError},
    clients::litellm::Audio,
    domain::{SignedInUser, Usage, VoiceClip},
    flows::gate,
    state::AppState,
};

/// What the user said in `clip`. The request passes the gate first (a revoked token or a
/// used-up limit is refused before anything is billed); 422 `no_speech` when nothing was heard.
pub async fn transcribe(
    state: &AppState,
    user: &SignedInUser,
    clip: &VoiceClip,
) -> Result<String, AppError> {
    let limits = gate::chat_limits(&state.config.rates);
    gate::pass(state, &user.id, gate::issued_at(user), &limits).await?;
    let audio = Audio {
        bytes: clip.bytes(),
        file_name: clip.kind().file_name(),
        media_type: clip.kind().media_type(),
    };
    let (litellm, model) = (&state.litellm, &state.config.litellm.transcription_model);
    let heard = on_users_key(state, &user.id, "voice message", async |key| {
        litellm.transcribe(key, model, &audio).await
    })
    .await?
    .map_err(refused)?;
    if let Some(cost) = heard.cost_usd.filter(|cost| *cost > 0.0) {
        count_on_day(state, &user.id, &Usage::default(), cost).await;
    }
    let text = heard.text.trim();
    if text.is_empty() {
        return Err(AppError::NoSpeech);
    }
    Ok(text.to_string())
}

/// LiteLLM's refusal for the budget is the user's 402, as before a turn; anything else is the
/// dependency's error.
fn refused(error: DependencyError) -> AppError {
    if let DependencyError::Status { body, .. } = &error
        && let TurnFailure::BudgetExceeded { spend, limit } = TurnFailure::classify(&[Some(body)])
    {
        return AppError::BudgetExceeded {
            spend: spend.unwrap_or(0.0),
            limit: limit.unwrap_or(0.0),
        };
    }
    error.into()
}
