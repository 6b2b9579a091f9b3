//! Users who sign in in the frontend (supabase-js, OAuth, magic links) and call the backend with
//! their access token are provisioned on first use, exactly once; with email confirmation on,
//! registration answers 202 and the account is set up at the first login after confirming.
//! Users are made with the official Supabase client, as a frontend would make them.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::helpers::*;

/// Runs the official client (`supabase_client.py`, in the tools venv `make test` installs).
pub(crate) fn supabase_client(args: &[&str]) -> Value {
    let python =
        std::env::var("LOCAL_TOOLS_PYTHON").expect("LOCAL_TOOLS_PYTHON (set by make test)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/api/supabase_client.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("the supabase client script");
    assert!(
        out.status.success(),
        "supabase_client.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[tokio::test]
async fn a_user_signed_up_with_supabase_js_is_provisioned_once_on_first_use() {
    let app = spawn_app().await;
    let (token, user_id, email) = signed_up_elsewhere(&app, "Nova Reed");

    // Several first requests at once: each answers as for a ready user, or 409 `provisioning`
    // with Retry-After while another one is finishing.
    let paths = [
        "/api/v1/auth/me",
        "/api/v1/agent/status",
        "/api/v1/user/health",
    ];
    let replies = futures_util::future::join_all(paths.iter().map(|p| app.get(p, &token))).await;
    for (path, reply) in paths.iter().zip(&replies) {
        match reply.status.as_u16() {
            200 => {}
            409 => {
                assert_eq!(
                    reply.body["error"]["code"], "provisioning",
                    "{path}: {}",
                    reply.body
                );
                assert_eq!(reply.headers["retry-after"], "2", "{path}");
            }
            other => panic!("{path}: {other} {}", reply.body),
        }
    }
    let me = me_when_ready(&app, &token).await;
    assert_eq!(me.body["profile"]["state"], "ready", "{}", me.body);
    assert_eq!(me.body["user"]["email"], email.as_str());
    // The name comes from the sign-up's user_metadata.
    assert_eq!(me.body["profile"]["display_name"], "Nova Reed");
    assert_eq!(me.body["profile"]["budget"]["max_budget"], 5.0);
    let events = app
        .chat(&token, "hello from supabase-js", None)
        .await
        .events();
    assert_eq!(text_of(&events), "echo: hello from supabase-js");
    assert_eq!(
        footprint(&app, &user_id).await,
        Footprint {
            supabase_user: true,
            litellm_user: true,
            litellm_keys: 1,
            letta_providers: 1,
            letta_agents: 1,
            letta_archives: 0, // Letta makes an agent's archive with its first memory
            dynamodb_items: 5, // the profile, the default conversation, two messages, the day's usage (no lock left)
        }
    );
}

/// A user signed up with the official client, never seen by the backend (the local project
/// confirms on sign-up): its access token, id and email.
fn signed_up_elsewhere(app: &TestApp, name: &str) -> (String, String, String) {
    let supabase = &app.state.config.supabase;
    let email = unique_email();
    let signed_up = supabase_client(&[
        "signup",
        &supabase.url,
        supabase.anon_key.expose(),
        &email,
        "correct-horse-battery",
        name,
    ]);
    assert_eq!(signed_up["confirmed"], true, "{signed_up}");
    let token = signed_up["access_token"].as_str().expect("a session");
    let id = signed_up["user_id"].as_str().unwrap();
    (token.to_string(), id.to_string(), email)
}

#[tokio::test]
async fn each_function_sets_up_an_account_it_is_the_first_to_see() {
    let app = spawn_app().await;
    // One new user per function, each calling that function first, alone: the function makes
    // the profile and provisions the account (as deployed, with its own role's grants).
    for path in [
        "/api/v1/auth/me",
        "/api/v1/agent/status",
        "/api/v1/user/profile",
        "/api/v1/conversations",
    ] {
        let (token, id, _) = signed_up_elsewhere(&app, "First Caller");
        let first = app.get(path, &token).await;
        assert_eq!(first.status, 200, "{path}: {}", first.body);
        let me = me_when_ready(&app, &token).await;
        assert_eq!(me.body["profile"]["state"], "ready", "{path}: {}", me.body);
        assert_eq!(me.body["user"]["id"], id.as_str(), "{path}");
    }
}

/// `GET /auth/me` once the account is ready (a concurrent first request may hold the lease).
async fn me_when_ready(app: &TestApp, token: &str) -> Reply {
    eventually(
        "the account ready",
        Duration::from_secs(60),
        || async move {
            let me = app.me(token).await;
            (me.status == 200).then_some(me)
        },
    )
    .await
}

/// A second auth server with email confirmation on (and anonymous sign-ins allowed), issuing tokens the backend accepts (same
/// issuer and secret as the stack's); stopped when dropped.
struct ConfirmingAuth {
    child: Child,
    url: String,
    _data: TempFile,
}

struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Drop for ConfirmingAuth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn confirming_auth() -> ConfirmingAuth {
    let config = stack_config();
    let port = free_port();
    let data =
        TempFile(std::env::temp_dir().join(format!("auth-confirm-{}.json", ulid::Ulid::new())));
    let secret = std::env::var("SUPABASE_JWT_SECRET").expect("SUPABASE_JWT_SECRET");
    let child = Command::new(workspace_binary("local-auth"))
        .env("AUTH_PORT", port.to_string())
        .env("AUTH_SIGNING_ALG", "HS256")
        .env("AUTH_JWT_SECRET", secret)
        .env("AUTH_ISSUER", &config.supabase.jwt_issuer)
        .env("AUTH_ANON_KEY", config.supabase.anon_key.expose())
        .env("AUTH_SERVICE_ROLE_KEY", service_role_key().as_str())
        .env("AUTH_MAILER_AUTOCONFIRM", "false")
        .env("AUTH_ANONYMOUS_USERS_ENABLED", "true")
        .env("AUTH_DATA_FILE", &data.0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("local-auth");
    let url = format!("http://127.0.0.1:{port}");
    let health = format!("{url}/auth/v1/health");
    let anon = config.supabase.anon_key.expose().to_string();
    eventually("the second auth server", Duration::from_secs(10), || {
        let (health, anon) = (health.clone(), anon.clone());
        async move {
            let res = reqwest::Client::new()
                .get(&health)
                .header("apikey", anon)
                .send()
                .await;
            res.ok().filter(|r| r.status().is_success())
        }
    })
    .await;
    ConfirmingAuth {
        child,
        url,
        _data: data,
    }
}

#[tokio::test]
async fn with_confirmation_on_the_account_is_set_up_at_the_first_login_after_confirming() {
    let auth = confirming_auth().await;
    // Only HS256 tokens can come from the second server with the stack's secret.
    let app = spawn_app_configured(|c| c.supabase.url = auth.url.clone()).await;
    let (email, password, reply) = app.register("Cleo").await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["status"], "confirmation_required");
    let user_id = reply.body["user"]["id"].as_str().unwrap().to_string();
    let login = app.login(&email, &password).await;
    assert_eq!(login.status, 403, "{}", login.body);
    assert_eq!(login.body["error"]["code"], "email_not_confirmed");
    let before = footprint_without_supabase(&app, &user_id).await;
    assert_eq!(
        before,
        (false, 0, 0),
        "nothing is provisioned before confirmation"
    );

    let confirmed = supabase_client(&["confirm", &auth.url, service_role_key().as_str(), &user_id]);
    assert_eq!(confirmed["confirmed"], true);
    let login = app.login(&email, &password).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["profile"]["state"], "ready", "{}", login.body);
    assert_eq!(login.body["profile"]["display_name"], "Cleo");
    assert_eq!(login.body["profile"]["budget"]["max_budget"], 5.0);
    assert_eq!(
        footprint_without_supabase(&app, &user_id).await,
        (true, 1, 1)
    );
    let token = login.body["session"]["access_token"].as_str().unwrap();
    let events = app
        .chat(token, "hello after confirming", None)
        .await
        .events();
    assert_eq!(text_of(&events), "echo: hello after confirming");
}

/// (LiteLLM user, its keys, Letta agents) of a user whose Supabase is not the stack's.
async fn footprint_without_supabase(app: &TestApp, user_id: &str) -> (bool, usize, usize) {
    let f = footprint(app, user_id).await;
    (f.litellm_user, f.litellm_keys, f.letta_agents)
}

#[tokio::test]
async fn a_user_without_a_confirmed_email_gets_no_budget() {
    // Anonymous sign-ins give a session without a confirmed email: an account, but no money.
    let auth = confirming_auth().await;
    let app = spawn_app_configured(|c| c.supabase.url = auth.url.clone()).await;
    let anon = app.state.config.supabase.anon_key.expose().to_string();
    let signed_in = supabase_client(&["anonymous", &auth.url, &anon, "Guest"]);
    assert_eq!(signed_in["confirmed"], false);
    let token = signed_in["access_token"].as_str().unwrap().to_string();
    let me = me_when_ready(&app, &token).await;
    assert_eq!(me.body["profile"]["state"], "ready", "{}", me.body);
    assert_eq!(me.body["profile"]["display_name"], "Guest");
    assert_eq!(
        me.body["profile"]["budget"]["max_budget"], 0.0,
        "{}",
        me.body
    );
    let refused = app.chat(&token, "hello", None).await.json();
    assert_eq!(refused.status, 402, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "budget_exceeded");
    // Nor can it give itself one.
    let raised = app.set_budget(&token, json!({"max_budget": 50})).await;
    assert_eq!(raised.status, 403, "{}", raised.body);
    assert_eq!(raised.body["error"]["code"], "email_not_confirmed");
    let me = app.me(&token).await;
    assert_eq!(me.body["profile"]["budget"]["max_budget"], 0.0);
}
