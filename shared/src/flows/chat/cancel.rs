//! Stop: the conversation's running turn is cancelled where it spends, at Letta. The turn
//! itself may stream on another instance; Letta is the signal both see: it ends the run's
//! stream with the stop reason `cancelled`, and that instance stores what arrived as
//! `cancelled`, releases the lock and closes the stream with `done`.

use std::time::{Duration, Instant};

use super::{thread, turn_ended};
use crate::{
    app::error::{AppError, ErrorCode},
    domain::{ConversationId, SignedInUser},
    flows::conversations,
    state::AppState,
};

/// How long a cancel waits for a turn that holds the lock to have a run at Letta (it is
/// being sent) or to end.
const WAIT_FOR_RUN: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(100);

/// Cancels the running turn of one of the user's conversations. `Ok` once Letta has
/// cancelled its run (the turn's stream ends shortly after); 409 `no_turn_in_progress` when no
/// turn runs (or it ended meanwhile); 404 for a conversation that is not the user's.
pub async fn cancel_turn(
    state: &AppState,
    user: &SignedInUser,
    id: &ConversationId,
) -> Result<(), AppError> {
    let (store, user_id) = (&state.store, &user.id);
    let mut conversation = conversations::get(state, user, id).await?;
    let agent_id = store
        .get_profile(user_id)
        .await?
        .and_then(|profile| profile.letta_agent_id)
        .ok_or_else(no_turn_in_progress)?;
    let waiting = Instant::now();
    loop {
        let Some((holder, locked_at)) = store.turn_lock_holder(user_id, id).await? else {
            return Err(no_turn_in_progress());
        };
        if turn_ended(state, user_id, id, &holder, locked_at).await? {
            return Err(no_turn_in_progress());
        }
        // A conversation's first turn makes its Letta conversation after taking the lock.
        if !id.is_default() && conversation.letta_conversation_id.is_none() {
            conversation = conversations::get(state, user, id).await?;
        }
        let letta_thread = match &conversation.letta_conversation_id {
            Some(letta_id) => Some(thread::thread(id, letta_id)),
            None if id.is_default() => Some(thread::thread(id, &agent_id)),
            None => None,
        };
        if let Some(letta_thread) = letta_thread {
            let cancelled = state.letta.cancel_runs(&agent_id, letta_thread).await?;
            if !cancelled.is_empty() {
                tracing::info!(runs = cancelled.len(), "turn cancelled");
                return Ok(());
            }
        }
        // The turn holds the lock without a run: being sent to Letta, or storing its end.
        if waiting.elapsed() >= WAIT_FOR_RUN {
            return Err(no_turn_in_progress());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn no_turn_in_progress() -> AppError {
    AppError::Conflict {
        code: ErrorCode::NoTurnInProgress,
        message: "no reply is being written in this conversation".into(),
    }
}
