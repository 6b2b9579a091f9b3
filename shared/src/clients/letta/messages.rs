//! Letta's messages, typed: the events of its stream and the messages it stores, told apart by
//! `message_type`. Types this backend does not know are kept as [`LettaMessage::Other`].

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Fields every stored or streamed message carries.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta {
    /// Letta's message id (`message-…`; streamed chunks of one message share it; pings
    /// have `ping-…`).
    #[serde(default)]
    pub id: Option<String>,
    /// The run (turn) the message belongs to.
    #[serde(default)]
    pub run_id: Option<String>,
    /// The step (one LLM call) that made it.
    #[serde(default)]
    pub step_id: Option<String>,
    /// When Letta made it (RFC 3339).
    #[serde(default)]
    pub date: Option<String>,
}

/// One message or stream event.
#[derive(Debug, Clone)]
pub enum LettaMessage {
    /// The agent's reasoning (a chunk of it, when streamed).
    Reasoning {
        /// Ids and run.
        meta: Meta,
        /// The text.
        reasoning: String,
    },
    /// The reply to the user (a chunk of it, when streamed).
    Assistant {
        /// Ids and run.
        meta: Meta,
        /// The text.
        content: String,
    },
    /// A tool call (its arguments may come in chunks).
    ToolCall {
        /// Ids and run.
        meta: Meta,
        /// The call's id, shared by its chunks and its return.
        call_id: Option<String>,
        /// The tool's name (on the first chunk).
        name: Option<String>,
        /// A chunk of the JSON arguments.
        arguments: Option<String>,
    },
    /// What a tool returned.
    ToolReturn {
        /// Ids and run.
        meta: Meta,
        /// The call it answers.
        call_id: Option<String>,
        /// The tool's name, when Letta says it.
        name: Option<String>,
        /// The returned text.
        result: String,
        /// `success` or `error`.
        status: Option<String>,
    },
    /// Token counts of the whole turn.
    Usage {
        /// Prompt tokens over every step.
        prompt_tokens: u64,
        /// Completion tokens over every step.
        completion_tokens: u64,
        /// Prompt and completion tokens together.
        total_tokens: u64,
        /// LLM calls (steps) the turn took.
        steps: u64,
    },
    /// Why the turn stopped (`end_turn`, `llm_api_error`, …).
    StopReason {
        /// The reason.
        reason: String,
    },
    /// A failure Letta reports inside the stream (LLM errors, refusals by LiteLLM).
    Error {
        /// The run.
        meta: Meta,
        /// Letta's error type (`llm_error`, …).
        error_type: Option<String>,
        /// Letta's message.
        message: Option<String>,
        /// The detail (it carries the LLM provider's text).
        detail: Option<String>,
    },
    /// A keep-alive.
    Ping {
        /// Ids and run.
        meta: Meta,
    },
    /// A type this backend does not use (user, system, approval messages, new types).
    Other {
        /// Its `message_type`.
        message_type: String,
        /// Ids and run.
        meta: Meta,
    },
}

/// The wire shapes of the known types.
#[derive(Deserialize)]
#[serde(tag = "message_type", rename_all = "snake_case")]
enum Wire {
    ReasoningMessage {
        #[serde(flatten)]
        meta: Meta,
        #[serde(default)]
        reasoning: Option<String>,
    },
    AssistantMessage {
        #[serde(flatten)]
        meta: Meta,
        #[serde(default)]
        content: Content,
    },
    ToolCallMessage {
        #[serde(flatten)]
        meta: Meta,
        #[serde(default)]
        tool_call: Option<WireToolCall>,
    },
    ToolReturnMessage {
        #[serde(flatten)]
        meta: Meta,
        #[serde(default)]
        tool_call_id: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        tool_return: Option<String>,
        #[serde(default)]
        status: Option<String>,
    },
    UsageStatistics {
        #[serde(default)]
        prompt_tokens: Option<u64>,
        #[serde(default)]
        completion_tokens: Option<u64>,
        #[serde(default)]
        total_tokens: Option<u64>,
        #[serde(default)]
        step_count: Option<u64>,
    },
    StopReason {
        #[serde(default)]
        stop_reason: Option<String>,
    },
    ErrorMessage {
        #[serde(flatten)]
        meta: Meta,
        #[serde(default)]
        error_type: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        detail: Option<String>,
    },
    Ping {
        #[serde(flatten)]
        meta: Meta,
    },
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

/// An assistant message's `content`: a string, or content parts with `text`.
#[derive(Default)]
struct Content(String);

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
            _ => String::new(),
        }))
    }
}

impl From<Wire> for LettaMessage {
    fn from(wire: Wire) -> Self {
        match wire {
            Wire::ReasoningMessage { meta, reasoning } => Self::Reasoning {
                meta,
                reasoning: reasoning.unwrap_or_default(),
            },
            Wire::AssistantMessage { meta, content } => Self::Assistant {
                meta,
                content: content.0,
            },
            Wire::ToolCallMessage { meta, tool_call } => {
                let call = tool_call.unwrap_or(WireToolCall {
                    name: None,
                    arguments: None,
                    tool_call_id: None,
                });
                Self::ToolCall {
                    meta,
                    call_id: call.tool_call_id,
                    name: call.name,
                    arguments: call.arguments,
                }
            }
            Wire::ToolReturnMessage {
                meta,
                tool_call_id,
                name,
                tool_return,
                status,
            } => Self::ToolReturn {
                meta,
                call_id: tool_call_id,
                name,
                result: tool_return.unwrap_or_default(),
                status,
            },
            Wire::UsageStatistics {
                prompt_tokens,
                completion_tokens,
                total_tokens,
                step_count,
            } => Self::Usage {
                prompt_tokens: prompt_tokens.unwrap_or(0),
                completion_tokens: completion_tokens.unwrap_or(0),
                total_tokens: total_tokens.unwrap_or(0),
                steps: step_count.unwrap_or(0),
            },
            Wire::StopReason { stop_reason } => Self::StopReason {
                reason: stop_reason.unwrap_or_default(),
            },
            Wire::ErrorMessage {
                meta,
                error_type,
                message,
                detail,
            } => Self::Error {
                meta,
                error_type,
                message,
                detail,
            },
            Wire::Ping { meta } => Self::Ping { meta },
        }
    }
}

/// The types [`Wire`] knows; anything else is [`LettaMessage::Other`].
const KNOWN: &[&str] = &[
    "reasoning_message",
    "assistant_message",
    "tool_call_message",
    "tool_return_message",
    "usage_statistics",
    "stop_reason",
    "error_message",
    "ping",
];

impl LettaMessage {
    /// Reads one message from its JSON. An unknown `message_type`, or a known one whose
    /// fields do not parse, is kept as `Other` (with its type) rather than failing the stream.
    pub fn from_value(value: Value) -> Self {
        let message_type = value
            .get("message_type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let meta = || Meta::deserialize(&value).unwrap_or_default();
        if !KNOWN.contains(&message_type.as_str()) {
            return Self::Other {
                meta: meta(),
                message_type,
            };
        }
        match Wire::deserialize(&value) {
            Ok(wire) => wire.into(),
            Err(e) => {
                tracing::warn!(%message_type, error = %e, "a Letta message of a known type did not parse");
                Self::Other {
                    meta: meta(),
                    message_type,
                }
            }
        }
    }

    /// The ids and run, for the types that carry them.
    pub fn meta(&self) -> Option<&Meta> {
        match self {
            Self::Reasoning { meta, .. }
            | Self::Assistant { meta, .. }
            | Self::ToolCall { meta, .. }
            | Self::ToolReturn { meta, .. }
            | Self::Error { meta, .. }
            | Self::Ping { meta }
            | Self::Other { meta, .. } => Some(meta),
            Self::Usage { .. } | Self::StopReason { .. } => None,
        }
    }
}

impl<'de> Deserialize<'de> for LettaMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Self::from_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn letta_samples_become_typed_messages() {
        let reasoning = LettaMessage::from_value(
            json!({"id": "message-1", "date": "2026-11-21T21:18:42+00:00",
            "name": null, "message_type": "reasoning_message", "run_id": "run-1", "reasoning": " fake", "signature": null}),
        );
        assert!(
            matches!(&reasoning, LettaMessage::Reasoning { meta, reasoning } if reasoning == " fake" && meta.run_id.as_deref() == Some("run-1"))
        );
        let parts = LettaMessage::from_value(
            json!({"message_type": "assistant_message", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]}),
        );
        assert!(matches!(parts, LettaMessage::Assistant { content, .. } if content == "Hi!"));
        let call = LettaMessage::from_value(
            json!({"message_type": "tool_call_message", "tool_call": {"name": "send_message", "arguments": "{\"m", "tool_call_id": "c1"}}),
        );
        assert!(
            matches!(call, LettaMessage::ToolCall { call_id: Some(id), name: Some(n), arguments: Some(a), .. } if id == "c1" && n == "send_message" && a == "{\"m")
        );
        let usage = LettaMessage::from_value(
            json!({"message_type": "usage_statistics", "completion_tokens": 25, "prompt_tokens": 1866, "total_tokens": 1891, "step_count": 1, "run_ids": null}),
        );
        assert!(matches!(
            usage,
            LettaMessage::Usage {
                prompt_tokens: 1866,
                completion_tokens: 25,
                total_tokens: 1891,
                steps: 1
            }
        ));
        let error = LettaMessage::from_value(
            json!({"message_type": "error_message", "error_type": "llm_error", "detail": "x"}),
        );
        assert!(matches!(error, LettaMessage::Error { detail: Some(d), .. } if d == "x"));
    }

    #[test]
    fn unknown_types_are_kept_as_other() {
        let m = LettaMessage::from_value(
            json!({"id": "message-9", "message_type": "approval_request_message"}),
        );
        assert!(
            matches!(&m, LettaMessage::Other { message_type, meta } if message_type == "approval_request_message" && meta.id.as_deref() == Some("message-9"))
        );
        let bad = LettaMessage::from_value(
            json!({"message_type": "usage_statistics", "prompt_tokens": "many"}),
        );
        assert!(matches!(bad, LettaMessage::Other { .. }));
    }
}
