//! What a client sees of a turn, in order: the SSE events as typed values. Their JSON is
//! decided in `http::views`.

use crate::{
    app::error::ErrorCode,
    domain::{ConversationId, MessageStatus, Usage},
};

/// One event of a turn's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// A voice message's words, before its turn starts: what was sent to the agent.
    Transcript {
        /// The transcript.
        text: String,
    },
    /// The turn started (or is replayed).
    Start {
        /// The conversation.
        conversation_id: ConversationId,
        /// The reply's id.
        message_id: String,
        /// The user's message id.
        user_message_id: String,
        /// The model answering.
        model: Option<String>,
        /// A replay of a stored turn (repeated `Idempotency-Key`).
        replayed: bool,
    },
    /// A piece of the agent's reasoning.
    Reasoning {
        /// The text.
        delta: String,
    },
    /// A tool the agent called.
    ToolCall {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// Its JSON arguments, as text.
        arguments: String,
    },
    /// What the tool returned.
    ToolResult {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// `success` or `error`.
        status: Option<String>,
        /// The returned text.
        result: String,
    },
    /// A piece of the reply.
    Delta {
        /// The text.
        text: String,
    },
    /// Tokens and cost of the turn.
    Usage {
        /// Token counts.
        usage: Usage,
        /// Cost in USD, when the model's price is known.
        cost_usd: Option<f64>,
        /// The model that answered (another than the chosen one when LiteLLM fell back).
        model: Option<String>,
    },
    /// The turn ended and is stored.
    Done(Done),
    /// The turn failed or broke off (what arrived is stored).
    Error(TurnError),
    /// After `done` of a conversation's first exchange: the title it was given.
    Title {
        /// The conversation.
        conversation_id: ConversationId,
        /// Its new title.
        title: String,
    },
}

/// The `done` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// The reply's id.
    pub message_id: String,
    /// Letta's stop reason.
    pub stop_reason: Option<String>,
    /// Whole turn, in ms.
    pub latency_ms: Option<u64>,
    /// Time to the first token, in ms.
    pub ttft_ms: Option<u64>,
    /// The stored reply replaces what the deltas gave: it is in `text`.
    pub text_corrected: bool,
    /// The stored reply, when `text_corrected`.
    pub text: Option<String>,
    /// Set on replays: the stored reply's status.
    pub replayed_status: Option<MessageStatus>,
}

/// The `error` event.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnError {
    /// A stable code (`budget_exceeded`, `billing_key_revoked`, `llm_error`, `agent_interrupted`).
    pub code: ErrorCode,
    /// A sentence for the user.
    pub message: String,
    /// Whether sending the message again may work.
    pub retryable: bool,
    /// `(spend, limit)` for `budget_exceeded`.
    pub budget: Option<(Option<f64>, Option<f64>)>,
}
