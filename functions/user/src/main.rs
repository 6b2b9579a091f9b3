//! Lambda host for the `user` function: build the state once per cold start, then serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::telemetry::init("user");
    let state = shared::AppState::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    lambda_http::run(user::router(state)).await
}
