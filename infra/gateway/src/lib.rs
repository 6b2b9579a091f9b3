//! The gateway's app: the four functions' API routes, each function's health check at
//! `/health/<name>`, and `GET /health` over every dependency.

use axum::Router;
use shared::{
    AppState,
    app::dependency::Service,
    http::{Function, router::health_route, with_common_layers},
};

/// The four functions, as Lambda hosts them one by one.
pub const FUNCTIONS: [&Function; 4] = [
    &auth::FUNCTION,
    &chat::FUNCTION,
    &user::FUNCTION,
    &agent::FUNCTION,
];

/// Every function's routes on one router, with the common layers once.
pub fn app(state: AppState) -> Router {
    let routes = FUNCTIONS.iter().fold(
        health_route("/health", "gateway", Service::ALL, state.clone()),
        |router, function| router.merge(function.mounted(state.clone())),
    );
    with_common_layers(routes, &state.config.http)
}
