//! The `chat` function: send a message and receive the agent's reply token by token over SSE
//! (Lambda response streaming), and read the stored history. Its routes as an axum `Router`,
//! hosted by Lambda (`main.rs`, streaming) or the local gateway.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::HeaderMap,
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
    domain::{IdempotencyKey, SignedInUser},
    flows::chat::{self, ChatEvent, TurnOutcome},
    http::{ApiJson, ApiQuery, Function, IDEMPOTENCY_KEY, views},
    store::decode_cursor,
};

/// This function: its name, what its health check covers, its routes.
pub const FUNCTION: Function = Function {
    name: "chat",
    dependencies: Service::ALL,
    routes: api_routes,
};

/// SSE comments at least this often, so proxies and clients keep an idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The API routes, without the common layers (the gateway merges these).
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/chat/message", post(send_message))
        .route("/api/v1/chat/history", get(history))
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
}

fn sse_event(id: usize, event: ChatEvent) -> Result<Event, Infallible> {
    let (name, data) = views::chat_event(&event);
    Ok(Event::default()
        .id(id.to_string())
        .event(name)
        .data(data.to_string()))
}

fn sse<S>(events: S) -> Response
where
    S: Stream<Item = ChatEvent> + Send + 'static,
{
    let numbered = events.enumerate().map(|(i, e)| sse_event(i + 1, e));
    let mut response = Sse::new(numbered)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
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
    match chat::start_turn(&state, user, &body.content, idempotency_key).await? {
        TurnOutcome::Live(rx) => {
            let events =
                stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
            Ok(sse(events))
        }
        TurnOutcome::Replay(events) => Ok(sse(stream::iter(events))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<u32>,
    before: Option<String>,
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
    let before = query
        .before
        .as_deref()
        .map(|c| decode_cursor(&user.id, c))
        .transpose()?;
    let page = state
        .store
        .history(&user.id, limit, before.as_deref())
        .await?;
    Ok(Json(views::history(&page)))
}
