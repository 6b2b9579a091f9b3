//! The OpenAI-compatible routes: `POST /v1/chat/completions` (streamed or not) sends the last
//! user message to the user's own agent, as `POST /api/v1/chat/message` does (stored, billed,
//! locked and idempotent the same way), and `GET /v1/models` lists the models the user may
//! choose. A personal API key or an access token opens them; every refusal is OpenAI's error
//! shape.

use std::convert::Infallible;

use axum::{
    Json,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response, sse::Event},
};
use futures_util::stream::{self, Stream, StreamExt};
use shared::{
    AppError, AppState,
    app::error::ErrorCode,
    domain::ConversationId,
    flows::{
        chat::{self, ChatEvent},
        gate, models,
    },
    http::{
        ApiCaller, ApiJson,
        views::openai::{
            self as wire, AnswerMessage, ChatCompletion, ChatCompletionChunk,
            ChatCompletionRequest, Choice, ChunkChoice, ChunkDelta, CompletionUsage, ModelList,
            OpenAiError, OpenAiErrorBody,
        },
    },
};

/// The header naming the conversation (without it: the user's default one).
const CONVERSATION_HEADER: &str = "x-conversation-id";

/// Creates a chat completion: the last `user` message goes to the user's agent.
///
/// The agent keeps the conversation's history itself, so earlier messages of the request are
/// not replayed. `model` is ignored: the user's agent answers with the model the user chose,
/// and the answer names the one that answered. `X-Conversation-Id` names one of the user's
/// conversations; `Idempotency-Key` replays a turn instead of running it twice.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    params(
        ("X-Conversation-Id" = Option<String>, Header, pattern = r"^(default|[0-9A-Za-z]{26})$",
         description = "One of the user's conversations (default: `default`)"),
        ("Idempotency-Key" = Option<String>, Header,
         min_length = 1, max_length = 128, pattern = "^[!-~]+$",
         description = "Repeating a key within 24 h replays the turn instead of sending it again"),
    ),
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "`chat.completion`; with `stream: true`, `chat.completion.chunk` server-sent events ending with `data: [DONE]`",
         content(
            (ChatCompletion = "application/json"),
            (ChatCompletionChunk = "text/event-stream"),
         )),
        (status = 400, description = "No user message, or a body that is not a chat completion request", body = OpenAiErrorBody),
        (status = 401, description = "`invalid_api_key`", body = OpenAiErrorBody),
        (status = 402, description = "`insufficient_quota`: the budget is used up", body = OpenAiErrorBody),
        (status = 404, description = "No such conversation of the user's", body = OpenAiErrorBody),
        (status = 409, description = "`turn_in_progress`, `too_many_turns` or `provisioning`", body = OpenAiErrorBody),
        (status = 413, description = "`content_too_long`", body = OpenAiErrorBody),
        (status = 422, description = "A header or field with a value that is not allowed", body = OpenAiErrorBody),
        (status = 429, description = "`rate_limit_exceeded`, with `Retry-After`", body = OpenAiErrorBody),
        (status = 500, description = "A bug on our side", body = OpenAiErrorBody),
        (status = 502, description = "The model or a dependency failed", body = OpenAiErrorBody),
        (status = 503, description = "A dependency is down, with `Retry-After`", body = OpenAiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    caller: Result<ApiCaller, AppError>,
    headers: HeaderMap,
    body: Result<ApiJson<ChatCompletionRequest>, AppError>,
) -> Result<Response, OpenAiError> {
    let ApiCaller(user) = caller?;
    let parsed = body.and_then(|ApiJson(request)| parse(&headers, request));
    let (request, text, conversation, key) = match parsed {
        Ok(parsed) => parsed,
        Err(invalid) => return Err(chat::refuse(&state, &user, invalid).await.into()),
    };
    let outcome = chat::start_turn(&state, user, conversation, &text, key).await?;
    if request.stream {
        let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
        let keep_alive = state.config.http.sse_keep_alive;
        Ok(stream_answer(
            super::turn_events(outcome),
            include_usage,
            keep_alive,
        ))
    } else {
        Ok(whole_answer(super::turn_events(outcome)).await)
    }
}

type Parsed = (
    ChatCompletionRequest,
    String,
    ConversationId,
    Option<shared::domain::IdempotencyKey>,
);

/// The request, its text, the conversation and the idempotency key.
fn parse(headers: &HeaderMap, request: ChatCompletionRequest) -> Result<Parsed, AppError> {
    let text = request
        .last_user_text()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| AppError::BadRequest {
            code: ErrorCode::EmptyContent,
            message: "the messages hold no user message with text".into(),
        })?;
    let conversation = match headers.get(CONVERSATION_HEADER) {
        Some(v) => ConversationId::parse(v.to_str().unwrap_or(""))?,
        None => ConversationId::default_conversation(),
    };
    let key = super::idempotency_key(headers)?;
    Ok((request, text, conversation, key))
}

/// What an answer has gathered so far.
#[derive(Default)]
struct Answer {
    id: String,
    created: i64,
    model: String,
    usage: Option<CompletionUsage>,
}

impl Answer {
    fn chunk(&self, delta: ChunkDelta, finish_reason: Option<&'static str>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
            }],
            usage: None,
        }
    }

    /// Notes what `event` says of the answer; true for `start`.
    fn note(&mut self, event: &ChatEvent) -> bool {
        match event {
            ChatEvent::Start {
                message_id, model, ..
            } => {
                self.id = format!("chatcmpl-{message_id}");
                self.created = shared::app::clock::now_epoch();
                self.model = model.clone().unwrap_or_default();
                true
            }
            ChatEvent::Usage { usage, model, .. } => {
                self.usage = Some(CompletionUsage {
                    prompt_tokens: usage.prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                    total_tokens: usage.total_tokens,
                });
                if let Some(model) = model {
                    self.model = model.clone();
                }
                false
            }
            _ => false,
        }
    }

    /// The `data:` payloads one event gives a streamed answer.
    fn chunks(&mut self, event: ChatEvent, include_usage: bool) -> Vec<String> {
        if self.note(&event) {
            let first = ChunkDelta {
                role: Some("assistant"),
                content: Some(String::new()),
            };
            return vec![json(&self.chunk(first, None))];
        }
        match event {
            ChatEvent::Delta { text } => {
                let delta = ChunkDelta {
                    role: None,
                    content: Some(text),
                };
                vec![json(&self.chunk(delta, None))]
            }
            ChatEvent::Done(done) => {
                let finish = wire::finish_reason(done.stop_reason.as_deref());
                let mut out = vec![json(&self.chunk(ChunkDelta::default(), Some(finish)))];
                if include_usage {
                    let mut last = self.chunk(ChunkDelta::default(), None);
                    last.choices.clear();
                    last.usage = Some(self.usage.clone().unwrap_or_default());
                    out.push(json(&last));
                }
                out
            }
            ChatEvent::Error(e) => vec![json(&wire::turn_error(&e).1)],
            _ => Vec::new(),
        }
    }
}

/// A wire object as one `data:` line.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The streamed answer: chunks as the turn's events come, then `data: [DONE]`.
fn stream_answer(
    events: impl Stream<Item = ChatEvent> + Send + 'static,
    include_usage: bool,
    keep_alive: std::time::Duration,
) -> Response {
    let chunks = events
        .scan(Answer::default(), move |answer, event| {
            std::future::ready(Some(answer.chunks(event, include_usage)))
        })
        .flat_map(stream::iter)
        .chain(stream::once(async { "[DONE]".to_string() }))
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    super::sse_response(chunks, keep_alive)
}

/// The whole answer once the turn ends: `chat.completion`, or the turn's error.
async fn whole_answer(mut events: impl Stream<Item = ChatEvent> + Unpin) -> Response {
    let (mut answer, mut text, mut finish) = (Answer::default(), String::new(), "stop");
    while let Some(event) = events.next().await {
        answer.note(&event);
        match event {
            ChatEvent::Delta { text: delta } => text.push_str(&delta),
            ChatEvent::Done(done) => {
                if let Some(stored) = done.text.filter(|_| done.text_corrected) {
                    text = stored;
                }
                finish = wire::finish_reason(done.stop_reason.as_deref());
            }
            ChatEvent::Error(e) => {
                let (status, body) = wire::turn_error(&e);
                return (status, Json(body)).into_response();
            }
            _ => {}
        }
    }
    Json(ChatCompletion {
        id: answer.id,
        object: "chat.completion",
        created: answer.created,
        model: answer.model,
        choices: vec![Choice {
            index: 0,
            message: AnswerMessage {
                role: "assistant",
                content: text,
            },
            finish_reason: finish,
        }],
        usage: answer.usage.unwrap_or_default(),
    })
    .into_response()
}

/// Lists the models the user may choose, in OpenAI's list shape.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    responses(
        (status = 200, description = "The models", body = ModelList),
        (status = 400, description = "A malformed header", body = OpenAiErrorBody),
        (status = 401, description = "`invalid_api_key`", body = OpenAiErrorBody),
        (status = 413, description = "A body above the limit", body = OpenAiErrorBody),
        (status = 422, description = "A value that is not allowed", body = OpenAiErrorBody),
        (status = 429, description = "`rate_limit_exceeded`, with `Retry-After`", body = OpenAiErrorBody),
        (status = 500, description = "A bug on our side", body = OpenAiErrorBody),
        (status = 502, description = "A dependency failed", body = OpenAiErrorBody),
        (status = 503, description = "A dependency is down, with `Retry-After`", body = OpenAiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_models(
    State(state): State<AppState>,
    caller: Result<ApiCaller, AppError>,
) -> Result<Json<ModelList>, OpenAiError> {
    let ApiCaller(user) = caller?;
    let limits = gate::request_limits(&state.config.rates);
    gate::pass(&state, &user.id, gate::issued_at(&user), &limits).await?;
    let choices = models::choices(&state).await?;
    Ok(Json(wire::model_list(&choices)))
}
