//! Supabase Auth (GoTrue) over its REST API.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    app::{
        config::SupabaseConfig,
        dependency::{DependencyError, Service},
        secret::Secret,
    },
    clients::http as upstream,
};

const API_VERSION: &str = "2024-01-01";

/// Supabase Auth's REST API.
#[derive(Clone, Debug)]
pub struct SupabaseAuth {
    http: reqwest::Client,
    base: String,
    anon_key: Secret,
    service_role_key: Option<Secret>,
}

/// GoTrue's user object (fields the backend uses; the rest is ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// The user id (a UUID).
    pub id: String,
    /// The email.
    #[serde(default)]
    pub email: Option<String>,
    /// When the user was created.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When the email was confirmed; absent while it is not (GoTrue sets it at sign-up when
    /// the project does not ask for confirmation).
    #[serde(default)]
    pub email_confirmed_at: Option<String>,
    /// What the user (or the sign-up) put in `user_metadata`.
    #[serde(default)]
    pub user_metadata: Value,
}

/// GoTrue's session (`AccessTokenResponse`).
#[derive(Clone, Deserialize)]
pub struct Session {
    /// The access token (a JWT).
    pub access_token: Secret,
    /// The refresh token (single use).
    pub refresh_token: Secret,
    /// `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// When it expires (epoch seconds).
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// The signed-in user.
    pub user: User,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user.id)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// What sign-up gives: a session, or (email confirmation on) only the user.
#[derive(Debug)]
pub enum SignUp {
    /// Signed up and signed in.
    Session(Box<Session>),
    /// A confirmation email was sent; no session yet.
    ConfirmationSent(User),
}

/// The error code GoTrue put in an error body, in either of its two shapes
/// (`{"code":"…","message"}` with the API-version header, `{"error_code":"…","msg"}` without).
pub fn error_code(err: &DependencyError) -> Option<String> {
    let DependencyError::Status { body, .. } = err else {
        return None;
    };
    let v: Value = serde_json::from_str(body).ok()?;
    v.get("code")
        .and_then(Value::as_str)
        .or_else(|| v.get("error_code").and_then(Value::as_str))
        .or_else(|| v.get("error").and_then(Value::as_str))
        .map(str::to_string)
}

impl SupabaseAuth {
    /// A client on the shared HTTP client.
    pub fn new(http: reqwest::Client, config: &SupabaseConfig) -> Self {
        Self {
            http,
            base: format!("{}/auth/v1", config.url),
            anon_key: config.anon_key.clone(),
            service_role_key: config.service_role_key.clone(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header("apikey", self.anon_key.expose())
            .header("X-Supabase-Api-Version", API_VERSION)
    }

    /// Where the project publishes its signing keys.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base)
    }

    /// Liveness.
    pub async fn health(&self) -> Result<(), DependencyError> {
        upstream::send(
            Service::SupabaseAuth,
            self.request(reqwest::Method::GET, "/health"),
        )
        .await
        .map(|_| ())
    }

    /// Creates a user (`data` becomes `user_metadata`).
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        data: Value,
    ) -> Result<SignUp, DependencyError> {
        let body: Value = upstream::send_json(
            Service::SupabaseAuth,
            self.request(reqwest::Method::POST, "/signup")
                .json(&json!({"email": email, "password": password, "data": data})),
        )
        .await?;
        let decode = |e: serde_json::Error| DependencyError::Decode {
            service: Service::SupabaseAuth,
            detail: e.to_string(),
        };
        if body.get("access_token").is_some() {
            Ok(SignUp::Session(Box::new(
                serde_json::from_value(body).map_err(decode)?,
            )))
        } else {
            Ok(SignUp::ConfirmationSent(
                serde_json::from_value(body).map_err(decode)?,
            ))
        }
    }

    /// Signs in with email and password.
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Session, DependencyError> {
        upstream::send_json(
            Service::SupabaseAuth,
            self.request(reqwest::Method::POST, "/token?grant_type=password")
                .json(&json!({"email": email, "password": password})),
        )
        .await
    }

    /// Exchanges a refresh token for a new session (the token rotates).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, DependencyError> {
        upstream::send_json(
            Service::SupabaseAuth,
            self.request(reqwest::Method::POST, "/token?grant_type=refresh_token")
                .json(&json!({"refresh_token": refresh_token})),
        )
        .await
    }

    /// The user behind an access token.
    pub async fn get_user(&self, access_token: &str) -> Result<User, DependencyError> {
        upstream::send_json(
            Service::SupabaseAuth,
            self.request(reqwest::Method::GET, "/user")
                .bearer_auth(access_token),
        )
        .await
    }

    /// Ends every session of the token's user (`scope=global`).
    pub async fn sign_out(&self, access_token: &str) -> Result<(), DependencyError> {
        upstream::send(
            Service::SupabaseAuth,
            self.request(reqwest::Method::POST, "/logout?scope=global")
                .bearer_auth(access_token),
        )
        .await
        .map(|_| ())
    }

    /// A request to the admin API, with the service-role key.
    fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, DependencyError> {
        // Functions other than auth start without the key (`Config::load`).
        let Some(key) = &self.service_role_key else {
            return Err(DependencyError::Unreachable {
                service: Service::SupabaseAuth,
                detail: "this function has no SUPABASE_SERVICE_ROLE_KEY".into(),
            });
        };
        Ok(self
            .http
            .request(method, format!("{}/admin{path}", self.base))
            .header("apikey", key.expose())
            .header("X-Supabase-Api-Version", API_VERSION)
            .bearer_auth(key.expose()))
    }

    /// Deletes a user with the service-role key (admin API).
    pub async fn admin_delete_user(&self, user_id: &str) -> Result<(), DependencyError> {
        let request = self.admin(reqwest::Method::DELETE, &format!("/users/{user_id}"))?;
        upstream::absent_on_404(upstream::send(Service::SupabaseAuth, request).await).map(|_| ())
    }

    /// One user by id (admin API); `None` only when Supabase answers 404 (no such user).
    pub async fn admin_get_user(&self, user_id: &str) -> Result<Option<User>, DependencyError> {
        let request = self.admin(reqwest::Method::GET, &format!("/users/{user_id}"))?;
        upstream::absent_on_404(upstream::send_json(Service::SupabaseAuth, request).await)
    }

    /// One page (from 1) of every user, newest first (admin API).
    pub async fn admin_list_users(
        &self,
        page: u32,
        per_page: u32,
    ) -> Result<Vec<User>, DependencyError> {
        #[derive(Deserialize)]
        struct Page {
            users: Vec<User>,
        }
        let request = self
            .admin(reqwest::Method::GET, "/users")?
            .query(&[("page", page), ("per_page", per_page)]);
        let page: Page = upstream::send_json(Service::SupabaseAuth, request).await?;
        Ok(page.users)
    }
}
