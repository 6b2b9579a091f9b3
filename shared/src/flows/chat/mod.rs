//! One chat turn in one of the user's conversations: the user's message is stored, sent to the
//! user's Letta agent (its own history, or the conversation's Letta conversation) with token
//! streaming, and Letta's events are relayed as chat events the moment they arrive. The turn
//! runs in its own task (carrying the request's span), so it completes and is stored even when
//! the client goes away. One turn at a time per conversation; a user's conversations may
//! stream at the same time (Letta keeps their histories apart and shares the agent's memory).

mod cost;
pub mod events;
mod failure;
mod relay;
mod replay;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::Instrument;

pub use events::{ChatEvent, Done, TurnError};
pub use failure::TurnFailure;

use crate::{
    app::{clock::now_epoch, config::PLAIN_CONTENT_AGENT_TYPE, deadline, error::AppError},
    clients::letta::TurnStream,
    domain::{
        ChatContent, Conversation, ConversationId, ErrorRecord, IdempotencyKey, Message,
        MessageStatus, Role, SignedInUser,
    },
    flows::{agent::ready_agent, conversations},
    state::AppState,
    store::TurnState,
};
use relay::{Outbox, Reply};

/// How long the first Letta events are awaited before the response starts: refusals (budget,
/// revoked key) arrive within a fraction of a second and can still be a plain 402/403.
const PEEK_WINDOW: Duration = Duration::from_millis(2500);

/// What `start_turn` gives the handler.
pub enum TurnOutcome {
    /// Events as they happen; the channel closes after the turn is stored.
    Live(mpsc::Receiver<ChatEvent>),
    /// A finished turn replayed for a repeated `Idempotency-Key`.
    Replay(Vec<ChatEvent>),
}

/// One turn in progress and what it must undo or close.
struct Turn {
    state: AppState,
    user: SignedInUser,
    agent_id: String,
    conversation: Conversation,
    /// The Letta thread: the agent id (default conversation) or Letta's conversation id; set
    /// once the turn lock is held.
    letta_thread: String,
    model: String,
    user_message: Message,
    reply_id: ulid::Ulid,
    idempotency_key: Option<IdempotencyKey>,
    started: Instant,
    /// The agent streams its reply's text exactly (plain content, `letta_v1_agent`), so a
    /// completed stream needs no read-back.
    streams_exact_text: bool,
}

impl Turn {
    fn thread(&self) -> crate::clients::letta::Thread<'_> {
        conversations::thread(&self.conversation.id, &self.letta_thread)
    }

    /// Counts new messages in the conversation (logged, never raised: the messages are stored).
    async fn record_activity(&self, added: u64) {
        if let Err(e) = self
            .state
            .store
            .record_activity(&self.user.id, &self.conversation.id, added)
            .await
        {
            tracing::warn!(error = %e, "could not record the conversation's activity");
        }
    }

    fn start_event(&self) -> ChatEvent {
        ChatEvent::Start {
            conversation_id: self.conversation.id.clone(),
            message_id: self.reply_id.to_string(),
            user_message_id: self.user_message.id.clone(),
            model: Some(self.model.clone()),
            replayed: false,
        }
    }

    /// Undoes what a turn that never reached the agent left: the user message is marked failed,
    /// the lock released, and the idempotency key freed for a retry.
    async fn abandon(&self, error: &AppError) {
        let mut failed = self.user_message.clone();
        failed.status = MessageStatus::Failed;
        failed.error = Some(ErrorRecord {
            code: error.code().to_string(),
            message: error.to_string(),
        });
        if let Err(e) = self.state.store.put_message(&self.user.id, &failed).await {
            tracing::error!(error = %e, "could not mark the user message failed");
        }
        self.release(None).await;
    }

    /// Releases the turn lock and settles the idempotency record (`None` frees the key).
    async fn release(&self, idempotency_state: Option<TurnState>) {
        let store = &self.state.store;
        if let Err(e) = store
            .unlock_turn(&self.user.id, &self.conversation.id, &self.user_message.id)
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

    /// Stores the reply (retried: the stream must still end properly), counts it in the
    /// conversation and adds the turn to the day's usage. Logged, never raised.
    async fn persist(&self, assistant: &Message) {
        let store = &self.state.store;
        for attempt in 0..3u64 {
            match store.put_message(&self.user.id, assistant).await {
                Ok(()) => {
                    self.record_activity(1).await;
                    break;
                }
                Err(e) if attempt < 2 => {
                    tracing::warn!(error = %e, "storing the reply failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, message_id = %assistant.id, "the reply could not be stored")
                }
            }
        }
        let usage = assistant.usage.clone().unwrap_or_default();
        // What was billed counts, even for a reply that failed after its LLM calls.
        if usage.total_tokens > 0 || assistant.cost_usd.is_some_and(|c| c > 0.0) {
            let day = &assistant.created_at[..10.min(assistant.created_at.len())];
            let cost = assistant.cost_usd.unwrap_or(0.0);
            if let Err(e) = store
                .add_daily_usage(&self.user.id, day, 1, &usage, cost)
                .await
            {
                tracing::error!(error = %e, "could not add the turn to the daily usage");
            }
        }
    }
}

/// Starts a turn: validation, provisioning, idempotency, the turn lock, the user message, and
/// Letta's stream. Errors before the stream starts are plain JSON answers.
pub async fn start_turn(
    state: &AppState,
    user: SignedInUser,
    conversation_id: ConversationId,
    content: &str,
    idempotency_key: Option<IdempotencyKey>,
) -> Result<TurnOutcome, AppError> {
    let content = ChatContent::parse(content, state.config.http.chat_max_chars)?;
    let (profile, agent_id) = ready_agent(state, &user).await?;
    if let Some(used_up) = &profile.budget_used_up
        && used_up.holds_at(time::OffsetDateTime::now_utc())
    {
        return Err(AppError::BudgetExceeded {
            spend: used_up.spend,
            limit: used_up.limit,
        });
    }
    let conversation = conversations::get(state, &user, &conversation_id).await?;
    let mut ids = ulid::Generator::new();
    let mut next_id = || {
        ids.generate()
            .map_err(|e| AppError::Internal(e.to_string()))
    };
    let (user_message_id, reply_id) = (next_id()?, next_id()?);

    if let Some(key) = &idempotency_key {
        let claimed = state
            .store
            .claim_idempotency_key(
                &user.id,
                key,
                &conversation_id,
                &user_message_id.to_string(),
                &reply_id.to_string(),
            )
            .await?;
        if let Some(existing) = claimed {
            return replay::replay(state, &user, &existing)
                .await
                .map(TurnOutcome::Replay);
        }
    }
    let turn = Turn {
        state: state.clone(),
        user,
        letta_thread: agent_id.clone(),
        agent_id,
        conversation,
        model: profile.model,
        streams_exact_text: profile.letta_agent_type.as_deref() == Some(PLAIN_CONTENT_AGENT_TYPE),
        user_message: Message::new(
            &conversation_id,
            &user_message_id,
            Role::User,
            content.into_string(),
            MessageStatus::Pending,
        ),
        reply_id,
        idempotency_key,
        started: Instant::now(),
    };
    let mut turn = turn;
    take_turn(&mut turn).await?;
    let (stream, reply, early) = open_stream(&turn).await?;
    let (tx, rx) = mpsc::channel(256);
    // The turn's own task keeps the request's span, so its log lines carry the request id.
    // The turn outlives the handler; it keeps the request's deadline.
    let run = relay::run(turn, stream, reply, early, Outbox::new(tx));
    tokio::spawn(deadline::within(deadline::current(), run).in_current_span());
    Ok(TurnOutcome::Live(rx))
}

/// Takes the conversation's turn lock, stores the user's message before anything else can
/// fail, and finds the conversation's Letta thread.
async fn take_turn(turn: &mut Turn) -> Result<(), AppError> {
    let store = &turn.state.store;
    if !lock_turn(turn).await? {
        if let Some(key) = &turn.idempotency_key {
            let _ = store.release_idempotency_key(&turn.user.id, key).await;
        }
        return Err(AppError::Conflict {
            code: "turn_in_progress",
            message: "the assistant is still answering your previous message in this conversation"
                .into(),
        });
    }
    // Stored before anything else can fail: the user's words are never lost.
    if let Err(e) = store.put_message(&turn.user.id, &turn.user_message).await {
        turn.release(None).await;
        return Err(e.into());
    }
    turn.record_activity(1).await;
    match conversations::letta_thread(
        &turn.state,
        &turn.user.id,
        &turn.agent_id,
        &turn.conversation,
    )
    .await
    {
        Ok(thread) => {
            turn.letta_thread = thread;
            Ok(())
        }
        Err(error) => {
            turn.abandon(&error).await;
            Err(error)
        }
    }
}

/// Takes the conversation's turn lock, or takes it over from a turn that ended without
/// releasing it (its release failed, say, while DynamoDB was throttling): one whose user
/// message has its final status, or whose message was never stored. A turn still running
/// keeps it (and a crashed one loses it when it expires).
async fn lock_turn(turn: &Turn) -> Result<bool, AppError> {
    let (store, user, conversation) = (&turn.state.store, &turn.user.id, &turn.conversation.id);
    let mine = &turn.user_message.id;
    if store.lock_turn(user, conversation, mine).await? {
        return Ok(true);
    }
    let Some((holder, locked_at)) = store.turn_lock_holder(user, conversation).await? else {
        // Released meanwhile.
        return Ok(store.lock_turn(user, conversation, mine).await?);
    };
    // A turn stores its message right after taking the lock, within one DynamoDB call (three
    // attempts at most); a lock whose message is still missing after that was left behind.
    let store_window = (turn.state.config.dynamodb.attempt_timeout * 3).as_secs() as i64 + 1;
    let ended = match store.get_message(user, conversation, &holder).await? {
        Some(message) => message.status != MessageStatus::Pending,
        None => now_epoch() - locked_at > store_window,
    };
    if !ended {
        return Ok(false);
    }
    tracing::warn!(stale = %holder, "taking over a turn lock its ended turn did not release");
    Ok(store
        .take_over_turn(user, conversation, &holder, mine)
        .await?)
}

/// Sends the message to Letta and peeks at the first events: a refusal that comes before any
/// content is a plain JSON error (the turn is abandoned); otherwise the early events are kept
/// for the stream.
async fn open_stream(turn: &Turn) -> Result<(TurnStream, Reply, Vec<ChatEvent>), AppError> {
    let mut stream = match turn
        .state
        .letta
        .stream_message(turn.thread(), &turn.user_message.content)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let error: AppError = e.into();
            turn.abandon(&error).await;
            return Err(error);
        }
    };
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
            Ok(Some(Ok(message))) => {
                let content = message.is_content();
                early.extend(reply.absorb(message));
                if content || reply.failure.is_some() {
                    break;
                }
            }
        }
    }
    if let Some(failure) = reply.failure.clone()
        && !reply.has_content()
        && !failure.is_interruption()
    {
        let error = failure.into_app_error();
        turn.abandon(&error).await;
        return Err(error);
    }
    Ok((stream, reply, early))
}
