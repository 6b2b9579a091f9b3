//! Rate limits at the edge of every function, counted in DynamoDB (see `store::limits`) so
//! they hold across Lambda instances: per user, chat turns per minute and per day and other
//! requests per minute (checked with the token, before any work); per client IP, sign-up and
//! sign-in attempts per minute. A refused request is 429 `rate_limited` with `Retry-After` and
//! the limit's name, and nothing else happens.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{Method, request::Parts},
};

use crate::{
    app::error::AppError,
    domain::UserId,
    state::AppState,
    store::{Exceeded, Gate, RateLimit},
};

const MINUTE: i64 = 60;
const DAY: i64 = 24 * 3600;

/// The client's address: the function URL event's `requestContext.http.sourceIp` on Lambda, the
/// socket's peer in the local gateway; never a header a client can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    fn of(parts: &Parts) -> Self {
        use lambda_http::request::RequestContext;
        let from_lambda = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok())
            }
            _ => None,
        };
        let from_socket = || {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        };
        Self(from_lambda.or_else(from_socket))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

fn refused(exceeded: Exceeded) -> AppError {
    AppError::RateLimited {
        limit: exceeded.limit,
        retry_after: exceeded.retry_after,
    }
}

/// Counts a request of a signed-in user: a chat turn against the chat limits, anything else
/// against the per-minute request limit; and refuses a token issued before the user's sessions
/// were revoked (logout). One DynamoDB round trip.
pub(crate) async fn check_user(
    state: &AppState,
    method: &Method,
    path: &str,
    user: &UserId,
    issued_at: i64,
) -> Result<(), AppError> {
    let rates = &state.config.rates;
    let chat_turn = *method == Method::POST && path.ends_with("/chat/message");
    let limits: &[RateLimit] = if chat_turn {
        &[
            RateLimit {
                name: "chat_per_minute",
                max: rates.chat_per_minute,
                window_secs: MINUTE,
            },
            RateLimit {
                name: "chat_per_day",
                max: rates.chat_per_day,
                window_secs: DAY,
            },
        ]
    } else {
        &[RateLimit {
            name: "requests_per_minute",
            max: rates.requests_per_minute,
            window_secs: MINUTE,
        }]
    };
    match state.store.gate_user(user, issued_at, limits).await? {
        Gate::Open => Ok(()),
        Gate::Limited(exceeded) => Err(refused(exceeded)),
        Gate::Revoked => Err(AppError::Unauthorized(
            "this session was signed out; sign in again".into(),
        )),
    }
}

/// A sign-up or sign-in attempt (register, login, refresh), counted per client IP before
/// anything else happens; as an extractor, the handler runs only when the limit allows it.
pub struct AuthAttempt;

impl FromRequestParts<AppState> for AuthAttempt {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ClientIp(ip) = ClientIp::of(parts);
        let limit = RateLimit {
            name: "auth_per_minute",
            max: state.config.rates.auth_per_minute,
            window_secs: MINUTE,
        };
        match state.store.hit_client(ip, &[limit]).await? {
            Some(exceeded) => Err(refused(exceeded)),
            None => Ok(Self),
        }
    }
}
