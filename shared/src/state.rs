//! Everything built once per cold start and shared by every invocation: configuration, the
//! HTTP client and the dependency clients.

use std::{ops::Deref, sync::Arc};

use crate::{
    config::{Config, ConfigError},
    jwt::JwtVerifier,
    letta::Letta,
    litellm::LiteLlm,
    prices::PriceBook,
    store::Store,
    supabase::SupabaseAuth,
    upstream::{http_client, stream_client},
};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub letta: Letta,
    pub litellm: LiteLlm,
    pub supabase: SupabaseAuth,
    /// Verifies access tokens; holds the JWKS cache for the life of the process.
    pub jwt: JwtVerifier,
    /// Model prices from LiteLLM, cached.
    pub prices: PriceBook,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Reads and validates the environment, then builds the clients.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::new(Config::from_env()?).await)
    }

    pub async fn new(config: Config) -> Self {
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
            prices: PriceBook::default(),
            supabase: SupabaseAuth::new(http, &config.supabase),
            config,
        }))
    }
}
