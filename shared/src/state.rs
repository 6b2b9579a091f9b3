//! Everything built once per cold start and shared by every invocation: configuration, the
//! HTTP client and the dependency clients.

use std::{ops::Deref, sync::Arc};

use crate::{
    app::{
        config::{Config, ConfigError},
        dependency::HealthCache,
    },
    clients::{
        http::{http_client, stream_client},
        jwks::JwtVerifier,
        letta::Letta,
        litellm::LiteLlm,
        models::ModelCatalog,
        supabase::SupabaseAuth,
    },
    store::{Store, TurnCache},
};

/// The state every handler gets: cheap to clone, built once per cold start.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Inner>,
    /// DynamoDB, as the function serving the request (each function's requests name it).
    pub store: Store,
}

/// What [`AppState`] holds for every function of the process.
pub struct Inner {
    /// The configuration, validated.
    pub config: Config,
    /// The Letta server.
    pub letta: Letta,
    /// The LiteLLM proxy's admin API.
    pub litellm: LiteLlm,
    /// Supabase Auth.
    pub supabase: SupabaseAuth,
    /// Verifies access tokens; holds the JWKS cache for the life of the process.
    pub jwt: JwtVerifier,
    /// LiteLLM's models and prices, cached.
    pub models: ModelCatalog,
    /// The last dependency checks of `GET /health`.
    pub health: HealthCache,
    /// What this instance knows of its users' profiles and conversations between turns.
    pub turn_cache: TurnCache,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.shared
    }
}

impl AppState {
    /// Reads and validates `function`'s configuration (see [`Config::load`]), then builds the
    /// clients and checks what only a dependency can say ([`AppState::start`]).
    pub async fn load(function: &str, required: &[&str]) -> Result<Self, ConfigError> {
        let config = Config::load(function, required).await?;
        Ok(Self::start(config).await?.for_function(function))
    }

    /// Builds the clients and checks the configuration against LiteLLM: the default model
    /// must be one it serves with a price ([`ModelCatalog::check_default`]).
    pub async fn start(config: Config) -> Result<Self, ConfigError> {
        let state = Self::new(config).await;
        let default = &state.config.letta.model;
        state
            .models
            .check_default(&state.litellm, default)
            .await
            .map_err(|problem| ConfigError {
                problems: vec![problem],
            })?;
        Ok(state)
    }

    /// Builds the clients from a configuration.
    pub async fn new(config: Config) -> Self {
        crate::clients::http::configure(config.http.upstream_retries, config.http.upstream_timeout);
        let http = http_client(config.http.upstream_timeout);
        let store = Store::new(&config.dynamodb).await;
        let shared = Arc::new(Inner {
            letta: Letta::new(
                http.clone(),
                stream_client(config.letta.stream_silence),
                &config.letta,
                config.http.upstream_timeout,
            ),
            litellm: LiteLlm::new(http.clone(), &config.litellm, &config.deployment_id),
            jwt: JwtVerifier::new(http.clone(), &config.supabase),
            models: ModelCatalog::default(),
            health: HealthCache::default(),
            turn_cache: TurnCache::default(),
            supabase: SupabaseAuth::new(http, &config.supabase),
            config,
        });
        Self { shared, store }
    }

    /// The same state for `function`: its AWS requests name it (the local gateway hosts all
    /// four functions in one process, as Lambda hosts each in its own).
    pub fn for_function(&self, function: &str) -> Self {
        Self {
            shared: self.shared.clone(),
            store: self.store.for_function(function),
        }
    }
}
