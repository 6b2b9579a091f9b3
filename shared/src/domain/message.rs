//! A chat message (the user's or the agent's reply) with what is known about how it was made.

use serde::{Deserialize, Serialize};

use crate::app::clock::now_rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
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
}

impl MessageStatus {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Complete => "complete",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub steps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub letta_message_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

impl Message {
    /// A new message with nothing known yet beyond its text and status.
    pub fn new(
        id: &ulid::Ulid,
        role: Role,
        content: String,
        status: MessageStatus,
    ) -> Self {
        Self {
            id: id.to_string(),
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
            ttft_ms: None,
            latency_ms: None,
            error: None,
            stop_reason: None,
        }
    }
}

