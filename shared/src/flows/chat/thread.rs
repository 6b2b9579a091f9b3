//! Where a turn goes in Letta: the agent's own history for the `default` conversation, a Letta
//! conversation of the agent for any other (made on its first turn).

use crate::{
    app::error::AppError,
    clients::letta::Thread,
    domain::{Conversation, ConversationId, UserId},
    state::AppState,
};

/// Where a turn of this conversation goes in Letta. A conversation's first turn makes its
/// Letta conversation; a later one has its system prompt recompiled first, because Letta
/// compiles it once and memory changed in another conversation would not reach it otherwise.
/// Called with the conversation's turn lock held.
pub(super) async fn letta_thread(
    state: &AppState,
    user: &UserId,
    agent_id: &str,
    conversation: &Conversation,
) -> Result<String, AppError> {
    if conversation.id.is_default() {
        return Ok(agent_id.to_string());
    }
    match &conversation.letta_conversation_id {
        Some(letta_id) => {
            state.letta.recompile_conversation(letta_id).await?;
            Ok(letta_id.clone())
        }
        None => {
            let letta_id = state.letta.create_conversation(agent_id).await?;
            state
                .store
                .set_letta_conversation(user, &conversation.id, &letta_id)
                .await?;
            Ok(letta_id)
        }
    }
}

/// The Letta thread a conversation's turn streams on.
pub(super) fn thread<'a>(conversation: &ConversationId, letta_id: &'a str) -> Thread<'a> {
    if conversation.is_default() {
        Thread::Agent(letta_id)
    } else {
        Thread::Conversation(letta_id)
    }
}
