//! A chat message (the user's or the agent's reply) with what is known about how it was made.

use serde::{Deserialize, Serialize};

use super::ConversationId;
use crate::app::clock::now_rfc3339;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The user.
    User,
    /// The agent.
    Assistant,
}

/// `pending`: stored, the agent not reached yet; `complete`; `interrupted`: the reply broke off
/// (what arrived is kept); `failed`: the agent never produced a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
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

impl MessageStatus {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Complete => "complete",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Token counts of a turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens over every step.
    pub prompt_tokens: u64,
    /// Completion tokens over every step.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
    /// LLM calls (steps).
    pub steps: u64,
}

/// A tool call the agent made in a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Letta's call id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its JSON arguments, as text.
    pub arguments: String,
    /// What it returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// `success` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Why a message failed: a stable code and a sentence for the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The code.
    pub code: String,
    /// The sentence.
    pub message: String,
}

/// A message of the user's, or the agent's reply with how it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// A ULID: messages sort by time.
    pub id: String,
    /// The conversation it belongs to (messages stored before there were conversations
    /// belong to the default one).
    #[serde(default = "ConversationId::default_conversation")]
    pub conversation_id: ConversationId,
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// When it was stored (RFC 3339).
    pub created_at: String,
    /// For replies: the user's message answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The agent's reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The tools the agent called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Letta's ids of the turn's messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub letta_message_ids: Vec<String>,
    /// Letta's run id of the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_run_id: Option<String>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Cost in USD (tokens × the model's LiteLLM prices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// LiteLLM's request ids of the LLM calls the reply cost (from Letta's step traces), so
    /// the reconciler can check them against LiteLLM's spend logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm_call_ids: Vec<String>,
    /// Time to the first token, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// Whole turn, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Why it failed or broke off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    /// Letta's stop reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

impl Message {
    /// A new message with nothing known yet beyond its text and status.
    pub fn new(
        conversation_id: &ConversationId,
        id: &ulid::Ulid,
        role: Role,
        content: String,
        status: MessageStatus,
    ) -> Self {
        Self {
            id: id.to_string(),
            conversation_id: conversation_id.clone(),
            role,
            content,
            status,
            created_at: now_rfc3339(),
            reply_to: None,
            reasoning: None,
            tool_calls: Vec::new(),
            letta_message_ids: Vec::new(),
            letta_run_id: None,
            usage: None,
            cost_usd: None,
            model: None,
            llm_call_ids: Vec::new(),
            ttft_ms: None,
            latency_ms: None,
            error: None,
            stop_reason: None,
        }
    }
}
