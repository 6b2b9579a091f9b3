//! Plumbing under every other layer: typed configuration, the one error type, the dependency
//! failure classification, secrets that never print, and JSON logs.

pub mod aws;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod dependency;
pub mod error;
pub mod public_url;
pub mod secret;
pub mod secrets;
pub mod telemetry;
