//! The SSE events of a chat turn: each event's `data` type, and the one list that names them
//! (its SSE name, its schema, what it says).

use serde::Serialize;
use serde_json::Value;
use utoipa::{
    ToSchema,
    openapi::{ObjectBuilder, OneOfBuilder, Ref, RefOr, Schema, Type},
};

use crate::{
    app::error::ErrorCode,
    flows::chat::{ChatEvent, Done, TurnError},
};

use super::chat::StatusView;

/// `start`: the turn began; the ids of the user's message and of the reply.
#[derive(Serialize, ToSchema)]
pub struct StartEvent {
    /// The conversation.
    conversation_id: String,
    /// The reply's id.
    message_id: String,
    /// The user's message's id.
    user_message_id: String,
    /// The model answering.
    model: Option<String>,
    /// Present (`true`) when a finished turn is replayed for a repeated `Idempotency-Key`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

/// `reasoning`: a piece of the agent's reasoning.
#[derive(Serialize, ToSchema)]
pub struct ReasoningEvent {
    /// The text added.
    delta: String,
}

/// `tool_call`: the agent calls a tool.
#[derive(Serialize, ToSchema)]
pub struct ToolCallEvent {
    /// The call id.
    id: String,
    /// The tool.
    name: String,
    /// Its JSON arguments, as text.
    arguments: String,
}

/// `tool_result`: what the tool returned.
#[derive(Serialize, ToSchema)]
pub struct ToolResultEvent {
    /// The call id.
    id: String,
    /// The tool.
    name: String,
    /// `success` or `error`.
    status: Option<String>,
    /// What it returned.
    result: String,
}

/// `delta`: a piece of the reply's text.
#[derive(Serialize, ToSchema)]
pub struct DeltaEvent {
    /// The text added.
    text: String,
}

/// `usage`: what the turn cost.
#[derive(Serialize, ToSchema)]
pub struct UsageEvent {
    /// Prompt tokens over every step.
    prompt_tokens: u64,
    /// Completion tokens over every step.
    completion_tokens: u64,
    /// Prompt and completion tokens together.
    total_tokens: u64,
    /// LLM calls (steps).
    steps: u64,
    /// Cost, USD.
    cost_usd: Option<f64>,
    /// The model.
    model: Option<String>,
}

/// `done`: the reply is stored; the last event of a turn.
#[derive(Serialize, ToSchema)]
pub struct DoneEvent {
    /// The reply's id.
    message_id: String,
    /// Why the agent stopped.
    stop_reason: Option<String>,
    /// The whole turn, ms.
    latency_ms: Option<u64>,
    /// Time to the first token, ms.
    ttft_ms: Option<u64>,
    /// Whether the stored text differs from the deltas (then `text` is the reply).
    text_corrected: bool,
    /// The reply's text, when it was corrected or replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// Present (`true`) for a replayed turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed: Option<bool>,
    /// A replayed turn's stored status.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusView>,
}

/// `error`: the turn broke off (what arrived is kept and marked); the last event.
#[derive(Serialize, ToSchema)]
pub struct TurnErrorView {
    /// `budget_exceeded`, `billing_key_revoked`, `llm_error`, `agent_interrupted`, …
    code: ErrorCode,
    /// A sentence for the user.
    message: String,
    /// Whether sending the message again may succeed.
    retryable: bool,
    /// For `budget_exceeded`: spent this period, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    spend: Option<Option<f64>>,
    /// For `budget_exceeded`: the cap, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<Option<f64>>,
}

impl TurnErrorView {
    /// A dependency's failure outside a turn (an export that broke off): worth retrying.
    pub(super) fn retryable(code: ErrorCode, message: String) -> Self {
        Self {
            code,
            message,
            retryable: true,
            spend: None,
            limit: None,
        }
    }
}

/// `transcript`: what a voice message said (the user's message of the turn that follows).
#[derive(Serialize, ToSchema)]
pub struct TranscriptEvent {
    /// The words heard, as sent to the agent.
    text: String,
}

/// `title`: the conversation got a title from its first message.
#[derive(Serialize, ToSchema)]
pub struct TitleEvent {
    /// The conversation.
    conversation_id: String,
    /// Its new title.
    title: String,
}

/// Declares the events once, in the order of a turn: the variant, the `data` type, the SSE name
/// and what it says. The enum, its names and the OpenAPI list of events all come from here.
macro_rules! chat_events {
    ($($variant:ident($data:ident) = $name:literal, $about:literal;)+) => {
        /// One SSE event of `POST /chat/message` (and `/chat/voice`, which sends `transcript`
        /// first): `event:` is the name, `data:` the JSON of that event, `id:` counts from 1.
        /// A turn is `start`, then `reasoning`, `tool_call`,
        /// `tool_result` and `delta` as they happen, then `usage` and `done` — or `error` — and
        /// maybe `title`.
        #[derive(Serialize)]
        #[serde(tag = "event", content = "data")]
        pub enum ChatEventView {
            $(
                #[doc = $about]
                #[serde(rename = $name)]
                $variant($data),
            )+
        }

        impl ChatEventView {
            /// The SSE event name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)+
                }
            }
        }

        /// The events: name, the schema of `data`, what it says.
        const CHAT_EVENTS: &[(&str, &str, &str)] = &[$(($name, stringify!($data), $about)),+];

        /// Each event's `data` schema.
        fn event_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            $(
                schemas.push(($data::name().into_owned(), <$data as utoipa::PartialSchema>::schema()));
                <$data as ToSchema>::schemas(schemas);
            )+
        }
    };
}

chat_events! {
    Transcript(TranscriptEvent) = "transcript", "A voice message's words (`POST /chat/voice` only): the user's message.";
    Start(StartEvent) = "start", "The turn began.";
    Reasoning(ReasoningEvent) = "reasoning", "A piece of the agent's reasoning.";
    ToolCall(ToolCallEvent) = "tool_call", "The agent calls a tool.";
    ToolResult(ToolResultEvent) = "tool_result", "What the tool returned.";
    Delta(DeltaEvent) = "delta", "A piece of the reply's text.";
    Usage(UsageEvent) = "usage", "What the turn cost.";
    Done(DoneEvent) = "done", "The reply is stored: the last event.";
    Error(TurnErrorView) = "error", "The turn broke off: the last event.";
    Title(TitleEvent) = "title", "The conversation got a title.";
}

/// Each SSE event as an object of its fields (`event`, `id`, and `data`, a JSON string of the
/// event's schema): the shape OpenAPI 3.1 tools read an event stream's `schema` as.
impl utoipa::PartialSchema for ChatEventView {
    fn schema() -> RefOr<Schema> {
        let event = |(name, data, description): (&str, &str, &str)| {
            ObjectBuilder::new()
                .description(Some(description))
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([name])),
                )
                .required("event")
                .property(
                    "id",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("The event's number in the turn, from 1.")),
                )
                .property(
                    "data",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/json")
                        .content_schema(Some(Ref::from_schema_name(data))),
                )
                .required("data")
        };
        let events = CHAT_EVENTS
            .iter()
            .copied()
            .fold(OneOfBuilder::new(), |one_of, e| one_of.item(event(e)));
        events
            .description(Some(
                "One SSE event of a chat turn: (`transcript` for a voice message), `start`, then `reasoning`, `tool_call`, \
                 `tool_result` and `delta` as they happen, then `usage` and `done` (or `error`), \
                 and maybe `title`.",
            ))
            .into()
    }
}

impl ToSchema for ChatEventView {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        event_schemas(schemas);
    }
}

fn done(d: &Done) -> DoneEvent {
    DoneEvent {
        message_id: d.message_id.clone(),
        stop_reason: d.stop_reason.clone(),
        latency_ms: d.latency_ms,
        ttft_ms: d.ttft_ms,
        text_corrected: d.text_corrected,
        text: d.text.clone(),
        replayed: d.replayed_status.map(|_| true),
        status: d.replayed_status.map(StatusView::from),
    }
}

fn turn_error(e: &TurnError) -> TurnErrorView {
    TurnErrorView {
        code: e.code,
        message: e.message.clone(),
        retryable: e.retryable,
        spend: e.budget.map(|(spend, _)| spend),
        limit: e.budget.map(|(_, limit)| limit),
    }
}

impl ChatEventView {
    /// The SSE `data:` JSON.
    pub fn data(&self) -> Value {
        let mut tagged = serde_json::to_value(self).unwrap_or(Value::Null);
        tagged
            .get_mut("data")
            .map(Value::take)
            .unwrap_or(Value::Null)
    }
}

/// A chat event as clients see it.
pub fn chat_event(event: &ChatEvent) -> ChatEventView {
    match event {
        ChatEvent::Transcript { text } => {
            ChatEventView::Transcript(TranscriptEvent { text: text.clone() })
        }
        ChatEvent::Start {
            conversation_id,
            message_id,
            user_message_id,
            model,
            replayed,
        } => ChatEventView::Start(StartEvent {
            conversation_id: conversation_id.to_string(),
            message_id: message_id.clone(),
            user_message_id: user_message_id.clone(),
            model: model.clone(),
            replayed: *replayed,
        }),
        ChatEvent::Reasoning { delta } => ChatEventView::Reasoning(ReasoningEvent {
            delta: delta.clone(),
        }),
        ChatEvent::ToolCall {
            id,
            name,
            arguments,
        } => ChatEventView::ToolCall(ToolCallEvent {
            id: id.clone(),
            name: name.clone(),
            arguments: arguments.clone(),
        }),
        ChatEvent::ToolResult {
            id,
            name,
            status,
            result,
        } => ChatEventView::ToolResult(ToolResultEvent {
            id: id.clone(),
            name: name.clone(),
            status: status.clone(),
            result: result.clone(),
        }),
        ChatEvent::Delta { text } => ChatEventView::Delta(DeltaEvent { text: text.clone() }),
        ChatEvent::Usage {
            usage,
            cost_usd,
            model,
        } => ChatEventView::Usage(UsageEvent {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens,
            steps: usage.steps,
            cost_usd: *cost_usd,
            model: model.clone(),
        }),
        ChatEvent::Done(d) => ChatEventView::Done(done(d)),
        ChatEvent::Error(e) => ChatEventView::Error(turn_error(e)),
        ChatEvent::Title {
            conversation_id,
            title,
        } => ChatEventView::Title(TitleEvent {
            conversation_id: conversation_id.to_string(),
            title: title.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{ConversationId, MessageStatus};

    #[test]
    fn replayed_turns_say_so_in_start_and_done() {
        let start = chat_event(&ChatEvent::Start {
            conversation_id: ConversationId::default_conversation(),
            message_id: "m".into(),
            user_message_id: "u".into(),
            model: Some("gpt-4".into()),
            replayed: true,
        });
        assert_eq!(
            (start.name(), &start.data()["replayed"]),
            ("start", &json!(true))
        );
        let live = chat_event(&ChatEvent::Start {
            conversation_id: ConversationId::default_conversation(),
            message_id: "m".into(),
            user_message_id: "u".into(),
            model: None,
            replayed: false,
        });
        assert!(live.data().get("replayed").is_none());
        assert_eq!(live.data()["model"], Value::Null);
        let done = chat_event(&ChatEvent::Done(Done {
            message_id: "m".into(),
            stop_reason: None,
            latency_ms: Some(3),
            ttft_ms: None,
            text_corrected: false,
            text: None,
            replayed_status: Some(MessageStatus::Interrupted),
        }));
        assert_eq!(done.name(), "done");
        assert_eq!(done.data()["status"], "interrupted");
        assert_eq!(done.data()["replayed"], true);
        assert!(done.data().get("text").is_none());
    }
}
