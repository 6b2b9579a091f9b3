//! One chat turn: the user's message is stored, sent to the user's Letta agent with token
//! streaming, and Letta's events are relayed as SSE events the moment they arrive. The turn
//! runs in its own task, so it completes and is stored even when the client goes away.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{
    AppState,
    error::AppError,
    history::{ErrorRecord, IdempotencyRecord, Message, MessageStatus, Role, ToolCall, Usage},
    jwt::AuthUser,
    letta::{LettaMessage, StreamItem, TurnStream},
};

/// How long the first Letta events are awaited before the response starts: refusals (budget,
/// revoked key) arrive within a fraction of a second and can still be a plain 402/403.
const PEEK_WINDOW: Duration = Duration::from_millis(2500);

/// One SSE event (`event:` name and JSON `data:`); ids are added where the stream is rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatEvent {
    pub name: &'static str,
    pub data: Value,
}

impl ChatEvent {
    fn new(name: &'static str, data: Value) -> Self {
        Self { name, data }
    }
}

pub enum TurnOutcome {
    /// Events as they happen; the channel closes after the turn is stored.
    Live(mpsc::Receiver<ChatEvent>),
    /// A finished turn replayed for a repeated `Idempotency-Key`.
    Replay(Vec<ChatEvent>),
}

/// Trims and bounds the message: 400 when empty, 413 when longer than the limit.
pub fn validate_content(raw: &str, max_chars: usize) -> Result<String, AppError> {
    let content = raw.trim();
    if content.is_empty() {
        return Err(AppError::BadRequest {
            code: "empty_content",
            message: "content must not be empty".into(),
        });
    }
    let chars = content.chars().count();
    if chars > max_chars {
        return Err(AppError::ContentTooLong {
            limit: max_chars,
            actual: chars,
        });
    }
    Ok(content.to_string())
}

/// 1 to 128 visible ASCII characters.
pub fn validate_idempotency_key(raw: &str) -> Result<String, AppError> {
    if raw.is_empty() || raw.len() > 128 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::BadRequest {
            code: "invalid_idempotency_key",
            message: "Idempotency-Key must be 1 to 128 visible ASCII characters".into(),
        });
    }
    Ok(raw.to_string())
}

/// How a failed LLM call was reported inside Letta's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnFailure {
    BudgetExceeded {
        spend: Option<f64>,
        limit: Option<f64>,
    },
    KeyRevoked,
    Llm {
        detail: String,
    },
    /// Letta's stream broke off (Letta killed, connection lost).
    Interrupted {
        detail: String,
    },
}

fn number_after(text: &str, marker: &str) -> Option<f64> {
    let start = text.find(marker)? + marker.len();
    let tail = &text[start..];
    let end = tail
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .unwrap_or(tail.len());
    tail[..end].parse().ok()
}

/// Reads LiteLLM's refusal out of Letta's `error_message` (its `detail` carries LiteLLM's text).
pub fn classify_error(error: &Value) -> TurnFailure {
    let detail = [
        error.get("detail"),
        error.get("message"),
        error.get("error_message"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .collect::<Vec<_>>()
    .join(" ");
    if detail.contains("budget_exceeded")
        || detail.contains("ExceededBudget")
        || detail.contains("Budget has been exceeded")
    {
        let spend =
            number_after(&detail, "Spend=").or_else(|| number_after(&detail, "Current cost: "));
        let limit =
            number_after(&detail, "Budget=").or_else(|| number_after(&detail, "Max budget: "));
        TurnFailure::BudgetExceeded { spend, limit }
    } else if detail.contains("token_not_found_in_db") {
        TurnFailure::KeyRevoked
    } else {
        TurnFailure::Llm { detail }
    }
}

impl TurnFailure {
    fn code(&self) -> &'static str {
        match self {
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::KeyRevoked => "billing_key_revoked",
            Self::Llm { .. } => "llm_error",
            Self::Interrupted { .. } => "agent_interrupted",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::BudgetExceeded { .. } => "your budget for this period is used up".into(),
            Self::KeyRevoked => {
                "your billing key is no longer valid; sign in again or contact support".into()
            }
            Self::Llm { .. } => "the model could not answer; try again".into(),
            Self::Interrupted { .. } => {
                "the reply broke off; what arrived is kept, try again".into()
            }
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, Self::Llm { .. } | Self::Interrupted { .. })
    }

    /// The error before anything was streamed: a plain JSON answer.
    fn into_app_error(self) -> AppError {
        match self {
            Self::BudgetExceeded { spend, limit } => AppError::BudgetExceeded {
                spend: spend.unwrap_or(0.0),
                limit: limit.unwrap_or(0.0),
            },
            Self::KeyRevoked => AppError::Forbidden {
                code: "billing_key_revoked",
                message: self.message(),
            },
            other => AppError::Unavailable {
                service: crate::upstream::Service::Letta,
                message: other.message(),
            },
        }
    }

    fn event(&self) -> ChatEvent {
        let mut data =
            json!({"code": self.code(), "message": self.message(), "retryable": self.retryable()});
        if let Self::BudgetExceeded { spend, limit } = self {
            data["spend"] = json!(spend);
            data["limit"] = json!(limit);
        }
        ChatEvent::new("error", data)
    }
}

/// The text of an assistant message's `content` (a string or content parts).
fn content_text(message: &LettaMessage) -> String {
    match message.fields.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn is_content(item: &StreamItem) -> bool {
    matches!(item, StreamItem::Message(m) if matches!(
        m.message_type.as_str(),
        "reasoning_message" | "assistant_message" | "tool_call_message" | "tool_return_message"
    ))
}

/// Everything known about the reply so far.
#[derive(Default)]
struct Reply {
    text: String,
    reasoning: String,
    tool_calls: BTreeMap<String, ToolCall>,
    tool_order: Vec<String>,
    letta_ids: Vec<String>,
    run_id: Option<String>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
    failure: Option<TurnFailure>,
    first_token_at: Option<Instant>,
}

impl Reply {
    /// Folds one Letta event in; returns the SSE events it produces.
    fn absorb(&mut self, item: StreamItem) -> Vec<ChatEvent> {
        let message = match item {
            StreamItem::Error(error) => {
                if self.failure.is_none() {
                    self.failure = Some(classify_error(&error));
                }
                return Vec::new();
            }
            StreamItem::Message(m) => m,
        };
        if self.run_id.is_none() {
            self.run_id = message.text("run_id").map(str::to_string);
        }
        if let Some(id) = &message.id
            && !id.starts_with("ping-")
            && !self.letta_ids.contains(id)
        {
            self.letta_ids.push(id.clone());
        }
        match message.message_type.as_str() {
            "reasoning_message" => {
                let delta = message.text("reasoning").unwrap_or_default().to_string();
                if delta.is_empty() {
                    return Vec::new();
                }
                self.first_token_at.get_or_insert_with(Instant::now);
                self.reasoning.push_str(&delta);
                vec![ChatEvent::new("reasoning", json!({"delta": delta}))]
            }
            "assistant_message" => {
                let delta = content_text(&message);
                if delta.is_empty() {
                    return Vec::new();
                }
                self.first_token_at.get_or_insert_with(Instant::now);
                self.text.push_str(&delta);
                vec![ChatEvent::new("delta", json!({"text": delta}))]
            }
            "tool_call_message" => {
                let call = message
                    .fields
                    .get("tool_call")
                    .cloned()
                    .unwrap_or(Value::Null);
                let id = call
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string();
                if !self.tool_calls.contains_key(&id) {
                    self.tool_order.push(id.clone());
                }
                let entry = self
                    .tool_calls
                    .entry(id.clone())
                    .or_insert_with(|| ToolCall {
                        id,
                        name: String::new(),
                        arguments: String::new(),
                        result: None,
                        status: None,
                    });
                if let Some(name) = call.get("name").and_then(Value::as_str) {
                    entry.name = name.to_string();
                }
                if let Some(args) = call.get("arguments").and_then(Value::as_str) {
                    entry.arguments.push_str(args);
                }
                Vec::new() // announced whole, once its result arrives
            }
            "tool_return_message" => {
                let id = message
                    .text("tool_call_id")
                    .unwrap_or("unknown")
                    .to_string();
                let result = message.text("tool_return").unwrap_or_default().to_string();
                let status = message.text("status").unwrap_or("success").to_string();
                let mut events = Vec::new();
                let call = self
                    .tool_calls
                    .entry(id.clone())
                    .or_insert_with(|| ToolCall {
                        id: id.clone(),
                        name: message.text("name").unwrap_or_default().to_string(),
                        arguments: String::new(),
                        result: None,
                        status: None,
                    });
                if call.name.is_empty() {
                    call.name = message.text("name").unwrap_or_default().to_string();
                }
                call.result = Some(result.clone());
                call.status = Some(status.clone());
                events.push(ChatEvent::new(
                    "tool_call",
                    json!({"id": id, "name": call.name, "arguments": call.arguments}),
                ));
                events.push(ChatEvent::new(
                    "tool_result",
                    json!({"id": id, "name": call.name, "status": status, "result": result}),
                ));
                if !self.tool_order.contains(&id) {
                    self.tool_order.push(id);
                }
                events
            }
            "stop_reason" => {
                if let Some(reason) = message.text("stop_reason") {
                    // Letta sometimes repeats it; the first one counts.
                    self.stop_reason.get_or_insert_with(|| reason.to_string());
                }
                Vec::new()
            }
            "usage_statistics" => {
                let field = |k: &str| message.fields.get(k).and_then(Value::as_u64).unwrap_or(0);
                self.usage = Some(Usage {
                    prompt_tokens: field("prompt_tokens"),
                    completion_tokens: field("completion_tokens"),
                    total_tokens: field("total_tokens"),
                    steps: field("step_count"),
                });
                Vec::new()
            }
            _ => Vec::new(), // ping and anything new
        }
    }

    fn has_content(&self) -> bool {
        !self.text.is_empty() || !self.reasoning.is_empty() || !self.tool_calls.is_empty()
    }
}

struct Turn {
    state: AppState,
    user: AuthUser,
    agent_id: String,
    model: String,
    user_message: Message,
    reply_id: ulid::Ulid,
    idempotency_key: Option<String>,
    started: Instant,
}

impl Turn {
    /// Undoes what a turn that never reached the agent left: the user message is marked failed,
    /// the lock released, and the idempotency key freed for a retry.
    async fn abandon(&self, error: &AppError) {
        let mut failed = self.user_message.clone();
        failed.status = MessageStatus::Failed;
        failed.error = Some(ErrorRecord {
            code: error.code().to_string(),
            message: error.to_string(),
        });
        if let Err(e) = self.state.store.put_message(&failed).await {
            tracing::error!(error = %e, "could not mark the user message failed");
        }
        self.release(None).await;
    }

    async fn release(&self, idempotency_state: Option<&str>) {
        let store = &self.state.store;
        if let Err(e) = store
            .unlock_turn(&self.user.id, &self.user_message.id)
            .await
        {
            tracing::warn!(error = %e, "could not release the turn lock; it expires by itself");
        }
        if let Some(key) = &self.idempotency_key {
            let result = match idempotency_state {
                Some(s) => store.set_idempotency_state(&self.user.id, key, s).await,
                None => store.release_idempotency_key(&self.user.id, key).await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not update the idempotency record");
            }
        }
    }
}

/// Starts a turn: validation, provisioning, idempotency, the turn lock, the user message, and
/// Letta's stream. Errors before the stream starts are plain JSON answers.
pub async fn start_turn(
    state: &AppState,
    user: AuthUser,
    content: &str,
    idempotency_key: Option<String>,
) -> Result<TurnOutcome, AppError> {
    let content = validate_content(content, state.config.http.chat_max_chars)?;
    let (profile, agent_id) = crate::agent_ops::ready_agent(state, &user.id).await?;

    let mut ids = ulid::Generator::new();
    let user_message_id = ids
        .generate()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let reply_id = ids
        .generate()
        .map_err(|e| AppError::Internal(e.to_string()))?;

    if let Some(key) = &idempotency_key {
        let claimed = state
            .store
            .claim_idempotency_key(
                &user.id,
                key,
                &user_message_id.to_string(),
                &reply_id.to_string(),
            )
            .await?;
        if let Some(existing) = claimed {
            return replay(state, &user, &existing)
                .await
                .map(TurnOutcome::Replay);
        }
    }
    let turn = Turn {
        state: state.clone(),
        user,
        agent_id,
        model: profile.model.clone(),
        user_message: Message::new(
            &profile.user_id,
            &user_message_id,
            Role::User,
            content,
            MessageStatus::Pending,
        ),
        reply_id,
        idempotency_key,
        started: Instant::now(),
    };
    if !state
        .store
        .lock_turn(&turn.user.id, &turn.user_message.id)
        .await?
    {
        if let Some(key) = &turn.idempotency_key {
            let _ = state
                .store
                .release_idempotency_key(&turn.user.id, key)
                .await;
        }
        return Err(AppError::Conflict {
            code: "turn_in_progress",
            message: "the assistant is still answering your previous message".into(),
        });
    }
    // Stored before anything else can fail: the user's words are never lost.
    if let Err(e) = state.store.put_message(&turn.user_message).await {
        turn.release(None).await;
        return Err(e.into());
    }

    let mut stream = match state
        .letta
        .stream_message(&turn.agent_id, &turn.user_message.content)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let error: AppError = e.into();
            turn.abandon(&error).await;
            return Err(error);
        }
    };

    // Peek: wait (briefly) for the first content or a refusal.
    let mut reply = Reply::default();
    let mut early = Vec::new();
    let deadline = tokio::time::Instant::now() + PEEK_WINDOW;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => {
                reply.failure = Some(TurnFailure::Interrupted {
                    detail: e.to_string(),
                });
                break;
            }
            Ok(Some(Ok(item))) => {
                let content = is_content(&item);
                early.extend(reply.absorb(item));
                if content || reply.failure.is_some() {
                    break;
                }
            }
        }
    }
    if let Some(failure) = reply.failure.clone()
        && !reply.has_content()
        && !matches!(failure, TurnFailure::Interrupted { .. })
    {
        let error = failure.into_app_error();
        turn.abandon(&error).await;
        return Err(error);
    }

    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(turn, stream, reply, early, tx));
    Ok(TurnOutcome::Live(rx))
}

/// Sends an event unless the client is gone; the turn goes on either way.
async fn emit(tx: &mpsc::Sender<ChatEvent>, client_gone: &mut bool, event: ChatEvent) {
    if !*client_gone && tx.send(event).await.is_err() {
        *client_gone = true;
        tracing::info!("client went away; finishing the turn anyway");
    }
}

async fn run(
    turn: Turn,
    mut stream: TurnStream,
    mut reply: Reply,
    early: Vec<ChatEvent>,
    tx: mpsc::Sender<ChatEvent>,
) {
    let mut gone = false;
    emit(
        &tx,
        &mut gone,
        ChatEvent::new(
            "start",
            json!({"message_id": turn.reply_id.to_string(), "user_message_id": turn.user_message.id, "model": turn.model}),
        ),
    )
    .await;
    for event in early {
        emit(&tx, &mut gone, event).await;
    }
    if !matches!(reply.failure, Some(TurnFailure::Interrupted { .. })) {
        while let Some(item) = stream.next().await {
            match item {
                Ok(item) => {
                    for event in reply.absorb(item) {
                        emit(&tx, &mut gone, event).await;
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
    }
    drop(stream);

    // Tool calls whose result never came are still recorded and announced.
    for id in &reply.tool_order {
        if let Some(call) = reply.tool_calls.get(id)
            && call.result.is_none()
        {
            emit(
                &tx,
                &mut gone,
                ChatEvent::new(
                    "tool_call",
                    json!({"id": id, "name": call.name, "arguments": call.arguments}),
                ),
            )
            .await;
        }
    }

    // Letta's token stream often omits assistant deltas (and drops whitespace at delta ends);
    // the stored messages are authoritative.
    let mut corrected = false;
    if reply.failure.is_none() {
        match authoritative_text(&turn, reply.run_id.as_deref()).await {
            Some(text) if text != reply.text => {
                if let Some(rest) = text.strip_prefix(reply.text.as_str()) {
                    emit(
                        &tx,
                        &mut gone,
                        ChatEvent::new("delta", json!({"text": rest})),
                    )
                    .await;
                } else {
                    corrected = true;
                }
                reply.text = text;
            }
            _ => {}
        }
    }

    let latency_ms = turn.started.elapsed().as_millis() as u64;
    let ttft_ms = reply
        .first_token_at
        .map(|t| t.duration_since(turn.started).as_millis() as u64);
    let usage = reply.usage.clone().unwrap_or_default();
    let price = turn
        .state
        .prices
        .price(&turn.state.litellm, &turn.model)
        .await;
    let cost = price.map(|p| p.cost(usage.prompt_tokens, usage.completion_tokens));
    let status = match &reply.failure {
        None => MessageStatus::Complete,
        Some(_) if reply.has_content() => MessageStatus::Interrupted,
        Some(_) => MessageStatus::Failed,
    };

    let mut assistant = Message::new(
        &turn.user.id,
        &turn.reply_id,
        Role::Assistant,
        reply.text.clone(),
        status,
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
    assistant.usage = reply.usage.clone();
    assistant.cost_usd = cost;
    assistant.model = Some(turn.model.clone());
    assistant.ttft_ms = ttft_ms;
    assistant.latency_ms = Some(latency_ms);
    assistant.stop_reason = reply.stop_reason.clone();
    assistant.error = reply.failure.as_ref().map(|f| ErrorRecord {
        code: f.code().into(),
        message: f.message(),
    });
    persist(&turn, &assistant, &usage, cost.unwrap_or(0.0)).await;

    let user_status = if status == MessageStatus::Failed && reply.letta_ids.is_empty() {
        MessageStatus::Failed
    } else {
        MessageStatus::Complete
    };
    if let Err(e) = turn
        .state
        .store
        .set_message_status(&turn.user.id, &turn.user_message.id, user_status)
        .await
    {
        tracing::error!(error = %e, "could not update the user message");
    }
    let idempotency_state = match status {
        MessageStatus::Failed => None,
        MessageStatus::Interrupted => Some("interrupted"),
        _ => Some("complete"),
    };
    turn.release(idempotency_state).await;

    emit(&tx, &mut gone, usage_event(&usage, cost)).await;
    match &reply.failure {
        Some(failure) => emit(&tx, &mut gone, failure.event()).await,
        None => {
            let mut done = json!({
                "message_id": turn.reply_id.to_string(),
                "stop_reason": reply.stop_reason,
                "latency_ms": latency_ms,
                "ttft_ms": ttft_ms,
                "text_corrected": corrected,
            });
            if corrected {
                done["text"] = json!(reply.text);
            }
            emit(&tx, &mut gone, ChatEvent::new("done", done)).await;
        }
    }
    tracing::info!(
        status = ?status, latency_ms, ttft_ms, prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens, client_gone = gone, "turn finished"
    );
}

fn usage_event(usage: &Usage, cost: Option<f64>) -> ChatEvent {
    ChatEvent::new(
        "usage",
        json!({
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "steps": usage.steps,
            "cost_usd": cost,
        }),
    )
}

/// The assistant text Letta stored for this run, in order.
async fn authoritative_text(turn: &Turn, run_id: Option<&str>) -> Option<String> {
    let run_id = run_id?;
    let messages = match turn.state.letta.recent_messages(&turn.agent_id, 50).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the stored reply back; keeping the streamed text");
            return None;
        }
    };
    let mut parts: Vec<(String, String)> = messages
        .iter()
        .filter(|m| m.message_type == "assistant_message" && m.text("run_id") == Some(run_id))
        .map(|m| {
            (
                m.text("date").unwrap_or_default().to_string(),
                content_text(m),
            )
        })
        .collect();
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    let text: String = parts.into_iter().map(|(_, t)| t).collect();
    (!text.is_empty()).then_some(text)
}

/// Stores the reply and adds the turn to the day's usage. Logged, never raised: the stream
/// must still end properly.
async fn persist(turn: &Turn, assistant: &Message, usage: &Usage, cost: f64) {
    let store = &turn.state.store;
    for attempt in 0..3u64 {
        match store.put_message(assistant).await {
            Ok(()) => break,
            Err(e) if attempt < 2 => {
                tracing::warn!(error = %e, "storing the reply failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
            Err(e) => {
                tracing::error!(error = %e, message_id = %assistant.id, "the reply could not be stored")
            }
        }
    }
    if usage.total_tokens > 0 {
        let day = &assistant.created_at[..10.min(assistant.created_at.len())];
        if let Err(e) = store.add_daily_usage(&turn.user.id, day, usage, cost).await {
            tracing::error!(error = %e, "could not add the turn to the daily usage");
        }
    }
}

/// The stored turn as a stream of events, for a repeated `Idempotency-Key`.
async fn replay(
    state: &AppState,
    user: &AuthUser,
    record: &IdempotencyRecord,
) -> Result<Vec<ChatEvent>, AppError> {
    if record.state == "running" {
        return Err(AppError::Conflict {
            code: "turn_in_progress",
            message: "a request with this Idempotency-Key is still being answered".into(),
        });
    }
    let reply = state
        .store
        .get_message(&user.id, &record.assistant_message_id)
        .await?
        .ok_or_else(|| AppError::Conflict {
            code: "turn_in_progress",
            message: "the reply is not stored yet".into(),
        })?;
    let mut events = vec![ChatEvent::new(
        "start",
        json!({"message_id": reply.id, "user_message_id": record.user_message_id, "model": reply.model, "replayed": true}),
    )];
    if let Some(reasoning) = &reply.reasoning {
        events.push(ChatEvent::new("reasoning", json!({"delta": reasoning})));
    }
    for call in &reply.tool_calls {
        events.push(ChatEvent::new(
            "tool_call",
            json!({"id": call.id, "name": call.name, "arguments": call.arguments}),
        ));
        if let Some(result) = &call.result {
            events.push(ChatEvent::new(
                "tool_result",
                json!({"id": call.id, "name": call.name, "status": call.status, "result": result}),
            ));
        }
    }
    if !reply.content.is_empty() {
        events.push(ChatEvent::new("delta", json!({"text": reply.content})));
    }
    events.push(usage_event(
        &reply.usage.clone().unwrap_or_default(),
        reply.cost_usd,
    ));
    events.push(ChatEvent::new(
        "done",
        json!({"message_id": reply.id, "stop_reason": reply.stop_reason, "latency_ms": reply.latency_ms,
               "ttft_ms": reply.ttft_ms, "text_corrected": false, "replayed": true, "status": reply.status}),
    ));
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refusals_are_recognised_with_their_figures() {
        let letta = json!({"message_type": "error_message", "error_type": "llm_error",
            "message": "An error occurred with the LLM request.",
            "detail": "INVALID_ARGUMENT: Invalid request content for OpenAI: Error code: 422 - {'error': {'message': 'ExceededBudget: User=dave over budget. Spend=0.05322, Budget=1e-07', 'type': 'budget_exceeded', 'param': None, 'code': '422'}} [BYOK]"});
        assert_eq!(
            classify_error(&letta),
            TurnFailure::BudgetExceeded {
                spend: Some(0.05322),
                limit: Some(1e-7)
            }
        );
        let reserved = json!({"detail": "Budget has been exceeded! User=carol Current cost: 1.36437, Max budget: 1.0"});
        assert_eq!(
            classify_error(&reserved),
            TurnFailure::BudgetExceeded {
                spend: Some(1.36437),
                limit: Some(1.0)
            }
        );
        let revoked = json!({"detail": "UNAUTHENTICATED: ... 'type': 'token_not_found_in_db' ..."});
        assert_eq!(classify_error(&revoked), TurnFailure::KeyRevoked);
        assert!(matches!(
            classify_error(&json!({"detail": "Connection error."})),
            TurnFailure::Llm { .. }
        ));
    }

    #[test]
    fn content_is_trimmed_and_bounded() {
        assert_eq!(validate_content("  hi  ", 10).unwrap(), "hi");
        assert!(matches!(
            validate_content("   ", 10),
            Err(AppError::BadRequest {
                code: "empty_content",
                ..
            })
        ));
        assert!(matches!(
            validate_content(&"é".repeat(11), 10),
            Err(AppError::ContentTooLong { .. })
        ));
        assert!(validate_content(&"é".repeat(10), 10).is_ok());
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert!(validate_idempotency_key("abc-123").is_ok());
        for bad in ["", "has space", "ключ", &"x".repeat(129)] {
            assert!(validate_idempotency_key(bad).is_err(), "{bad:?}");
        }
    }

    fn msg(v: Value) -> StreamItem {
        StreamItem::Message(serde_json::from_value(v).unwrap())
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
        let names: Vec<&str> = events.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            ["reasoning", "tool_call", "tool_result", "delta", "delta"]
        );
        assert_eq!(events[1].data["arguments"], "{\"a\":1}");
        assert_eq!(reply.text, "Hello there");
        assert_eq!(reply.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(reply.usage.as_ref().unwrap().steps, 2);
        assert_eq!(reply.run_id.as_deref(), Some("run-1"));
        assert_eq!(reply.letta_ids, ["message-1", "message-2", "message-3"]);
    }
}
