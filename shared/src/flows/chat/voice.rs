//! A voice message: the audio is transcribed through LiteLLM on a short-lived key of the
//! user's (as titles are: LiteLLM bills the user per second of audio, within the user's budget,
//! and the backend never holds the user's own key), the cost joins the day's usage, and the
//! transcript goes to the agent as the user's message, like any other.

use super::failure::TurnFailure;
use crate::{
    app::{clock::today, dependency::DependencyError, error::AppError},
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
    let litellm = &state.litellm;
    let key = (litellm.short_lived_key(user.id.as_str(), "2m", "voice message")).await?;
    let audio = Audio {
        bytes: clip.bytes(),
        file_name: clip.kind().file_name(),
        media_type: clip.kind().media_type(),
    };
    let model = &state.config.litellm.transcription_model;
    let heard = litellm.transcribe(&key, model, &audio).await;
    if let Err(e) = litellm.delete_keys(&[key.expose().to_string()]).await {
        tracing::warn!(error = %e, "could not delete the voice key; it expires in two minutes");
    }
    let heard = heard.map_err(refused)?;
    if let Some(cost) = heard.cost_usd.filter(|cost| *cost > 0.0) {
        let (user, day, no_tokens) = (&user.id, &today(), Usage::default());
        let counted = state.store.add_daily_usage(user, day, 0, &no_tokens, cost);
        if let Err(e) = counted.await {
            tracing::warn!(error = %e, "could not add the transcription to the day's usage");
        }
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
