//! Letta's conversations (threads of one agent that share its memory), archival memory
//! deletion, the agent's model, and what each LLM call of a turn cost (the step's trace
//! names the model that answered, which differs from the agent's when LiteLLM fell back).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Letta,
    model_choice::{Embedding, ModelChoice},
};
use crate::{
    app::dependency::{DependencyError, Service},
    clients::http as upstream,
};

/// One LLM call of a turn: the model that answered and its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCall {
    /// The provider's id of the answer (`chatcmpl-…`): LiteLLM's request id of the call.
    pub id: Option<String>,
    /// The model named in the provider's answer (`gpt-4o-mini`, `gpt-4o-2024-08-06`, …).
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

impl Letta {
    /// A new conversation of the agent; returns Letta's id (`conv-…`).
    pub async fn create_conversation(&self, agent_id: &str) -> Result<String, DependencyError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let created: Created = upstream::send_json(
            Service::Letta,
            self.request(reqwest::Method::POST, "/v1/conversations/")
                .query(&[("agent_id", agent_id)])
                .json(&json!({})),
        )
        .await?;
        Ok(created.id)
    }

    /// Rebuilds a conversation's system prompt from the agent's memory as it is now (Letta
    /// compiles it once, when the conversation starts; memory changed elsewhere since then
    /// reaches the conversation only through this).
    pub async fn recompile_conversation(&self, id: &str) -> Result<(), DependencyError> {
        let path = format!("/v1/conversations/{id}/recompile");
        upstream::send(Service::Letta, self.request(reqwest::Method::POST, &path))
            .await
            .map(|_| ())
    }

    /// Deletes a conversation (absent is fine).
    pub async fn delete_conversation(&self, id: &str) -> Result<(), DependencyError> {
        let request = self.request(reqwest::Method::DELETE, &format!("/v1/conversations/{id}"));
        upstream::absent_on_404(upstream::send(Service::Letta, request).await).map(|_| ())
    }

    /// Deletes a passage if it is in this archive; false when the archive has no such
    /// passage. (Letta's agent-level delete ignores the agent and deletes any passage by id,
    /// so the archive-level one, which checks membership, is the only safe one.)
    pub async fn delete_passage(
        &self,
        archive_id: &str,
        passage_id: &str,
    ) -> Result<bool, DependencyError> {
        let path = format!("/v1/archives/{archive_id}/passages/{passage_id}");
        let response = self
            .request(reqwest::Method::DELETE, &path)
            .send()
            .await
            .map_err(|e| upstream::from_reqwest(Service::Letta, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(true);
        }
        // Letta answers a passage of another archive or none at all with a 4xx.
        if status.is_client_error() {
            return Ok(false);
        }
        Err(DependencyError::Status {
            service: Service::Letta,
            status: status.as_u16(),
            body: String::new(),
        })
    }

    /// Switches the agent to `model` with a context window of `window` tokens, still through
    /// the user's own provider `provider` (so still on the user's key).
    pub async fn set_agent_model(
        &self,
        agent_id: &str,
        provider: &str,
        model: &str,
        window: u32,
    ) -> Result<(), DependencyError> {
        let choice = ModelChoice::new(&self.config, provider, model, window, Embedding::Left);
        let request = self
            .request(reqwest::Method::PATCH, &format!("/v1/agents/{agent_id}"))
            .json(&choice);
        upstream::send(Service::Letta, request).await.map(|_| ())
    }

    /// The model that answered a step and its tokens, from the step's provider trace; `None`
    /// when Letta keeps no trace of it (tracing off, or not written yet).
    pub async fn step_call(&self, step_id: &str) -> Result<Option<StepCall>, DependencyError> {
        let request = self.request(reqwest::Method::GET, &format!("/v1/steps/{step_id}/trace"));
        let trace: Option<Value> =
            upstream::absent_on_404(upstream::send_json(Service::Letta, request).await)?;
        Ok(trace.as_ref().and_then(step_call_of))
    }
}

/// Reads `{"response_json": {"model", "usage": {…}}}`; the usage is OpenAI's
/// (`prompt_tokens`, `completion_tokens`) or Anthropic-shaped (`input_tokens`, `output_tokens`)
/// depending on the path Letta took.
fn step_call_of(trace: &Value) -> Option<StepCall> {
    let response = trace.get("response_json")?;
    let tokens = |fields: [&str; 2]| {
        fields
            .iter()
            .find_map(|f| {
                response
                    .pointer(&format!("/usage/{f}"))
                    .and_then(Value::as_u64)
            })
            .unwrap_or(0)
    };
    Some(StepCall {
        id: response
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string),
        model: response.get("model")?.as_str()?.to_string(),
        prompt_tokens: tokens(["prompt_tokens", "input_tokens"]),
        completion_tokens: tokens(["completion_tokens", "output_tokens"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_names_the_model_that_answered() {
        let trace = json!({"id": "provider_trace-1", "response_json": {"id": "chatcmpl-7",
            "model": "gpt-4o-mini", "usage": {"input_tokens": 2990, "output_tokens": 3}}});
        assert_eq!(
            step_call_of(&trace),
            Some(StepCall {
                id: Some("chatcmpl-7".into()),
                model: "gpt-4o-mini".into(),
                prompt_tokens: 2990,
                completion_tokens: 3
            })
        );
        let openai = json!({"response_json": {"model": "gpt-4",
            "usage": {"prompt_tokens": 3022, "completion_tokens": 9, "cost": 0.0912}}});
        assert_eq!(step_call_of(&openai).unwrap().prompt_tokens, 3022);
        assert_eq!(step_call_of(&openai).unwrap().id, None);
        assert_eq!(step_call_of(&json!(null)), None);
        assert_eq!(step_call_of(&json!({"response_json": {}})), None);
    }
}
