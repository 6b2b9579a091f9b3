//! The live turn: Letta's events folded into the reply and relayed as chat events the moment
//! they arrive; then the reply is completed, priced and stored (a conversation's first exchange
//! named meanwhile: `title`), and the turn closed with `usage` and `done` (or `error`).

use std::{collections::BTreeMap, time::Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{
    Turn,
    cost::{self, EarlyPrice, Steps},
    events::{ChatEvent, Done},
    failure::TurnFailure,
};
use crate::{
    app::clock::day_of,
    clients::letta::{ARCHIVAL_INSERT_TOOL, ARCHIVAL_SEARCH_TOOL, LettaMessage, TurnStream},
    domain::{ErrorRecord, Message, MessageStatus, Role, Title, ToolCall, Usage},
    flows::{agent, usage},
    store::{TurnEnd, TurnState},
};

/// The stop reason of a run the user cancelled.
const CANCELLED: &str = "cancelled";

/// Everything known about the reply so far.
#[derive(Default)]
pub(super) struct Reply {
    pub(super) text: String,
    reasoning: String,
    tool_calls: BTreeMap<String, ToolCall>,
    tool_order: Vec<String>,
    letta_ids: Vec<String>,
    step_ids: Vec<String>,
    run_id: Option<String>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
    pub(super) failure: Option<TurnFailure>,
    first_token_at: Option<Instant>,
    /// What the agent's own archival memory tools did that is not counted yet: characters
    /// embedded (inserts and searches) and memories saved.
    memory_uncounted: MemoryUse,
}

/// Characters sent to the embedding model and memories saved by the agent's tools.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MemoryUse {
    pub(super) embedded_chars: u64,
    pub(super) saved: i64,
}

impl MemoryUse {
    /// What one of the agent's tool calls embedded and saved (archival inserts embed their
    /// content, searches their query).
    fn of(call: &ToolCall) -> Self {
        let argument = |field: &str| {
            serde_json::from_str::<serde_json::Value>(&call.arguments)
                .ok()
                .and_then(|args| args.get(field)?.as_str().map(|s| s.chars().count() as u64))
                .unwrap_or(0)
        };
        let succeeded = call.status.as_deref() == Some("success");
        match call.name.as_str() {
            ARCHIVAL_INSERT_TOOL if succeeded => Self {
                embedded_chars: argument("content"),
                saved: 1,
            },
            ARCHIVAL_SEARCH_TOOL => Self {
                embedded_chars: argument("query"),
                saved: 0,
            },
            _ => Self::default(),
        }
    }
}

impl Reply {
    /// Folds one Letta message in; returns the chat events it produces.
    pub(super) fn absorb(&mut self, message: LettaMessage) -> Vec<ChatEvent> {
        if let Some(meta) = message.meta() {
            self.note_ids(meta.id.as_deref(), meta.run_id.as_deref());
            if let Some(step) = &meta.step_id
                && !self.step_ids.contains(step)
            {
                self.step_ids.push(step.clone());
            }
        }
        match message {
            LettaMessage::Reasoning { reasoning, .. } if !reasoning.is_empty() => {
                self.first_token_at.get_or_insert_with(Instant::now);
                self.reasoning.push_str(&reasoning);
                vec![ChatEvent::Reasoning { delta: reasoning }]
            }
            LettaMessage::Assistant { content, .. } if !content.is_empty() => {
                self.first_token_at.get_or_insert_with(Instant::now);
                self.text.push_str(&content);
                vec![ChatEvent::Delta { text: content }]
            }
            LettaMessage::ToolCall {
                call_id,
                name,
                arguments,
                ..
            } => {
                self.on_tool_call(call_id, name, arguments);
                Vec::new() // announced whole, once its result arrives
            }
            LettaMessage::ToolReturn {
                call_id,
                name,
                result,
                status,
                ..
            } => self.on_tool_return(call_id, name, result, status),
            LettaMessage::StopReason { reason } => {
                // Letta sometimes repeats it; the first one counts.
                self.stop_reason.get_or_insert(reason);
                Vec::new()
            }
            LettaMessage::Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens,
                steps,
            } => {
                self.usage = Some(Usage {
                    prompt_tokens,
                    completion_tokens,
                    total_tokens,
                    steps,
                });
                Vec::new()
            }
            LettaMessage::Error {
                message, detail, ..
            } => {
                if self.failure.is_none() {
                    self.failure = Some(TurnFailure::classify(&[
                        message.as_deref(),
                        detail.as_deref(),
                    ]));
                }
                Vec::new()
            }
            _ => Vec::new(), // pings, empty chunks and types we do not relay
        }
    }

    fn note_ids(&mut self, id: Option<&str>, run_id: Option<&str>) {
        if self.run_id.is_none() {
            self.run_id = run_id.map(str::to_string);
        }
        if let Some(id) = id
            && !id.starts_with("ping-")
            && !self.letta_ids.iter().any(|known| known == id)
        {
            self.letta_ids.push(id.to_string());
        }
    }

    fn call_entry(&mut self, id: &str) -> &mut ToolCall {
        if !self.tool_calls.contains_key(id) {
            self.tool_order.push(id.to_string());
        }
        self.tool_calls
            .entry(id.to_string())
            .or_insert_with(|| ToolCall {
                id: id.to_string(),
                name: String::new(),
                arguments: String::new(),
                result: None,
                status: None,
            })
    }

    fn on_tool_call(
        &mut self,
        call_id: Option<String>,
        name: Option<String>,
        arguments: Option<String>,
    ) {
        let entry = self.call_entry(call_id.as_deref().unwrap_or("unknown"));
        if let Some(name) = name {
            entry.name = name;
        }
        if let Some(args) = arguments {
            entry.arguments.push_str(&args);
        }
    }

    fn on_tool_return(
        &mut self,
        call_id: Option<String>,
        name: Option<String>,
        result: String,
        status: Option<String>,
    ) -> Vec<ChatEvent> {
        let id = call_id.unwrap_or_else(|| "unknown".into());
        let status = status.unwrap_or_else(|| "success".into());
        let call = self.call_entry(&id);
        if call.name.is_empty() {
            call.name = name.unwrap_or_default();
        }
        call.result = Some(result.clone());
        call.status = Some(status.clone());
        let used = MemoryUse::of(call);
        let name = call.name.clone();
        let arguments = call.arguments.clone();
        self.memory_uncounted.embedded_chars += used.embedded_chars;
        self.memory_uncounted.saved += used.saved;
        vec![
            ChatEvent::ToolCall {
                id: id.clone(),
                name: name.clone(),
                arguments,
            },
            ChatEvent::ToolResult {
                id,
                name,
                status: Some(status),
                result,
            },
        ]
    }

    /// Tool calls whose result never came: still recorded, and announced at the end.
    fn unanswered_calls(&self) -> Vec<ChatEvent> {
        self.tool_order
            .iter()
            .filter_map(|id| self.tool_calls.get(id))
            .filter(|call| call.result.is_none())
            .map(|call| ChatEvent::ToolCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            })
            .collect()
    }

    pub(super) fn has_content(&self) -> bool {
        !self.text.is_empty() || !self.reasoning.is_empty() || !self.tool_calls.is_empty()
    }

    /// Whether the user stopped the turn (Letta cancelled its run).
    pub(super) fn cancelled(&self) -> bool {
        self.stop_reason.as_deref() == Some(CANCELLED)
    }

    /// A cancelled turn is priced by the steps that finished.
    fn steps_to_price(&self) -> Steps {
        if self.cancelled() {
            Steps::Finished
        } else {
            Steps::All
        }
    }

    fn status(&self) -> MessageStatus {
        if self.cancelled() {
            return MessageStatus::Cancelled;
        }
        match &self.failure {
            None => MessageStatus::Complete,
            Some(_) if self.has_content() => MessageStatus::Interrupted,
            Some(_) => MessageStatus::Failed,
        }
    }
}

/// The client's end of the turn: events go out until the client goes away; the turn goes on
/// either way.
pub(super) struct Outbox {
    tx: mpsc::Sender<ChatEvent>,
    gone: bool,
}

impl Outbox {
    pub(super) fn new(tx: mpsc::Sender<ChatEvent>) -> Self {
        Self { tx, gone: false }
    }

    async fn emit(&mut self, event: ChatEvent) {
        if !self.gone && self.tx.send(event).await.is_err() {
            self.gone = true;
            tracing::info!("client went away; finishing the turn anyway");
        }
    }

    async fn emit_all(&mut self, events: Vec<ChatEvent>) {
        for event in events {
            self.emit(event).await;
        }
    }
}

/// Runs the rest of a started turn: relay, complete, store, close.
pub(super) async fn run(turn: Turn, stream: TurnStream, mut out: Outbox) {
    out.emit(turn.start_event()).await;
    let mut reply = Reply::default();
    let early = relay(&turn, stream, &mut reply, &mut out).await;
    let letta_done = turn.started.elapsed();
    out.emit_all(reply.unanswered_calls()).await;
    let corrected = complete_text(&turn, &mut reply, &mut out).await;
    // A conversation still without a title gets one from its first complete exchange, named
    // while the reply is stored, so `done` stays the last event and barely waits.
    let ((stored, end), title) =
        tokio::join!(store_reply(&turn, &reply, early), title(&turn, &reply));
    if let Some(title) = &title {
        turn.remember(Some(title.as_str()));
        out.emit(ChatEvent::Title {
            conversation_id: turn.conversation.id.clone(),
            title: title.as_str().to_string(),
        })
        .await;
    }
    out.emit(ChatEvent::Usage {
        usage: stored.usage.clone().unwrap_or_default(),
        cost_usd: stored.cost_usd,
        model: stored.model.clone(),
    })
    .await;
    let last = match &reply.failure {
        Some(failure) => ChatEvent::Error(failure.event()),
        None => ChatEvent::Done(Done {
            message_id: stored.id.clone(),
            stop_reason: stored.stop_reason.clone(),
            latency_ms: stored.latency_ms,
            ttft_ms: stored.ttft_ms,
            text_corrected: corrected,
            text: corrected.then(|| stored.content.clone()),
            replayed_status: None,
        }),
    };
    out.emit(last).await;
    // LiteLLM refused for the budget: the next turns are refused before Letta is called, until
    // the period resets or the user raises the cap (the client already has its answer).
    if let Some(TurnFailure::BudgetExceeded { .. }) = &reply.failure {
        let (user, conversation) = (&turn.user.id, &turn.conversation.id);
        turn.state.turn_cache.forget(user, conversation);
        if let Err(e) = usage::record_budget_used_up(&turn.state, user).await {
            tracing::warn!(error = %e, "could not record the budget as used up");
        }
    }
    let usage = stored.usage.unwrap_or_default();
    tracing::info!(
        status = stored.status.as_str(),
        latency_ms = stored.latency_ms,
        ttft_ms = stored.ttft_ms,
        prepared_ms = turn.phases.prepared_ms,
        accepted_ms = turn.phases.accepted_ms,
        letta_done_ms = letta_done.as_millis() as u64,
        end_ms = (turn.started.elapsed() - letta_done).as_millis() as u64,
        priced_ms = end.priced_ms,
        stored_ms = end.stored_ms,
        prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens,
        client_gone = out.gone,
        "turn finished"
    );
}

/// The title a conversation without one gets from this exchange, if it completed.
async fn title(turn: &Turn, reply: &Reply) -> Option<Title> {
    let unfinished = reply.failure.is_some() || reply.cancelled();
    if turn.conversation.title.is_some() || unfinished || reply.text.is_empty() {
        return None;
    }
    super::title::give_title(
        &turn.state,
        &turn.user.id,
        &turn.conversation.id,
        turn.model(),
        &turn.user_message.content,
        &reply.text,
    )
    .await
}

/// Relays Letta's events until its stream ends or breaks. Once Letta names the stop reason
/// (every step done), the steps' pricing starts, so the turn's end does not wait for it.
async fn relay(
    turn: &Turn,
    mut stream: TurnStream,
    reply: &mut Reply,
    out: &mut Outbox,
) -> Option<EarlyPrice> {
    let mut early = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(message) => {
                out.emit_all(reply.absorb(message)).await;
                let used = std::mem::take(&mut reply.memory_uncounted);
                if used != MemoryUse::default() {
                    count_memory_use(turn, used).await;
                }
                if early.is_none() && reply.stop_reason.is_some() {
                    let need = reply.steps_to_price();
                    early = Some(cost::price_early(&turn.state, &reply.step_ids, need));
                }
            }
            Err(e) => {
                reply.failure.get_or_insert(TurnFailure::Interrupted {
                    detail: e.to_string(),
                });
                break;
            }
        }
    }
    early
}

/// Counts what the agent's memory tools did as it happens (not after the turn): the
/// characters against the user's daily embedding quota, the memories against the archival cap.
/// The tools already ran, so a full quota or cap does not stop the turn; they stop the user's
/// own inserts and searches (the agent's are bounded by the turn's step limit).
async fn count_memory_use(turn: &Turn, used: MemoryUse) {
    let (store, user) = (&turn.state.store, &turn.user.id);
    let quota = agent::embedding_quota(&turn.state);
    let (embedded, saved) = tokio::join!(
        async {
            match used.embedded_chars {
                0 => Ok(()),
                chars => store.count_quota(user, &quota, chars).await,
            }
        },
        async {
            match used.saved {
                0 => Ok(()),
                saved => store.count_archival(user, saved).await,
            }
        }
    );
    if let Err(e) = embedded.and(saved) {
        tracing::warn!(error = %e, "could not count the agent's memory use");
    }
}

/// Makes the reply's text complete. A `letta_v1_agent` streams its plain content exactly, so a
/// turn that ended (a stop reason came) with text streamed needs nothing more. Otherwise the
/// stored messages are authoritative: Letta 0.16.8 often omits the deltas of a `send_message`
/// reply, and trims whitespace at their ends. Sends what the client lacks as a last `delta`,
/// or returns true when the client's text must be replaced.
async fn complete_text(turn: &Turn, reply: &mut Reply, out: &mut Outbox) -> bool {
    // A stopped reply keeps exactly what arrived.
    if reply.failure.is_some() || reply.cancelled() {
        return false;
    }
    if turn.streams_exact_text() && reply.stop_reason.is_some() && !reply.text.is_empty() {
        return false;
    }
    let Some(text) = stored_text(turn, reply.run_id.as_deref()).await else {
        return false;
    };
    if text == reply.text {
        return false;
    }
    let corrected = match text.strip_prefix(reply.text.as_str()) {
        Some(rest) => {
            out.emit(ChatEvent::Delta {
                text: rest.to_string(),
            })
            .await;
            false
        }
        None => true,
    };
    reply.text = text;
    corrected
}

/// The assistant text Letta stored for this run, in order.
async fn stored_text(turn: &Turn, run_id: Option<&str>) -> Option<String> {
    let run_id = run_id?;
    let messages = match turn.state.letta.recent_messages(turn.thread(), 50).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the stored reply back; keeping the streamed text");
            return None;
        }
    };
    let mut parts: Vec<(String, String)> = messages
        .into_iter()
        .filter_map(|m| match m {
            LettaMessage::Assistant { meta, content } if meta.run_id.as_deref() == Some(run_id) => {
                Some((meta.date.unwrap_or_default(), content))
            }
            _ => None,
        })
        .collect();
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    let text: String = parts.into_iter().map(|(_, t)| t).collect();
    (!text.is_empty()).then_some(text)
}

/// Prices the reply, stores it with the day's usage, settles the user's message and releases
/// the turn. Returns what was stored, and how long pricing and storing took.
async fn store_reply(
    turn: &Turn,
    reply: &Reply,
    early: Option<EarlyPrice>,
) -> (Message, EndPhases) {
    let status = reply.status();
    let pricing = Instant::now();
    let (state, steps) = (&turn.state, &reply.step_ids);
    let reported = reply.usage.clone().unwrap_or_default();
    let need = reply.steps_to_price();
    let priced = cost::price_turn(state, turn.model(), steps, &reported, early, need).await;
    let priced_ms = pricing.elapsed().as_millis() as u64;
    let assistant = reply_message(turn, reply, priced);
    let user_status = if status == MessageStatus::Failed && reply.letta_ids.is_empty() {
        MessageStatus::Failed
    } else {
        MessageStatus::Complete
    };
    // What was billed counts, even for a reply that failed after its LLM calls.
    let cost = assistant.cost_usd.unwrap_or(0.0);
    let day = day_of(&assistant.created_at);
    let usage = assistant.usage.clone().unwrap_or_default();
    let billed = (usage.total_tokens > 0 || cost > 0.0).then_some((day.as_str(), &usage, cost));
    let end = TurnEnd {
        user: &turn.user.id,
        conversation: &turn.conversation.id,
        reply: &assistant,
        user_message: (&turn.user_message.id, user_status),
        slot: turn.slot,
        idempotency: turn.idempotency_key.as_ref().map(|key| {
            let state = match status {
                MessageStatus::Failed => None,
                MessageStatus::Interrupted => Some(TurnState::Interrupted),
                _ => Some(TurnState::Complete),
            };
            (key, state)
        }),
        billed,
    };
    // One write: the reply, the user's message settled, the counts, the lock released.
    let storing = Instant::now();
    if let Err(e) = turn.state.store.finish_turn(&end).await {
        tracing::error!(error = %e, message_id = %assistant.id, "the turn's end could not be stored");
    }
    let stored_ms = storing.elapsed().as_millis() as u64;
    (
        assistant,
        EndPhases {
            priced_ms,
            stored_ms,
        },
    )
}

/// The reply as it is stored: what arrived, its price, usage and timings.
fn reply_message(turn: &Turn, reply: &Reply, priced: cost::Priced) -> Message {
    let mut assistant = Message::new(
        &turn.conversation.id,
        &turn.reply_id,
        Role::Assistant,
        reply.text.clone(),
        reply.status(),
    );
    assistant.reply_to = Some(turn.user_message.id.clone());
    assistant.reasoning = (!reply.reasoning.is_empty()).then(|| reply.reasoning.clone());
    assistant.tool_calls = reply
        .tool_order
        .iter()
        .filter_map(|id| reply.tool_calls.get(id).cloned())
        .collect();
    assistant.letta_message_ids = reply.letta_ids.clone();
    assistant.letta_run_id = reply.run_id.clone();
    // A cancelled run reports no usage: its finished steps' traces tell it.
    assistant.usage = match (&reply.usage, reply.cancelled()) {
        (None, true) => priced.usage,
        (reported, _) => reported.clone(),
    };
    assistant.cost_usd = priced.cost_usd;
    assistant.model = Some(priced.model);
    assistant.llm_call_ids = priced.call_ids;
    assistant.ttft_ms = reply
        .first_token_at
        .map(|t| t.duration_since(turn.started).as_millis() as u64);
    assistant.latency_ms = Some(turn.started.elapsed().as_millis() as u64);
    assistant.stop_reason = reply.stop_reason.clone();
    assistant.error = reply.failure.as_ref().map(|f| ErrorRecord {
        code: f.code().to_string(),
        message: f.message(),
    });
    assistant
}

/// Milliseconds the turn's end spent after Letta's `[DONE]`: waiting for the price, storing.
struct EndPhases {
    priced_ms: u64,
    stored_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn msg(v: Value) -> LettaMessage {
        LettaMessage::from_value(v)
    }

    #[test]
    fn letta_events_become_chat_events() {
        let mut reply = Reply::default();
        let mut events = Vec::new();
        for item in [
            msg(json!({"id": "ping-1", "message_type": "ping", "run_id": "run-1"})),
            msg(
                json!({"id": "message-1", "message_type": "reasoning_message", "reasoning": "Let me ", "run_id": "run-1"}),
            ),
            msg(
                json!({"id": "message-1", "message_type": "tool_call_message", "tool_call": {"name": "core_memory_append", "arguments": "{\"a\":", "tool_call_id": "c1"}}),
            ),
            msg(
                json!({"id": "message-1", "message_type": "tool_call_message", "tool_call": {"arguments": "1}", "tool_call_id": "c1"}}),
            ),
            msg(
                json!({"id": "message-2", "message_type": "tool_return_message", "tool_return": "ok", "status": "success", "tool_call_id": "c1", "name": "core_memory_append"}),
            ),
            msg(
                json!({"id": "message-3", "message_type": "assistant_message", "content": "Hello"}),
            ),
            msg(
                json!({"id": "message-3", "message_type": "assistant_message", "content": [{"type": "text", "text": " there"}]}),
            ),
            msg(json!({"message_type": "stop_reason", "stop_reason": "end_turn"})),
            msg(json!({"message_type": "stop_reason", "stop_reason": "llm_api_error"})),
            msg(
                json!({"message_type": "usage_statistics", "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "step_count": 2}),
            ),
        ] {
            events.extend(reply.absorb(item));
        }
        let names: Vec<&str> = events
            .iter()
            .map(|e| match e {
                ChatEvent::Reasoning { .. } => "reasoning",
                ChatEvent::ToolCall { .. } => "tool_call",
                ChatEvent::ToolResult { .. } => "tool_result",
                ChatEvent::Delta { .. } => "delta",
                _ => "other",
            })
            .collect();
        assert_eq!(
            names,
            ["reasoning", "tool_call", "tool_result", "delta", "delta"]
        );
        assert!(
            matches!(&events[1], ChatEvent::ToolCall { arguments, .. } if arguments == "{\"a\":1}")
        );
        assert_eq!(reply.text, "Hello there");
        assert_eq!(reply.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(reply.usage.as_ref().unwrap().steps, 2);
        assert_eq!(reply.run_id.as_deref(), Some("run-1"));
        assert_eq!(reply.letta_ids, ["message-1", "message-2", "message-3"]);
    }
}
