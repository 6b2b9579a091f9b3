//! The `auth` function: registration (with provisioning), login, refresh, logout, me, account
//! deletion. Its routes as an axum `Router`, hosted by Lambda (`main.rs`) or the local gateway.

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::{
    AppError, AppState,
    app::dependency::Service,
    domain::{DisplayName, Email, Password, SignedInUser},
    flows::accounts::{self, Registered, Registration},
    http::{ApiJson, AuthAttempt, Function, parse_optional_json, views},
};

/// This function: its name, what its health check covers, its routes.
pub const FUNCTION: Function = Function {
    name: "auth",
    dependencies: Service::ALL,
    routes: api_routes,
};

/// The API routes, without the common layers (the gateway merges these).
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/auth/account", delete(delete_account))
        .with_state(state)
}

/// Variables this function needs beyond the common ones: it deletes accounts (Supabase's admin
/// API), and with the reconciler is the only one that may hold that key.
pub const REQUIRED_VARIABLES: &[&str] = &["SUPABASE_SERVICE_ROLE_KEY"];

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    FUNCTION.router(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    email: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    _attempt: AuthAttempt,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<Response, AppError> {
    let input = Registration {
        email: Email::parse(&body.email)?,
        password: Password::parse(&body.password)?,
        display_name: body
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()?,
    };
    match accounts::register(&state, input).await? {
        Registered::Ready { session, profile } => {
            let budget = accounts::budget_summary(&state, &profile.user_id).await;
            let body = views::signed_in(&session, &profile, budget.as_ref());
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Registered::ConfirmationRequired { user } => Ok((
            StatusCode::ACCEPTED,
            Json(views::confirmation_required(&user)),
        )
            .into_response()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    _attempt: AuthAttempt,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<Value>, AppError> {
    let (session, profile) = accounts::login(&state, &body.email, &body.password).await?;
    let budget = accounts::budget_summary(&state, &profile.user_id).await;
    Ok(Json(views::signed_in(&session, &profile, budget.as_ref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    _attempt: AuthAttempt,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<Value>, AppError> {
    let session = accounts::refresh(&state, &body.refresh_token).await?;
    Ok(Json(
        json!({ "session": views::SessionView::from(&session) }),
    ))
}

async fn logout(State(state): State<AppState>, user: SignedInUser) -> Result<StatusCode, AppError> {
    accounts::logout(&state, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, user: SignedInUser) -> Result<Json<Value>, AppError> {
    let (profile, budget) = accounts::me(&state, &user).await?;
    Ok(Json(json!({
        "user": views::user(&profile),
        "profile": views::account_profile(&profile, budget.as_ref()),
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    #[serde(default)]
    password: Option<String>,
}

async fn delete_account(
    State(state): State<AppState>,
    user: SignedInUser,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let body: DeleteBody = parse_optional_json(&body)?.unwrap_or_default();
    accounts::delete_account(&state, &user, body.password.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
