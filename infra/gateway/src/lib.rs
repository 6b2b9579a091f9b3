//! The gateway's app: the four functions' API routes, and `GET /health` over every dependency.

use axum::{Router, extract::State, routing::get};
use shared::{AppState, upstream::Service};

/// Every dependency any function uses.
pub const ALL_DEPENDENCIES: &[Service] = &[
    Service::DynamoDb,
    Service::Letta,
    Service::LiteLlm,
    Service::SupabaseAuth,
];

pub fn app(state: AppState) -> Router {
    let health = Router::new()
        .route(
            "/health",
            get(|State(s): State<AppState>| async move {
                shared::health::report(&s, "gateway", ALL_DEPENDENCIES).await
            }),
        )
        .route(
            "/health/auth",
            get(|State(s): State<AppState>| async move {
                shared::health::report(&s, "auth", auth::DEPENDENCIES).await
            }),
        )
        .route(
            "/health/chat",
            get(|State(s): State<AppState>| async move {
                shared::health::report(&s, "chat", chat::DEPENDENCIES).await
            }),
        )
        .route(
            "/health/user",
            get(|State(s): State<AppState>| async move {
                shared::health::report(&s, "user", user::DEPENDENCIES).await
            }),
        )
        .route(
            "/health/agent",
            get(|State(s): State<AppState>| async move {
                shared::health::report(&s, "agent", agent::DEPENDENCIES).await
            }),
        )
        .with_state(state.clone());
    let api = Router::new()
        .merge(auth::api_routes(state.clone()))
        .merge(chat::api_routes(state.clone()))
        .merge(user::api_routes(state.clone()))
        .merge(agent::api_routes(state.clone()))
        .merge(health);
    shared::http::with_common_layers(api, &state.config.http)
}
