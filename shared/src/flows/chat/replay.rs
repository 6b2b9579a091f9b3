//! A repeated `Idempotency-Key`: the stored turn as a stream of events, never a second call to
//! the agent.

use super::events::{ChatEvent, Done};
use crate::{
    app::error::{AppError, ErrorCode},
    domain::SignedInUser,
    state::AppState,
    store::{IdempotencyRecord, TurnState},
};

/// The stored turn's events; 409 while the key's turn is still running.
pub(super) async fn replay(
    state: &AppState,
    user: &SignedInUser,
    record: &IdempotencyRecord,
) -> Result<Vec<ChatEvent>, AppError> {
    let in_progress = |message: &str| AppError::Conflict {
        code: ErrorCode::TurnInProgress,
        message: message.into(),
    };
    if record.state == TurnState::Running {
        return Err(in_progress(
            "a request with this Idempotency-Key is still being answered",
        ));
    }
    let reply = state
        .store
        .get_message(
            &user.id,
            &record.conversation_id,
            &record.assistant_message_id,
        )
        .await?
        .ok_or_else(|| in_progress("the reply is not stored yet"))?;
    let mut events = vec![ChatEvent::Start {
        conversation_id: record.conversation_id.clone(),
        message_id: reply.id.clone(),
        user_message_id: record.user_message_id.clone(),
        model: reply.model.clone(),
        replayed: true,
    }];
    if let Some(reasoning) = &reply.reasoning {
        events.push(ChatEvent::Reasoning {
            delta: reasoning.clone(),
        });
    }
    for call in &reply.tool_calls {
        events.push(ChatEvent::ToolCall {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        });
        if let Some(result) = &call.result {
            events.push(ChatEvent::ToolResult {
                id: call.id.clone(),
                name: call.name.clone(),
                status: call.status.clone(),
                result: result.clone(),
            });
        }
    }
    if !reply.content.is_empty() {
        events.push(ChatEvent::Delta {
            text: reply.content.clone(),
        });
    }
    events.push(ChatEvent::Usage {
        usage: reply.usage.clone().unwrap_or_default(),
        cost_usd: reply.cost_usd,
        model: reply.model.clone(),
    });
    events.push(ChatEvent::Done(Done {
        message_id: reply.id,
        stop_reason: reply.stop_reason,
        latency_ms: reply.latency_ms,
        ttft_ms: reply.ttft_ms,
        text_corrected: false,
        text: None,
        replayed_status: Some(reply.status),
    }));
    Ok(events)
}
