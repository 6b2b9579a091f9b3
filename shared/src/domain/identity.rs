//! The signed-in user behind a request: what a verified access token says.

use crate::{app::secret::Secret, domain::UserId};

/// Built only from a verified access token (see `http::auth`).
#[derive(Debug, Clone)]
pub struct SignedInUser {
    /// The token's `sub`.
    pub id: UserId,
    /// The token's `email` claim.
    pub email: Option<String>,
    /// The token's `iat`, in epoch seconds.
    pub issued_at: Option<u64>,
    /// The access token itself, for calls made on the user's behalf (logout).
    pub token: Secret,
}
