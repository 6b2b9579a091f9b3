//! Rate limits against the real stack: counted in DynamoDB, 429 `rate_limited` with
//! `Retry-After` and the limit's name, and a refused request does nothing else.

use std::net::{IpAddr, Ipv4Addr};

use crate::helpers::*;
use serde_json::json;

/// A client whose connections come from its own loopback address (127.0.0.2 and up reach the
/// gateway on 127.0.0.1), so its per-IP counter is its own.
fn client_from(last_octet: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)))
        .build()
        .unwrap()
}

/// Waits for a new minute when the current one ends within 20 s, so a test's requests share
/// one fixed window.
async fn early_in_a_minute() {
    early_in_a_window(60).await;
}

/// Waits for a new fixed window of `secs` when the current one ends within 20 s.
async fn early_in_a_window(secs: i64) {
    let second = shared::app::clock::now_epoch() % secs;
    if second > secs - 20 {
        tokio::time::sleep(std::time::Duration::from_secs((secs + 1 - second) as u64)).await;
    }
}

fn limited(reply: &Reply, limit: &str) {
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "rate_limited");
    assert_eq!(reply.body["error"]["limit"], limit);
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let window = match limit {
        l if l.ends_with("per_day") => 86_400,
        "password_failures" => 900,
        _ => 60,
    };
    assert!((1..=window).contains(&retry), "retry-after {retry}");
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_client_ip() {
    let mut app = spawn_app_configured(|c| c.rates.auth_per_minute = 3).await;
    let octet = 2 + (std::process::id() % 200) as u8;
    app.http = client_from(octet);
    early_in_a_minute().await;
    let (email, password, reply) = app.register("Limited").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    for _ in 0..2 {
        assert_eq!(app.login(&email, &password).await.status, 200);
    }
    let refused = app.login(&email, &password).await;
    limited(&refused, "auth_per_minute");
    let refused = app
        .post(
            "/api/v1/auth/register",
            json!({"email": unique_email(), "password": "correct-horse-battery"}),
        )
        .await;
    limited(&refused, "auth_per_minute");
    // Another address has its own counter.
    app.http = client_from(octet + 1);
    assert_eq!(app.login(&email, &password).await.status, 200);
}

#[tokio::test]
async fn behind_cloudfront_the_viewer_address_counts_only_when_the_origin_secret_vouches_for_it() {
    let mut app = spawn_app_configured(|c| {
        c.rates.auth_per_minute = 2;
        c.http.cloudfront_origin_secret = Some(shared::app::secret::Secret::new(
            "origin-secret-for-the-test",
        ));
    })
    .await;
    // One address for the whole test: "CloudFront" and the forger share it.
    app.http = client_from(210 + (std::process::id() % 40) as u8);
    early_in_a_minute().await;
    let viewer = format!("198.51.100.{}", std::process::id() % 250);
    let attempt = |secret: &'static str, viewer: String| {
        let app = &app;
        async move {
            let reply = app
                .http
                .post(format!("{}/api/v1/auth/login", app.base))
                .header("x-origin-verify", secret)
                .header("cloudfront-viewer-address", format!("{viewer}:44321"))
                .json(&json!({"email": unique_email(), "password": "wrong-password-1"}))
                .send()
                .await
                .unwrap();
            reply.status().as_u16()
        }
    };
    // Vouched for: each viewer has its own counter, apart from the connection's.
    for _ in 0..2 {
        assert_eq!(
            attempt("origin-secret-for-the-test", viewer.clone()).await,
            401
        );
    }
    assert_eq!(
        attempt("origin-secret-for-the-test", viewer.clone()).await,
        429
    );
    let other_viewer = format!("203.0.113.{}", std::process::id() % 250);
    assert_eq!(
        attempt("origin-secret-for-the-test", other_viewer).await,
        401
    );
    // Not vouched for (a client calling the function URL with a made-up header): the header is
    // ignored and the connection's own address counts, whatever viewer it names.
    for n in 0..2u8 {
        assert_eq!(attempt("guessed", format!("192.0.2.{n}")).await, 401);
    }
    assert_eq!(attempt("guessed", "192.0.2.99".into()).await, 429);
}

#[tokio::test]
async fn chat_turns_and_requests_are_limited_per_user_and_a_refused_turn_does_nothing() {
    let app = spawn_app_configured(|c| {
        c.rates.chat_per_minute = 2;
        c.rates.chat_per_day = 3;
        c.rates.requests_per_minute = 4;
    })
    .await;
    let TestUser {
        token, id: user_id, ..
    } = app.ready_user("Chatty").await;
    let TestUser { token: other, .. } = app.ready_user("Quiet").await;
    early_in_a_minute().await;
    for text in ["one", "two"] {
        let events = app.chat(&token, text, None).await.events();
        assert!(names(&events).contains(&"done"), "{events:?}");
    }
    let refused = app.chat(&token, "three", None).await.json();
    limited(&refused, "chat_per_minute");
    // Nothing of the refused turn: no message stored, and the day's count did not move.
    let history = app.history(&token, "").await;
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 4);
    let now = shared::app::clock::now_epoch();
    let day_item = app
        .raw_item(
            &format!("LIMIT#USER#{user_id}"),
            &format!("RATE#chat_per_day#{}", now - now % 86_400),
        )
        .await
        .expect("the day's counter");
    assert_eq!(day_item["hits"], 2);
    assert!(day_item["ttl"].as_i64().unwrap() > now);
    // The other user is not affected.
    let events = app.chat(&other, "hello", None).await.events();
    assert!(names(&events).contains(&"done"), "{events:?}");

    // Other requests: history above was the first of four this minute.
    for _ in 0..3 {
        assert_eq!(app.profile(&token).await.status, 200);
    }
    limited(&app.profile(&token).await, "requests_per_minute");
}

#[tokio::test]
async fn chat_turns_are_limited_per_day() {
    let app = spawn_app_configured(|c| c.rates.chat_per_day = 2).await;
    let TestUser { token, .. } = app.ready_user("Daily").await;
    for text in ["one", "two"] {
        app.chat(&token, text, None).await.events();
    }
    limited(
        &app.chat(&token, "three", None).await.json(),
        "chat_per_day",
    );
}

#[tokio::test]
async fn failed_passwords_are_limited_per_account_whatever_the_address() {
    let mut app = spawn_app_configured(|c| c.rates.password_failures = 3).await;
    let (email, password, reply) = app.register("Guessed").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let token = reply.body["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    early_in_a_window(900).await;
    // Three wrong guesses, each from another address (the per-address limit never sees two),
    // from addresses no other test of this binary uses (they share the per-address counters).
    let first = 250;
    for n in 0..3 {
        app.http = client_from(first + n);
        let wrong = app.login(&email, "not-the-password").await;
        assert_eq!(wrong.status, 401, "{}", wrong.body);
    }
    // From a fourth address, the right password is refused too, and so is deletion's check.
    app.http = client_from(first + 3);
    limited(&app.login(&email, &password).await, "password_failures");
    limited(
        &app.delete_account(&token, Some(&password)).await,
        "password_failures",
    );
    // The limit is the account's: another account signs in from the same address.
    let (other, other_password, _) = app.register("Unguessed").await;
    assert_eq!(app.login(&other, &other_password).await.status, 200);
}
