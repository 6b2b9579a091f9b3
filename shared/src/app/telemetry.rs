//! JSON logs, one object per line (CloudWatch-friendly), with the request id on every line
//! written while a request is handled.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`).
/// Safe to call more than once (later calls do nothing), so tests can call it too.
pub fn init(service: &'static str) {
    init_with(service, std::io::stdout);
}

/// As [`init`], to standard error: for a command whose standard output is its result.
pub fn init_to_stderr(service: &'static str) {
    init_with(service, std::io::stderr);
}

fn init_with<W>(service: &'static str, writer: W)
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,hyper=warn")
    });
    let json = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_writer(writer);
    if tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .try_init()
        .is_ok()
    {
        tracing::info!(service, "telemetry initialised");
    }
}
