//! The models LiteLLM serves, from its `/model/info`, cached per instance: what users may
//! choose (name, provider, context window, prices) and what a call cost (tokens × price, which
//! matches LiteLLM's own spend exactly).

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::RwLock;

use crate::{app::dependency::DependencyError, clients::litellm::LiteLlm};

const TTL: Duration = Duration::from_secs(600);

/// A model's price per token, USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Per prompt token.
    pub input_per_token: f64,
    /// Per completion token.
    pub output_per_token: f64,
}

impl Price {
    /// The cost of a call with these token counts.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        prompt_tokens as f64 * self.input_per_token
            + completion_tokens as f64 * self.output_per_token
    }
}

/// One model of LiteLLM's.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The name callers ask for (LiteLLM's `model_name`).
    pub name: String,
    /// The provider behind it (`openai`, `anthropic`, …).
    pub provider: String,
    /// The provider's own model name (`gpt-4o` for `openai/gpt-4o`).
    pub provider_model: String,
    /// Its context window, tokens (when LiteLLM knows it).
    pub context_window: Option<u64>,
    pub price: Price,
    /// A chat model (LiteLLM's `mode` is `chat` or unset); embedding and transcription models
    /// are never a chat choice.
    pub chat: bool,
}

impl Model {
    /// Whether LiteLLM has a price for it. An unpriced model's calls cost 0, so no budget would
    /// ever stop them: it is never a choice, nor the default.
    pub fn priced(&self) -> bool {
        self.price.input_per_token > 0.0 || self.price.output_per_token > 0.0
    }
}

/// Reads `{"data": [{"model_name", "model_info": {…}, "litellm_params": {"model", …}}]}`.
pub fn parse_model_info(body: &Value) -> Vec<Model> {
    let mut models: Vec<Model> = Vec::new();
    for entry in body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = entry.get("model_name").and_then(Value::as_str) else {
            continue;
        };
        // LiteLLM lists one entry per deployment; a name served twice is one choice.
        if models.iter().any(|m| m.name == name) {
            continue;
        }
        let field = |field: &str| {
            entry
                .pointer(&format!("/model_info/{field}"))
                .filter(|v| !v.is_null())
                .or_else(|| entry.pointer(&format!("/litellm_params/{field}")))
        };
        let price = |f: &str| field(f).and_then(Value::as_f64).unwrap_or(0.0);
        let routed = entry
            .pointer("/litellm_params/model")
            .and_then(Value::as_str)
            .unwrap_or(name);
        let (provider, provider_model) = routed.split_once('/').unwrap_or(("", routed));
        let provider = field("litellm_provider")
            .and_then(Value::as_str)
            .unwrap_or(provider);
        models.push(Model {
            name: name.to_string(),
            provider: provider.to_string(),
            provider_model: provider_model.to_string(),
            context_window: field("max_input_tokens").and_then(Value::as_u64),
            price: Price {
                input_per_token: price("input_cost_per_token"),
                output_per_token: price("output_cost_per_token"),
            },
            chat: field("mode")
                .and_then(Value::as_str)
                .is_none_or(|mode| mode == "chat"),
        });
    }
    models
}

/// The model a provider's answer names: by LiteLLM name, by provider model name, or by that
/// name without a dated suffix (`gpt-4o-2024-08-06` is `gpt-4o`).
fn answered_by<'a>(models: &'a [Model], answered: &str) -> Option<&'a Model> {
    let undated = |s: &str| -> String {
        let parts: Vec<&str> = s.rsplitn(4, '-').collect();
        let dated = parts.len() == 4
            && parts[..3]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if dated {
            parts[3].to_string()
        } else {
            s.to_string()
        }
    };
    let wanted = undated(answered.rsplit('/').next().unwrap_or(answered));
    models
        .iter()
        .find(|m| m.name == answered)
        .or_else(|| models.iter().find(|m| m.provider_model == answered))
        .or_else(|| {
            models
                .iter()
                .find(|m| m.name == wanted || undated(&m.provider_model) == wanted)
        })
}

/// LiteLLM's models, fetched at most every ten minutes.
#[derive(Default)]
pub struct ModelCatalog {
    cache: RwLock<Option<(Instant, Vec<Model>)>>,
}

impl ModelCatalog {
    /// Every model LiteLLM serves (cached).
    pub async fn models(&self, litellm: &LiteLlm) -> Result<Vec<Model>, DependencyError> {
        if let Some((at, models)) = self.cache.read().await.as_ref()
            && at.elapsed() < TTL
        {
            return Ok(models.clone());
        }
        let models = parse_model_info(&litellm.model_info().await?);
        *self.cache.write().await = Some((Instant::now(), models.clone()));
        Ok(models)
    }

    /// Checks, at cold start, that the default model (`LETTA_MODEL`, `name`) is a priced chat
    /// model of LiteLLM's, so a function refuses to start rather than give new users a model no
    /// budget stops. A LiteLLM that cannot be asked, or does not answer within 2 s, does not
    /// stop the start (a warning; every choice is checked again when it is made). The catalog
    /// is warm afterwards.
    pub async fn check_default(&self, litellm: &LiteLlm, name: &str) -> Result<(), String> {
        // A cold start waits for LiteLLM at most this long.
        const WAIT: Duration = Duration::from_secs(2);
        let models = match tokio::time::timeout(WAIT, self.models(litellm)).await {
            Ok(Ok(models)) => models,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "LiteLLM's models unavailable at start; LETTA_MODEL unchecked");
                return Ok(());
            }
            Err(_) => {
                tracing::warn!("LiteLLM did not answer within 2 s at start; LETTA_MODEL unchecked");
                return Ok(());
            }
        };
        match models.iter().find(|m| m.name == name) {
            None => Err(format!(
                "LETTA_MODEL ({name}) is not a model LiteLLM serves"
            )),
            Some(m) if !m.chat => Err(format!("LETTA_MODEL ({name}) is not a chat model")),
            Some(m) if !m.priced() => Err(format!(
                "LETTA_MODEL ({name}) has no price in LiteLLM: its calls would cost 0 and no \
                 budget would stop them (set input_cost_per_token and output_cost_per_token)"
            )),
            Some(_) => Ok(()),
        }
    }

    /// The model a provider's answer names (see [`answered_by`]); `None` when unknown or
    /// LiteLLM cannot be asked.
    pub async fn model_of_answer(&self, litellm: &LiteLlm, answered: &str) -> Option<Model> {
        self.pick(litellm, |models| answered_by(models, answered))
            .await
    }

    /// The price of a model by LiteLLM name; `None` when unknown or LiteLLM cannot be asked.
    pub async fn price(&self, litellm: &LiteLlm, model: &str) -> Option<Price> {
        self.pick(litellm, |models| models.iter().find(|m| m.name == model))
            .await
            .map(|m| m.price)
    }

    async fn pick(
        &self,
        litellm: &LiteLlm,
        pick: impl for<'a> Fn(&'a [Model]) -> Option<&'a Model>,
    ) -> Option<Model> {
        match self.models(litellm).await {
            Ok(models) => pick(&models).cloned(),
            Err(e) => {
                tracing::warn!(error = %e, "model prices unavailable; cost left unset");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Vec<Model> {
        parse_model_info(&json!({"data": [
            {"model_name": "gpt-4", "litellm_params": {"model": "openai/gpt-4o"},
             "model_info": {"input_cost_per_token": 3e-5, "output_cost_per_token": 6e-5,
                            "max_input_tokens": 128000, "litellm_provider": "openai", "mode": "chat"}},
            {"model_name": "gpt-4", "litellm_params": {"model": "azure/gpt-4o"}},
            {"model_name": "mini", "litellm_params": {"model": "openai/gpt-4o-mini",
             "input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}},
            {"model_name": "embed", "litellm_params": {"model": "openai/text-embedding-3-small"},
             "model_info": {"mode": "embedding"}},
        ]}))
    }

    #[test]
    fn models_and_prices_come_from_model_info_or_params() {
        let models = sample();
        assert_eq!(models.len(), 3, "one entry per name");
        let gpt4 = &models[0];
        assert!((gpt4.price.cost(1000, 100) - 0.036).abs() < 1e-12);
        assert_eq!(
            (gpt4.provider.as_str(), gpt4.context_window),
            ("openai", Some(128000))
        );
        assert_eq!(models[1].price.input_per_token, 1e-7);
        assert_eq!(models[1].provider_model, "gpt-4o-mini");
        assert!(!models[2].chat && gpt4.chat);
    }

    #[test]
    fn an_answer_is_priced_by_the_model_that_gave_it() {
        let models = sample();
        let name = |answered| answered_by(&models, answered).map(|m| m.name.as_str());
        assert_eq!(name("mini"), Some("mini"));
        assert_eq!(name("gpt-4o-mini"), Some("mini"));
        assert_eq!(name("gpt-4o-mini-2024-07-18"), Some("mini"));
        assert_eq!(name("gpt-4o-2024-08-06"), Some("gpt-4"));
        assert_eq!(name("openai/gpt-4o"), Some("gpt-4"));
        assert_eq!(name("claude-3"), None);
    }
}
