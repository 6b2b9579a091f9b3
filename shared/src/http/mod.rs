//! The HTTP side of every function: common layers, extractors, the verified user, health,
//! the function router, and the JSON views of what flows return.

pub mod auth;
pub mod extract;
pub mod health;
pub mod layers;
pub mod limits;
pub mod multipart;
pub mod openapi;
pub mod router;
pub mod schemas;
pub mod views;

pub use auth::{ApiCaller, TurnCaller};
pub use extract::{ApiJson, ApiQuery, parse_optional_json};
pub use layers::{IDEMPOTENCY_KEY, REQUEST_ID, with_common_layers};
pub use limits::{AuthAttempt, ClientIp};
pub use router::Function;
