//! Access-token verification against the attacks a public API meets. HS256 tokens are signed
//! here with the configured secret; ES256 keys are served from a JWKS endpoint started here.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use axum::{Json, Router, routing::get};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::{
    AppError,
    app::{
        config::{JwtAlgorithm, SupabaseConfig},
        secret::Secret,
    },
    clients::jwks::JwtVerifier,
};

const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";
const SUB: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn config(url: &str, algorithms: Vec<JwtAlgorithm>) -> SupabaseConfig {
    SupabaseConfig {
        url: url.to_string(),
        anon_key: Secret::new("anon"),
        service_role_key: None,
        jwt_secret: Some(Secret::new(SECRET)),
        jwt_algorithms: algorithms,
        jwt_issuer: format!("{url}/auth/v1"),
    }
}

fn claims(iss: &str) -> Value {
    json!({
        "iss": format!("{iss}/auth/v1"), "sub": SUB, "aud": "authenticated", "role": "authenticated",
        "exp": now() + 3600, "iat": now(), "email": "ada@example.com", "session_id": "s1",
    })
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn hs_verifier() -> JwtVerifier {
    JwtVerifier::new(
        reqwest::Client::new(),
        &config("http://127.0.0.1:9", vec![JwtAlgorithm::Hs256]),
    )
}

async fn rejected(verifier: &JwtVerifier, token: &str) -> String {
    match verifier.verify(token).await {
        Err(AppError::Unauthorized(message)) => message,
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_hs256_token_is_accepted() {
    let token = hs256(&claims("http://127.0.0.1:9"), SECRET);
    let claims = hs_verifier().verify(&token).await.unwrap();
    assert_eq!(claims.sub, SUB);
    assert_eq!(claims.email.as_deref(), Some("ada@example.com"));
}

#[tokio::test]
async fn time_claims_are_enforced_with_a_small_leeway() {
    let v = hs_verifier();
    let mut c = claims("http://127.0.0.1:9");
    c["exp"] = json!(now() - 10);
    assert!(
        v.verify(&hs256(&c, SECRET)).await.is_ok(),
        "10 s of skew is tolerated"
    );
    c["exp"] = json!(now() - 120);
    assert!(rejected(&v, &hs256(&c, SECRET)).await.contains("expired"));
    let mut c = claims("http://127.0.0.1:9");
    c["nbf"] = json!(now() + 600);
    assert!(
        rejected(&v, &hs256(&c, SECRET))
            .await
            .contains("not valid yet")
    );
    // The documented leeway is 30 s, on both sides.
    let mut c = claims("http://127.0.0.1:9");
    c["exp"] = json!(now() - 29);
    assert!(v.verify(&hs256(&c, SECRET)).await.is_ok(), "29 s past exp");
    c["exp"] = json!(now() - 31);
    assert!(rejected(&v, &hs256(&c, SECRET)).await.contains("expired"));
    let mut c = claims("http://127.0.0.1:9");
    c["nbf"] = json!(now() + 29);
    assert!(
        v.verify(&hs256(&c, SECRET)).await.is_ok(),
        "29 s before nbf"
    );
    c["nbf"] = json!(now() + 31);
    assert!(
        rejected(&v, &hs256(&c, SECRET))
            .await
            .contains("not valid yet")
    );
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (its last element, an OCTET
/// STRING): jsonwebtoken signs with PKCS#1, aws-lc-rs exports PKCS#8.
fn pkcs1_of(pkcs8: &[u8]) -> &[u8] {
    // One DER element at the start of `der`: (tag, content, rest).
    fn element(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1] as usize);
        let (len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        };
        (tag, &der[header..header + len], &der[header + len..])
    }
    let (_, info, _) = element(pkcs8);
    let (_, _, rest) = element(info); // version
    let (_, _, rest) = element(rest); // algorithm
    let (tag, key, _) = element(rest);
    assert_eq!(tag, 0x04, "an OCTET STRING");
    key
}

#[tokio::test]
async fn rs256_tokens_verify_through_the_jwks() {
    use aws_lc_rs::{
        encoding::AsDer,
        rsa::{KeyPair as RsaKeyPair, KeySize},
        signature::KeyPair as _,
    };
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = pair.public_key();
    let jwk = json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "rsa-1",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero())});
    let (url, fetches) = serve_jwks(jwk).await;
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
    let key = EncodingKey::from_rsa_der(pkcs1_of(pkcs8.as_ref()));
    let sign = |claims: &Value, kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    };
    let rs = JwtVerifier::new(
        reqwest::Client::new(),
        &config(&url, vec![JwtAlgorithm::Rs256]),
    );
    let c = claims(&url);
    assert_eq!(rs.verify(&sign(&c, "rsa-1")).await.unwrap().sub, SUB);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Tampered claims fail the signature; an HS256-only verifier refuses RS256 outright.
    let token = sign(&c, "rsa-1");
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut other = c.clone();
    other["sub"] = json!("7a9619ff-8b86-d011-b42d-00c04fc964ff");
    let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
    parts[1] = &forged;
    rejected(&rs, &parts.join(".")).await;
    let hs_only = JwtVerifier::new(
        reqwest::Client::new(),
        &config(&url, vec![JwtAlgorithm::Hs256]),
    );
    assert!(rejected(&hs_only, &token).await.contains("algorithm"));
}

#[tokio::test]
async fn audience_issuer_and_role_are_checked() {
    let v = hs_verifier();
    for (field, value) in [
        ("aud", "anon"),
        ("iss", "https://evil.example/auth/v1"),
        ("role", "anon"),
        ("role", "service_role"),
    ] {
        let mut c = claims("http://127.0.0.1:9");
        c[field] = json!(value);
        rejected(&v, &hs256(&c, SECRET)).await;
    }
    let mut c = claims("http://127.0.0.1:9");
    c.as_object_mut().unwrap().remove("exp");
    rejected(&v, &hs256(&c, SECRET)).await;
}

#[tokio::test]
async fn wrong_key_tampering_none_and_other_algorithms_are_rejected() {
    let v = hs_verifier();
    let c = claims("http://127.0.0.1:9");
    rejected(&v, &hs256(&c, "another-secret-of-the-same-length-xxxxxx")).await;

    // Tampered payload: another user's id under the original signature.
    let token = hs256(&c, SECRET);
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = c.clone();
    forged["sub"] = json!("00000000-0000-4000-8000-000000000000");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    rejected(&v, &tampered).await;

    // alg: none, with and without a signature part.
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(c.to_string());
    rejected(&v, &format!("{none}.{payload}.")).await;
    rejected(&v, &format!("{none}.{payload}")).await;

    // A real signature with an algorithm that is not configured.
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert!(rejected(&v, &hs384).await.contains("algorithm"));

    for garbage in ["", "abc", "a.b.c", "Bearer x"] {
        rejected(&v, garbage).await;
    }
}

struct Jwks {
    url: String,
    fetches: Arc<AtomicUsize>,
    key: EncodingKey,
    kid: String,
    public_xy: Vec<u8>,
}

/// Serves a JWKS with one key at Supabase's path; returns its base URL and a fetch counter.
async fn serve_jwks(jwk: Value) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = Router::new().route(
        "/auth/v1/.well-known/jwks.json",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let jwk = jwk.clone();
            async move { Json(json!({"keys": [jwk]})) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fetches)
}

async fn jwks_server() -> Jwks {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let kid = "test-kid-1".to_string();
    let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
    let (url, fetches) = serve_jwks(jwk).await;
    Jwks {
        url,
        fetches,
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        kid,
        public_xy: point[1..].to_vec(),
    }
}

fn es256(jwks: &Jwks, claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &jwks.key).unwrap()
}

#[tokio::test]
async fn es256_tokens_verify_through_a_cached_jwks() {
    let jwks = jwks_server().await;
    let v = JwtVerifier::new(
        reqwest::Client::new(),
        &config(&jwks.url, vec![JwtAlgorithm::Es256]),
    )
    // Long enough that no step below, however slow the machine, spans it by accident.
    .with_refetch_interval(Duration::from_secs(2));
    let c = claims(&jwks.url);
    let before_first_fetch = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(
            v.verify(&es256(&jwks, &c, &jwks.kid)).await.unwrap().sub,
            SUB
        );
    }
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1, "the JWKS is cached");

    // Unknown key ids refetch the JWKS, but no sooner than the interval after the last fetch.
    rejected(&v, &es256(&jwks, &c, "rotated-kid")).await;
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        1,
        "too soon after the first fetch"
    );
    // Once the interval has passed, an unknown kid refetches (polled: no sleep to race) …
    let started = std::time::Instant::now();
    while jwks.fetches.load(Ordering::SeqCst) < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "no refetch");
        tokio::time::sleep(Duration::from_millis(100)).await;
        rejected(&v, &es256(&jwks, &c, "rotated-kid")).await;
    }
    assert!(
        before_first_fetch.elapsed() >= Duration::from_secs(2),
        "not before the interval: {:?}",
        before_first_fetch.elapsed()
    );
    // … and the next one, right after, does not.
    rejected(&v, &es256(&jwks, &c, "another-kid")).await;
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        2,
        "one refetch per interval"
    );
}

#[tokio::test]
async fn hs_rs_confusion_is_rejected() {
    let jwks = jwks_server().await;
    let c = claims(&jwks.url);
    // The public key used as an HMAC secret, against a verifier that only takes ES256 …
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(&jwks.public_xy),
    )
    .unwrap();
    let es_only = JwtVerifier::new(
        reqwest::Client::new(),
        &config(&jwks.url, vec![JwtAlgorithm::Es256]),
    );
    rejected(&es_only, &confused).await;
    // … and against one that takes both: HS256 is checked with the secret, never a public key.
    let both = JwtVerifier::new(
        reqwest::Client::new(),
        &config(&jwks.url, vec![JwtAlgorithm::Hs256, JwtAlgorithm::Es256]),
    );
    rejected(&both, &confused).await;
    assert!(both.verify(&es256(&jwks, &c, &jwks.kid)).await.is_ok());
    // An ES256 token whose kid is missing.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = None;
    rejected(
        &es_only,
        &jsonwebtoken::encode(&header, &c, &jwks.key).unwrap(),
    )
    .await;
}

#[tokio::test]
async fn the_jwks_being_unreachable_is_a_503_not_a_401() {
    let v = JwtVerifier::new(
        reqwest::Client::new(),
        &config("http://127.0.0.1:9", vec![JwtAlgorithm::Es256]),
    );
    let jwks = jwks_server().await;
    let err = v
        .verify(&es256(&jwks, &claims("http://127.0.0.1:9"), &jwks.kid))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Unavailable { .. }), "{err:?}");
}

/// A JWKS endpoint that answers 500 after a pause, counting its calls.
async fn failing_jwks_server() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/auth/v1/.well-known/jwks.json",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

#[tokio::test]
async fn random_kids_cause_one_fetch_at_a_time_and_failures_are_not_retried_at_once() {
    // Thirty tokens with random key ids at once: one fetch; the rest learn from it.
    let jwks = jwks_server().await;
    let v = Arc::new(JwtVerifier::new(
        reqwest::Client::new(),
        &config(&jwks.url, vec![JwtAlgorithm::Es256]),
    ));
    let c = claims(&jwks.url);
    let attempts = (0..30).map(|i| {
        let (v, token) = (v.clone(), es256(&jwks, &c, &format!("random-{i}")));
        tokio::spawn(async move { v.verify(&token).await })
    });
    for attempt in futures_util::future::join_all(attempts).await {
        assert!(matches!(attempt.unwrap(), Err(AppError::Unauthorized(_))));
    }
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
    assert!(v.verify(&es256(&jwks, &c, &jwks.kid)).await.is_ok());

    // Supabase failing: one attempt, and the others answered 503 without another call.
    let (url, calls) = failing_jwks_server().await;
    let v = Arc::new(JwtVerifier::new(
        reqwest::Client::new(),
        &config(&url, vec![JwtAlgorithm::Es256]),
    ));
    let c = claims(&url);
    let attempts = (0..10).map(|i| {
        let (v, token) = (v.clone(), es256(&jwks, &c, &format!("random-{i}")));
        tokio::spawn(async move { v.verify(&token).await })
    });
    for attempt in futures_util::future::join_all(attempts).await {
        assert!(matches!(
            attempt.unwrap(),
            Err(AppError::Unavailable { .. })
        ));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "failures are cached briefly"
    );
}
