//! Supabase access-token verification: HS256 with the project's JWT secret, or ES256/RS256 with
//! the keys published at `$SUPABASE_URL/auth/v1/.well-known/jwks.json` (cached per cold start,
//! refetched on an unknown `kid` at most once a minute, one fetch at a time, and not at all for
//! a few seconds after a failed one, so random `kid`s can neither stall verification of known
//! keys nor hammer Supabase).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::{
    app::{
        config::{JwtAlgorithm, SupabaseConfig},
        dependency::Service,
        error::AppError,
    },
    clients::http as upstream,
};

/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY_SECS: u64 = 30;
/// The least time between two JWKS fetches triggered by unknown key ids.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// After a failed fetch, unknown key ids are answered 503 without fetching for this long.
const JWKS_FAILURE_BACKOFF: Duration = Duration::from_secs(5);
const AUDIENCE: &str = "authenticated";

/// The claims of a Supabase access token this backend reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's email.
    #[serde(default)]
    pub email: Option<String>,
    /// `authenticated` for signed-in users.
    #[serde(default)]
    pub role: Option<String>,
    /// The session the token belongs to.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Expiry (epoch seconds).
    pub exp: u64,
    /// Issued at (epoch seconds).
    #[serde(default)]
    pub iat: Option<u64>,
}

/// Verifies access tokens; keeps the JWKS for the life of the process.
pub struct JwtVerifier {
    algorithms: Vec<Algorithm>,
    hs_key: Option<DecodingKey>,
    issuer: String,
    jwks_url: String,
    http: reqwest::Client,
    jwks: RwLock<Jwks>,
    /// Held while fetching: one fetch at a time; readers of known keys never wait for it.
    fetching: Mutex<()>,
    refetch_interval: Duration,
}

#[derive(Default)]
struct Jwks {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    failed_at: Option<Instant>,
}

fn unauthorized(message: &str) -> AppError {
    AppError::Unauthorized(message.to_string())
}

impl JwtVerifier {
    /// A verifier for the configured algorithms, secret, issuer and JWKS.
    pub fn new(http: reqwest::Client, config: &SupabaseConfig) -> Self {
        let algorithms = config
            .jwt_algorithms
            .iter()
            .map(|a| match a {
                JwtAlgorithm::Hs256 => Algorithm::HS256,
                JwtAlgorithm::Es256 => Algorithm::ES256,
                JwtAlgorithm::Rs256 => Algorithm::RS256,
            })
            .collect();
        Self {
            algorithms,
            hs_key: config
                .jwt_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            issuer: config.jwt_issuer.clone(),
            jwks_url: format!("{}/auth/v1/.well-known/jwks.json", config.url),
            http,
            jwks: RwLock::new(Jwks::default()),
            fetching: Mutex::new(()),
            refetch_interval: JWKS_REFETCH_INTERVAL,
        }
    }

    /// The least time between JWKS fetches for unknown key ids (a minute unless changed).
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// Verifies signature, algorithm, `exp`/`nbf` (with leeway), `aud`, `iss` and `role`.
    pub async fn verify(&self, token: &str) -> Result<Claims, AppError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthorized("the access token is malformed"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(unauthorized("the access token's algorithm is not accepted"));
        }
        let key = match header.alg {
            Algorithm::HS256 => self
                .hs_key
                .clone()
                .ok_or_else(|| unauthorized("the access token's algorithm is not accepted"))?,
            _ => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| unauthorized("the access token has no key id"))?;
                self.public_key(kid).await?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => unauthorized("the access token has expired"),
                    ErrorKind::ImmatureSignature => {
                        unauthorized("the access token is not valid yet")
                    }
                    ErrorKind::InvalidAudience => {
                        unauthorized("the access token has the wrong audience")
                    }
                    ErrorKind::InvalidIssuer => {
                        unauthorized("the access token has the wrong issuer")
                    }
                    _ => unauthorized("the access token is invalid"),
                }
            })?
            .claims;
        if claims.role.as_deref() != Some(AUDIENCE) {
            return Err(unauthorized("the access token is not a signed-in user's"));
        }
        Ok(claims)
    }

    async fn public_key(&self, kid: &str) -> Result<DecodingKey, AppError> {
        let unknown = || unauthorized("the access token's key is unknown");
        if let Some(key) = self.jwks.read().await.keys.get(kid) {
            return Ok(key.clone());
        }
        let _single_flight = self.fetching.lock().await;
        {
            // What the fetch this one waited for found, or why not to fetch again.
            let jwks = self.jwks.read().await;
            if let Some(key) = jwks.keys.get(kid) {
                return Ok(key.clone());
            }
            if jwks
                .fetched_at
                .is_some_and(|t| t.elapsed() < self.refetch_interval)
            {
                return Err(unknown());
            }
            if jwks
                .failed_at
                .is_some_and(|t| t.elapsed() < JWKS_FAILURE_BACKOFF)
            {
                return Err(AppError::Unavailable {
                    service: Service::SupabaseAuth,
                    message: "the signing keys cannot be fetched right now".into(),
                });
            }
        }
        let fetched: Result<JwkSet, _> =
            upstream::send_json(Service::SupabaseAuth, self.http.get(&self.jwks_url)).await;
        let mut jwks = self.jwks.write().await;
        let set = match fetched {
            Ok(set) => set,
            Err(e) => {
                jwks.failed_at = Some(Instant::now());
                return Err(e.into());
            }
        };
        jwks.fetched_at = Some(Instant::now());
        jwks.failed_at = None;
        jwks.keys = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        jwks.keys.get(kid).cloned().ok_or_else(unknown)
    }
}
