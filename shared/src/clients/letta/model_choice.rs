//! How an agent's model is chosen, in the shape each kind of Letta takes: the part of an agent's
//! create and update bodies that makes every LLM call of the agent go through the user's own
//! provider (and so the user's own LiteLLM key).

use serde::Serialize;

use crate::app::config::{LettaConfig, LettaKind};

/// The model fields of `POST /v1/agents/` and `PATCH /v1/agents/{id}` (flattened into them).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum ModelChoice<'a> {
    /// The hosted API (letta-client 1.12's `AgentCreateParams`): the model and embedding by the
    /// handle of the user's provider (`<provider>/<model>`), the output limit in
    /// `model_settings`, the window in `context_window_limit`.
    Handles {
        model: String,
        model_settings: ModelSettings,
        context_window_limit: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        embedding: Option<String>,
    },
    /// A self-hosted Letta 0.16.x, where every BYOK provider's models share the handles
    /// `openai-proxy/<model>`: an explicit `llm_config` (and `embedding_config`) naming the
    /// user's provider, the only shape that selects the user's key there. Deprecated in the
    /// hosted API.
    LlmConfig {
        llm_config: LlmConfig<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        embedding_config: Option<EmbeddingConfig<'a>>,
    },
}

/// `model_settings` for an OpenAI-compatible provider (`OpenAIModelSettingsParam`).
#[derive(Debug, Serialize)]
pub(super) struct ModelSettings {
    provider_type: &'static str,
    /// LiteLLM reserves the worst-case cost of each call against the budget: an unset limit
    /// makes the reservation huge.
    max_output_tokens: u32,
}

/// The model and where Letta calls it (`LlmConfigParam`).
#[derive(Debug, Serialize)]
pub(super) struct LlmConfig<'a> {
    model: &'a str,
    model_endpoint_type: &'static str,
    model_endpoint: String,
    provider_name: &'a str,
    provider_category: &'static str,
    context_window: u32,
    max_tokens: u32,
}

/// The embedding model and where Letta calls it (`EmbeddingConfigParam`).
#[derive(Debug, Serialize)]
pub(super) struct EmbeddingConfig<'a> {
    embedding_endpoint_type: &'static str,
    embedding_endpoint: String,
    embedding_model: &'a str,
    embedding_dim: u32,
    embedding_chunk_size: u32,
}

/// Whether the choice names the embedding model too (at creation only: an agent's archival
/// memory keeps the embedding it was made with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Embedding {
    Included,
    Left,
}

impl<'a> EmbeddingConfig<'a> {
    /// The configured embedding model, through LiteLLM.
    fn of(config: &'a LettaConfig) -> Self {
        Self {
            embedding_endpoint_type: "openai",
            embedding_endpoint: format!("{}/v1", config.litellm_url_for_letta),
            embedding_model: &config.embedding_model,
            embedding_dim: config.embedding_dim,
            embedding_chunk_size: 300,
        }
    }
}

/// The embedding fields of `POST /v1/folders/` (flattened into it): the embedding the user's
/// agent has, so a folder's files are embedded as its archival memory is.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum FolderEmbedding<'a> {
    /// The hosted API: the embedding model of the user's provider, by handle.
    Handle { embedding: String },
    /// A self-hosted Letta: the explicit configuration.
    Config {
        embedding_config: EmbeddingConfig<'a>,
    },
}

impl<'a> FolderEmbedding<'a> {
    /// A folder of `provider`'s user.
    pub(super) fn new(config: &'a LettaConfig, provider: &str) -> Self {
        match config.kind {
            LettaKind::Cloud => Self::Handle {
                embedding: format!("{provider}/{}", config.embedding_model),
            },
            LettaKind::SelfHosted => Self::Config {
                embedding_config: EmbeddingConfig::of(config),
            },
        }
    }
}

impl<'a> ModelChoice<'a> {
    /// `model` through the user's provider `provider` with a context window of `window` tokens.
    pub(super) fn new(
        config: &'a LettaConfig,
        provider: &'a str,
        model: &'a str,
        window: u32,
        embedding: Embedding,
    ) -> Self {
        let included = embedding == Embedding::Included;
        match config.kind {
            LettaKind::Cloud => Self::Handles {
                model: format!("{provider}/{model}"),
                model_settings: ModelSettings {
                    provider_type: "openai",
                    max_output_tokens: config.max_tokens,
                },
                context_window_limit: window,
                embedding: included.then(|| format!("{provider}/{}", config.embedding_model)),
            },
            LettaKind::SelfHosted => {
                let endpoint = format!("{}/v1", config.litellm_url_for_letta);
                Self::LlmConfig {
                    llm_config: LlmConfig {
                        model,
                        model_endpoint_type: "openai",
                        model_endpoint: endpoint.clone(),
                        provider_name: provider,
                        provider_category: "byok",
                        context_window: window,
                        max_tokens: config.max_tokens,
                    },
                    embedding_config: included.then(|| EmbeddingConfig::of(config)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{json, to_value};

    use super::*;
    use crate::app::config::Config;

    fn config(kind: &str) -> LettaConfig {
        let env: HashMap<String, String> = [
            ("TABLE_NAME", "t"),
            ("LETTA_BASE_URL", "https://api.letta.com"),
            ("LETTA_SERVER_KIND", kind),
            ("LETTA_API_KEY", "k"),
            ("LITELLM_BASE_URL", "https://llm.example.com"),
            ("LITELLM_MASTER_KEY", "m"),
            ("SUPABASE_URL", "https://x.supabase.co"),
            ("SUPABASE_ANON_KEY", "a"),
            ("SUPABASE_JWT_SECRET", "s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config::from_map(&env).unwrap().letta
    }

    #[test]
    fn the_hosted_api_gets_handles_of_the_users_provider_and_no_llm_config() {
        let config = config("cloud");
        let choice = ModelChoice::new(&config, "user-1", "gpt-4", 32_000, Embedding::Included);
        assert_eq!(
            to_value(&choice).unwrap(),
            json!({"model": "user-1/gpt-4",
                   "model_settings": {"provider_type": "openai", "max_output_tokens": 1024},
                   "context_window_limit": 32000,
                   "embedding": "user-1/text-embedding-3-small"})
        );
        let switch = ModelChoice::new(&config, "user-1", "small", 16_000, Embedding::Left);
        assert!(to_value(&switch).unwrap().get("embedding").is_none());
    }

    #[test]
    fn a_self_hosted_letta_gets_an_llm_config_naming_the_users_provider() {
        let config = config("self-hosted");
        let choice = ModelChoice::new(&config, "user-1", "gpt-4", 32_000, Embedding::Included);
        let body = to_value(&choice).unwrap();
        assert_eq!(body["llm_config"]["provider_name"], "user-1");
        assert_eq!(body["llm_config"]["provider_category"], "byok");
        assert_eq!(
            body["llm_config"]["model_endpoint"],
            "https://llm.example.com/v1"
        );
        assert_eq!(body["embedding_config"]["embedding_dim"], 1536);
        let switch = ModelChoice::new(&config, "user-1", "small", 16_000, Embedding::Left);
        let body = to_value(&switch).unwrap();
        assert_eq!(body["llm_config"]["context_window"], 16000);
        assert!(body.get("embedding_config").is_none());
        assert!(body.get("model").is_none());
    }
}
