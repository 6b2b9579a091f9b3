//! The use cases, one file per area: accounts and their provisioning, the chat turn, the agent,
//! the profile, usage and budget. Flows return typed values; `http::views` renders them.

pub mod accounts;
pub mod agent;
pub mod chat;
pub mod migration;
pub mod profile;
pub mod provisioning;
pub mod usage;
