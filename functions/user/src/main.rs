//! Lambda host for the `user` function, with response streaming so a large data export goes
//! out as it is read (function URL `InvokeMode: RESPONSE_STREAM`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::telemetry::init("user");
    let state = shared::AppState::load("user", &[])
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    lambda_http::run_with_streaming_response(user::router(state)).await
}
