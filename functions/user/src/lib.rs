//! The `user` function: profile (display name, model), the models to choose from, usage,
//! budget, account health and the data export of the signed-in user. Its routes as an axum
//! `Router`, hosted by Lambda (`main.rs`, streaming, for the export) or the local gateway.

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::stream;
use serde::Deserialize;
use serde_json::Value;
use shared::{
    AppError, AppState,
    app::dependency::Service,
    domain::{DisplayName, SignedInUser},
    flows::{export, models, profile, usage},
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
        .route("/api/v1/user/export", get(export_data))
        .route("/api/v1/models", get(list_models))
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
    display_name: Option<String>,
    model: Option<String>,
}

async fn update_profile(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Json<Value>, AppError> {
    if body.display_name.is_none() && body.model.is_none() {
        return Err(AppError::validation(
            "body",
            "send display_name, model, or both",
        ));
    }
    // Everything is checked before anything changes.
    let name = body
        .display_name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()?;
    if let Some(model) = &body.model {
        models::set_model(&state, &user, model).await?;
    }
    if let Some(name) = &name {
        profile::set_display_name(&state, &user, name).await?;
    }
    let profile = profile::profile(&state, &user).await?;
    Ok(Json(views::user_profile(&profile)))
}

async fn list_models(
    State(state): State<AppState>,
    _user: SignedInUser,
) -> Result<Json<Value>, AppError> {
    let choices = models::choices(&state).await?;
    Ok(Json(views::models(&choices, &state.config.letta.model)))
}

/// Everything the backend holds for the user, one JSON object a line (`type` on each), ending
/// with `{"type":"end"}`; a stream that broke off ends with `{"type":"error"}` instead.
async fn export_data(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Response, AppError> {
    let records = export::export(&state, &user).await?;
    let lines = stream::unfold(records, |mut rx| async move {
        let record = rx.recv().await?;
        let mut line = views::export_record(&record).to_string();
        line.push('\n');
        Some((Ok::<_, std::convert::Infallible>(line), rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"export.ndjson\"",
            ),
        ],
        Body::from_stream(lines),
    )
        .into_response())
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
        &user,
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
