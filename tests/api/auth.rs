//! Accounts end to end: registration with provisioning, login, refresh, logout, me, deletion,
//! and the input and token checks, against the real local services.

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn register_then_login_then_me_gives_a_ready_account_with_one_of_everything() {
    let app = spawn_app().await;
    let (email, password, reply) = app.register("Ada Lovelace").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(body["user"]["email"], email.as_str());
    assert_eq!(body["session"]["token_type"], "bearer");
    assert_eq!(body["profile"]["state"], "ready");
    assert_eq!(body["profile"]["display_name"], "Ada Lovelace");
    assert_eq!(body["profile"]["model"], "gpt-4");
    assert_eq!(
        body["profile"]["budget"]["max_budget"], 5.0,
        "the documented default budget (the local stack keeps the defaults)"
    );
    assert!(
        body["profile"]["agent_id"]
            .as_str()
            .unwrap()
            .starts_with("agent-")
    );
    let user_id = body["user"]["id"].as_str().unwrap().to_string();
    // No key material in the answer.
    assert!(!body.to_string().contains("sk-"), "{body}");

    let login = app
        .post(
            "/api/v1/auth/login",
            json!({"email": email.to_uppercase(), "password": password}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["user"]["id"], user_id.as_str());
    let token = login.body["session"]["access_token"].as_str().unwrap();

    let me = app.me(token).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["user"]["id"], user_id.as_str());
    assert_eq!(me.body["user"]["email"], email.as_str());
    assert!(
        me.body["user"]["created_at"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(me.body["profile"]["agent_id"], body["profile"]["agent_id"]);
    assert_eq!(me.body["profile"]["budget"]["spend"], 0.0);

    let fp = footprint(&app, &user_id).await;
    assert_eq!(
        fp,
        Footprint {
            supabase_user: true,
            litellm_user: true,
            litellm_keys: 1,
            letta_providers: 1,
            letta_agents: 1,
            letta_archives: 0, // Letta makes an agent's archive with its first memory
            dynamodb_items: 1
        }
    );
    // The agent calls the LLM through the user's own provider, with max_tokens set.
    let agent = app
        .state
        .letta
        .get_agent(body["profile"]["agent_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(agent.llm_config["provider_name"], format!("user-{user_id}"));
    assert_eq!(agent.llm_config["provider_category"], "byok");
    assert_eq!(agent.llm_config["max_tokens"], 1024);
}

#[tokio::test]
async fn a_taken_email_is_409_email_taken() {
    let app = spawn_app().await;
    let (email, _, first) = app.register("First").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = app
        .post(
            "/api/v1/auth/register",
            json!({"email": email, "password": "another-password"}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["error"]["code"], "email_taken");
}

#[tokio::test]
async fn bad_registration_input_is_a_4xx_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"password": "long-enough-pw"}), 422, "email"),
        (
            json!({"email": "not-an-email", "password": "long-enough-pw"}),
            422,
            "email",
        ),
        (
            json!({"email": unique_email(), "password": "short"}),
            422,
            "password",
        ),
        (
            json!({"email": unique_email(), "password": "x".repeat(80)}),
            422,
            "password",
        ),
        (
            json!({"email": unique_email(), "password": "long-enough-pw", "display_name": "n".repeat(65)}),
            422,
            "display_name",
        ),
        (
            json!({"email": unique_email(), "password": "long-enough-pw", "display_name": "   "}),
            422,
            "display_name",
        ),
        (
            json!({"email": unique_email(), "password": "long-enough-pw", "admin": true}),
            422,
            "admin",
        ),
        (
            json!({"email": 42, "password": "long-enough-pw"}),
            422,
            "body",
        ),
    ];
    for (body, status, field) in cases {
        let reply = app.post("/api/v1/auth/register", body.clone()).await;
        assert_eq!(reply.status, status, "{body} -> {}", reply.body);
        assert_eq!(
            reply.body["error"]["code"], "validation_failed",
            "{}",
            reply.body
        );
        assert_eq!(
            reply.body["error"]["field"], field,
            "{body} -> {}",
            reply.body
        );
    }

    let raw = |body: &'static str, content_type: &'static str| {
        app.http
            .post(format!("{}/api/v1/auth/register", app.base))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let res = raw("{\"email\": ", "application/json").await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    let res = raw("email=a", "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "unsupported_media_type"
    );

    // The documented limit, 262,144 bytes: a body of exactly that size is read (and refused for
    // its too long name), one byte more is 413.
    let sized = |bytes: usize| {
        let mut body =
            json!({"email": unique_email(), "password": "long-enough-pw", "display_name": ""});
        let pad = bytes - body.to_string().len();
        body["display_name"] = json!("x".repeat(pad));
        assert_eq!(body.to_string().len(), bytes);
        body
    };
    let reply = app.post("/api/v1/auth/register", sized(262_144)).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.body["error"]["field"], "display_name");
    let reply = app.post("/api/v1/auth/register", sized(262_145)).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let app = spawn_app().await;
    let (email, _, reply) = app.register("Bob").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let wrong = app
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "wrong-password"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            json!({"email": unique_email(), "password": "wrong-password"}),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.headers["www-authenticate"], "Bearer");
    assert_eq!(wrong.body["error"]["code"], "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(unknown.status, 401);
    let empty = app
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": ""}),
        )
        .await;
    assert_eq!(empty.status, 422);
    assert_eq!(empty.body["error"]["field"], "password");
}

#[tokio::test]
async fn refresh_rotates_and_logout_ends_the_session() {
    let app = spawn_app().await;
    let (email, password, reply) = app.register("Cy").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let login = app.login(&email, &password).await;
    let refresh_token = login.body["session"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();

    let refreshed = app.refresh(&refresh_token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let new_refresh = refreshed.body["session"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let new_access = refreshed.body["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_refresh, refresh_token);
    assert_eq!(app.me(&new_access).await.status, 200);

    let reused = app.refresh(&refresh_token).await;
    assert_eq!(reused.status, 401, "{}", reused.body);
    let bogus = app.refresh("nope").await;
    assert_eq!(bogus.status, 401, "{}", bogus.body);
    let missing = app.post("/api/v1/auth/refresh", json!({})).await;
    assert_eq!(missing.status, 422);

    // Other sessions of the user: the one registration opened and one on another device.
    let other = app.login(&email, &password).await;
    assert_eq!(other.status, 200, "{}", other.body);
    let session = |r: &Reply, token: &str| r.body["session"][token].as_str().unwrap().to_string();
    let others = [
        (
            session(&reply, "access_token"),
            session(&reply, "refresh_token"),
        ),
        (
            session(&other, "access_token"),
            session(&other, "refresh_token"),
        ),
    ];
    // (Reusing the rotated token ended the refreshed session at Supabase, as GoTrue's reuse
    // detection does: log out from a live one, the second device's.)
    let out = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            Some(&others[1].0),
            None,
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.body);
    // The access token is refused from now on, though Supabase would let it live an hour.
    let me = app.me(&new_access).await;
    assert_eq!(me.status, 401, "{}", me.body);
    let history = app.history(&new_access, "").await;
    assert_eq!(history.status, 401, "{}", history.body);
    let after = app.refresh(&new_refresh).await;
    assert_eq!(after.status, 401, "{}", after.body);
    // Every other session ended too, as the README says.
    for (access, refresh) in &others {
        assert_eq!(app.me(access).await.status, 401);
        let refreshed = app.refresh(refresh).await;
        assert_eq!(refreshed.status, 401, "{}", refreshed.body);
    }
    // A new sign-in works again.
    let back = app.login(&email, &password).await;
    // At once: logout answers once the second of its revocation is over.
    let token = back.body["session"]["access_token"].as_str().unwrap();
    assert_eq!(app.me(token).await.status, 200);
}

#[tokio::test]
async fn a_token_issued_in_the_second_of_a_revocation_is_refused() {
    let app = spawn_app().await;
    let TestUser { id: user_id, .. } = app.ready_user("Sam").await;
    let id = shared::domain::UserId::parse(&user_id).unwrap();
    let second = now();
    let before = sign_hs256(&claims_for(&user_id, second - 1));
    let same = sign_hs256(&claims_for(&user_id, second));
    let after = sign_hs256(&claims_for(&user_id, second + 1));
    app.state.store.revoke_sessions(&id, second).await.unwrap();
    // `iat` is whole seconds: a token of the revocation's second may predate it.
    for (token, status) in [(&before, 401), (&same, 401), (&after, 200)] {
        let history = app.history(token, "").await;
        assert_eq!(history.status, status, "{}", history.body);
    }
}

#[tokio::test]
async fn bad_tokens_are_401_json_never_500() {
    let app = spawn_app().await;
    let TestUser { id: user_id, .. } = app.ready_user("Dee").await;

    let none = app.call(Method::GET, "/api/v1/auth/me", None, None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    assert_eq!(none.body["error"]["code"], "unauthorized");

    let mut expired = claims_for(&user_id, now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = claims_for(&user_id, now());
    wrong_aud["aud"] = json!("anon");
    let valid = sign_hs256(&claims_for(&user_id, now()));
    let parts: Vec<&str> = valid.split('.').collect();
    let tampered = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
    let none_alg = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    for token in [
        sign_hs256(&expired),
        sign_hs256(&wrong_aud),
        tampered,
        none_alg,
        "garbage".into(),
    ] {
        let reply = app.me(&token).await;
        assert_eq!(reply.status, 401, "{token}: {}", reply.body);
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
        assert_eq!(reply.body["error"]["code"], "unauthorized");
    }
    let basic = app
        .http
        .get(format!("{}/api/v1/auth/me", app.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    // A valid signature for a user Supabase does not know: no account is made for it.
    let stranger = sign_hs256(&claims_for("00000000-0000-4000-8000-000000000001", now()));
    let reply = app.me(&stranger).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn deleting_the_account_leaves_nothing_in_any_system() {
    let app = spawn_app().await;
    let TestUser {
        password,
        token,
        id: user_id,
        ..
    } = app.ready_user("Eve").await;
    let profile = app.me(&token).await;
    let agent_id = profile.body["profile"]["agent_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Give the agent archival memory, so an archive exists that deleting the agent alone leaves.
    let insert = app
        .letta(
            Method::POST,
            &format!("/v1/agents/{agent_id}/archival-memory"),
        )
        .json(&json!({"text": "Eve keeps bees."}));
    assert!(insert.send().await.unwrap().status().is_success());
    let archives = app.state.letta.agent_archive_ids(&agent_id).await.unwrap();
    assert_eq!(archives.len(), 1);
    assert_eq!(footprint(&app, &user_id).await.letta_archives, 1);

    // A stale token is not enough; the wrong password neither.
    let stale = sign_hs256(&claims_for(&user_id, now() - 3000));
    let reply = app.delete_account(&stale, None).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "reauthentication_required");
    let reply = app.delete_account(&stale, Some("wrong-password")).await;
    assert_eq!(reply.status, 401, "{}", reply.body);

    let reply = app.delete_account(&stale, Some(&password)).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(footprint(&app, &user_id).await, Footprint::nothing());
    let archive = app.letta(Method::GET, &format!("/v1/archives/{}", archives[0]));
    assert_eq!(
        archive.send().await.unwrap().status(),
        404,
        "the agent's archive is gone too"
    );

    // A fresh token alone is not enough either (a stolen refresh token makes fresh ones).
    let TestUser {
        password: fay_password,
        token,
        id: user_id,
        ..
    } = app.ready_user("Fay").await;
    let reply = app.delete_account(&token, None).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "reauthentication_required");
    assert!(footprint(&app, &user_id).await.supabase_user);
    let reply = app.delete_account(&token, Some(&fay_password)).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert!(!footprint(&app, &user_id).await.supabase_user);
    // Gone: the password opens nothing any more.
    let reply = app.delete_account(&token, Some(&fay_password)).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    // Deletion ends every session: the token, still within its lifetime, opens no endpoint and
    // brings no account back.
    for path in [
        "/api/v1/auth/me",
        "/api/v1/user/profile",
        "/api/v1/agent/status",
        "/api/v1/chat/history",
    ] {
        let reply = app.get(path, &token).await;
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
    }
    let reply = app
        .post_with("/api/v1/chat/message", &token, json!({"content": "hello?"}))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(footprint(&app, &user_id).await.dynamodb_items, 0);
}

#[tokio::test]
async fn deleting_an_account_waits_for_the_provisioning_lease() {
    let app = spawn_app().await;
    let TestUser {
        password,
        token,
        id: user_id,
        ..
    } = app.ready_user("Lee").await;
    let id = shared::domain::UserId::parse(&user_id).unwrap();
    // Another request is setting the account up (a first request, a migration, a repair).
    let lease = app
        .state
        .store
        .lock_provisioning(&id, 60)
        .await
        .unwrap()
        .expect("the lease");
    let busy = app.delete_account(&token, Some(&password)).await;
    assert_eq!(busy.status, 409, "{}", busy.body);
    assert_eq!(busy.body["error"]["code"], "provisioning", "{}", busy.body);
    // Nothing was touched: the token still works and the account is whole.
    let before = footprint(&app, &user_id).await;
    assert!(
        before.supabase_user && before.letta_agents == 1,
        "{before:?}"
    );
    app.state
        .store
        .unlock_provisioning(&id, &lease)
        .await
        .unwrap();
    let deleted = app.delete_account(&token, Some(&password)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(footprint(&app, &user_id).await, Footprint::nothing());
}
