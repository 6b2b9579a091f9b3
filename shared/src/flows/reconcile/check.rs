//! What the checks of a user share: their result, the grace period, the lease every repair
//! holds, and Letta's name for an agent's archive.

use super::Kind;
use crate::{
    app::{
        clock::{epoch_ms, now_ms},
        error::AppError,
    },
    domain::UserId,
    flows::provisioning::{self, agent_name},
    state::AppState,
};

/// What checking one user gave.
pub(super) enum Checked {
    /// A request holds the user's lease.
    Busy,
    /// No profile and nothing anywhere (maybe a Supabase user that never used the backend).
    Nothing,
    /// Checked: the findings (with whether each was fixed).
    Done {
        findings: Vec<(Kind, bool)>,
        unsettled: usize,
    },
}

/// Findings with nothing left to judge later.
pub(super) fn done(findings: Vec<(Kind, bool)>) -> Checked {
    Checked::Done {
        findings,
        unsettled: 0,
    }
}

/// The name Letta gives the archive of a user's agent.
pub(super) fn archive_name(user: &UserId) -> String {
    format!("{}'s Archive", agent_name(user))
}

/// Runs a repair holding the user's lease; false when a request holds it (the next run
/// tries again).
pub(super) async fn repair(
    state: &AppState,
    user: &UserId,
    work: impl Future<Output = Result<(), AppError>>,
) -> Result<bool, AppError> {
    let busy = "the account is busy".to_string();
    match provisioning::with_lease(state, user, busy, |_| work).await {
        Ok(()) => Ok(true),
        Err(AppError::Provisioning(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a time (RFC 3339) is older than the grace period: younger things may still be in
/// the middle of a request.
pub(super) fn past_grace(state: &AppState) -> impl Fn(&str) -> bool {
    let grace_ms = state.config.reconcile.grace.as_millis() as i64;
    let now = now_ms();
    move |at| epoch_ms(at).is_some_and(|t| now - t >= grace_ms)
}
