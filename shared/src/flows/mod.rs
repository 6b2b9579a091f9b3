//! The use cases, one file per area: accounts and their provisioning, the chat turn and
//! conversations, the agent,
//! the profile, usage and budget; the reconciler that checks all four systems agree. Flows return typed values; `http::views` renders them.

pub mod accounts;
pub mod agent;
pub mod api_keys;
pub mod chat;
pub mod conversations;
pub mod export;
pub mod files;
pub mod gate;
pub mod migration;
pub mod models;
pub mod profile;
pub mod provisioning;
pub mod reconcile;
pub mod usage;
