//! Stopping a turn: Letta's runs of one thread, and their cancellation. Letta checks a run's
//! status while it streams, so the turn's own stream (on whichever instance holds it) ends
//! with the stop reason `cancelled` soon after.

use serde::Deserialize;
use serde_json::json;

use super::{Letta, Thread};
use crate::{
    app::dependency::{DependencyError, Service},
    clients::http as upstream,
};

/// A run as Letta lists it: only what picks the thread's own.
#[derive(Deserialize)]
struct RunSummary {
    id: String,
    /// `None` for a run of the agent's own history (the `default` conversation).
    #[serde(default)]
    conversation_id: Option<String>,
}

impl Letta {
    /// Cancels the agent's active runs in `thread`, and only there (the agent-wide cancel
    /// would stop the user's turns in other conversations too). Returns the runs cancelled:
    /// none when nothing was running (not started yet, or already ended).
    pub async fn cancel_runs(
        &self,
        agent_id: &str,
        thread: Thread<'_>,
    ) -> Result<Vec<String>, DependencyError> {
        let own = match thread {
            Thread::Agent(_) => None,
            Thread::Conversation(id) => Some(id),
        };
        let mut query = vec![("agent_id", agent_id), ("active", "true")];
        query.extend(own.map(|id| ("conversation_id", id)));
        let request = self
            .request(reqwest::Method::GET, "/v1/runs/")
            .query(&query);
        let runs: Vec<RunSummary> = upstream::send_json(Service::Letta, request).await?;
        let ids: Vec<String> = runs
            .into_iter()
            .filter(|run| run.conversation_id.as_deref() == own)
            .map(|run| run.id)
            .collect();
        if ids.is_empty() {
            return Ok(ids);
        }
        let path = format!("/v1/agents/{agent_id}/messages/cancel");
        let request = self
            .request(reqwest::Method::POST, &path)
            .json(&json!({ "run_ids": ids }));
        match upstream::send(Service::Letta, request).await {
            Ok(_) => Ok(ids),
            // Ended between the two calls.
            Err(DependencyError::Status { status: 409, .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}
