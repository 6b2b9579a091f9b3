//! Letta server REST API: BYOK providers, agents, messages.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    config::LettaConfig,
    secret::Secret,
    upstream::{self, DependencyError, Service},
};

#[derive(Clone, Debug)]
pub struct Letta {
    http: reqwest::Client,
    base: String,
    password: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub llm_config: Value,
}

/// A message as Letta returns it; `message_type` says which fields are set.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LettaMessage {
    #[serde(default)]
    pub id: Option<String>,
    pub message_type: String,
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

impl LettaMessage {
    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(Value::as_str)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessagesResponse {
    pub messages: Vec<LettaMessage>,
    #[serde(default)]
    pub stop_reason: Value,
    #[serde(default)]
    pub usage: Value,
}

impl Letta {
    pub fn new(http: reqwest::Client, config: &LettaConfig) -> Self {
        Self {
            http,
            base: config.base_url.clone(),
            password: config.password.clone(),
        }
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{}", self.base, path));
        match &self.password {
            Some(p) => request.bearer_auth(p.expose()),
            None => request,
        }
    }

    pub async fn health(&self) -> Result<(), DependencyError> {
        upstream::send(
            Service::Letta,
            self.http.get(format!("{}/v1/health/", self.base)),
        )
        .await
        .map(|_| ())
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

    pub async fn find_provider(&self, name: &str) -> Result<Option<Provider>, DependencyError> {
        let providers: Vec<Provider> = upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::GET, "/v1/providers/")
                .query(&[("name", name)]),
        )
        .await?;
        Ok(providers.into_iter().find(|p| p.name == name))
    }

    pub async fn delete_provider(&self, id: &str) -> Result<(), DependencyError> {
        let request = self.request(reqwest::Method::DELETE, &format!("/v1/providers/{id}"));
        upstream::absent_on_404(upstream::send(Service::Letta, request).await).map(|_| ())
    }

    pub async fn create_agent(&self, body: &Value) -> Result<Agent, DependencyError> {
        upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::POST, "/v1/agents/")
                .json(body),
        )
        .await
    }

    pub async fn get_agent(&self, id: &str) -> Result<Option<Agent>, DependencyError> {
        let request = self.request(reqwest::Method::GET, &format!("/v1/agents/{id}"));
        upstream::absent_on_404(upstream::send_json(Service::Letta, request).await)
    }

    pub async fn find_agents_by_name(&self, name: &str) -> Result<Vec<Agent>, DependencyError> {
        let agents: Vec<Agent> = upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::GET, "/v1/agents/")
                .query(&[("name", name), ("limit", "10")]),
        )
        .await?;
        Ok(agents.into_iter().filter(|a| a.name == name).collect())
    }

    pub async fn delete_agent(&self, id: &str) -> Result<(), DependencyError> {
        let request = self.request(reqwest::Method::DELETE, &format!("/v1/agents/{id}"));
        upstream::absent_on_404(upstream::send(Service::Letta, request).await).map(|_| ())
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
            .json(&json!({"messages": [{"role": "user", "content": text}]})),
        )
        .await
    }
}
