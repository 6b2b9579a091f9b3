//! The `chat` function: send a message and receive the agent's reply token by token over SSE
//! (Lambda response streaming), read the stored history, and manage conversations. Its routes
//! as an axum `Router`, hosted by Lambda (`main.rs`, streaming) or the local gateway.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use shared::{
    AppError, AppState,
    app::dependency::Service,
    domain::{ConversationId, IdempotencyKey, SignedInUser, Title},
    flows::{
        chat::{self, ChatEvent, TurnOutcome},
        conversations,
    },
    http::{ApiJson, ApiQuery, Function, IDEMPOTENCY_KEY, parse_optional_json, views},
    store::decode_cursor,
};

/// This function: its name, what its health check covers, its routes.
pub const FUNCTION: Function = Function {
    name: "chat",
    dependencies: Service::ALL,
    routes: api_routes,
};

/// The API routes, without the common layers (the gateway merges these).
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/chat/message", post(send_message))
        .route("/api/v1/chat/history", get(history))
        .route(
            "/api/v1/conversations",
            get(list_conversations).post(create_conversation),
        )
        .route(
            "/api/v1/conversations/{id}",
            get(get_conversation)
                .patch(rename_conversation)
                .delete(delete_conversation),
        )
        .with_state(state)
}

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    FUNCTION.router(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    content: String,
    /// Without it, the user's default conversation.
    conversation_id: Option<String>,
}

fn conversation_or_default(raw: Option<&str>) -> Result<ConversationId, AppError> {
    raw.map_or_else(
        || Ok(ConversationId::default_conversation()),
        ConversationId::parse,
    )
}

fn sse_event(id: usize, event: ChatEvent) -> Result<Event, Infallible> {
    let (name, data) = views::chat_event(&event);
    Ok(Event::default()
        .id(id.to_string())
        .event(name)
        .data(data.to_string()))
}

/// The stream of a turn: events numbered from 1, and a `: keep-alive` comment whenever nothing
/// was sent for `keep_alive` (`SSE_KEEP_ALIVE_SECS`), so proxies and clients keep it open.
fn sse<S>(events: S, keep_alive: Duration) -> Response
where
    S: Stream<Item = ChatEvent> + Send + 'static,
{
    let numbered = events.enumerate().map(|(i, e)| sse_event(i + 1, e));
    let mut response = Sse::new(numbered)
        .keep_alive(KeepAlive::new().interval(keep_alive).text("keep-alive"))
        .into_response();
    // Ask proxies (and Lambda's buffering front ends) not to hold the stream back.
    response
        .headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static header"));
    response
        .headers_mut()
        .insert("cache-control", "no-cache".parse().expect("static header"));
    response
}

async fn send_message(
    State(state): State<AppState>,
    user: SignedInUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<Response, AppError> {
    let idempotency_key = headers
        .get(&IDEMPOTENCY_KEY)
        // A header that is not even text is as invalid as a bad key.
        .map(|v| IdempotencyKey::parse(v.to_str().unwrap_or("")))
        .transpose()?;
    let conversation = conversation_or_default(body.conversation_id.as_deref())?;
    let keep_alive = state.config.http.sse_keep_alive;
    match chat::start_turn(&state, user, conversation, &body.content, idempotency_key).await? {
        TurnOutcome::Live(rx) => {
            let events =
                stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
            Ok(sse(events, keep_alive))
        }
        TurnOutcome::Replay(events) => Ok(sse(stream::iter(events), keep_alive)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<u32>,
    before: Option<String>,
    conversation_id: Option<String>,
}

async fn history(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(AppError::validation("limit", "must be between 1 and 100"));
    }
    let conversation = conversation_or_default(query.conversation_id.as_deref())?;
    // 404 for a conversation that is not the user's, never an empty page.
    conversations::get(&state, &user, &conversation).await?;
    let before = query
        .before
        .as_deref()
        .map(|c| decode_cursor(&user.id, c))
        .transpose()?;
    let page = state
        .store
        .history(&user.id, &conversation, limit, before.as_deref())
        .await?;
    Ok(Json(views::history(&page)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewConversation {
    title: Option<String>,
}

async fn create_conversation(
    State(state): State<AppState>,
    user: SignedInUser,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let body: NewConversation = parse_optional_json(&body)?.unwrap_or_default();
    let title = body.title.as_deref().map(Title::parse).transpose()?;
    let conversation = conversations::create(&state, &user, title).await?;
    Ok((
        StatusCode::CREATED,
        Json(views::conversation(&conversation)),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_conversations(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(AppError::validation("limit", "must be between 1 and 100"));
    }
    let page = conversations::list(&state, &user, limit, query.cursor.as_deref()).await?;
    Ok(Json(views::conversations(&page)))
}

async fn get_conversation(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = ConversationId::parse(&id)?;
    let conversation = conversations::get(&state, &user, &id).await?;
    Ok(Json(views::conversation(&conversation)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationUpdate {
    title: String,
}

async fn rename_conversation(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConversationUpdate>,
) -> Result<Json<Value>, AppError> {
    let id = ConversationId::parse(&id)?;
    let title = Title::parse(&body.title)?;
    let conversation = conversations::rename(&state, &user, &id, &title).await?;
    Ok(Json(views::conversation(&conversation)))
}

async fn delete_conversation(
    State(state): State<AppState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let id = ConversationId::parse(&id)?;
    let deleted = conversations::delete(&state, &user, &id).await?;
    Ok(Json(
        serde_json::json!({"deleted": true, "id": id, "messages_deleted": deleted}),
    ))
}
