//! The `user` function: profile, usage, budget and account health of the signed-in user.
//! Its routes as an axum `Router`, hosted by Lambda (`main.rs`) or the local gateway.

use axum::{Json, Router, extract::State, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::{
    AppError, AppState, agent_ops,
    domain::DisplayName,
    http::{ApiJson, ApiQuery},
    jwt::AuthUser,
    upstream::Service,
    usage,
};

/// The dependencies this function needs; `GET /health` checks each.
pub const DEPENDENCIES: &[Service] = &[
    Service::DynamoDb,
    Service::Letta,
    Service::LiteLlm,
    Service::SupabaseAuth,
];

/// The API routes, without the common layers (the gateway merges these).
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/user/profile", get(profile).patch(update_profile))
        .route("/api/v1/user/usage", get(get_usage))
        .route("/api/v1/user/budget", get(get_budget).post(set_budget))
        .route("/api/v1/user/health", get(account_health))
        .with_state(state)
}

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    shared::http::function_router("user", DEPENDENCIES, api_routes(state.clone()), state)
}

fn profile_json(p: &shared::profile::Profile) -> Value {
    json!({
        "display_name": p.display_name,
        "email": p.email,
        "created_at": p.user_created_at,
        "state": p.state.as_str(),
        "agent_id": p.letta_agent_id,
        "model": p.model,
    })
}

async fn profile(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, AppError> {
    let profile = state
        .store
        .get_profile(&user.id)
        .await?
        .ok_or_else(|| AppError::NotFound("no account for this user".into()))?;
    Ok(Json(json!({"profile": profile_json(&profile)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileUpdate {
    display_name: String,
}

async fn update_profile(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Json<Value>, AppError> {
    let name = DisplayName::parse(&body.display_name)?;
    let profile = agent_ops::set_display_name(&state, &user.id, &name).await?;
    Ok(Json(json!({"profile": profile_json(&profile)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn get_usage(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<Value>, AppError> {
    let (from, to) = usage::date_range(q.from.as_deref(), q.to.as_deref())?;
    Ok(Json(usage::usage(&state, &user.id, from, to).await?))
}

async fn get_budget(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Value>, AppError> {
    Ok(Json(usage::budget(&state, &user.id).await?))
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
    user: AuthUser,
    ApiJson(body): ApiJson<BudgetUpdate>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        usage::set_budget(
            &state,
            &user.id,
            body.max_budget,
            body.budget_duration.as_deref(),
        )
        .await?,
    ))
}

async fn account_health(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Value>, AppError> {
    Ok(Json(agent_ops::account_health(&state, &user.id).await?))
}
