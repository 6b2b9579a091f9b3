//! Lambda host for the `agent` function: build the state once per cold start, then serve the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::telemetry::init("agent");
    let state = shared::AppState::load("agent", &[])
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    lambda_http::run(agent::router(state)).await
}
