//! A Supabase-Auth-compatible server for local runs and tests.
//!
//! Real Supabase Auth (GoTrue) cannot be installed here, so this serves the same wire shapes:
//! GoTrue's JSON bodies, both error shapes (chosen by `X-Supabase-Api-Version`), JWT claims,
//! HS256 or ES256 signing (ES256 keys published at `/.well-known/jwks.json`), refresh-token
//! rotation, sessions that logout revokes, and the admin API with the service-role key.
//! An official Supabase client library drives it in `tests/contract.rs`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{
    Router,
    routing::{delete, get, post},
};
use tokio::sync::Mutex;

mod api;
mod keys;
mod users;

pub struct Settings {
    pub issuer: String,
    pub anon_key: String,
    pub service_role_key: String,
    pub jwt_exp: u64,
    pub autoconfirm: bool,
    /// `signInAnonymously` allowed (GoTrue's `GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED`, off by default).
    pub anonymous_enabled: bool,
    pub password_min_length: usize,
}

pub struct App {
    pub settings: Settings,
    pub signer: keys::Signer,
    pub db: Mutex<users::Db>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn fail(message: String) -> ! {
    eprintln!("local-auth: {message}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let port: u16 = env("AUTH_PORT")
        .and_then(|p| p.parse().ok())
        .unwrap_or(9999);
    let alg = env("AUTH_SIGNING_ALG")
        .unwrap_or_else(|| "HS256".into())
        .to_ascii_uppercase();
    let signer = match alg.as_str() {
        "HS256" => keys::Signer::hs256(
            env("AUTH_JWT_SECRET").unwrap_or_else(|| fail("AUTH_JWT_SECRET is missing".into())),
        ),
        "ES256" => keys::Signer::es256(env("AUTH_ES256_KEY_FILE").map(PathBuf::from))
            .unwrap_or_else(|e| fail(e)),
        other => fail(format!(
            "AUTH_SIGNING_ALG must be HS256 or ES256, got {other}"
        )),
    };
    let settings = Settings {
        issuer: env("AUTH_ISSUER").unwrap_or_else(|| format!("http://127.0.0.1:{port}/auth/v1")),
        anon_key: env("AUTH_ANON_KEY").unwrap_or_else(|| fail("AUTH_ANON_KEY is missing".into())),
        service_role_key: env("AUTH_SERVICE_ROLE_KEY")
            .unwrap_or_else(|| fail("AUTH_SERVICE_ROLE_KEY is missing".into())),
        jwt_exp: env("AUTH_JWT_EXP")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3600),
        autoconfirm: env("AUTH_MAILER_AUTOCONFIRM").is_none_or(|v| v != "false"),
        anonymous_enabled: env("AUTH_ANONYMOUS_USERS_ENABLED").is_some_and(|v| v == "true"),
        password_min_length: env("AUTH_PASSWORD_MIN_LENGTH")
            .and_then(|v| v.parse().ok())
            .unwrap_or(6),
    };
    let db = users::Db::open(env("AUTH_DATA_FILE").map(PathBuf::from)).unwrap_or_else(|e| fail(e));
    let app = Arc::new(App {
        settings,
        signer,
        db: Mutex::new(db),
    });

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| fail(format!("cannot listen on {addr}: {e}")));
    eprintln!("local-auth ({alg}) listening on http://{addr}/auth/v1");
    axum::serve(listener, router(app))
        .await
        .expect("server error");
}

fn router(app: Arc<App>) -> Router {
    let auth = Router::new()
        .route("/health", get(api::health))
        .route("/.well-known/jwks.json", get(api::jwks))
        .route("/signup", post(api::signup))
        .route("/token", post(api::token))
        .route("/user", get(api::get_user).put(api::update_user))
        .route("/logout", post(api::logout))
        .route("/admin/users", get(api::admin_list_users))
        .route(
            "/admin/users/{id}",
            delete(api::admin_delete_user)
                .get(api::admin_get_user)
                .put(api::admin_update_user),
        )
        .with_state(app);
    Router::new().nest("/auth/v1", auth)
}
