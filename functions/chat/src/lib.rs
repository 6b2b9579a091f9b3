//! The `chat` function: send a message and receive the agent's reply token by token over SSE
//! (Lambda response streaming), read the stored history, and manage conversations. Its routes
//! as an axum `Router`, hosted by Lambda (`main.rs`, streaming) or the local gateway.

mod openai;

use std::{convert::Infallible, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Multipart, Path, State, multipart::MultipartRejection},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use shared::{
    AppError, AppState,
    app::{dependency::Service, error::ErrorBody},
    domain::{ConversationId, IdempotencyKey, PageLimit, SignedInUser, Title, VoiceClip},
    flows::{
        chat::{self, ChatEvent, TurnOutcome},
        conversations,
    },
    http::{
        ApiJson, ApiQuery, Function, IDEMPOTENCY_KEY, TurnCaller, multipart, parse_optional_json,
        schemas::{AgentText, TitleText},
        views::{
            self, DeletedView,
            chat::{CancelView, ConversationView, ConversationsView, HistoryView},
            events::ChatEventView,
        },
    },
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// This function: its name, what its health check covers, its routes.
pub const FUNCTION: Function = Function {
    name: "chat",
    dependencies: Service::ALL,
    routes: api_routes,
};

/// The API routes and their description, without the common layers (the gateway merges these).
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(history))
        .routes(routes!(list_conversations, create_conversation))
        .routes(routes!(
            get_conversation,
            rename_conversation,
            delete_conversation
        ))
        .routes(routes!(cancel_turn))
        .routes(routes!(openai::chat_completions))
        .routes(routes!(openai::list_models))
        // A voice message's audio is larger than the common body limit: its form reads each
        // field with its own (`VOICE_MAX_BYTES` for the audio).
        .merge(
            OpenApiRouter::new()
                .routes(routes!(send_voice))
                .layer(DefaultBodyLimit::disable()),
        )
}

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    FUNCTION.router(state)
}

/// A message to the agent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    /// The text (at most `CHAT_MAX_CHARS` characters; not blank, no NUL character).
    #[schema(value_type = AgentText)]
    content: String,
    /// Without it, the user's default conversation.
    #[schema(pattern = r"^(default|[0-9A-Za-z]{26})$")]
    conversation_id: Option<String>,
}

fn conversation_or_default(raw: Option<&str>) -> Result<ConversationId, AppError> {
    raw.map_or_else(
        || Ok(ConversationId::default_conversation()),
        ConversationId::parse,
    )
}

fn sse_event(id: usize, event: ChatEvent) -> Result<Event, Infallible> {
    let view = views::events::chat_event(&event);
    Ok(Event::default()
        .id(id.to_string())
        .event(view.name())
        .data(view.data().to_string()))
}

/// The stream of a turn: events numbered from 1 (see [`sse_response`]).
fn sse<S>(events: S, keep_alive: Duration) -> Response
where
    S: Stream<Item = ChatEvent> + Send + 'static,
{
    let numbered = events.enumerate().map(|(i, e)| sse_event(i + 1, e));
    sse_response(numbered, keep_alive)
}

/// An event stream's answer: a `: keep-alive` comment whenever nothing was sent for
/// `keep_alive` (`SSE_KEEP_ALIVE_SECS`), so proxies and clients keep it open, and headers that
/// ask proxies (and Lambda's buffering front ends) not to hold it back.
pub(crate) fn sse_response<S>(events: S, keep_alive: Duration) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keep_alive).text("keep-alive"))
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static header"));
    response
        .headers_mut()
        .insert("cache-control", "no-cache".parse().expect("static header"));
    response
}

/// A turn's events as they come: live, or a stored turn replayed.
pub(crate) fn turn_events(outcome: TurnOutcome) -> stream::BoxStream<'static, ChatEvent> {
    match outcome {
        TurnOutcome::Live(rx) => {
            stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }).boxed()
        }
        TurnOutcome::Replay(events) => stream::iter(events).boxed(),
    }
}

/// Sends a message to the user's agent and streams the reply.
///
/// The user's message is stored before the agent is called, and the stream starts as soon as
/// Letta takes it. Refusals known before (a budget known to be used up, a turn in progress,
/// Letta unreachable) are plain JSON errors; after that, a failure (the budget, a revoked key,
/// the model) is the stream's `error` event and what arrived is kept and marked.
#[utoipa::path(
    post,
    path = "/api/v1/chat/message",
    tag = "chat",
    params(
        ("Idempotency-Key" = Option<String>, Header,
         min_length = 1, max_length = 128, pattern = "^[!-~]+$",
         description = "Repeating a key within 24 h replays the turn instead of sending it again (1–128 visible ASCII characters)"),
    ),
    request_body = MessageBody,
    responses(
        (status = 200, description = "The turn's events as they happen (see `ChatEventView`: one per SSE event, `event:` its name, `data:` its JSON)",
         content_type = "text/event-stream", body = ChatEventView),
        (status = 402, description = "`budget_exceeded`: the budget is known to be used up (nothing stored)", body = ErrorBody),
        (status = 404, description = "No such conversation of the user's", body = ErrorBody),
        (status = 409, description = "`turn_in_progress` (one turn at a time per conversation), `too_many_turns` (`CHAT_CONCURRENT_TURNS` turns of the user's already running) or `provisioning`", body = ErrorBody),
    )
)]
async fn send_message(
    State(state): State<AppState>,
    TurnCaller(user): TurnCaller,
    headers: HeaderMap,
    body: Result<ApiJson<MessageBody>, AppError>,
) -> Result<Response, AppError> {
    // The turn passes the request's gate itself (in its start transaction when it can): a
    // request refused before it gets there passes it here first.
    let parsed = body.and_then(|ApiJson(body)| {
        let idempotency_key = idempotency_key(&headers)?;
        let conversation = conversation_or_default(body.conversation_id.as_deref())?;
        Ok((body.content, conversation, idempotency_key))
    });
    let (content, conversation, idempotency_key) = match parsed {
        Ok(parsed) => parsed,
        Err(invalid) => return Err(chat::refuse(&state, &user, invalid).await),
    };
    let outcome = chat::start_turn(&state, user, conversation, &content, idempotency_key).await?;
    Ok(turn_stream(&state, None, outcome))
}

/// The `Idempotency-Key` header, when sent.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, AppError> {
    headers
        .get(&IDEMPOTENCY_KEY)
        // A header that is not even text is as invalid as a bad key.
        .map(|v| IdempotencyKey::parse(v.to_str().unwrap_or("")))
        .transpose()
}

/// A turn's events as SSE, after `first` (a voice message's transcript) when given.
fn turn_stream(state: &AppState, first: Option<ChatEvent>, outcome: TurnOutcome) -> Response {
    let events = stream::iter(first).chain(turn_events(outcome));
    sse(events, state.config.http.sse_keep_alive)
}

/// A voice message (`multipart/form-data`): these two fields, no other.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes the form; it is read field by field
struct VoiceForm {
    /// The recording: webm, ogg, mp3, mp4/m4a or wav (known from its bytes), at most
    /// `VOICE_MAX_BYTES` (5 MB).
    #[schema(value_type = String, format = Binary)]
    audio: Vec<u8>,
    /// Without it, the user's default conversation.
    #[schema(pattern = r"^(default|[0-9A-Za-z]{26})$")]
    conversation_id: Option<String>,
}

/// Sends a voice message: the audio is transcribed (billed to the user), then the transcript
/// goes to the agent as the user's message.
///
/// The stream is the same as `POST /chat/message`'s, with a `transcript` event first. The
/// transcription is billed to the user (per second of audio, through LiteLLM) before the turn
/// starts, so it is billed again when a request with the same `Idempotency-Key` is repeated
/// (the turn itself is replayed, not run twice).
#[utoipa::path(
    post,
    path = "/api/v1/chat/voice",
    tag = "chat",
    params(
        ("Idempotency-Key" = Option<String>, Header,
         min_length = 1, max_length = 128, pattern = "^[!-~]+$",
         description = "Repeating a key within 24 h replays the turn instead of sending it again"),
    ),
    request_body(content = VoiceForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "`transcript`, then the turn's events as they happen (see `ChatEventView`)",
         content_type = "text/event-stream", body = ChatEventView),
        (status = 402, description = "`budget_exceeded`: the budget is used up", body = ErrorBody),
        (status = 404, description = "No such conversation of the user's", body = ErrorBody),
        (status = 409, description = "`turn_in_progress`, `too_many_turns` or `provisioning`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the audio is above `VOICE_MAX_BYTES`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not a form, or audio of another kind (the accepted ones named)", body = ErrorBody),
        (status = 422, description = "`no_speech`: nothing was heard; or a missing or empty `audio`, or an unknown field", body = ErrorBody),
    )
)]
async fn send_voice(
    State(state): State<AppState>,
    TurnCaller(user): TurnCaller,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let max = state.config.http.voice_max_bytes;
    let parsed = voice_form(form, max)
        .await
        .and_then(|(clip, conversation)| {
            idempotency_key(&headers).map(|key| (clip, conversation, key))
        });
    let (clip, conversation, idempotency_key) = match parsed {
        Ok(parsed) => parsed,
        Err(invalid) => return Err(chat::refuse(&state, &user, invalid).await),
    };
    let text = chat::transcribe(&state, &user, &clip).await?;
    let outcome = chat::start_turn(&state, user, conversation, &text, idempotency_key).await?;
    let first = ChatEvent::Transcript { text };
    Ok(turn_stream(&state, Some(first), outcome))
}

/// The form's audio and conversation; any other field is refused.
async fn voice_form(
    form: Result<Multipart, MultipartRejection>,
    max: usize,
) -> Result<(VoiceClip, ConversationId), AppError> {
    let mut form = multipart::read_upload(form, "audio", max, &["conversation_id"]).await?;
    let (_, audio) = form.require_file("audio")?;
    let clip = VoiceClip::parse(audio, max)?;
    Ok((clip, conversation_or_default(form.text("conversation_id"))?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Messages per page, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    before: Option<String>,
    /// Without it, the user's default conversation.
    #[param(pattern = r"^(default|[0-9A-Za-z]{26})$")]
    conversation_id: Option<String>,
}

/// The stored messages of a conversation, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/chat/history",
    tag = "chat",
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of messages", body = HistoryView),
        (status = 404, description = "No such conversation of the user's", body = ErrorBody),
    )
)]
async fn history(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryView>, AppError> {
    let limit = PageLimit::parse(query.limit, 50)?;
    let conversation = conversation_or_default(query.conversation_id.as_deref())?;
    let before = query.before.as_deref();
    let page = conversations::history(&state, &user, &conversation, limit, before).await?;
    Ok(Json(views::chat::history(&page)))
}

/// A new conversation; the body is optional.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewConversation {
    /// Its title (1–100 characters, not only spaces, no control characters); without it, one
    /// is made from the first message.
    #[schema(value_type = Option<TitleText>)]
    title: Option<String>,
}

/// Starts a conversation with the user's agent (its memory is shared by all of them).
#[utoipa::path(
    post,
    path = "/api/v1/conversations",
    tag = "chat",
    request_body = Option<NewConversation>,
    responses(
        (status = 201, description = "The conversation", body = ConversationView),
        (status = 409, description = "`conversation_limit` or `provisioning`", body = ErrorBody),
    )
)]
async fn create_conversation(
    State(state): State<AppState>,
    user: SignedInUser,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ConversationView>), AppError> {
    let body: NewConversation = parse_optional_json(&body)?.unwrap_or_default();
    let title = body.title.as_deref().map(Title::parse).transpose()?;
    let conversation = conversations::create(&state, &user, title).await?;
    Ok((
        StatusCode::CREATED,
        Json(views::chat::conversation(&conversation)),
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Conversations per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// The user's conversations, most recently active first.
#[utoipa::path(
    get,
    path = "/api/v1/conversations",
    tag = "chat",
    params(ListQuery),
    responses((status = 200, description = "A page of conversations", body = ConversationsView))
)]
async fn list_conversations(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ConversationsView>, AppError> {
    let limit = PageLimit::parse(query.limit, 20)?;
    let page = conversations::list(&state, &user, limit, query.cursor.as_deref()).await?;
    Ok(Json(views::chat::conversations(&page)))
}

/// One of the user's conversations.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}",
    tag = "chat",
    params(("id" = String, Path, description = "`default` or the conversation's id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 404, description = "No such conversation of the user's", body = ErrorBody),
    )
)]
async fn get_conversation(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<Json<ConversationView>, AppError> {
    let id = ConversationId::parse(&id)?;
    let conversation = conversations::get(&state, &user, &id).await?;
    Ok(Json(views::chat::conversation(&conversation)))
}

/// A new title.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConversationUpdate {
    /// 1–100 characters, not only spaces, no control characters.
    #[schema(value_type = TitleText)]
    title: String,
}

/// Renames one of the user's conversations.
#[utoipa::path(
    patch,
    path = "/api/v1/conversations/{id}",
    tag = "chat",
    params(("id" = String, Path, description = "`default` or the conversation's id")),
    request_body = ConversationUpdate,
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 404, description = "No such conversation of the user's", body = ErrorBody),
    )
)]
async fn rename_conversation(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConversationUpdate>,
) -> Result<Json<ConversationView>, AppError> {
    let id = ConversationId::parse(&id)?;
    let title = Title::parse(&body.title)?;
    let conversation = conversations::rename(&state, &user, &id, &title).await?;
    Ok(Json(views::chat::conversation(&conversation)))
}

/// Deletes one of the user's conversations and its messages (not the default one).
#[utoipa::path(
    delete,
    path = "/api/v1/conversations/{id}",
    tag = "chat",
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "Deleted, with the messages deleted along", body = DeletedView),
        (status = 404, description = "No such conversation of the user's", body = ErrorBody),
        (status = 409, description = "`turn_in_progress` or `provisioning`", body = ErrorBody),
    )
)]
async fn delete_conversation(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<Json<DeletedView>, AppError> {
    let id = ConversationId::parse(&id)?;
    let deleted = conversations::delete(&state, &user, &id).await?;
    Ok(Json(views::deleted(&id.to_string(), Some(deleted))))
}

/// Stops the reply being written in one of the user's conversations (the web page's Stop).
///
/// The agent's run is cancelled at Letta, so no further LLM call is made or billed; the turn's
/// stream (open wherever it was started) ends with `done` whose `stop_reason` is `cancelled`,
/// the reply is stored with status `cancelled` and the text that arrived, and the
/// conversation is free for the next message.
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/cancel",
    tag = "chat",
    params(("id" = String, Path, description = "`default` or the conversation's id")),
    responses(
        (status = 202, description = "The turn is being stopped", body = CancelView),
        (status = 404, description = "No such conversation of the user's", body = ErrorBody),
        (status = 409, description = "`no_turn_in_progress`: no reply is being written in it", body = ErrorBody),
    )
)]
async fn cancel_turn(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CancelView>), AppError> {
    let id = ConversationId::parse(&id)?;
    chat::cancel_turn(&state, &user, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(views::chat::cancelling(&id))))
}
