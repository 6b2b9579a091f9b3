//! What the chat function answers besides the event stream: messages, conversations, history.

use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    domain::{Conversation, ConversationId, Message, MessageStatus, Role, ToolCall},
    flows::conversations::ConversationPage,
    store::HistoryPage,
};

/// Who wrote a message.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleView {
    /// The user.
    User,
    /// The agent.
    Assistant,
}

/// `pending`: stored, the agent not reached yet; `complete`; `interrupted`: the reply broke
/// off (what arrived is kept); `failed`: the agent never produced a reply; `cancelled`: the
/// user stopped it (what arrived is kept).
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum StatusView {
    /// Stored; the agent not reached yet.
    Pending,
    /// Answered in full.
    Complete,
    /// The reply broke off; what arrived is kept.
    Interrupted,
    /// The agent never produced a reply.
    Failed,
    /// Stopped by the user; what arrived is kept.
    Cancelled,
}

impl From<MessageStatus> for StatusView {
    fn from(s: MessageStatus) -> Self {
        match s {
            MessageStatus::Pending => Self::Pending,
            MessageStatus::Complete => Self::Complete,
            MessageStatus::Interrupted => Self::Interrupted,
            MessageStatus::Failed => Self::Failed,
            MessageStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// A tool call the agent made.
#[derive(Serialize, ToSchema)]
pub struct ToolCallView {
    /// The call id.
    id: String,
    /// The tool.
    name: String,
    /// Its JSON arguments, as text.
    arguments: String,
    /// What it returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    /// `success` or `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

impl From<&ToolCall> for ToolCallView {
    fn from(t: &ToolCall) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            arguments: t.arguments.clone(),
            result: t.result.clone(),
            status: t.status.clone(),
        }
    }
}

/// Token counts of a turn.
#[derive(Serialize, ToSchema)]
pub struct TokensView {
    /// Prompt tokens over every step.
    prompt_tokens: u64,
    /// Completion tokens over every step.
    completion_tokens: u64,
    /// Prompt and completion tokens together.
    total_tokens: u64,
    /// LLM calls (steps).
    steps: u64,
}

/// Why a message failed or broke off.
#[derive(Serialize, ToSchema)]
pub struct MessageErrorView {
    /// A stable code.
    code: String,
    /// A sentence for the user.
    message: String,
}

/// A stored message as clients see it (no keys, no Letta or LiteLLM ids).
#[derive(Serialize, ToSchema)]
pub struct MessageView {
    /// A ULID: messages sort by time.
    id: String,
    /// Its conversation (`default` for the user's first).
    conversation_id: String,
    /// Who wrote it.
    role: RoleView,
    /// The text.
    content: String,
    /// Where it stands.
    status: StatusView,
    /// When it was stored (RFC 3339).
    created_at: String,
    /// For replies: the user's message answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<String>,
    /// The agent's reasoning.
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<String>,
    /// The tools the agent called.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallView>,
    /// Token counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<TokensView>,
    /// Cost, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
    /// The model that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// Time to the first token, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_ms: Option<u64>,
    /// The whole turn, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    /// Why it failed or broke off.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<MessageErrorView>,
    /// Why the agent stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: Option<String>,
}

/// A stored message as clients see it.
pub fn message(m: &Message) -> MessageView {
    MessageView {
        id: m.id.clone(),
        conversation_id: m.conversation_id.to_string(),
        role: match m.role {
            Role::User => RoleView::User,
            Role::Assistant => RoleView::Assistant,
        },
        content: m.content.clone(),
        status: m.status.into(),
        created_at: m.created_at.clone(),
        reply_to: m.reply_to.clone(),
        reasoning: m.reasoning.clone(),
        tool_calls: m.tool_calls.iter().map(ToolCallView::from).collect(),
        usage: m.usage.as_ref().map(|u| TokensView {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            steps: u.steps,
        }),
        cost_usd: m.cost_usd,
        model: m.model.clone(),
        ttft_ms: m.ttft_ms,
        latency_ms: m.latency_ms,
        error: m.error.as_ref().map(|e| MessageErrorView {
            code: e.code.clone(),
            message: e.message.clone(),
        }),
        stop_reason: m.stop_reason.clone(),
    }
}

/// A conversation (Letta's id stays inside).
#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    /// `default` or a ULID.
    id: String,
    /// Its title: the user's, or one made from the first message.
    title: Option<String>,
    /// Whether the user set the title.
    title_by_user: bool,
    /// When it was made.
    created_at: String,
    /// When a message was last added.
    last_activity: String,
    /// Messages stored in it.
    message_count: u64,
}

/// A conversation (Letta's id stays inside).
pub fn conversation(c: &Conversation) -> ConversationView {
    ConversationView {
        id: c.id.to_string(),
        title: c.title.clone(),
        title_by_user: c.title_by_user,
        created_at: c.created_at.clone(),
        last_activity: c.last_activity.clone(),
        message_count: c.message_count,
    }
}

/// `GET /conversations`.
#[derive(Serialize, ToSchema)]
pub struct ConversationsView {
    /// Most recently active first.
    conversations: Vec<ConversationView>,
    /// The next page's cursor.
    next_cursor: Option<String>,
}

/// `GET /conversations`.
pub fn conversations(page: &ConversationPage) -> ConversationsView {
    ConversationsView {
        conversations: page.conversations.iter().map(conversation).collect(),
        next_cursor: page.next_cursor.clone(),
    }
}

/// `GET /chat/history`.
#[derive(Serialize, ToSchema)]
pub struct HistoryView {
    /// Newest first.
    messages: Vec<MessageView>,
    /// The next (older) page's cursor.
    next_cursor: Option<String>,
}

/// `GET /chat/history`.
pub fn history(page: &HistoryPage) -> HistoryView {
    HistoryView {
        messages: page.messages.iter().map(message).collect(),
        next_cursor: page.next_cursor.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConversationId, MessageStatus, Role};

    #[test]
    fn message_views_hide_internal_fields() {
        let mut m = Message::new(
            &ConversationId::default_conversation(),
            &ulid::Ulid::new(),
            Role::Assistant,
            "hi".into(),
            MessageStatus::Complete,
        );
        m.letta_run_id = Some("run-1".into());
        m.letta_message_ids = vec!["message-1".into()];
        m.llm_call_ids = vec!["chatcmpl-1".into()];
        let v = serde_json::to_value(message(&m)).unwrap();
        assert!(v.get("pk").is_none() && v.get("letta_run_id").is_none());
        assert!(v.get("letta_message_ids").is_none() && v.get("llm_call_ids").is_none());
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["status"], "complete");
        assert_eq!(v["conversation_id"], "default");
    }
}

/// A stop under way: the turn's stream ends with `done` (`stop_reason` `cancelled`) and the
/// reply is stored with status `cancelled` and the text that arrived.
#[derive(Serialize, ToSchema)]
pub struct CancelView {
    /// The conversation whose turn is being stopped (`default` or its id).
    conversation_id: String,
    /// Always `cancelling`.
    #[schema(example = "cancelling")]
    status: &'static str,
}

/// The answer to a cancel Letta took.
pub fn cancelling(conversation: &ConversationId) -> CancelView {
    CancelView {
        conversation_id: conversation.to_string(),
        status: "cancelling",
    }
}
