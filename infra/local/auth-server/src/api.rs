//! GoTrue's endpoints, request checks and error shapes.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    App,
    users::{Db, User, now},
};

type Shared = State<Arc<App>>;

/// An error in GoTrue's shape. With `X-Supabase-Api-Version: 2024-01-01` the body is
/// `{"code": "<error_code>", "message"}`; without it, `{"code": <status>, "error_code", "msg"}`.
pub(crate) struct GoTrueError {
    status: StatusCode,
    code: &'static str,
    message: String,
    versioned: bool,
    extra: Option<Box<(&'static str, Value)>>,
}

impl IntoResponse for GoTrueError {
    fn into_response(self) -> Response {
        let mut body = if self.versioned {
            json!({"code": self.code, "message": self.message})
        } else {
            json!({"code": self.status.as_u16(), "error_code": self.code, "msg": self.message})
        };
        if let Some((k, v)) = self.extra.map(|b| *b) {
            body[k] = v;
        }
        let mut res = (self.status, Json(body)).into_response();
        res.headers_mut()
            .insert("x-sb-error-code", HeaderValue::from_static(self.code));
        if self.versioned {
            res.headers_mut().insert(
                "x-supabase-api-version",
                HeaderValue::from_static("2024-01-01"),
            );
        }
        res
    }
}

fn versioned(headers: &HeaderMap) -> bool {
    headers
        .get("x-supabase-api-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v >= "2024-01-01")
}

fn error(
    headers: &HeaderMap,
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> GoTrueError {
    GoTrueError {
        status,
        code,
        message: message.into(),
        versioned: versioned(headers),
        extra: None,
    }
}

/// The API gateway in front of GoTrue (Kong) rejects requests without a valid `apikey`.
/// `Some(rejection)` when the key is missing or wrong.
fn apikey_rejection(app: &App, headers: &HeaderMap) -> Option<Response> {
    let key = headers.get("apikey").and_then(|v| v.to_str().ok());
    match key {
        None => Some((
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "No API key found in request", "hint": "No `apikey` request header or url param was found."})),
        )
            .into_response()),
        Some(k) if k == app.settings.anon_key || k == app.settings.service_role_key => None,
        Some(_) => Some((
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."})),
        )
            .into_response()),
    }
}

macro_rules! gate {
    ($app:expr, $headers:expr) => {
        if let Some(res) = apikey_rejection(&$app, &$headers) {
            return res;
        }
    };
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    email: String,
    phone: String,
    app_metadata: Value,
    user_metadata: Value,
    role: String,
    aal: String,
    amr: Vec<Value>,
    session_id: String,
    is_anonymous: bool,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn session_body(
    app: &App,
    user: &User,
    session_id: &str,
    refresh_token: String,
    method: &str,
) -> Value {
    let iat = unix_now();
    let exp = iat + app.settings.jwt_exp;
    let claims = Claims {
        iss: app.settings.issuer.clone(),
        sub: user.id.clone(),
        aud: "authenticated".into(),
        exp,
        iat,
        email: user.email.clone(),
        phone: String::new(),
        app_metadata: user.app_metadata(),
        user_metadata: user.user_metadata.clone(),
        role: "authenticated".into(),
        aal: "aal1".into(),
        amr: vec![json!({"method": method, "timestamp": iat})],
        session_id: session_id.to_string(),
        is_anonymous: user.is_anonymous,
    };
    json!({
        "access_token": app.signer.sign(&claims),
        "token_type": "bearer",
        "expires_in": app.settings.jwt_exp,
        "expires_at": exp,
        "refresh_token": refresh_token,
        "user": user.to_json(),
    })
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.len() <= 255
}

pub(crate) async fn health(State(app): Shared, headers: HeaderMap) -> Response {
    gate!(app, headers);
    Json(json!({"version": "v2.177.0-local", "name": "GoTrue", "description": "GoTrue is a user registration and authentication API"}))
        .into_response()
}

pub(crate) async fn jwks(State(app): Shared) -> Response {
    Json(app.signer.jwks()).into_response()
}

#[derive(Deserialize)]
pub(crate) struct SignupBody {
    email: Option<String>,
    password: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

/// `signInAnonymously`: a sign-up with neither email nor password, when the project allows it.
async fn anonymous_signup(app: &App, headers: &HeaderMap, data: Option<Value>) -> Response {
    if !app.settings.anonymous_enabled {
        return error(
            headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            "anonymous_provider_disabled",
            "Anonymous sign-ins are disabled",
        )
        .into_response();
    }
    let metadata = match data {
        Some(Value::Object(m)) => Value::Object(m),
        _ => json!({}),
    };
    let user = User::anonymous(metadata);
    let mut db = app.db.lock().await;
    db.data.users.insert(user.id.clone(), user.clone());
    let (session_id, refresh) = db.new_session(&user.id);
    db.save();
    Json(session_body(app, &user, &session_id, refresh, "anonymous")).into_response()
}

/// Email, password and metadata of a sign-up, or GoTrue's refusal.
fn signup_input(
    app: &App,
    headers: &HeaderMap,
    body: SignupBody,
) -> Result<(String, String, Value), GoTrueError> {
    let email = body.email.unwrap_or_default().trim().to_lowercase();
    if email.is_empty() {
        return Err(error(
            headers,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "To signup, please provide your email",
        ));
    }
    if !valid_email(&email) {
        return Err(error(
            headers,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "Unable to validate email address: invalid format",
        ));
    }
    let password = body.password.unwrap_or_default();
    if password.chars().count() < app.settings.password_min_length {
        let mut e = error(
            headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
            format!(
                "Password should be at least {} characters.",
                app.settings.password_min_length
            ),
        );
        e.extra = Some(Box::new(("weak_password", json!({"reasons": ["length"]}))));
        return Err(e);
    }
    let metadata = match body.data {
        Some(Value::Object(m)) => Value::Object(m),
        _ => json!({}),
    };
    Ok((email, password, metadata))
}

pub(crate) async fn signup(
    State(app): Shared,
    headers: HeaderMap,
    body: Option<Json<SignupBody>>,
) -> Response {
    gate!(app, headers);
    let Some(Json(body)) = body else {
        return error(
            &headers,
            StatusCode::BAD_REQUEST,
            "bad_json",
            "Could not parse request body as JSON",
        )
        .into_response();
    };
    if body.email.as_deref().unwrap_or_default().is_empty()
        && body.password.as_deref().unwrap_or_default().is_empty()
    {
        return anonymous_signup(&app, &headers, body.data).await;
    }
    let (email, password, metadata) = match signup_input(&app, &headers, body) {
        Ok(input) => input,
        Err(refused) => return refused.into_response(),
    };
    let mut db = app.db.lock().await;
    if let Some(existing) = db.by_email(&email) {
        if app.settings.autoconfirm || existing.email_confirmed_at.is_some() {
            return error(
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                "user_already_exists",
                "User already registered",
            )
            .into_response();
        }
        // With confirmation on, GoTrue answers with an obfuscated user so emails cannot be enumerated.
        let mut fake = User::new(&email, &password, metadata, false);
        fake.id = uuid::Uuid::new_v4().to_string();
        return Json(fake.to_json()).into_response();
    }
    let user = User::new(&email, &password, metadata, app.settings.autoconfirm);
    if app.settings.autoconfirm {
        sign_in(&app, &mut db, user)
    } else {
        db.data.users.insert(user.id.clone(), user.clone());
        db.save();
        Json(user.to_json()).into_response()
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenBody {
    email: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

pub(crate) async fn token(
    State(app): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Option<Json<TokenBody>>,
) -> Response {
    gate!(app, headers);
    let Some(Json(body)) = body else {
        return error(
            &headers,
            StatusCode::BAD_REQUEST,
            "bad_json",
            "Could not parse request body as JSON",
        )
        .into_response();
    };
    let mut db = app.db.lock().await;
    match query.get("grant_type").map(String::as_str) {
        Some("password") => password_grant(&app, &headers, &mut db, body),
        Some("refresh_token") => refresh_grant(&app, &headers, &mut db, body),
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type", "error_description": "unsupported_grant_type"})),
        )
            .into_response(),
    }
}

/// `grant_type=password`: a new session for a confirmed user with the right password.
fn password_grant(app: &App, headers: &HeaderMap, db: &mut Db, body: TokenBody) -> Response {
    let email = body.email.unwrap_or_default().trim().to_lowercase();
    let password = body.password.unwrap_or_default();
    let user = match db.by_email(&email) {
        Some(u) if u.password_matches(&password) => u.clone(),
        _ => {
            return error(
                headers,
                StatusCode::BAD_REQUEST,
                "invalid_credentials",
                "Invalid login credentials",
            )
            .into_response();
        }
    };
    if user.email_confirmed_at.is_none() {
        return error(
            headers,
            StatusCode::BAD_REQUEST,
            "email_not_confirmed",
            "Email not confirmed",
        )
        .into_response();
    }
    sign_in(app, db, user)
}

/// A new session for `user` (saved with its sign-in time), as GoTrue answers a password grant.
fn sign_in(app: &App, db: &mut Db, mut user: User) -> Response {
    user.last_sign_in_at = Some(now());
    db.data.users.insert(user.id.clone(), user.clone());
    let (session_id, refresh) = db.new_session(&user.id);
    db.save();
    Json(session_body(app, &user, &session_id, refresh, "password")).into_response()
}

/// `grant_type=refresh_token`: rotates the refresh token; reusing a rotated one ends the session.
fn refresh_grant(app: &App, headers: &HeaderMap, db: &mut Db, body: TokenBody) -> Response {
    let Some(token) = body.refresh_token.filter(|t| !t.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_request", "error_description": "refresh_token required"}),
            ),
        )
            .into_response();
    };
    let Some(record) = db.data.refresh_tokens.get(&token).cloned() else {
        return error(
            headers,
            StatusCode::BAD_REQUEST,
            "refresh_token_not_found",
            "Invalid Refresh Token: Refresh Token Not Found",
        )
        .into_response();
    };
    if record.revoked {
        // Reuse of a rotated token ends the whole session (GoTrue's reuse detection).
        db.end_sessions(&record.user_id, Some(&record.session_id), None);
        db.save();
        return error(
            headers,
            StatusCode::BAD_REQUEST,
            "refresh_token_already_used",
            "Invalid Refresh Token: Already Used",
        )
        .into_response();
    }
    let Some(user) = db.data.users.get(&record.user_id).cloned() else {
        return error(
            headers,
            StatusCode::NOT_FOUND,
            "user_not_found",
            "User not found",
        )
        .into_response();
    };
    if let Some(r) = db.data.refresh_tokens.get_mut(&token) {
        r.revoked = true;
    }
    let refresh = db.new_refresh_token(&user.id, &record.session_id);
    db.save();
    Json(session_body(
        app,
        &user,
        &record.session_id,
        refresh,
        "token_refresh",
    ))
    .into_response()
}

/// The user and session behind a bearer token, or GoTrue's error.
async fn authenticate(app: &App, headers: &HeaderMap) -> Result<(User, Claims), GoTrueError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            error(
                headers,
                StatusCode::UNAUTHORIZED,
                "no_authorization",
                "This endpoint requires a Bearer token",
            )
        })?;
    let claims: Claims = app.signer.verify(token).map_err(|e| {
        error(
            headers,
            StatusCode::FORBIDDEN,
            "bad_jwt",
            format!("invalid JWT: unable to parse or verify signature, {e}"),
        )
    })?;
    let db = app.db.lock().await;
    if !db.data.sessions.contains_key(&claims.session_id) {
        return Err(error(
            headers,
            StatusCode::FORBIDDEN,
            "session_not_found",
            "Session from session_id claim in JWT does not exist",
        ));
    }
    let user = db.data.users.get(&claims.sub).cloned().ok_or_else(|| {
        error(
            headers,
            StatusCode::FORBIDDEN,
            "user_not_found",
            "User from sub claim in JWT does not exist",
        )
    })?;
    Ok((user, claims))
}

pub(crate) async fn get_user(State(app): Shared, headers: HeaderMap) -> Response {
    gate!(app, headers);
    match authenticate(&app, &headers).await {
        Ok((user, _)) => Json(user.to_json()).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct UpdateBody {
    email: Option<String>,
    password: Option<String>,
    data: Option<Value>,
}

pub(crate) async fn update_user(
    State(app): Shared,
    headers: HeaderMap,
    body: Option<Json<UpdateBody>>,
) -> Response {
    gate!(app, headers);
    let (user, _) = match authenticate(&app, &headers).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(Json(body)) = body else {
        return error(
            &headers,
            StatusCode::BAD_REQUEST,
            "bad_json",
            "Could not parse request body as JSON",
        )
        .into_response();
    };
    let mut db = app.db.lock().await;
    let mut updated = user;
    if let Some(email) = body.email.map(|e| e.trim().to_lowercase()) {
        if !valid_email(&email) {
            return error(
                &headers,
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Unable to validate email address: invalid format",
            )
            .into_response();
        }
        if db.by_email(&email).is_some_and(|u| u.id != updated.id) {
            return error(
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                "email_exists",
                "A user with this email address has already been registered",
            )
            .into_response();
        }
        updated.email = email;
    }
    if let Some(password) = body.password {
        if password.chars().count() < app.settings.password_min_length {
            return error(
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                "Password should be at least 6 characters.",
            )
            .into_response();
        }
        updated.set_password(&password);
    }
    if let Some(Value::Object(data)) = body.data {
        let meta = updated.user_metadata.as_object_mut();
        match meta {
            Some(m) => m.extend(data),
            None => updated.user_metadata = Value::Object(data),
        }
    }
    updated.updated_at = now();
    db.data.users.insert(updated.id.clone(), updated.clone());
    db.save();
    Json(updated.to_json()).into_response()
}

pub(crate) async fn logout(
    State(app): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    gate!(app, headers);
    let (user, claims) = match authenticate(&app, &headers).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let mut db = app.db.lock().await;
    match query.get("scope").map(String::as_str).unwrap_or("global") {
        "local" => db.end_sessions(&user.id, Some(&claims.session_id), None),
        "others" => db.end_sessions(&user.id, None, Some(&claims.session_id)),
        _ => db.end_sessions(&user.id, None, None),
    }
    db.save();
    StatusCode::NO_CONTENT.into_response()
}

/// Admin routes take the service-role key as the bearer token.
fn require_service_role(app: &App, headers: &HeaderMap) -> Result<(), GoTrueError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            error(
                headers,
                StatusCode::UNAUTHORIZED,
                "no_authorization",
                "This endpoint requires a Bearer token",
            )
        })?;
    if token == app.settings.service_role_key {
        Ok(())
    } else {
        Err(error(
            headers,
            StatusCode::FORBIDDEN,
            "not_admin",
            "User not allowed",
        ))
    }
}

pub(crate) async fn admin_delete_user(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    gate!(app, headers);
    if let Err(e) = require_service_role(&app, &headers) {
        return e.into_response();
    }
    let mut db = app.db.lock().await;
    if db.delete_user(&id) {
        db.save();
        Json(json!({})).into_response()
    } else {
        error(
            &headers,
            StatusCode::NOT_FOUND,
            "user_not_found",
            "User not found",
        )
        .into_response()
    }
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    page: Option<usize>,
    per_page: Option<usize>,
}

/// GoTrue's `GET /admin/users?page=&per_page=` (service role): the newest users first, a page
/// of `per_page` (default 50) as `{"users": [...], "aud"}`, the total in `X-Total-Count` and
/// the next page in a `Link` header, as GoTrue answers.
pub(crate) async fn admin_list_users(
    State(app): Shared,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    gate!(app, headers);
    if let Err(e) = require_service_role(&app, &headers) {
        return e.into_response();
    }
    let page = query.page.unwrap_or(1).max(1);
    let per_page = query.per_page.unwrap_or(50).max(1);
    let db = app.db.lock().await;
    let mut users: Vec<&User> = db.data.users.values().collect();
    users.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    let total = users.len();
    let chosen: Vec<Value> = users
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(User::to_json)
        .collect();
    let mut response = Json(json!({"users": chosen, "aud": "authenticated"})).into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    if page * per_page < total {
        let link = format!(
            "</admin/users?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert("link", value);
        }
    }
    response
}

pub(crate) async fn admin_get_user(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    gate!(app, headers);
    if let Err(e) = require_service_role(&app, &headers) {
        return e.into_response();
    }
    match app.db.lock().await.data.users.get(&id) {
        Some(u) => Json(u.to_json()).into_response(),
        None => error(
            &headers,
            StatusCode::NOT_FOUND,
            "user_not_found",
            "User not found",
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct AdminUpdateBody {
    email_confirm: Option<bool>,
}

/// Confirms a user's email (`{"email_confirm": true}`), as GoTrue's admin API does.
pub(crate) async fn admin_update_user(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<AdminUpdateBody>,
) -> Response {
    gate!(app, headers);
    if let Err(e) = require_service_role(&app, &headers) {
        return e.into_response();
    }
    let mut db = app.db.lock().await;
    let Some(user) = db.data.users.get_mut(&id) else {
        return error(
            &headers,
            StatusCode::NOT_FOUND,
            "user_not_found",
            "User not found",
        )
        .into_response();
    };
    if body.email_confirm == Some(true) && user.email_confirmed_at.is_none() {
        user.email_confirmed_at = Some(now());
    }
    user.updated_at = now();
    let json = user.to_json();
    db.save();
    Json(json).into_response()
}
