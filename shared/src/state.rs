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
    store::Store,
};

/// The state every handler gets: cheap to clone, built once per cold start.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// The configuration, validated.
    pub config: Config,
    /// DynamoDB.
    pub store: Store,
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
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Reads and validates the configuration (see [`Config::load`]), then builds the clients.
    pub async fn load(required: &[&str]) -> Result<Self, ConfigError> {
        Ok(Self::new(Config::load(required).await?).await)
    }

    /// Builds the clients from a configuration.
    pub async fn new(config: Config) -> Self {
        crate::clients::http::configure(config.http.upstream_retries, config.http.upstream_timeout);
        let http = http_client(config.http.upstream_timeout);
        Self(Arc::new(Inner {
            store: Store::new(&config.dynamodb).await,
            letta: Letta::new(
                http.clone(),
                stream_client(config.http.upstream_timeout),
                &config.letta,
            ),
            litellm: LiteLlm::new(http.clone(), &config.litellm),
            jwt: JwtVerifier::new(http.clone(), &config.supabase),
            models: ModelCatalog::default(),
            health: HealthCache::default(),
            supabase: SupabaseAuth::new(http, &config.supabase),
            config,
        }))
    }
}
