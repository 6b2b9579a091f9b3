//! The `user` function: profile (display name, model), the models to choose from, usage,
//! budget, account health, personal API keys (`api_keys.rs`) and the data export of the
//! signed-in user. Its routes as an axum
//! `Router`, hosted by Lambda (`main.rs`, streaming, for the export) or the local gateway.

mod api_keys;

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use futures_util::stream;
use serde::Deserialize;
use shared::{
    AppError, AppState,
    app::{dependency::Service, error::ErrorBody},
    domain::{DisplayName, SignedInUser},
    flows::{export, models, profile, usage},
    http::{
        ApiJson, ApiQuery, Function,
        schemas::PersonName,
        views::{
            self,
            user::{
                AccountHealthView, BudgetReportView, ExportLine, ModelsView, UsageView,
                UserProfileView,
            },
        },
    },
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// This function: its name, what its health check covers, its routes.
pub const FUNCTION: Function = Function {
    name: "user",
    dependencies: Service::ALL,
    routes: api_routes,
};

/// The API routes and their description, without the common layers (the gateway merges these).
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_profile, update_profile))
        .routes(routes!(get_usage))
        .routes(routes!(get_budget, set_budget))
        .routes(routes!(account_health))
        .routes(routes!(export_data))
        .routes(routes!(list_models))
        .routes(routes!(api_keys::create_key, api_keys::list_keys))
        .routes(routes!(api_keys::revoke_key))
}

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    FUNCTION.router(state)
}

/// The user's profile.
#[utoipa::path(
    get,
    path = "/api/v1/user/profile",
    tag = "user",
    responses(
        (status = 200, description = "The profile", body = UserProfileView),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn get_profile(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<UserProfileView>, AppError> {
    let profile = profile::profile(&state, &user).await?;
    Ok(Json(views::user::user_profile(&profile)))
}

/// What to change: one or both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProfileUpdate {
    /// The name the agent knows the user by (1–64 characters, not only spaces, no control
    /// characters); the agent learns it.
    #[schema(value_type = Option<PersonName>)]
    display_name: Option<String>,
    /// One of `GET /api/v1/models`.
    #[schema(min_length = 1)]
    model: Option<String>,
}

/// Renames the user or changes the agent's model.
#[utoipa::path(
    patch,
    path = "/api/v1/user/profile",
    tag = "user",
    request_body = ProfileUpdate,
    responses(
        (status = 200, description = "The profile", body = UserProfileView),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn update_profile(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Json<UserProfileView>, AppError> {
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
    Ok(Json(views::user::user_profile(&profile)))
}

/// The models to choose from, with their prices.
#[utoipa::path(
    get,
    path = "/api/v1/models",
    tag = "user",
    responses((status = 200, description = "The models and the default", body = ModelsView))
)]
async fn list_models(
    State(state): State<AppState>,
    _user: SignedInUser,
) -> Result<Json<ModelsView>, AppError> {
    let choices = models::choices(&state).await?;
    Ok(Json(views::user::models(
        &choices,
        &state.config.letta.model,
    )))
}

/// Everything the backend holds for the user, one JSON object a line (`type` on each), ending
/// with `{"type":"end"}`; a stream that broke off ends with `{"type":"error"}` instead.
#[utoipa::path(
    get,
    path = "/api/v1/user/export",
    tag = "user",
    responses(
        (status = 200, description = "One `ExportLine` per line, the last `end` (or `error`)",
         content_type = "application/x-ndjson", body = ExportLine),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn export_data(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Response, AppError> {
    let records = export::export(&state, &user).await?;
    let lines = stream::unfold(records, |mut rx| async move {
        let record = rx.recv().await?;
        let mut line = serde_json::to_string(&views::user::export_record(&record))
            .unwrap_or_else(|_| r#"{"type":"error"}"#.into());
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// The first day, `YYYY-MM-DD` (default: 29 days before `to`).
    #[param(format = Date)]
    from: Option<String>,
    /// The last day, `YYYY-MM-DD` (default: today, UTC); at most 366 days in all.
    #[param(format = Date)]
    to: Option<String>,
}

/// Usage per day from the backend's records, and the budget period's spend from LiteLLM.
#[utoipa::path(
    get,
    path = "/api/v1/user/usage",
    tag = "user",
    params(UsageQuery),
    responses((status = 200, description = "Every day of the range", body = UsageView))
)]
async fn get_usage(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<UsageView>, AppError> {
    let (from, to) = usage::date_range(q.from.as_deref(), q.to.as_deref())?;
    let report = usage::usage(&state, &user.id, from, to).await?;
    Ok(Json(views::user::usage(&report)))
}

/// The budget: cap, spend, period, and the replies LiteLLM may not have counted yet.
#[utoipa::path(
    get,
    path = "/api/v1/user/budget",
    tag = "user",
    responses(
        (status = 200, description = "The budget", body = BudgetReportView),
        (status = 409, description = "`provisioning`: the account has no budget yet", body = ErrorBody),
    )
)]
async fn get_budget(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<BudgetReportView>, AppError> {
    let report = usage::budget(&state, &user.id).await?;
    Ok(Json(views::user::budget_report(&report)))
}

/// The user's cap.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BudgetUpdate {
    /// USD per period, 0 to `USER_MAX_BUDGET`.
    max_budget: f64,
    /// The period is the operator's; naming another is 422.
    #[serde(default)]
    budget_duration: Option<String>,
}

/// Sets the user's cap for the operator's period; a cap at or below the spend refuses the
/// next message at once.
#[utoipa::path(
    post,
    path = "/api/v1/user/budget",
    tag = "user",
    request_body = BudgetUpdate,
    responses(
        (status = 200, description = "The budget", body = BudgetReportView),
        (status = 403, description = "`email_not_confirmed`: no budget until the email is confirmed", body = ErrorBody),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn set_budget(
    State(state): State<AppState>,
    user: SignedInUser,
    ApiJson(body): ApiJson<BudgetUpdate>,
) -> Result<Json<BudgetReportView>, AppError> {
    let report = usage::set_budget(
        &state,
        &user,
        body.max_budget,
        body.budget_duration.as_deref(),
    )
    .await?;
    Ok(Json(views::user::budget_report(&report)))
}

/// Whether the account works: provisioning, agent, LiteLLM user, budget left.
#[utoipa::path(
    get,
    path = "/api/v1/user/health",
    tag = "user",
    responses((status = 200, description = "The checks", body = AccountHealthView))
)]
async fn account_health(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Json<AccountHealthView>, AppError> {
    let health = profile::account_health(&state, &user).await?;
    Ok(Json(views::user::account_health(&health)))
}
