//! One chat turn in one of the user's conversations: the user's message is stored, sent to the
//! user's Letta agent (its own history, or the conversation's Letta conversation) with token
//! streaming, and Letta's events are relayed as chat events the moment they arrive. The turn
//! runs in its own task (carrying the request's span), so it completes and is stored even when
//! the client goes away. One turn at a time per conversation; a user's conversations may
//! stream at the same time (Letta keeps their histories apart and shares the agent's memory).

mod cancel;
mod cost;
pub mod events;
mod failure;
mod on_users_key;
mod relay;
mod replay;
mod thread;
mod title;
mod voice;

use std::time::Instant;

use tokio::sync::mpsc;
use tracing::Instrument;

pub use cancel::cancel_turn;
pub use events::{ChatEvent, Done, TurnError};
pub use failure::TurnFailure;
pub use voice::transcribe;

use crate::{
    app::{
        clock::now_epoch,
        config::PLAIN_CONTENT_AGENT_TYPE,
        deadline,
        error::{AppError, ErrorCode},
    },
    clients::letta::TurnStream,
    domain::{
        ChatContent, Conversation, ConversationId, ErrorRecord, IdempotencyKey, Message,
        MessageStatus, Profile, Role, SignedInUser, UserId,
    },
    flows::{agent::ready_agent_from, conversations, gate},
    state::AppState,
    store::{
        Held, IdempotencyRecord, KnownFacts, ProfileFacts, TurnStart, TurnState, Unread,
        rememberable,
    },
};
use relay::Outbox;

/// Milliseconds from the request to Letta being called, and to Letta taking the message.
#[derive(Debug, Default, Clone, Copy)]
struct Phases {
    prepared_ms: u64,
    accepted_ms: u64,
}

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
    conversation: Conversation,
    /// The Letta thread: the agent id (default conversation) or Letta's conversation id; set
    /// once the turn lock is held.
    letta_thread: String,
    /// The user's turn slot this turn takes (one of the free ones read before the start).
    slot: u32,
    user_message: Message,
    reply_id: ulid::Ulid,
    idempotency_key: Option<IdempotencyKey>,
    started: Instant,
    /// How long the turn took to reach Letta (reads, the start write) and for Letta to take
    /// the message: logged when the turn ends.
    phases: Phases,
    /// The profile's facts the turn acts on: the agent, its type, the model.
    facts: ProfileFacts,
    /// Whether the next turn may start on them without reading them.
    rememberable: bool,
}

impl Turn {
    fn thread(&self) -> crate::clients::letta::Thread<'_> {
        thread::thread(&self.conversation.id, &self.letta_thread)
    }

    /// The model the user chose.
    fn model(&self) -> &str {
        &self.facts.model
    }

    /// Whether the agent streams its reply's text exactly (plain content, `letta_v1_agent`),
    /// so a completed stream needs no read-back.
    fn streams_exact_text(&self) -> bool {
        self.facts.agent_type.as_deref() == Some(PLAIN_CONTENT_AGENT_TYPE)
    }

    fn start_event(&self) -> ChatEvent {
        ChatEvent::Start {
            conversation_id: self.conversation.id.clone(),
            message_id: self.reply_id.to_string(),
            user_message_id: self.user_message.id.clone(),
            model: Some(self.model().to_string()),
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
        let unlock = async {
            if let Err(e) = store
                .unlock_turn(
                    &self.user.id,
                    &self.conversation.id,
                    self.slot,
                    &self.user_message.id,
                )
                .await
            {
                tracing::warn!(error = %e, "could not release the turn lock; it expires by itself");
            }
        };
        let settle_key = async {
            if let Some(key) = &self.idempotency_key {
                let result = match idempotency_state {
                    Some(s) => store.set_idempotency_state(&self.user.id, key, s).await,
                    None => store.release_idempotency_key(&self.user.id, key).await,
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "could not update the idempotency record");
                }
            }
        };
        tokio::join!(unlock, settle_key);
    }
}

/// Starts a turn: the gate, validation, provisioning, idempotency, the turn lock, the user
/// message, and Letta's stream. Errors before the stream starts are plain JSON answers.
///
/// On an instance that knows the user's profile and the conversation from an earlier turn,
/// the turn's only DynamoDB request before Letta is its start transaction: it passes the
/// request's gate, checks the known facts and stores the message (see [`Unread`]). Otherwise
/// (or when a fact changed) the gate, a read and the start are three requests, as they were.
pub async fn start_turn(
    state: &AppState,
    user: SignedInUser,
    conversation_id: ConversationId,
    content: &str,
    idempotency_key: Option<IdempotencyKey>,
) -> Result<TurnOutcome, AppError> {
    let received = Instant::now();
    let limits = gate::chat_limits(&state.config.rates);
    let issued_at = gate::issued_at(&user);
    let content = match ChatContent::parse(content, state.config.http.chat_max_chars) {
        Ok(content) => content,
        Err(invalid) => return Err(refuse(state, &user, invalid).await),
    };
    let ids = TurnIds::new()?;
    let known = state
        .turn_cache
        .get(&user.id, &conversation_id)
        .filter(|k| k.profile.agent_type.as_deref() == Some(&state.config.letta.agent_type));
    let user = match known {
        Some(known) => {
            let warm = Warm {
                unread: Unread {
                    issued_at,
                    limits: &limits,
                    known: &known,
                },
                content: &content,
                ids: &ids,
            };
            match start_warm(state, user, warm, idempotency_key.clone(), received).await? {
                Ok(outcome) => return Ok(outcome),
                Err(user) => user,
            }
        }
        None => user,
    };
    gate::pass(state, &user.id, issued_at, &limits).await?;
    let reads = state
        .store
        .turn_reads(
            &user.id,
            &conversation_id,
            state.config.rates.concurrent_turns,
        )
        .await?;
    let (profile, agent_id) = ready_agent_from(state, &user, reads.profile).await?;
    refuse_known_refusals(&profile)?;
    let conversation = conversations::found(&conversation_id, reads.conversation)?;
    let facts = ProfileFacts::new(agent_id, &profile);
    let rememberable = rememberable(&profile);
    let slot = match reads.free_slots.first() {
        Some(&slot) => slot,
        None => {
            let message_id = ids.user_message.to_string();
            let key = idempotency_key.as_ref();
            match when_no_slot_is_free(state, &user, &reads.held_slots, &message_id, key).await? {
                Ok(slot) => slot,
                Err(replayed) => return Ok(TurnOutcome::Replay(replayed)),
            }
        }
    };
    let parts = TurnParts {
        user,
        facts,
        conversation,
        slot,
        rememberable,
    };
    let mut turn = Turn::new(state, parts, &content, &ids, idempotency_key);
    match take_turn(&mut turn, None).await? {
        Taken::Started => go_live(turn, received).await,
        Taken::Replay(existing) => replay_turn(state, &turn.user, &existing).await,
        Taken::Stale => Err(AppError::Internal(
            "a start without known facts found one stale".into(),
        )),
    }
}

/// What a warm start goes on: the known facts with the gate, the message, its ids.
struct Warm<'a> {
    unread: Unread<'a>,
    content: &'a ChatContent,
    ids: &'a TurnIds,
}

/// Starts the turn on what this instance knows, in one request; `Err(user)` when a known fact
/// changed (nothing was written: the turn goes the reading way).
async fn start_warm(
    state: &AppState,
    user: SignedInUser,
    warm: Warm<'_>,
    idempotency_key: Option<IdempotencyKey>,
    received: Instant,
) -> Result<Result<TurnOutcome, SignedInUser>, AppError> {
    let known = warm.unread.known;
    let parts = TurnParts {
        user,
        facts: known.profile.clone(),
        conversation: known.conversation.clone(),
        slot: 0,
        rememberable: true,
    };
    let mut turn = Turn::new(state, parts, warm.content, warm.ids, idempotency_key);
    match take_turn(&mut turn, Some(&warm.unread)).await? {
        Taken::Started => go_live(turn, received).await.map(Ok),
        Taken::Replay(existing) => replay_turn(state, &turn.user, &existing).await.map(Ok),
        Taken::Stale => {
            state
                .turn_cache
                .forget(&turn.user.id, &known.conversation.id);
            Ok(Err(turn.user))
        }
    }
}

/// The answer to a turn refused before it starts (an invalid body, header or content): the
/// request passes the gate first, so a revoked token or a used-up limit is the answer, as to
/// any request, and the refused turn is counted.
pub async fn refuse(state: &AppState, user: &SignedInUser, refusal: AppError) -> AppError {
    let limits = gate::chat_limits(&state.config.rates);
    match gate::pass(state, &user.id, gate::issued_at(user), &limits).await {
        Ok(()) => refusal,
        Err(gate) => gate,
    }
}

/// Refusals known from the profile before Letta is called: nothing is stored.
fn refuse_known_refusals(profile: &Profile) -> Result<(), AppError> {
    if profile.awaiting_confirmation {
        return Err(AppError::BudgetExceeded {
            spend: 0.0,
            limit: 0.0,
        });
    }
    if let Some(used_up) = &profile.budget_used_up
        && used_up.holds_at(time::OffsetDateTime::now_utc())
    {
        return Err(AppError::BudgetExceeded {
            spend: used_up.spend,
            limit: used_up.limit,
        });
    }
    Ok(())
}

/// The ids of a turn's two messages, made before its first start.
struct TurnIds {
    user_message: ulid::Ulid,
    reply: ulid::Ulid,
}

impl TurnIds {
    fn new() -> Result<Self, AppError> {
        let mut ids = ulid::Generator::new();
        let mut next_id = || {
            ids.generate()
                .map_err(|e| AppError::Internal(e.to_string()))
        };
        Ok(Self {
            user_message: next_id()?,
            reply: next_id()?,
        })
    }
}

/// What a turn is started with besides its message.
struct TurnParts {
    user: SignedInUser,
    facts: ProfileFacts,
    conversation: Conversation,
    slot: u32,
    /// Whether the next turn may start on these facts without reading them.
    rememberable: bool,
}

impl Turn {
    fn new(
        state: &AppState,
        parts: TurnParts,
        content: &ChatContent,
        ids: &TurnIds,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Self {
        let conversation_id = parts.conversation.id.clone();
        Self {
            state: state.clone(),
            user: parts.user,
            letta_thread: parts.facts.agent_id.clone(),
            conversation: parts.conversation,
            slot: parts.slot,
            facts: parts.facts,
            rememberable: parts.rememberable,
            user_message: Message::new(
                &conversation_id,
                &ids.user_message,
                Role::User,
                content.as_str().to_string(),
                MessageStatus::Pending,
            ),
            reply_id: ids.reply,
            idempotency_key,
            started: Instant::now(),
            phases: Phases::default(),
        }
    }

    /// Remembers the profile's facts and the conversation (with its Letta thread and title as
    /// they are now) for the user's next turn on this instance.
    fn remember(&self, title: Option<&str>) {
        if !self.rememberable {
            return;
        }
        let mut conversation = self.conversation.clone();
        if !conversation.id.is_default() {
            conversation.letta_conversation_id = Some(self.letta_thread.clone());
        }
        if let Some(title) = title {
            conversation.title = Some(title.to_string());
        }
        let facts = KnownFacts {
            profile: self.facts.clone(),
            conversation,
        };
        self.state.turn_cache.remember(&self.user.id, facts);
    }
}

/// Opens Letta's stream for a started turn and runs the rest of it in its own task.
async fn go_live(mut turn: Turn, received: Instant) -> Result<TurnOutcome, AppError> {
    turn.remember(None);
    turn.phases.prepared_ms = received.elapsed().as_millis() as u64;
    let stream = open_stream(&turn).await?;
    turn.phases.accepted_ms = received.elapsed().as_millis() as u64;
    let (tx, rx) = mpsc::channel(256);
    // The turn's own task keeps the request's span, so its log lines carry the request id.
    // The turn outlives the handler; it keeps the request's deadline.
    let run = relay::run(turn, stream, Outbox::new(tx));
    tokio::spawn(deadline::within(deadline::current(), run).in_current_span());
    Ok(TurnOutcome::Live(rx))
}

async fn replay_turn(
    state: &AppState,
    user: &SignedInUser,
    existing: &IdempotencyRecord,
) -> Result<TurnOutcome, AppError> {
    replay::replay(state, user, existing)
        .await
        .map(TurnOutcome::Replay)
}

/// How taking the turn went.
enum Taken {
    /// Started: the message is stored, the lock held, the Letta thread known.
    Started,
    /// The idempotency key's earlier turn.
    Replay(IdempotencyRecord),
    /// A known fact changed (only with `unread`); nothing was written.
    Stale,
}

/// Starts the turn in one write: the conversation's turn lock, the user's message (stored
/// before anything else can fail: the user's words are never lost), its count in the
/// conversation and the idempotency record — with `unread`, also the request's gate and the
/// checks of the known facts; then finds the conversation's Letta thread.
async fn take_turn(turn: &mut Turn, unread: Option<&Unread<'_>>) -> Result<Taken, AppError> {
    let store = &turn.state.store;
    let record = turn.idempotency_key.as_ref().map(|key| {
        (
            key,
            IdempotencyRecord {
                state: TurnState::Running,
                conversation_id: turn.conversation.id.clone(),
                user_message_id: turn.user_message.id.clone(),
                assistant_message_id: turn.reply_id.to_string(),
            },
        )
    });
    let record = record.as_ref().map(|(key, record)| (*key, record));
    let start =
        |slot, unread| store.start_turn(&turn.user.id, &turn.user_message, slot, record, unread);
    let mut started = start(turn.slot, unread).await?;
    if let Some(unread) = unread {
        match started {
            // The gate's own answers are given below, as a cold start's are.
            TurnStart::Started | TurnStart::Revoked | TurnStart::Limited(_) => {}
            TurnStart::Stale => return Ok(Taken::Stale),
            // Refused for the turn itself: the request still passes the gate (it is counted,
            // and a revoked token is told so) before the refusal is worked out as always.
            _ => {
                let user = &turn.user.id;
                gate::pass(&turn.state, user, unread.issued_at, unread.limits).await?;
            }
        }
    }
    if started == TurnStart::Locked && take_over_stale_lock(turn).await? {
        started = start(turn.slot, None).await?;
    }
    // Another of the user's turns holds the slot: another free one, or one an ended turn did
    // not release, if any.
    let slots = turn.state.config.rates.concurrent_turns;
    for _ in 0..2 {
        if started != TurnStart::SlotTaken {
            break;
        }
        let (free, held) = store.turn_slots(&turn.user.id, slots).await?;
        let slot = match free.first() {
            Some(&slot) => slot,
            None => {
                let (state, user) = (&turn.state, &turn.user.id);
                match reclaim_slot(state, user, &held, &turn.user_message.id).await? {
                    Some(slot) => slot,
                    None => break,
                }
            }
        };
        turn.slot = slot;
        started = start(slot, None).await?;
    }
    match started {
        TurnStart::Started => find_thread(turn).await,
        TurnStart::KeyUsed => {
            let key = turn.idempotency_key.as_ref().expect("a key was used");
            match store.idempotency_record(&turn.user.id, key).await? {
                Some(existing) => Ok(Taken::Replay(existing)),
                // Expired between the two requests: the caller may simply send it again.
                None => Err(turn_in_progress()),
            }
        }
        TurnStart::Locked => Err(turn_in_progress()),
        TurnStart::SlotTaken => Err(too_many_turns(&turn.state)),
        TurnStart::Gone | TurnStart::Stale => Err(ConversationId::not_found()),
        TurnStart::Revoked => Err(gate::revoked()),
        TurnStart::Limited(exceeded) => Err(exceeded.into()),
    }
}

/// The started turn's Letta thread; a turn that cannot have one is abandoned.
async fn find_thread(turn: &mut Turn) -> Result<Taken, AppError> {
    match thread::letta_thread(
        &turn.state,
        &turn.user.id,
        &turn.facts.agent_id,
        &turn.conversation,
    )
    .await
    {
        Ok(thread) => {
            turn.letta_thread = thread;
            Ok(Taken::Started)
        }
        Err(error) => {
            turn.abandon(&error).await;
            Err(error)
        }
    }
}

fn turn_in_progress() -> AppError {
    AppError::Conflict {
        code: ErrorCode::TurnInProgress,
        message: "the assistant is still answering your previous message in this conversation"
            .into(),
    }
}

fn too_many_turns(state: &AppState) -> AppError {
    AppError::Conflict {
        code: ErrorCode::TooManyTurns,
        message: format!(
            "the assistant is already answering {} of your messages; wait for one to finish",
            state.config.rates.concurrent_turns
        ),
    }
}

/// Whether the turn of `message_id` (which took a lock or slot at `locked_at`) has ended:
/// its user message has its final status, or was never stored. A turn stores its message in
/// the same write that takes the lock and slot; one whose message is missing was left behind
/// by an older version, once its write's attempts are over.
async fn turn_ended(
    state: &AppState,
    user: &UserId,
    conversation: &ConversationId,
    message_id: &str,
    locked_at: i64,
) -> Result<bool, AppError> {
    let store_window = (state.config.dynamodb.attempt_timeout * 3).as_secs() as i64 + 1;
    Ok(
        match state
            .store
            .get_message(user, conversation, message_id)
            .await?
        {
            Some(message) => message.status != MessageStatus::Pending,
            None => now_epoch() - locked_at > store_window,
        },
    )
}

/// When every slot is held: one taken over from a turn that ended ([`reclaim_slot`]); else a
/// repeated `Idempotency-Key` is answered as always (its own turn may hold a slot: `Err` with
/// the replay); else 409 `too_many_turns`.
async fn when_no_slot_is_free(
    state: &AppState,
    user: &SignedInUser,
    held: &[(u32, Held)],
    message_id: &str,
    key: Option<&IdempotencyKey>,
) -> Result<Result<u32, Vec<ChatEvent>>, AppError> {
    if let Some(slot) = reclaim_slot(state, &user.id, held, message_id).await? {
        return Ok(Ok(slot));
    }
    let Some(key) = key else {
        return Err(too_many_turns(state));
    };
    match state.store.idempotency_record(&user.id, key).await? {
        Some(existing) => Ok(Err(replay::replay(state, user, &existing).await?)),
        None => Err(too_many_turns(state)),
    }
}

/// A turn slot for `message_id`'s turn when every slot is held: one taken over from a turn
/// that ended without releasing it (its end failed, say, while DynamoDB was throttling).
/// `None` when every holder is still running (a crashed one loses its slot when it expires).
async fn reclaim_slot(
    state: &AppState,
    user: &UserId,
    held: &[(u32, Held)],
    message_id: &str,
) -> Result<Option<u32>, AppError> {
    for (slot, holder) in held {
        let Some(conversation) = &holder.conversation_id else {
            continue;
        };
        if turn_ended(
            state,
            user,
            conversation,
            &holder.message_id,
            holder.locked_at,
        )
        .await?
        {
            tracing::warn!(stale = %holder.message_id, "taking over a turn slot its ended turn did not release");
            let taken = state
                .store
                .take_over_slot(user, *slot, conversation, &holder.message_id, message_id)
                .await?;
            if taken {
                return Ok(Some(*slot));
            }
        }
    }
    Ok(None)
}

/// Takes the conversation's turn lock over from a turn that ended without releasing it (see
/// [`turn_ended`]). A turn still running keeps it (and a crashed one loses it when it
/// expires). True when the lock is this turn's now.
async fn take_over_stale_lock(turn: &Turn) -> Result<bool, AppError> {
    let (store, user, conversation) = (&turn.state.store, &turn.user.id, &turn.conversation.id);
    let Some((holder, locked_at)) = store.turn_lock_holder(user, conversation).await? else {
        // Released meanwhile: the start can simply be tried again.
        return Ok(true);
    };
    if !turn_ended(&turn.state, user, conversation, &holder, locked_at).await? {
        return Ok(false);
    }
    tracing::warn!(stale = %holder, "taking over a turn lock its ended turn did not release");
    Ok(store
        .take_over_turn(user, conversation, &holder, &turn.user_message.id)
        .await?)
}

/// Sends the message to Letta; the stream starts as soon as Letta accepts it. A refusal that
/// comes inside the stream (budget, revoked key, a failing model) is an `error` event; one
/// that comes before (Letta unreachable or refusing the request) is a plain JSON error and the
/// turn is abandoned.
async fn open_stream(turn: &Turn) -> Result<TurnStream, AppError> {
    match turn
        .state
        .letta
        .stream_message(turn.thread(), &turn.user_message.content)
        .await
    {
        Ok(stream) => Ok(stream),
        Err(e) => {
            let error: AppError = e.into();
            turn.abandon(&error).await;
            Err(error)
        }
    }
}
