//! Lambda host for the `auth` function: build the state once per cold start, then serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::telemetry::init("auth");
    let state = shared::AppState::load("auth", auth::REQUIRED_VARIABLES)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    lambda_http::run(auth::router(state)).await
}
