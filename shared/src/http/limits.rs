//! Rate limits at the edge of every function, counted in DynamoDB (see `store::limits`) so
//! they hold across Lambda instances: per user (`flows::gate`, checked with the token, before
//! any work), chat turns per minute and per day and other requests per minute; per client IP,
//! sign-up and sign-in attempts per minute. A refused request is 429 `rate_limited` with `Retry-After` and
//! the limit's name, and nothing else happens.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};

use subtle::ConstantTimeEq;

use crate::{
    app::{error::AppError, secret::Secret},
    state::AppState,
    store::RateLimit,
};

const MINUTE: i64 = 60;

/// The client's address: the function URL event's `requestContext.http.sourceIp` on Lambda, the
/// socket's peer in the local gateway; never a header a client can set. Behind the optional
/// CloudFront distribution, `CloudFront-Viewer-Address` — only on a request that carries the
/// origin secret CloudFront adds (`x-origin-verify`), which no client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

/// The header CloudFront adds to origin requests with the configured secret.
pub const ORIGIN_VERIFY: &str = "x-origin-verify";

impl ClientIp {
    fn of(parts: &Parts, origin_secret: Option<&Secret>) -> Self {
        use lambda_http::request::RequestContext;
        let vouched = origin_secret.is_some_and(|secret| {
            parts
                .headers
                .get(ORIGIN_VERIFY)
                .is_some_and(|v| bool::from(v.as_bytes().ct_eq(secret.expose().as_bytes())))
        });
        let from_cloudfront = || {
            vouched
                .then(|| {
                    parts
                        .headers
                        .get("cloudfront-viewer-address")?
                        .to_str()
                        .ok()
                })
                .flatten()
                .and_then(viewer_ip)
        };
        let from_lambda = || match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok())
            }
            _ => None,
        };
        let from_socket = || {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        };
        Self(from_cloudfront().or_else(from_lambda).or_else(from_socket))
    }
}

/// The address of `CloudFront-Viewer-Address` (`ip:port`; IPv6 without brackets).
fn viewer_ip(value: &str) -> Option<IpAddr> {
    let (ip, port) = value.trim().rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.trim_matches(['[', ']']).parse().ok()
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(
            parts,
            state.config.http.cloudfront_origin_secret.as_ref(),
        ))
    }
}

/// A sign-up or sign-in attempt (register, login, refresh), counted per client IP before
/// anything else happens; as an extractor, the handler runs only when the limit allows it.
pub struct AuthAttempt;

impl FromRequestParts<AppState> for AuthAttempt {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ClientIp(ip) = ClientIp::of(parts, state.config.http.cloudfront_origin_secret.as_ref());
        let limit = RateLimit {
            name: "auth_per_minute",
            max: state.config.rates.auth_per_minute,
            window_secs: MINUTE,
        };
        match state.store.hit_client(ip, &[limit]).await? {
            Some(exceeded) => Err(exceeded.into()),
            None => Ok(Self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_addresses_are_read_with_their_port_cut_off() {
        assert_eq!(
            viewer_ip("198.51.100.10:46532"),
            "198.51.100.10".parse().ok()
        );
        assert_eq!(
            viewer_ip("2001:db8:85a3::8a2e:370:7334:46532"),
            "2001:db8:85a3::8a2e:370:7334".parse().ok()
        );
        assert_eq!(viewer_ip("[2001:db8::1]:443"), "2001:db8::1".parse().ok());
        assert_eq!(
            viewer_ip("198.51.100.10"),
            None,
            "no port: not CloudFront's format"
        );
        assert_eq!(viewer_ip("nonsense:1"), None);
    }
}
