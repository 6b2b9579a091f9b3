//! Lambda host for the `chat` function, with response streaming so SSE events reach the client
//! as they are produced (function URL `InvokeMode: RESPONSE_STREAM`).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::app::telemetry::init("chat");
    let state = shared::AppState::load("chat", &[])
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
    lambda_http::run_with_streaming_response(chat::router(state)).await
}
