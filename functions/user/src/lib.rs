//! The `user` function: profile, usage, budget and account health of the signed-in user.
//! Its routes as an axum `Router`, hosted by Lambda (`main.rs`) or the local gateway.

use axum::{Json, Router, extract::State, routing::get};
use serde::Deserialize;
use serde_json::Value;
use shared::{
    AppError, AppState,
    app::dependency::Service,
    domain::{DisplayName, SignedInUser},
    flows::{profile, usage},
    http::{ApiJson, ApiQuery, Function, views},
};

/// This function: its name, what its health check covers, its routes.
pub const FUNCTION: Function = Function {
    name: "user",
    dependencies: Service::ALL,
    routes: api_routes,
};

/// The API routes, without the common layers (the gateway merges these).
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/v1/user/profile",
            get(get_profile).patch(update_profile),
        )
        .route("/api/v1/user/usage", get(get_usage))
        .route("/api/v1/user/budget", get(get_budget).post(set_budget))
        .route("/api/v1/user/health", get(account_health))
        .with_state(state)
}

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    FUNCTION.router(state)
}

async fn get_profile(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<Value>, AppError> {
    let profile = profile::profile(&state, &user).await?;
    Ok(Json(views::user_profile(&profile)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileUpdate {
    display_name: String,
}

async fn update_profile(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Json<Value>, AppError> {
    let name = DisplayName::parse(&body.display_name)?;
    let profile = profile::set_display_name(&state, &user, &name).await?;
    Ok(Json(views::user_profile(&profile)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn get_usage(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<Value>, AppError> {
    let (from, to) = usage::date_range(q.from.as_deref(), q.to.as_deref())?;
    let report = usage::usage(&state, &user.id, from, to).await?;
    Ok(Json(views::usage(&report)))
}

async fn get_budget(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<Value>, AppError> {
    let report = usage::budget(&state, &user.id).await?;
    Ok(Json(views::budget_report(&report)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetUpdate {
    max_budget: f64,
    #[serde(default)]
    budget_duration: Option<String>,
}

async fn set_budget(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiJson(body): ApiJson<BudgetUpdate>,
) -> Result<Json<Value>, AppError> {
    let report = usage::set_budget(
        &state,
        &user.id,
        body.max_budget,
        body.budget_duration.as_deref(),
    )
    .await?;
    Ok(Json(views::budget_report(&report)))
}

async fn account_health(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<Value>, AppError> {
    let health = profile::account_health(&state, &user).await?;
    Ok(Json(views::account_health(&health)))
}
