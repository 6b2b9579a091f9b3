//! The `auth` function: registration (with provisioning), login, refresh, logout, me, account
//! deletion. Its routes as an axum `Router`, hosted by Lambda (`main.rs`) or the local gateway.

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared::{
    AppError, AppState,
    app::{dependency::Service, error::ErrorBody},
    domain::{DisplayName, Email, Password, SignedInUser},
    flows::accounts::{self, Registered, Registration},
    http::{
        ApiJson, AuthAttempt, Function, parse_optional_json,
        schemas::{NotBlank, PersonName},
        views::{
            self,
            auth::{ConfirmationRequiredView, MeView, RefreshedView, SignedInView},
        },
    },
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// This function: its name, what its health check covers, its routes.
pub const FUNCTION: Function = Function {
    name: "auth",
    dependencies: Service::ALL,
    routes: api_routes,
};

/// The API routes and their description, without the common layers (the gateway merges these).
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(delete_account))
}

/// Variables this function needs beyond the common ones: it deletes accounts (Supabase's admin
/// API), and with the reconciler is the only one that may hold that key.
pub const REQUIRED_VARIABLES: &[&str] = &["SUPABASE_SERVICE_ROLE_KEY"];

/// The whole function: API routes, `GET /health`, and the common layers.
pub fn router(state: AppState) -> Router {
    FUNCTION.router(state)
}

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    /// The email address (the login).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 8 characters to 72 bytes.
    #[schema(min_length = 8, max_length = 72)]
    password: String,
    /// The name the agent knows the user by (1–64 characters, not only spaces, no control
    /// characters).
    #[serde(default)]
    #[schema(value_type = Option<PersonName>)]
    display_name: Option<String>,
}

/// Makes an account: the Supabase user, the LiteLLM user and key with the default budget,
/// and the Letta agent; signs the user in.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    security(()),
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Signed in; the account is ready or being finished (`profile.state`)", body = SignedInView),
        (status = 202, description = "The Supabase project confirms emails: confirm, then log in", body = ConfirmationRequiredView),
        (status = 409, description = "`email_taken`", body = ErrorBody),
    )
)]
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
            let body = views::auth::signed_in(&session, &profile, budget.as_ref());
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Registered::ConfirmationRequired { user } => Ok((
            StatusCode::ACCEPTED,
            Json(views::auth::confirmation_required(&user)),
        )
            .into_response()),
    }
}

/// Email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// The email address.
    #[schema(value_type = NotBlank)]
    email: String,
    /// The password.
    #[schema(min_length = 1)]
    password: String,
}

/// Signs in (and finishes setting the account up if a step is missing).
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    security(()),
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in", body = SignedInView),
        (status = 401, description = "`invalid_credentials` (the same for a wrong email or password)", body = ErrorBody),
        (status = 403, description = "`email_not_confirmed`", body = ErrorBody),
        (status = 409, description = "`provisioning`: another request is setting the account up", body = ErrorBody),
    )
)]
async fn login(
    State(state): State<AppState>,
    _attempt: AuthAttempt,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<SignedInView>, AppError> {
    let (session, profile) = accounts::login(&state, &body.email, &body.password).await?;
    let budget = accounts::budget_summary(&state, &profile.user_id).await;
    Ok(Json(views::auth::signed_in(
        &session,
        &profile,
        budget.as_ref(),
    )))
}

/// A refresh token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    /// The session's refresh token (single use).
    #[schema(value_type = NotBlank)]
    refresh_token: String,
}

/// A new session for a refresh token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    security(()),
    request_body = RefreshBody,
    responses(
        (status = 200, description = "The new session", body = RefreshedView),
        (status = 401, description = "The refresh token is not valid (spent, expired, revoked)", body = ErrorBody),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    _attempt: AuthAttempt,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<RefreshedView>, AppError> {
    let session = accounts::refresh(&state, &body.refresh_token).await?;
    Ok(Json(views::auth::refreshed(&session)))
}

/// Ends the session: its refresh token stops working and the access token is refused.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    responses((status = 204, description = "Signed out"))
)]
async fn logout(State(state): State<AppState>, user: SignedInUser) -> Result<StatusCode, AppError> {
    accounts::logout(&state, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user and the account.
#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "The user and the account", body = MeView),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn me(State(state): State<AppState>, user: SignedInUser) -> Result<Json<MeView>, AppError> {
    let (profile, budget) = accounts::me(&state, &user).await?;
    Ok(Json(views::auth::me(&profile, budget.as_ref())))
}

/// The password again, where the account has one.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    /// The account's password.
    #[serde(default)]
    password: Option<String>,
}

/// Deletes the account everywhere: the agent and its memory, the key and budget, the stored
/// data, the Supabase user. The token stops working at once.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/account",
    tag = "auth",
    request_body = Option<DeleteBody>,
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`reauthentication_required`: the password is missing or another account's", body = ErrorBody),
        (status = 409, description = "`provisioning`", body = ErrorBody),
    )
)]
async fn delete_account(
    State(state): State<AppState>,
    user: SignedInUser,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let body: DeleteBody = parse_optional_json(&body)?.unwrap_or_default();
    accounts::delete_account(&state, &user, body.password.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
