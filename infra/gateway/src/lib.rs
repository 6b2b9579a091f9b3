//! The gateway's app: the four functions' API routes, each function's health check at
//! `/health/<name>`, `GET /health` over every dependency, the API description at
//! `/openapi.json` with Swagger UI at `/docs`, and the web chat page (`web/`) at `/`.

use axum::http::{HeaderName, HeaderValue, header};
use axum::{
    Router,
    serve::{ListenerExt, TapIo},
};
use shared::{
    AppState,
    app::dependency::Service,
    http::{Function, router::health_route, with_common_layers},
};
use tokio::net::{TcpListener, TcpStream};
use tower_http::{services::ServeDir, set_header::SetResponseHeaderLayer};
use utoipa_swagger_ui::SwaggerUi;

/// The four functions, as Lambda hosts them one by one.
pub const FUNCTIONS: [&Function; 4] = [
    &auth::FUNCTION,
    &chat::FUNCTION,
    &user::FUNCTION,
    &agent::FUNCTION,
];

/// Every function's routes on one router, with the common layers once.
pub fn app(state: AppState) -> Router {
    let routes = FUNCTIONS.iter().fold(
        health_route("/health", "gateway", Service::ALL, state.clone()),
        |router, function| router.merge(function.mounted(state.clone())),
    );
    let app = with_common_layers(routes, &state.config.http)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi()))
        .merge(web_page());
    SECURITY_HEADERS.iter().fold(app, |app, (name, value)| {
        app.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ))
    })
}

/// The web page's Content-Security-Policy: its own scripts, styles and API only, no inline
/// script or style, never in a frame. The CloudFront option's response headers policy sends
/// the same (a test compares them).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What every answer of the gateway carries (in AWS, CloudFront's response headers policy adds
/// these and HSTS).
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// `listener` with Nagle's algorithm off on every connection it accepts. A streamed reply is many
/// small writes; with Nagle on, each waits for the client's ACK of the one before, which Linux
/// delays by up to 40 ms (the bench measured it on the first event of a chat turn).
pub fn no_delay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    fn set(tcp: &mut TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
    }
    listener.tap_io(set as fn(&mut TcpStream))
}

/// The OpenAPI description of the four functions' routes (and `GET /health`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    shared::http::openapi::document(FUNCTIONS.iter().map(|f| f.openapi()))
}

/// The description as committed in `docs/openapi.json` (pretty, with a final newline).
pub fn openapi_json() -> String {
    openapi()
        .to_pretty_json()
        .expect("the description serializes")
}

/// The static web chat page (`web/` of the workspace, or `WEB_DIR`): `/`, its files and its
/// vendored libraries (`vendor/`).
fn web_page() -> Router {
    let dir = std::env::var("WEB_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../web").to_string());
    let files = ServeDir::new(dir);
    Router::new()
        .route_service("/", files.clone())
        .route_service("/{file}", files.clone())
        .route_service("/vendor/{file}", files)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
}
