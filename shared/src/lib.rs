//! Everything the four functions share: typed configuration read once at cold start, one error
//! type with one JSON shape, JSON logs with a request id, the HTTP layers, the health check, and a
//! client per external system (Supabase Auth, LiteLLM, Letta, DynamoDB).

pub mod accounts;
pub mod agent_ops;
pub mod chat;
pub mod config;
pub mod domain;
pub mod error;
pub mod health;
pub mod history;
pub mod http;
pub mod jwt;
pub mod letta;
pub mod litellm;
pub mod prices;
pub mod profile;
pub mod provisioning;
pub mod secret;
pub mod state;
pub mod store;
pub mod supabase;
pub mod telemetry;
pub mod upstream;
pub mod usage;

pub use config::Config;
pub use error::{AppError, ErrorCode};
pub use state::AppState;
