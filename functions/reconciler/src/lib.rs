//! The reconciler (`shared::flows::reconcile`) as a command and as a scheduled Lambda: the
//! command's arguments, and the run both hosts share.

use std::time::Duration;

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

/// What the command was asked: `reconcile [--fix] [--grace-secs N] [--user ID]...`.
#[derive(Debug, Default, PartialEq)]
pub struct Args {
    /// Repair what is safe.
    pub fix: bool,
    /// Overrides `RECONCILE_GRACE_SECS`.
    pub grace: Option<Duration>,
    /// Only these users (all when empty).
    pub users: Vec<UserId>,
}

/// How to call the command.
pub const USAGE: &str = "usage: reconciler reconcile [--fix] [--grace-secs N] [--user ID]...";

impl Args {
    /// Parses the arguments after `reconcile`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut parsed = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--fix" => parsed.fix = true,
                "--grace-secs" => {
                    let secs = args.next().and_then(|v| v.parse().ok());
                    let secs = secs.ok_or("--grace-secs needs a whole number of seconds")?;
                    parsed.grace = Some(Duration::from_secs(secs));
                }
                "--user" => {
                    let id = args.next().ok_or("--user needs a user id")?;
                    parsed.users.push(UserId::parse(id)?);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }
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
        Args::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
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
}
