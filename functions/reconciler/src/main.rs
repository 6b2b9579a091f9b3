//! The reconciler's two hosts. `reconciler reconcile [--fix] …` runs once and prints the
//! report (JSON) on stdout: exit 0 when nothing is left to fix, 1 when something is, 2 when
//! the run failed. Without arguments it is the scheduled Lambda: each event runs once over
//! every user, repairing when `RECONCILE_FIX=true`, and the report is the result (and a log line).

use lambda_http::{Error, LambdaEvent, lambda_runtime, service_fn};
use reconciler::{Args, USAGE};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((command, rest)) if command == "reconcile" => {
            shared::app::telemetry::init_to_stderr(reconciler::NAME);
            command_line(rest).await
        }
        Some(_) => {
            eprintln!("{USAGE}");
            std::process::exit(2)
        }
        None => {
            shared::app::telemetry::init(reconciler::NAME);
            let state = reconciler::state(None)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?;
            lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
                let state = state.clone();
                async move {
                    let fix = state.config.reconcile.fix;
                    let report = reconciler::run(&state, Vec::new(), fix).await?;
                    tracing::info!(report = %serde_json::to_string(&report)?, "reconcile report");
                    Ok::<Value, Error>(serde_json::to_value(&report)?)
                }
            }))
            .await
        }
    }
}

async fn command_line(args: &[String]) -> Result<(), Error> {
    let args = Args::parse(args).unwrap_or_else(|e| {
        eprintln!("{e}\n{USAGE}");
        std::process::exit(2)
    });
    let state = reconciler::state(args.grace).await?;
    match reconciler::run(&state, args.users, args.fix).await {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            std::process::exit(if report.open() == 0 { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("reconcile failed: {e}");
            std::process::exit(2)
        }
    }
}
