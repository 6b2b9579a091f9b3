//! Everything the four functions share, in layers whose imports point down only:
//! `http` (extractors, the verified user, health, views) → `flows` (use cases) → `state`
//! (built once per cold start) → `store` (DynamoDB) and `clients` (Letta, LiteLLM, Supabase) →
//! `domain` (parsed values, entities) → `app` (config, errors, secrets, logs).

pub mod app;
pub mod clients;
pub mod domain;
pub mod flows;
pub mod http;
pub mod state;
pub mod store;

pub use app::{
    config::Config,
    error::{AppError, ErrorCode},
};
pub use state::AppState;
