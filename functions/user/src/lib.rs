//! The `user` function: its routes as an axum `Router`, hosted by Lambda (`main.rs`) or by the
//! local gateway.

use axum::{Router, extract::State, routing::get};
use shared::{AppState, upstream::Service};

/// The dependencies this function needs; `GET /health` checks each.
pub const DEPENDENCIES: &[Service] = &[
    Service::DynamoDb,
    Service::Letta,
    Service::LiteLlm,
    Service::SupabaseAuth,
];

/// The API routes, without the common layers (the gateway merges these).
pub fn api_routes(_state: AppState) -> Router {
    Router::new()
}

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    let health = Router::new()
        .route(
            "/health",
            get(|State(s): State<AppState>| async move {
                shared::health::report(&s, "user", DEPENDENCIES).await
            }),
        )
        .with_state(state.clone());
    let config = state.config.http.clone();
    shared::http::with_common_layers(api_routes(state).merge(health), &config)
}
