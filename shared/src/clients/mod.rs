//! One client per external system, each over the shared HTTP helpers: Letta, LiteLLM (and its
//! model catalog), Supabase Auth, and the JWKS-backed token verifier.

pub mod http;
pub mod jwks;
pub mod letta;
pub mod litellm;
pub mod models;
pub mod supabase;
