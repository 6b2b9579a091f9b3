//! A function as a value: its name, the dependencies its health check covers, and its API
//! routes with their OpenAPI description. Lambda hosts one function's router; the local
//! gateway merges all four.

use axum::{Router, extract::State, routing::get};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    app::dependency::Service,
    http::{health, layers::with_common_layers},
    state::AppState,
};

/// One Lambda function of the backend.
pub struct Function {
    /// `auth`, `chat`, `user` or `agent`.
    pub name: &'static str,
    /// What its `GET /health` checks.
    pub dependencies: &'static [Service],
    /// Its API routes and their description, without the common layers.
    pub routes: fn() -> OpenApiRouter<AppState>,
}

impl Function {
    /// The whole function as Lambda hosts it: API routes, `GET /health`, the common layers.
    pub fn router(&self, state: AppState) -> Router {
        let state = state.for_function(self.name);
        let config = state.config.http.clone();
        let routes = self.api_routes(state.clone()).merge(health_route(
            "/health",
            self.name,
            self.dependencies,
            state,
        ));
        with_common_layers(routes, &config)
    }

    /// Its API routes with its health check at `/health/<name>` (the gateway's view of it).
    pub fn mounted(&self, state: AppState) -> Router {
        let state = state.for_function(self.name);
        let path = format!("/health/{}", self.name);
        self.api_routes(state.clone()).merge(health_route(
            &path,
            self.name,
            self.dependencies,
            state,
        ))
    }

    /// Its API routes, without the common layers.
    pub fn api_routes(&self, state: AppState) -> Router {
        let (routes, _) = (self.routes)().split_for_parts();
        routes.with_state(state)
    }

    /// The OpenAPI description of its API routes.
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        (self.routes)().into_openapi()
    }
}

/// `GET path`: the health report of `dependencies` under `name`.
pub fn health_route(
    path: &str,
    name: &'static str,
    dependencies: &'static [Service],
    state: AppState,
) -> Router {
    Router::new()
        .route(
            path,
            get(move |State(s): State<AppState>| async move {
                health::report(&s, name, dependencies).await
            }),
        )
        .with_state(state)
}
