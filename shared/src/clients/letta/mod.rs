//! Letta server REST API: BYOK providers, agents, memory, messages (typed in [`messages`]).

mod agent_spec;
mod folders;
pub mod messages;
mod model_choice;
mod runs;
mod threads;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use agent_spec::{
    ARCHIVAL_INSERT_TOOL, ARCHIVAL_SEARCH_TOOL, AgentSpec, CreateAgent, agent_tools,
};
pub use folders::{FolderFile, Upload};
pub use messages::LettaMessage;
pub use threads::StepCall;

use crate::{
    app::{
        config::{LettaConfig, LettaKind},
        dependency::{DependencyError, Service},
        secret::Secret,
    },
    clients::http as upstream,
};

/// The Letta server's REST API.
#[derive(Clone, Debug)]
pub struct Letta {
    http: reqwest::Client,
    /// For streams: no total timeout, a read timeout (`LETTA_STREAM_SILENCE_SECS`) above
    /// Letta's 20 s keep-alive pings.
    stream_http: reqwest::Client,
    /// Where Letta is, its key and kind, and what the agents are made of.
    config: LettaConfig,
    /// The hosted API's project (`X-Project`).
    project: Option<reqwest::header::HeaderValue>,
    /// How long Letta may take to take a message (`UPSTREAM_TIMEOUT_SECS`).
    accept_timeout: std::time::Duration,
}

/// Letta's stream of a turn, ended by `[DONE]` (or by the connection ending). Failures Letta
/// reports inside the stream arrive as [`LettaMessage::Error`].
pub type TurnStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<LettaMessage, DependencyError>> + Send>,
>;

/// Letta's events up to `[DONE]`. Letta sends `[DONE]` with the stop reason and the usage,
/// then closes the run and only then the connection (≈ 30 ms on the local stack): the turn is
/// over at `[DONE]`, and what is left of the response is read in the background, so the
/// connection goes back to the pool.
fn until_done<S>(
    events: S,
) -> impl futures_util::Stream<Item = Result<LettaMessage, DependencyError>>
where
    S: futures_util::Stream<
            Item = Result<
                eventsource_stream::Event,
                eventsource_stream::EventStreamError<reqwest::Error>,
            >,
        > + Send
        + Unpin
        + 'static,
{
    use futures_util::StreamExt;
    futures_util::stream::unfold(Some(events), |events| async move {
        let mut events = events?;
        loop {
            match events.next().await? {
                Err(e) => {
                    let broke = DependencyError::Unreachable {
                        service: Service::Letta,
                        detail: format!("the stream broke: {e}"),
                    };
                    return Some((Err(broke), None));
                }
                Ok(event) if event.data.trim() == "[DONE]" => {
                    tokio::spawn(async move { while events.next().await.is_some() {} });
                    return None;
                }
                Ok(event) if event.data.trim().is_empty() => {}
                Ok(event) => {
                    if let Some(message) = stream_event(&event.event, &event.data) {
                        return Some((Ok(message), Some(events)));
                    }
                }
            }
        }
    })
}

/// A BYOK provider.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub id: String,
    /// Its name (`user-<id>`).
    pub name: String,
}

/// What [`Letta::list_all`] lists.
#[derive(Debug, Clone, Copy)]
pub enum Listing {
    /// BYOK providers (and the built-in ones).
    Providers,
    /// Agents.
    Agents,
    /// Archives (archival memory stores).
    Archives,
}

impl Listing {
    fn path(self) -> &'static str {
        match self {
            Self::Providers => "/v1/providers/",
            Self::Agents => "/v1/agents/",
            Self::Archives => "/v1/archives/",
        }
    }
}

/// Anything Letta lists with an id, a name and a creation time.
#[derive(Debug, Clone, Deserialize)]
pub struct Named {
    /// Letta's id.
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
}

/// Where a turn's messages go: the agent's own history, or one of its conversations (which
/// share its memory).
#[derive(Debug, Clone, Copy)]
pub enum Thread<'a> {
    /// The agent's own message history (`/v1/agents/{id}/messages/stream`).
    Agent(&'a str),
    /// A Letta conversation of the agent (`/v1/conversations/{id}/messages`).
    Conversation(&'a str),
}

/// An agent.
#[derive(Debug, Clone, Deserialize)]
pub struct Agent {
    pub id: String,
    /// Its name (`agent-<id>`).
    pub name: String,
    /// Its tags (`user:<id>`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its architecture (`letta_v1_agent`, `memgpt_v2_agent`, …).
    #[serde(default)]
    pub agent_type: Option<String>,
    /// Its LLM settings (provider, model).
    #[serde(default)]
    pub llm_config: Value,
    /// The messages in the agent's context window.
    #[serde(default)]
    pub message_ids: Vec<String>,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A core memory block.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Block {
    /// `human` or `persona`.
    pub label: String,
    #[serde(default)]
    pub value: String,
    /// Its limit, in characters.
    #[serde(default)]
    pub limit: Option<u64>,
    /// What it is for (shown to the agent).
    #[serde(default)]
    pub description: Option<String>,
}

/// An archival memory (passage), without its embedding.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Passage {
    /// The passage id.
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// When it was stored.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// The answer to a non-streaming message: every message of the turn.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesResponse {
    /// The turn's messages, in order.
    pub messages: Vec<LettaMessage>,
}

/// One result of an archival memory search.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchResult {
    /// The passage id.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// When it was stored.
    #[serde(default)]
    pub timestamp: Option<String>,
}

impl Letta {
    /// A client on `http` (calls), `stream_http` (reply streams) and the configuration; Letta
    /// must take a message (answer its headers) within `accept_timeout`.
    pub fn new(
        http: reqwest::Client,
        stream_http: reqwest::Client,
        config: &LettaConfig,
        accept_timeout: std::time::Duration,
    ) -> Self {
        Self {
            http,
            stream_http,
            config: config.clone(),
            // The configuration refuses a project that is no header value.
            project: config
                .project
                .as_deref()
                .and_then(|p| reqwest::header::HeaderValue::from_str(p).ok()),
            accept_timeout,
        }
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.authorized(
            self.http
                .request(method, format!("{}{}", self.config.base_url, path)),
        )
    }

    fn authorized(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(project) = &self.project {
            request = request.header("X-Project", project.clone());
        }
        match &self.config.api_key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }

    /// Whether Letta answers: a self-hosted Letta's health endpoint; the hosted API, which
    /// lists no such endpoint, answers a one-agent listing (which checks the key and project).
    pub async fn health(&self) -> Result<(), DependencyError> {
        let request = match self.config.kind {
            LettaKind::SelfHosted => self
                .http
                .get(format!("{}/v1/health/", self.config.base_url)),
            LettaKind::Cloud => self
                .request(reqwest::Method::GET, "/v1/agents/")
                .query(&[("limit", "1")]),
        };
        upstream::send(Service::Letta, request).await.map(|_| ())
    }

    /// A bring-your-own-key provider: Letta stores the key (encrypted with its
    /// `LETTA_ENCRYPTION_KEY`) and uses it for every LLM call of agents that name the provider.
    pub async fn create_provider(
        &self,
        name: &str,
        api_key: &Secret,
        base_url: &str,
    ) -> Result<Provider, DependencyError> {
        upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::POST, "/v1/providers/")
                .json(&json!({
                    "name": name,
                    "provider_type": "openai",
                    "api_key": api_key.expose(),
                    "base_url": base_url,
                })),
        )
        .await
    }

    /// The provider with this name, if any.
    pub async fn find_provider(&self, name: &str) -> Result<Option<Provider>, DependencyError> {
        let providers: Vec<Provider> = upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::GET, "/v1/providers/")
                .query(&[("name", name)]),
        )
        .await?;
        Ok(providers.into_iter().find(|p| p.name == name))
    }

    /// Rotates the key a provider uses; the next LLM call uses it.
    pub async fn update_provider_key(
        &self,
        id: &str,
        api_key: &Secret,
    ) -> Result<(), DependencyError> {
        let request = self
            .request(reqwest::Method::PATCH, &format!("/v1/providers/{id}"))
            .json(&json!({"api_key": api_key.expose()}));
        upstream::send(Service::Letta, request).await.map(|_| ())
    }

    /// Deletes a provider (absent is fine).
    pub async fn delete_provider(&self, id: &str) -> Result<(), DependencyError> {
        let request = self.request(reqwest::Method::DELETE, &format!("/v1/providers/{id}"));
        upstream::absent_on_404(upstream::send(Service::Letta, request).await).map(|_| ())
    }

    /// Creates an agent from an [`AgentSpec`], in the request shape of this kind of Letta.
    pub async fn create_agent(&self, spec: &AgentSpec<'_>) -> Result<Agent, DependencyError> {
        upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::POST, "/v1/agents/")
                .json(&spec.body(&self.config)),
        )
        .await
    }

    /// The agent, or `None` when Letta has none with this id.
    pub async fn get_agent(&self, id: &str) -> Result<Option<Agent>, DependencyError> {
        let request = self.request(reqwest::Method::GET, &format!("/v1/agents/{id}"));
        upstream::absent_on_404(upstream::send_json(Service::Letta, request).await)
    }

    /// Agents with exactly this name.
    pub async fn find_agents_by_name(&self, name: &str) -> Result<Vec<Agent>, DependencyError> {
        let agents: Vec<Agent> = upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::GET, "/v1/agents/")
                .query(&[("name", name), ("limit", "10")]),
        )
        .await?;
        Ok(agents.into_iter().filter(|a| a.name == name).collect())
    }

    /// Agents carrying a tag (every user's agent is tagged `user:<sub>`).
    pub async fn find_agents_by_tag(&self, tag: &str) -> Result<Vec<Agent>, DependencyError> {
        let agents: Vec<Agent> = upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::GET, "/v1/agents/")
                .query(&[("tags", tag), ("limit", "50")]),
        )
        .await?;
        Ok(agents
            .into_iter()
            .filter(|a| a.tags.iter().any(|t| t == tag))
            .collect())
    }

    /// Everything of one kind on the server (every page), by id and name.
    pub async fn list_all(&self, kind: Listing) -> Result<Vec<Named>, DependencyError> {
        const PAGE: usize = 100;
        let mut all: Vec<Named> = Vec::new();
        loop {
            let mut request = self
                .request(reqwest::Method::GET, kind.path())
                .query(&[("limit", PAGE.to_string().as_str()), ("order", "asc")]);
            if let Some(last) = all.last() {
                request = request.query(&[("after", last.id.as_str())]);
            }
            let page: Vec<Named> = upstream::send_json(Service::Letta, request).await?;
            let done = page.len() < PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Archives with exactly this name.
    pub async fn find_archives(&self, name: &str) -> Result<Vec<Named>, DependencyError> {
        let archives: Vec<Named> = upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::GET, Listing::Archives.path())
                .query(&[("name", name)]),
        )
        .await?;
        Ok(archives.into_iter().filter(|a| a.name == name).collect())
    }

    /// Ids of the archives (archival memory) attached to an agent.
    pub async fn agent_archive_ids(&self, agent_id: &str) -> Result<Vec<String>, DependencyError> {
        #[derive(Deserialize)]
        struct Archive {
            id: String,
        }
        let archives: Vec<Archive> = upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::GET, "/v1/archives/")
                .query(&[("agent_id", agent_id)]),
        )
        .await?;
        Ok(archives.into_iter().map(|a| a.id).collect())
    }

    /// Attaches an existing archive to an agent (its passages become the agent's archival
    /// memory); attaching it again changes nothing.
    pub async fn attach_archive(
        &self,
        agent_id: &str,
        archive_id: &str,
    ) -> Result<(), DependencyError> {
        let path = format!("/v1/agents/{agent_id}/archives/attach/{archive_id}");
        upstream::send(Service::Letta, self.request(reqwest::Method::PATCH, &path))
            .await
            .map(|_| ())
    }

    /// Deletes an archive (absent is fine).
    pub async fn delete_archive(&self, id: &str) -> Result<(), DependencyError> {
        let request = self.request(reqwest::Method::DELETE, &format!("/v1/archives/{id}"));
        upstream::absent_on_404(upstream::send(Service::Letta, request).await).map(|_| ())
    }

    /// Whether any agent has the archive attached (`None`: the archive is gone). A self-hosted
    /// Letta lists an archive's agents; the hosted API has no such listing (letta-client 1.12),
    /// so there the agents tagged `owner_tag` are asked, the only ones the backend ever attaches
    /// a user's archive to.
    pub async fn archive_in_use(
        &self,
        archive_id: &str,
        owner_tag: &str,
    ) -> Result<Option<bool>, DependencyError> {
        if self.config.kind == LettaKind::Cloud {
            for agent in self.find_agents_by_tag(owner_tag).await? {
                if self
                    .agent_archive_ids(&agent.id)
                    .await?
                    .iter()
                    .any(|a| a == archive_id)
                {
                    return Ok(Some(true));
                }
            }
            return Ok(Some(false));
        }
        let request = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/archives/{archive_id}/agents"),
            )
            .query(&[("limit", "1")]);
        let agents: Option<Vec<serde::de::IgnoredAny>> =
            upstream::absent_on_404(upstream::send_json(Service::Letta, request).await)?;
        Ok(agents.map(|a| !a.is_empty()))
    }

    /// Deletes an agent of the user tagged `owner_tag` and those of its archives no other agent
    /// has attached (deleting an agent alone leaves its archive behind; after a migration whose
    /// last step failed, the old agent shares its archive with the live one, whose long-term
    /// memory it is).
    pub async fn delete_agent_and_archives(
        &self,
        agent_id: &str,
        owner_tag: &str,
    ) -> Result<(), DependencyError> {
        let archives: Vec<String> =
            upstream::absent_on_404(self.agent_archive_ids(agent_id).await)?.unwrap_or_default();
        self.delete_agent(agent_id).await?;
        for id in archives {
            if self.archive_in_use(&id, owner_tag).await? == Some(false) {
                self.delete_archive(&id).await?;
            }
        }
        Ok(())
    }

    /// Deletes an agent (absent is fine); its archive stays, see `delete_agent_and_archives`.
    pub async fn delete_agent(&self, id: &str) -> Result<(), DependencyError> {
        let request = self.request(reqwest::Method::DELETE, &format!("/v1/agents/{id}"));
        upstream::absent_on_404(upstream::send(Service::Letta, request).await).map(|_| ())
    }

    /// Sends one user message with token streaming and returns Letta's event stream once Letta
    /// has answered with its headers (an unreachable Letta fails here, before any event).
    pub async fn stream_message(
        &self,
        thread: Thread<'_>,
        text: &str,
    ) -> Result<TurnStream, DependencyError> {
        use eventsource_stream::Eventsource;

        let path = match thread {
            Thread::Agent(agent_id) => format!("/v1/agents/{agent_id}/messages/stream"),
            Thread::Conversation(id) => format!("/v1/conversations/{id}/messages"),
        };
        // A turn may stream for minutes: it is bounded by the request's deadline (Lambda's
        // longest is 15 min), a silent Letta by the stream client's read timeout
        // (`LETTA_STREAM_SILENCE_SECS`), and Letta's taking of the message (its headers) by the
        // timeout of any call.
        let request = || {
            self.authorized(
                self.stream_http
                    .post(format!("{}{path}", self.config.base_url))
                    .json(&json!({
                        "messages": [{"role": "user", "content": text}],
                        "max_steps": self.config.max_steps,
                        "streaming": true,
                        "stream_tokens": true,
                        "include_pings": true,
                    })),
            )
            .timeout(std::time::Duration::from_secs(15 * 60))
        };
        let response = tokio::time::timeout(self.accept_timeout, async {
            // A Letta with a conversation lock (the hosted API) holds it for a moment after
            // `[DONE]`, while it closes the run: a turn sent right after the previous one's
            // `done` may meet that 409. Asked again shortly, a few times.
            let mut waited = 0;
            loop {
                match upstream::send(Service::Letta, request()).await {
                    Err(DependencyError::Status { status: 409, .. }) if waited < 5 => {
                        waited += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(40 * waited)).await;
                    }
                    other => return other,
                }
            }
        })
        .await
        .map_err(|_| DependencyError::Timeout {
            service: Service::Letta,
        })??;
        let events = response.bytes_stream().eventsource();
        Ok(Box::pin(until_done(events)))
    }

    /// The agent's core memory blocks.
    pub async fn blocks(&self, agent_id: &str) -> Result<Vec<Block>, DependencyError> {
        upstream::send_json(
            Service::Letta,
            self.request(
                reqwest::Method::GET,
                &format!("/v1/agents/{agent_id}/core-memory/blocks"),
            ),
        )
        .await
    }

    /// One block by label; `None` when the agent has none.
    pub async fn block(
        &self,
        agent_id: &str,
        label: &str,
    ) -> Result<Option<Block>, DependencyError> {
        let request = self.request(
            reqwest::Method::GET,
            &format!("/v1/agents/{agent_id}/core-memory/blocks/{label}"),
        );
        upstream::absent_on_404(upstream::send_json(Service::Letta, request).await)
    }

    /// Replaces a block's value.
    pub async fn update_block(
        &self,
        agent_id: &str,
        label: &str,
        value: &str,
    ) -> Result<Block, DependencyError> {
        upstream::send_json(
            Service::Letta,
            self.request(
                reqwest::Method::PATCH,
                &format!("/v1/agents/{agent_id}/core-memory/blocks/{label}"),
            )
            .json(&json!({"value": value})),
        )
        .await
    }

    /// Adds an archival memory.
    pub async fn insert_passage(
        &self,
        agent_id: &str,
        text: &str,
        tags: &[String],
    ) -> Result<Vec<Passage>, DependencyError> {
        upstream::send_json(
            Service::Letta,
            self.request(
                reqwest::Method::POST,
                &format!("/v1/agents/{agent_id}/archival-memory"),
            )
            .json(&json!({"text": text, "tags": tags})),
        )
        .await
    }

    /// Passages, newest first; with `before`, those older than that passage.
    pub async fn list_passages(
        &self,
        agent_id: &str,
        limit: u32,
        before: Option<&str>,
    ) -> Result<Vec<Passage>, DependencyError> {
        let mut query = vec![
            ("limit", limit.to_string()),
            ("ascending", "false".to_string()),
        ];
        if let Some(before) = before {
            query.push(("before", before.to_string()));
        }
        upstream::send_json(
            Service::Letta,
            self.request(
                reqwest::Method::GET,
                &format!("/v1/agents/{agent_id}/archival-memory"),
            )
            .query(&query),
        )
        .await
    }

    /// Semantic search of archival memory, best matches first.
    pub async fn search_passages(
        &self,
        agent_id: &str,
        query: &str,
        top_k: u32,
    ) -> Result<Vec<SearchResult>, DependencyError> {
        #[derive(Deserialize)]
        struct Found {
            #[serde(default)]
            results: Vec<SearchResult>,
        }
        let found: Found = upstream::send_json(
            Service::Letta,
            self.request(
                reqwest::Method::GET,
                &format!("/v1/agents/{agent_id}/archival-memory/search"),
            )
            .query(&[("query", query.to_string()), ("top_k", top_k.to_string())]),
        )
        .await?;
        Ok(found.results)
    }

    /// Clears the agent's conversation context; memory blocks and archival memory stay.
    pub async fn reset_messages(&self, agent_id: &str) -> Result<(), DependencyError> {
        upstream::send(
            Service::Letta,
            self.request(
                reqwest::Method::PATCH,
                &format!("/v1/agents/{agent_id}/reset-messages"),
            )
            .json(&json!({"add_default_initial_messages": false})),
        )
        .await
        .map(|_| ())
    }

    /// A thread's newest messages, newest first.
    pub async fn recent_messages(
        &self,
        thread: Thread<'_>,
        limit: u32,
    ) -> Result<Vec<LettaMessage>, DependencyError> {
        let path = match thread {
            Thread::Agent(agent_id) => format!("/v1/agents/{agent_id}/messages"),
            Thread::Conversation(id) => format!("/v1/conversations/{id}/messages"),
        };
        upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::GET, &path)
                .query(&[("limit", limit.to_string()), ("order", "desc".to_string())]),
        )
        .await
    }

    /// Sends one user message and waits for the whole turn (non-streaming).
    pub async fn send_message(
        &self,
        agent_id: &str,
        text: &str,
    ) -> Result<MessagesResponse, DependencyError> {
        upstream::send_json(
            Service::Letta,
            self.request(
                reqwest::Method::POST,
                &format!("/v1/agents/{agent_id}/messages"),
            )
            .json(&json!({"messages": [{"role": "user", "content": text}],
                           "max_steps": self.config.max_steps})),
        )
        .await
    }
}

/// One SSE event of Letta's stream; `None` for one that is not JSON (logged and skipped).
fn stream_event(event: &str, data: &str) -> Option<LettaMessage> {
    let value: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "skipping an unreadable Letta stream event");
            return None;
        }
    };
    match LettaMessage::from_value(value) {
        // `event: error` always means a failure, whatever its data says.
        LettaMessage::Other { meta, .. } if event == "error" => Some(LettaMessage::Error {
            meta,
            error_type: None,
            message: None,
            detail: None,
        }),
        message => Some(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_events_are_errors_whatever_their_data() {
        let sample = r#"{"message_type":"error_message","run_id":"run-4","error_type":"llm_error","message":"An error occurred with the LLM request.","detail":"INTERNAL_SERVER_ERROR: Connection error."}"#;
        assert!(matches!(
            stream_event("error", sample),
            Some(LettaMessage::Error { detail: Some(d), .. }) if d.contains("Connection error")
        ));
        assert!(matches!(
            stream_event("error", r#"{"message_type":"mystery"}"#),
            Some(LettaMessage::Error { .. })
        ));
        assert!(stream_event("message", "not json").is_none());
    }
}
