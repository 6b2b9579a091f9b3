//! A conversation's title after its first exchange: one short LLM call billed to the user, or
//! the first words of the user's message.

use super::on_users_key::{count_on_day, on_users_key};
use crate::{
    app::error::AppError,
    domain::{ConversationId, Title, UserId},
    state::AppState,
};

/// What the title model is asked.
const TITLE_INSTRUCTIONS: &str = "Write a short conversation title (at most six words) for the \
exchange below. Answer with the title only, no quotes.";

/// Gives a conversation without a title one after an exchange: one short LLM call on a key of
/// the user's that expires by itself (so LiteLLM bills the user, within the user's budget, and
/// the backend never holds the user's own key), deleted right after; the first words of the
/// user's message when the call fails. Returns the title set, if any.
pub(super) async fn give_title(
    state: &AppState,
    user: &UserId,
    conversation: &ConversationId,
    model: &str,
    user_text: &str,
    reply_text: &str,
) -> Option<Title> {
    let prompt = format!(
        "User: {}\nAssistant: {}",
        user_text.chars().take(1000).collect::<String>(),
        reply_text.chars().take(1000).collect::<String>()
    );
    let title = match titled_by_model(state, user, model, &prompt).await {
        Ok(Some(title)) => title,
        Ok(None) | Err(_) => Title::summarize(user_text)?,
    };
    match state
        .store
        .set_conversation_title(user, conversation, &title, false)
        .await
    {
        Ok(true) => Some(title),
        Ok(false) => None, // titled meanwhile (by the user) or deleted
        Err(e) => {
            tracing::warn!(error = %e, "could not store the conversation's title");
            None
        }
    }
}

async fn titled_by_model(
    state: &AppState,
    user: &UserId,
    model: &str,
    prompt: &str,
) -> Result<Option<Title>, AppError> {
    let litellm = &state.litellm;
    let answer = on_users_key(state, user, "conversation title", async |key| {
        litellm
            .complete(key, model, TITLE_INSTRUCTIONS, prompt, 24)
            .await
    })
    .await?;
    match answer {
        Ok((text, usage)) => {
            // The call is the user's spend: it joins the day's usage (as no message).
            let cost = state
                .models
                .price(&state.litellm, model)
                .await
                .map_or(0.0, |p| {
                    p.cost(usage.prompt_tokens, usage.completion_tokens)
                });
            count_on_day(state, user, &usage, cost).await;
            Ok(Title::summarize(&text))
        }
        Err(e) => {
            tracing::info!(error = %e, "the title call failed; using the message's first words");
            Err(e.into())
        }
    }
}
