//! The reconciler (`shared::flows::reconcile`) as a command and as a scheduled Lambda: the
//! command's arguments, and the run both hosts share.

use std::time::Duration;

use clap::{Parser, Subcommand};

use shared::{
    AppError, AppState,
    app::config::{Config, ConfigError},
    domain::UserId,
    flows::reconcile::{self, Report, Scope},
};

/// The reconciler's name in its logs and its AWS requests.
pub const NAME: &str = "reconciler";

/// Variables the reconciler needs beyond the common ones: it lists and deletes Supabase users.
pub const REQUIRED_VARIABLES: &[&str] = &["SUPABASE_SERVICE_ROLE_KEY"];

/// The command line: `reconcile` runs once; without a command the binary is the scheduled
/// Lambda.
#[derive(Debug, Parser)]
#[command(
    name = "reconciler",
    about = "Checks that Supabase Auth, DynamoDB, LiteLLM and Letta agree about every user, and \
             repairs what is safe. Without a command: the scheduled Lambda."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Checks once and prints the report (JSON) on stdout: exit 0 when nothing is left to
    /// fix, 1 when something is, 2 when the run failed.
    Reconcile(Args),
}

/// What `reconcile` was asked.
#[derive(Debug, Default, PartialEq, clap::Args)]
pub struct Args {
    /// Repair what is safe.
    #[arg(long)]
    pub fix: bool,
    /// Leave alone what is younger than this (overrides RECONCILE_GRACE_SECS).
    #[arg(long = "grace-secs", value_name = "SECONDS", value_parser = seconds)]
    pub grace: Option<Duration>,
    /// Check only this user (a Supabase user id; repeat for more). Every user without it.
    #[arg(long = "user", value_name = "ID", value_parser = user_id)]
    pub users: Vec<UserId>,
}

fn seconds(raw: &str) -> Result<Duration, String> {
    raw.parse()
        .map(Duration::from_secs)
        .map_err(|_| "a whole number of seconds".into())
}

fn user_id(raw: &str) -> Result<UserId, String> {
    UserId::parse(raw).map_err(|e| e.to_string())
}

/// The configuration once per start, with the command's overrides.
pub async fn state(grace: Option<Duration>) -> Result<AppState, ConfigError> {
    let mut config = Config::load(NAME, REQUIRED_VARIABLES).await?;
    if let Some(grace) = grace {
        config.reconcile.grace = grace;
    }
    Ok(AppState::new(config).await.for_function(NAME))
}

/// One run over `users` (every user when empty), its AWS requests made as the reconciler
/// whichever host runs it.
pub async fn run(state: &AppState, users: Vec<UserId>, fix: bool) -> Result<Report, AppError> {
    let scope = if users.is_empty() {
        Scope::All
    } else {
        Scope::Users(users)
    };
    reconcile::reconcile(&state.for_function(NAME), scope, fix).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        let line = ["reconciler", "reconcile"].iter().chain(list);
        match Cli::try_parse_from(line)
            .map_err(|e| e.to_string())?
            .command
        {
            Some(Command::Reconcile(args)) => Ok(args),
            None => Err("no command".into()),
        }
    }

    #[test]
    fn arguments_parse_and_bad_ones_are_named() {
        let id = "5f0c8d8e-8f2a-4c39-9d0a-4a8f1f7f3b11";
        let parsed = args(&["--fix", "--grace-secs", "0", "--user", id]).unwrap();
        assert!(parsed.fix);
        assert_eq!(parsed.grace, Some(Duration::ZERO));
        assert_eq!(parsed.users, vec![UserId::parse(id).unwrap()]);
        assert_eq!(args(&[]).unwrap(), Args::default());
        assert!(
            args(&["--grace-secs", "soon"])
                .unwrap_err()
                .contains("--grace-secs")
        );
        assert!(
            args(&["--user", "bob"])
                .unwrap_err()
                .contains("not a user id")
        );
        assert!(args(&["--fixx"]).unwrap_err().contains("--fixx"));
    }

    #[test]
    fn no_command_is_the_lambda_and_help_names_every_option() {
        assert!(
            Cli::try_parse_from(["reconciler"])
                .unwrap()
                .command
                .is_none()
        );
        let help = Cli::try_parse_from(["reconciler", "reconcile", "--help"])
            .unwrap_err()
            .to_string();
        for option in ["--fix", "--grace-secs", "--user"] {
            assert!(help.contains(option), "{help}");
        }
    }
}
