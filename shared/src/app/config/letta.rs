//! The Letta section of the configuration: which Letta (the hosted API or a self-hosted
//! server), its key and project, and what the agents are made of.

use std::{str::FromStr, time::Duration};

use super::Reader;
use crate::app::{public_url, secret::Secret};

/// The Letta server and the agents made on it.
#[derive(Debug, Clone)]
pub struct LettaConfig {
    /// Its URL.
    pub base_url: String,
    /// Which Letta it is, and so the shape of the requests that choose an agent's model.
    pub kind: LettaKind,
    /// The bearer token: the hosted API's key, or a self-hosted Letta's password (`--secure`
    /// mode); unset only for a local Letta without one.
    pub api_key: Option<Secret>,
    /// The hosted API's project, sent as `X-Project` on every call (`LETTA_PROJECT`).
    pub project: Option<String>,
    /// The agent architecture (`agent_type`); existing agents move to it on their next request.
    pub agent_type: String,
    /// The LiteLLM model new agents use (a user may choose another).
    pub model: String,
    /// The models users may choose (`ALLOWED_MODELS`, comma-separated); empty: every chat
    /// model LiteLLM serves.
    pub allowed_models: Vec<String>,
    /// The embedding model of archival memory.
    pub embedding_model: String,
    pub embedding_dim: u32,
    /// The agents' context window, in tokens.
    pub context_window: u32,
    /// The most steps (LLM calls) Letta may take for one message (`LETTA_MAX_STEPS`, sent as
    /// `max_steps`): a model that keeps calling tools stops there, not at Letta's 50.
    pub max_steps: u32,
    /// The agents' output limit per LLM call (`model_settings.max_output_tokens`, or
    /// `llm_config.max_tokens` on a self-hosted Letta): LiteLLM reserves the worst-case cost of
    /// each call against the budget, so an unset value makes the reservation huge.
    pub max_tokens: u32,
    /// LiteLLM's base URL as Letta reaches it (it may differ from the backend's view).
    pub litellm_url_for_letta: String,
    /// The most archival memories a user may add through the API (`ARCHIVAL_MAX_PASSAGES`).
    pub archival_max_passages: u64,
    /// The most documents a user may give the agent (`FILES_MAX`).
    pub files_max: u64,
    /// The largest document, in bytes (`FILE_MAX_BYTES`).
    pub file_max_bytes: usize,
    /// How long a reply's stream may stay silent before the turn ends as interrupted
    /// (`LETTA_STREAM_SILENCE_SECS`): Letta sends a keep-alive ping every 20 s while it works,
    /// so a longer silence is a Letta that froze.
    pub stream_silence: Duration,
}

/// Which Letta the backend talks to (`LETTA_SERVER_KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LettaKind {
    /// The hosted Letta API (`https://api.letta.com`): agents choose their model by the handle
    /// of the user's own provider, with `model_settings` (`llm_config` is deprecated there).
    Cloud,
    /// A self-hosted Letta server 0.16.x: a BYOK provider's models all get the handle
    /// `openai-proxy/<model>` there, so only an explicit `llm_config` naming the provider
    /// selects the user's key.
    SelfHosted,
}

impl LettaKind {
    /// The default for a base URL: `cloud` for the hosted API's hosts, `self-hosted` otherwise.
    fn default_for(base_url: &str) -> Self {
        let host = reqwest::Url::parse(base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        match host {
            Some(h) if h == "letta.com" || h.ends_with(".letta.com") => Self::Cloud,
            _ => Self::SelfHosted,
        }
    }
}

impl FromStr for LettaKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cloud" => Ok(Self::Cloud),
            "self-hosted" => Ok(Self::SelfHosted),
            _ => Err(()),
        }
    }
}

/// The agent architecture that replies in plain content, streamed exactly (the default).
pub const PLAIN_CONTENT_AGENT_TYPE: &str = "letta_v1_agent";

impl LettaConfig {
    pub(super) fn read(r: &mut Reader<'_>, litellm_base_url: &str) -> Self {
        let model = r.optional("LETTA_MODEL").unwrap_or_else(|| "gpt-4".into());
        let allowed_models: Vec<String> = r
            .optional("ALLOWED_MODELS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        if !allowed_models.is_empty() && !allowed_models.contains(&model) {
            r.problems
                .push(format!("ALLOWED_MODELS must include LETTA_MODEL ({model})"));
        }
        let base_url = r.url("LETTA_BASE_URL", None);
        let kind = r.parsed(
            "LETTA_SERVER_KIND",
            LettaKind::default_for(&base_url),
            "cloud or self-hosted",
        );
        let api_key = Self::api_key(r, kind);
        let litellm_url_for_letta = r.url("LITELLM_URL_FOR_LETTA", Some(litellm_base_url));
        if kind == LettaKind::Cloud
            && let Some(problem) = public_url::problem(&litellm_url_for_letta)
        {
            r.problems.push(format!(
                "LITELLM_URL_FOR_LETTA {problem}: with LETTA_SERVER_KIND=cloud the hosted Letta \
                 API calls LiteLLM from the internet, got {litellm_url_for_letta:?}"
            ));
        }
        let project = r.optional("LETTA_PROJECT");
        if project
            .as_deref()
            .is_some_and(|p| reqwest::header::HeaderValue::from_str(p).is_err())
        {
            r.problems.push(
                "LETTA_PROJECT must be printable ASCII (it is sent as the X-Project header)".into(),
            );
        }
        Self {
            model,
            allowed_models,
            base_url,
            kind,
            api_key,
            project,
            agent_type: r
                .optional("LETTA_AGENT_TYPE")
                .unwrap_or_else(|| PLAIN_CONTENT_AGENT_TYPE.into()),
            embedding_model: r
                .optional("LETTA_EMBEDDING_MODEL")
                .unwrap_or_else(|| "text-embedding-3-small".into()),
            embedding_dim: r.parsed("LETTA_EMBEDDING_DIM", 1536, "a positive integer"),
            context_window: r.parsed("LETTA_CONTEXT_WINDOW", 32_000, "a positive integer"),
            max_tokens: r.parsed("LETTA_MAX_TOKENS", 1024, "a positive integer"),
            max_steps: r.ranged("LETTA_MAX_STEPS", 10, 1..=50),
            litellm_url_for_letta,
            archival_max_passages: r.parsed(
                "ARCHIVAL_MAX_PASSAGES",
                10_000,
                "a whole number of memories",
            ),
            files_max: r.parsed("FILES_MAX", 50, "a whole number of documents"),
            file_max_bytes: r.parsed("FILE_MAX_BYTES", 5 * 1024 * 1024, "a whole number of bytes"),
            stream_silence: {
                let secs: u64 =
                    r.parsed("LETTA_STREAM_SILENCE_SECS", 30, "a whole number of seconds");
                if secs <= LETTA_KEEPALIVE_SECS {
                    r.problems.push(format!(
                        "LETTA_STREAM_SILENCE_SECS must be more than Letta's {LETTA_KEEPALIVE_SECS} s between keep-alive pings"
                    ));
                }
                Duration::from_secs(secs)
            },
        }
    }

    /// `LETTA_API_KEY`, or its older name `LETTA_SERVER_PASSWORD` (the same bearer token). Only
    /// a self-hosted Letta may go without one, and only with `LETTA_ALLOW_NO_PASSWORD=true`.
    fn api_key(r: &mut Reader<'_>, kind: LettaKind) -> Option<Secret> {
        let key = match (
            r.optional("LETTA_API_KEY"),
            r.optional("LETTA_SERVER_PASSWORD"),
        ) {
            (Some(key), Some(password)) if key != password => {
                r.problems.push(
                    "LETTA_API_KEY and LETTA_SERVER_PASSWORD are both set and differ; set \
                     LETTA_API_KEY only"
                        .into(),
                );
                Some(key)
            }
            (key, password) => key.or(password),
        };
        let no_key_allowed = kind == LettaKind::SelfHosted
            && r.optional("LETTA_ALLOW_NO_PASSWORD").as_deref() == Some("true");
        if key.is_none() && !no_key_allowed {
            r.problems.push(match kind {
                LettaKind::Cloud => "LETTA_API_KEY is missing (the hosted Letta API's key)".into(),
                LettaKind::SelfHosted => "LETTA_API_KEY is missing (a Letta without a password \
                     serves anyone who reaches it; LETTA_ALLOW_NO_PASSWORD=true only for a local \
                     one)"
                    .into(),
            });
        }
        key.map(Secret::new)
    }
}

/// Letta's seconds between keep-alive pings of a stream (its `keepalive_interval` setting).
const LETTA_KEEPALIVE_SECS: u64 = 20;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::app::config::{Config, tests::base};

    #[test]
    fn a_stream_silence_within_lettas_ping_interval_is_refused() {
        let mut env = base();
        env.insert("LETTA_STREAM_SILENCE_SECS".into(), "20".into());
        let text = Config::from_map(&env).unwrap_err().to_string();
        assert!(
            text.contains("LETTA_STREAM_SILENCE_SECS must be more than Letta's 20 s"),
            "{text}"
        );
        env.insert("LETTA_STREAM_SILENCE_SECS".into(), "21".into());
        assert_eq!(
            Config::from_map(&env).unwrap().letta.stream_silence,
            Duration::from_secs(21)
        );
    }

    #[test]
    fn letta_needs_a_password_unless_explicitly_local() {
        let mut env = base();
        env.remove("LETTA_SERVER_PASSWORD");
        let text = Config::from_map(&env).unwrap_err().to_string();
        assert!(text.contains("LETTA_API_KEY is missing"), "{text}");
        env.insert("LETTA_ALLOW_NO_PASSWORD".into(), "true".into());
        assert!(Config::from_map(&env).unwrap().letta.api_key.is_none());
    }

    #[test]
    fn the_kind_of_letta_follows_its_url_unless_set() {
        let mut env = base();
        let cfg = Config::from_map(&env).unwrap();
        assert_eq!(cfg.letta.kind, LettaKind::SelfHosted);
        assert_eq!(cfg.letta.project, None);
        env.insert("LETTA_BASE_URL".into(), "https://api.letta.com".into());
        env.insert(
            "LITELLM_URL_FOR_LETTA".into(),
            "https://llm.example.com".into(),
        );
        env.insert("LETTA_PROJECT".into(), "chat-prod".into());
        let cfg = Config::from_map(&env).unwrap();
        assert_eq!(cfg.letta.kind, LettaKind::Cloud);
        assert_eq!(cfg.letta.project.as_deref(), Some("chat-prod"));
        env.insert("LETTA_PROJECT".into(), "chat\u{7}prod".into());
        let text = Config::from_map(&env).unwrap_err().to_string();
        assert!(
            text.contains("LETTA_PROJECT must be printable ASCII"),
            "{text}"
        );
        env.insert("LETTA_PROJECT".into(), "chat-prod".into());
        env.insert("LETTA_SERVER_KIND".into(), "self-hosted".into());
        assert_eq!(
            Config::from_map(&env).unwrap().letta.kind,
            LettaKind::SelfHosted
        );
        env.insert("LETTA_SERVER_KIND".into(), "hosted".into());
        let text = Config::from_map(&env).unwrap_err().to_string();
        assert!(
            text.contains("LETTA_SERVER_KIND must be cloud or self-hosted"),
            "{text}"
        );
    }

    #[test]
    fn the_hosted_api_needs_its_key_and_a_public_https_litellm() {
        let mut env = base();
        env.insert("LETTA_SERVER_KIND".into(), "cloud".into());
        env.remove("LETTA_SERVER_PASSWORD");
        env.insert("LETTA_ALLOW_NO_PASSWORD".into(), "true".into());
        let text = Config::from_map(&env).unwrap_err().to_string();
        assert!(text.contains("LETTA_API_KEY is missing"), "{text}");
        assert!(
            text.contains("LITELLM_URL_FOR_LETTA must be https"),
            "{text}"
        );
        env.insert("LETTA_API_KEY".into(), "sk-let-1".into());
        env.insert("LITELLM_URL_FOR_LETTA".into(), "https://10.0.3.7".into());
        let text = Config::from_map(&env).unwrap_err().to_string();
        assert!(
            text.contains("LITELLM_URL_FOR_LETTA is a private address"),
            "{text}"
        );
        env.insert(
            "LITELLM_URL_FOR_LETTA".into(),
            "https://llm.example.com".into(),
        );
        let cfg = Config::from_map(&env).unwrap();
        assert_eq!(cfg.letta.api_key.unwrap().expose(), "sk-let-1");
    }

    #[test]
    fn the_key_keeps_its_old_name_but_not_two_values() {
        let mut env = base();
        let cfg = Config::from_map(&env).unwrap();
        assert_eq!(cfg.letta.api_key.unwrap().expose(), "letta-password");
        env.insert("LETTA_API_KEY".into(), "letta-password".into());
        assert!(Config::from_map(&env).is_ok());
        env.insert("LETTA_API_KEY".into(), "another".into());
        let text = Config::from_map(&env).unwrap_err().to_string();
        assert!(text.contains("both set and differ"), "{text}");
    }
}
