//! The reconciler's two hosts. `reconciler reconcile [--fix] …` runs once and prints the
//! report (JSON) on stdout (`--help` says the rest). Without a command it is the scheduled
//! Lambda: each event runs once over every user, repairing when `RECONCILE_FIX=true`, and the
//! report is the result (and a log line).

use clap::Parser;
use lambda_http::{Error, LambdaEvent, lambda_runtime, service_fn};
use reconciler::{Args, Cli, Command};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    match Cli::parse().command {
        Some(Command::Reconcile(args)) => {
            shared::app::telemetry::init_to_stderr(reconciler::NAME);
            command_line(args).await
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

async fn command_line(args: Args) -> Result<(), Error> {
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
