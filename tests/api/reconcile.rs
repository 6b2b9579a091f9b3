//! The reconciler: each kind of disagreement between the four systems is made on purpose (with
//! plain HTTP to Supabase, LiteLLM and Letta, or straight to the table), found, and repaired
//! with `--fix` where that is safe; the command's exit code tells whether anything is left.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::Method;
use serde_json::{Value, json};
use shared::domain::UserId;

use crate::{
    helpers::*,
    http_tap::{self, Rule},
    migration::previous_version_user,
};

/// One reconciler run over these users, as its report's JSON.
async fn reconcile(app: &TestApp, users: &[&str], fix: bool) -> Value {
    let users = users.iter().map(|u| UserId::parse(u).unwrap()).collect();
    let report = reconciler::run(&app.state, users, fix)
        .await
        .expect("a run");
    serde_json::to_value(&report).unwrap()
}

/// The findings about one user, as `(kind, fixed)`.
fn kinds(report: &Value, user: &str) -> Vec<(String, bool)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["user"] == user)
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["fixed"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn finding<'a>(report: &'a Value, user: &str, kind: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["user"] == user && f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} for {user}: {report}"))
}

async fn delete_identity(app: &TestApp, user: &str) {
    let url = format!(
        "{}/auth/v1/admin/users/{user}",
        app.state.config.supabase.url
    );
    let res = app
        .http
        .delete(url)
        .header("apikey", service_role_key())
        .bearer_auth(service_role_key())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Deletes every item of the user's partition straight from the table.
async fn delete_items(app: &TestApp, user: &str) {
    let db = dynamodb(&app.state.config).await;
    let table = app.state.store.table_name();
    let items = db
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("USER#{user}")))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    for item in items {
        db.delete_item()
            .table_name(table)
            .key("pk", item["pk"].clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }
}

async fn set_item_field(app: &TestApp, user: &str, sk: &str, field: &str, value: AttributeValue) {
    dynamodb(&app.state.config)
        .await
        .update_item()
        .table_name(app.state.store.table_name())
        .key("pk", AttributeValue::S(format!("USER#{user}")))
        .key("sk", AttributeValue::S(sk.into()))
        .update_expression("SET #f = :v")
        .expression_attribute_names("#f", field)
        .expression_attribute_values(":v", value)
        .send()
        .await
        .unwrap();
}

fn number(v: f64) -> AttributeValue {
    AttributeValue::N(format!("{v}"))
}

/// A user whose provisioning stopped before the agent: the agent gone, the state one step
/// back. Returns the user and the agent's old id.
async fn unfinished_user(app: &TestApp) -> (TestUser, String) {
    let user = app.ready_user("Unfinished").await;
    let agent = app.agent_id(&user.token).await;
    let deleted = app
        .letta(Method::DELETE, &format!("/v1/agents/{agent}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let state = AttributeValue::S("letta_provider".into());
    set_item_field(app, &user.id, "PROFILE", "state", state).await;
    (user, agent)
}

/// A user with a second key and a second agent left by earlier tries. Returns the user, the
/// extra agent's id and the profile's agent id.
async fn user_with_leftovers(app: &TestApp) -> (TestUser, String, String) {
    let user = app.ready_user("Leftovers").await;
    let key = app
        .litellm(Method::POST, "/key/generate")
        .json(&json!({"user_id": user.id, "key_alias": format!("user-{}-extra", user.id)}))
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 200);
    let id = UserId::parse(&user.id).unwrap();
    let profile = app.state.store.get_profile(&id).await.unwrap().unwrap();
    let extra = shared::flows::provisioning::create_agent(&app.state, &profile)
        .await
        .unwrap();
    let before = footprint(app, &user.id).await;
    assert_eq!((before.litellm_keys, before.letta_agents), (2, 2));
    (user, extra.id, profile.letta_agent_id.unwrap())
}

/// A ready user whose Letta provider was deleted in Letta.
async fn user_without_provider(app: &TestApp) -> TestUser {
    let user = app.ready_user("Broken").await;
    let id = UserId::parse(&user.id).unwrap();
    let profile = app.state.store.get_profile(&id).await.unwrap().unwrap();
    let provider = profile.letta_provider_id.unwrap();
    let deleted = app
        .letta(Method::DELETE, &format!("/v1/providers/{provider}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    user
}

/// A user with an archive named for their agent but attached to none.
async fn user_with_loose_archive(app: &TestApp) -> TestUser {
    let user = app.ready_user("Loose").await;
    let archive = app
        .letta(Method::POST, "/v1/archives/")
        .json(&json!({"name": format!("agent-{}'s Archive", user.id)}))
        .send()
        .await
        .unwrap();
    assert!(archive.status().is_success());
    assert_eq!(footprint(app, &user.id).await.letta_archives, 1);
    user
}

#[tokio::test]
async fn orphans_lost_identities_unfinished_accounts_and_leftovers_are_found_and_repaired() {
    let app = spawn_app_exclusive_configured(|c| c.reconcile.grace = Duration::ZERO).await;
    // A: its Supabase user deleted outside the backend.
    let TestUser { id: gone, .. } = app.ready_user("Gone").await;
    delete_identity(&app, &gone).await;
    // B: a deletion that removed the profile and the identity but not LiteLLM and Letta.
    let TestUser { id: orphan, .. } = app.ready_user("Orphan").await;
    delete_items(&app, &orphan).await;
    delete_identity(&app, &orphan).await;
    let (unfinished, old_agent) = unfinished_user(&app).await;
    let (leftovers, extra_agent, kept_agent) = user_with_leftovers(&app).await;
    let broken = user_without_provider(&app).await;
    let loose = user_with_loose_archive(&app).await;
    // E: nothing wrong.
    let fine = app.ready_user("Fine").await;
    let chat = app.chat(&fine.token, "hello", None).await.events();
    assert_eq!(text_of(&chat), "echo: hello");
    let users = [
        gone.as_str(),
        &orphan,
        &unfinished.id,
        &leftovers.id,
        &broken.id,
        &loose.id,
        &fine.id,
    ];

    // The reconciler lists Supabase users through the admin API; the official client reads the
    // local server's pages the same way (newest first: Fine was made last by this test).
    let supabase = &app.state.config.supabase;
    let service_key = service_role_key();
    let page =
        |n: &str| crate::first_use::supabase_client(&["list", &supabase.url, &service_key, n, "2"]);
    let (first, second) = (page("1"), page("2"));
    assert_eq!(first["user_ids"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["user_ids"][0], fine.id.as_str(), "{first}");
    assert_ne!(first["user_ids"][1], second["user_ids"][0]);

    let report = reconcile(&app, &users, false).await;
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(kinds(&report, &gone), [("no_identity".into(), false)]);
    assert_eq!(kinds(&report, &orphan), [("orphaned".into(), false)]);
    let orphaned = finding(&report, &orphan, "orphaned");
    assert_eq!(orphaned["litellm_keys"], 1, "{orphaned}");
    assert_eq!(orphaned["letta_provider"], true, "{orphaned}");
    assert_eq!(orphaned["letta_agents"].as_array().unwrap().len(), 1);
    let half = [("half_provisioned".into(), false)];
    assert_eq!(kinds(&report, &unfinished.id), half);
    let stopped_at = &finding(&report, &unfinished.id, "half_provisioned")["state"];
    assert_eq!(stopped_at, "letta_provider");
    assert_eq!(
        kinds(&report, &leftovers.id),
        [("stale_keys".into(), false), ("extra_agents".into(), false)]
    );
    let extra = &finding(&report, &leftovers.id, "extra_agents")["agents"];
    assert_eq!(extra, &json!([extra_agent]));
    assert_eq!(kinds(&report, &broken.id), [("broken".into(), false)]);
    let missing = &finding(&report, &broken.id, "broken")["missing"];
    assert_eq!(missing, &json!(["letta_provider"]));
    let orphan_archives = [("orphan_archives".into(), false)];
    assert_eq!(kinds(&report, &loose.id), orphan_archives);
    assert_eq!(kinds(&report, &fine.id), []);
    // A report names ids and counts: no key, no password, no message text.
    let text = report.to_string();
    assert!(!text.contains("sk-") && !text.contains("hello"), "{text}");

    let fixed = reconcile(&app, &users, true).await;
    let findings = fixed["findings"].as_array().unwrap();
    assert!(findings.iter().all(|f| f["fixed"] == true), "{fixed}");
    assert_eq!(footprint(&app, &orphan).await, Footprint::nothing());
    assert_eq!(footprint(&app, &gone).await, Footprint::nothing());
    let after = footprint(&app, &leftovers.id).await;
    assert_eq!((after.litellm_keys, after.letta_agents), (1, 1));
    assert_eq!(app.agent_id(&leftovers.token).await, kept_agent);
    // The unfinished account was finished: a new agent, which answers.
    let resumed = app.chat(&unfinished.token, "are you there?", None).await;
    assert_eq!(text_of(&resumed.events()), "echo: are you there?");
    assert_ne!(app.agent_id(&unfinished.token).await, old_agent);
    // The broken account has a provider again and answers; the loose archive is gone.
    let answered = app.chat(&broken.token, "still mine?", None).await.events();
    assert_eq!(text_of(&answered), "echo: still mine?");
    assert_eq!(footprint(&app, &broken.id).await.letta_providers, 1);
    assert_eq!(footprint(&app, &loose.id).await.letta_archives, 0);
    // The next run finds nothing.
    let clean = reconcile(&app, &users, false).await;
    assert_eq!(clean["findings"], json!([]), "{clean}");
}

#[tokio::test]
async fn the_reconciler_command_exits_0_when_clean_and_1_when_something_is_open() {
    let app = spawn_app().await;
    let TestUser { id: user, .. } = app.ready_user("Commanded").await;
    let command = |user: &str| {
        std::process::Command::new(workspace_binary("reconciler"))
            .args(["reconcile", "--grace-secs", "0", "--user", user])
            .output()
            .unwrap()
    };
    let out = command(&user);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("the report on stdout");
    assert_eq!(printed["users_checked"], 1);
    delete_identity(&app, &user).await;
    let out = command(&user);
    assert_eq!(out.status.code(), Some(1));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kinds(&printed, &user), [("no_identity".into(), false)]);
}

/// The reconciler's report about one user once `done` says it is complete: LiteLLM writes its
/// spend logs in batches (every second here, later on a busy machine).
async fn report_once(app: &TestApp, user: &str, done: impl Fn(&Value) -> bool) -> Value {
    let done = &done;
    eventually(
        "LiteLLM's spend logs",
        Duration::from_secs(60),
        || async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some(reconcile(app, &[user], false).await).filter(|r| done(r))
        },
    )
    .await
}

/// Nothing left to find about the user.
async fn assert_clean(app: &TestApp, user: &str) {
    let report = reconcile(app, &[user], false).await;
    assert_eq!(report["findings"], json!([]), "{report}");
}

/// A user with two complete turns the reconciler finds nothing wrong with; returns the user
/// and the turns' messages, newest first.
async fn billed_user(app: &TestApp) -> (TestUser, Vec<Value>) {
    let user = app.ready_user("Billed").await;
    for text in ["my name is Ada", "what is my name?"] {
        let events = app.chat(&user.token, text, None).await.events();
        assert!(names(&events).contains(&"done"), "{:?}", names(&events));
    }
    // Every call of the turns billed as the turns recorded, once LiteLLM has logged them.
    let clean = |r: &Value| r["findings"] == json!([]) && r["unsettled_turns"] == 0;
    report_once(app, &user.id, clean).await;
    let history = app.history(&user.token, "?limit=4").await;
    let messages = history.body["messages"].as_array().unwrap().clone();
    (user, messages)
}

#[tokio::test]
async fn a_reply_that_recorded_another_cost_than_litellm_billed_is_reported_never_fixed() {
    let app = spawn_app_configured(|c| c.reconcile.settle = Duration::from_secs(3)).await;
    let (TestUser { id: user, .. }, messages) = billed_user(&app).await;
    // Matched by LiteLLM's request ids, which the reply keeps.
    let reply = &messages[0];
    assert_eq!(reply["role"], "assistant");
    let reply_id = reply["id"].as_str().unwrap();
    let cost = reply["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "{reply}");
    let sk = format!("MSG#default#{reply_id}");
    set_item_field(&app, &user, &sk, "cost_usd", number(cost * 2.0)).await;
    let report = reconcile(&app, &[&user], false).await;
    let billing = finding(&report, &user, "turn_billing");
    assert_eq!(billing["reply"], reply_id);
    assert!((billing["billed_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
    assert!(billing["calls"].as_u64().unwrap() >= 1);
    assert_eq!(billing["billed_calls"], billing["calls"]);
    // A complete turn billed differently is an error somewhere: reported, never "fixed".
    let report = reconcile(&app, &[&user], true).await;
    assert_eq!(kinds(&report, &user), [("turn_billing".into(), false)]);
    set_item_field(&app, &user, &sk, "cost_usd", number(cost)).await;
    assert_clean(&app, &user).await;
}

#[tokio::test]
async fn a_day_whose_usage_lacks_what_litellm_billed_records_the_bill_when_fixed() {
    let app = spawn_app_configured(|c| c.reconcile.settle = Duration::from_secs(3)).await;
    let (TestUser { id: user, .. }, messages) = billed_user(&app).await;
    // A turn whose usage never reached its day (DynamoDB refused the write, say).
    let reply = &messages[0];
    let cost = reply["cost_usd"].as_f64().unwrap();
    let day = &reply["created_at"].as_str().unwrap()[..10];
    let (pk, usage_sk) = (format!("USER#{user}"), format!("USAGE#{day}"));
    let recorded = app.raw_item(&pk, &usage_sk).await.unwrap()["cost_usd"]
        .as_f64()
        .unwrap();
    set_item_field(&app, &user, &usage_sk, "cost_usd", number(recorded - cost)).await;
    let report = reconcile(&app, &[&user], true).await;
    assert_eq!(
        kinds(&report, &user),
        [("day_billing".into(), true)],
        "{report}"
    );
    let day_billing = finding(&report, &user, "day_billing");
    assert!((day_billing["billed_usd"].as_f64().unwrap() - recorded).abs() < 1e-9);
    let repaired = app.raw_item(&pk, &usage_sk).await.unwrap();
    assert!((repaired["cost_usd"].as_f64().unwrap() - recorded).abs() < 1e-9);
    assert_clean(&app, &user).await;

    // A call billed to the user that no turn recorded (made here with a key of the user's).
    unrecorded_call(&app, &user).await;
    let found = |r: &Value| r["findings"].as_array().is_some_and(|f| !f.is_empty());
    let report = report_once(&app, &user, found).await;
    let day_billing = finding(&report, &user, "day_billing");
    let (billed, recorded) = (&day_billing["billed_usd"], &day_billing["recorded_usd"]);
    assert!(billed.as_f64() > recorded.as_f64(), "{day_billing}");
    // The fix records the bill in the day's usage (the report keeps the finding); then clean.
    let report = reconcile(&app, &[&user], true).await;
    assert_eq!(
        kinds(&report, &user),
        [("day_billing".into(), true)],
        "{report}"
    );
    assert_clean(&app, &user).await;
}

/// One LLM call on a short-lived key of the user's, through LiteLLM: billed, recorded by no
/// turn.
async fn unrecorded_call(app: &TestApp, user: &str) {
    let key: Value = app
        .litellm(Method::POST, "/key/generate")
        .json(&json!({"user_id": user, "duration": "1m"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let litellm = &app.state.config.litellm.base_url;
    let call = app
        .http
        .post(format!("{litellm}/v1/chat/completions"))
        .bearer_auth(key["key"].as_str().unwrap())
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
}

#[tokio::test]
async fn a_user_message_a_dead_turn_left_pending_is_marked_failed() {
    let app = spawn_app_configured(|c| c.reconcile.settle = Duration::from_secs(3)).await;
    let (TestUser { id: user, .. }, messages) = billed_user(&app).await;
    let asked = &messages[3];
    assert_eq!(asked["role"], "user");
    let asked_sk = format!("MSG#default#{}", asked["id"].as_str().unwrap());
    let pending = AttributeValue::S("pending".into());
    set_item_field(&app, &user, &asked_sk, "status", pending).await;
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::minutes(20);
    let long_ago = long_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let created = AttributeValue::S(long_ago);
    set_item_field(&app, &user, &asked_sk, "created_at", created).await;
    let report = reconcile(&app, &[&user], true).await;
    assert_eq!(
        kinds(&report, &user),
        [("stuck_messages".into(), true)],
        "{report}"
    );
    let settled_message = app
        .raw_item(&format!("USER#{user}"), &asked_sk)
        .await
        .unwrap();
    assert_eq!(settled_message["status"], "failed");
    assert_clean(&app, &user).await;
}

#[tokio::test]
async fn a_live_user_a_page_of_the_listing_missed_is_never_deleted() {
    let supabase = stack_config().supabase.url;
    let TestUser {
        token, id: user, ..
    } = {
        let app = spawn_app().await;
        app.ready_user("Missed").await
    };
    // Supabase's offset pages shift under a sign-up or a deletion during the scan: here the
    // listing leaves the user out, while the user is there.
    let tap = http_tap::start(supabase, Rule::HideUsers(vec![user.clone()])).await;
    let app = spawn_app_configured(|c| {
        c.supabase.url = tap;
        c.reconcile.grace = Duration::ZERO;
    })
    .await;
    let before = footprint(&app, &user).await;
    assert!(
        before.supabase_user && before.dynamodb_items > 0,
        "{before:?}"
    );
    let report = reconcile(&app, &[&user], true).await;
    assert_eq!(report["errors"], json!([]), "{report}");
    assert!(kinds(&report, &user).is_empty(), "{report}");
    assert_eq!(footprint(&app, &user).await, before);
    assert_eq!(app.me(&token).await.status, 200);
}

#[tokio::test]
async fn an_archive_another_agent_still_has_survives_the_removal_of_an_extra_agent() {
    // A user of the previous version, with a long-term memory.
    let (old, token, user) =
        previous_version_user("Tova", "hello", "Tova keeps bees on the roof.").await;
    let old_agent = old.agent_id(&token).await;
    let archives = old.state.letta.agent_archive_ids(&old_agent).await.unwrap();
    assert_eq!(archives.len(), 1, "{archives:?}");
    drop(old);

    // This version moves the agent on the next request; its last step, deleting the old agent,
    // fails: the old agent stays, sharing its archive with the new one.
    let letta = stack_config().letta.base_url;
    let tap = http_tap::start(letta, Rule::FailDelete(format!("/v1/agents/{old_agent}"))).await;
    let moving = spawn_app_configured(|c| c.letta.base_url = tap).await;
    let memory = moving.memory(&token).await;
    assert_ne!(
        memory.status, 200,
        "the move did not finish: {}",
        memory.body
    );
    drop(moving);
    let app = spawn_app_configured(|c| c.reconcile.grace = Duration::ZERO).await;
    let new_agent = app.agent_id(&token).await;
    assert_ne!(new_agent, old_agent);
    assert_eq!(
        app.state.letta.agent_archive_ids(&new_agent).await.unwrap(),
        archives
    );

    // The reconciler removes the extra agent, not the archive the live one has.
    let report = reconcile(&app, &[&user], true).await;
    assert_eq!(
        kinds(&report, &user),
        [("extra_agents".into(), true)],
        "{report}"
    );
    assert!(
        app.state
            .letta
            .get_agent(&old_agent)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.state.letta.agent_archive_ids(&new_agent).await.unwrap(),
        archives
    );
    let found = app.archival(&token, "?query=bees%20roof").await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(
        found.body.to_string().contains("Tova keeps bees"),
        "{}",
        found.body
    );
    assert_eq!(
        reconcile(&app, &[&user], false).await["findings"],
        json!([])
    );
}

#[tokio::test]
async fn another_deployments_user_key_agent_and_provider_survive_fix() {
    // Another deployment (its own table) shares LiteLLM, Letta and Supabase with this one.
    let other = spawn_app_configured(|c| {
        c.dynamodb.table_name = "chat-backend-other-deployment".into();
        c.deployment_id = "other-deployment".into();
    })
    .await;
    let TestUser {
        token, id: user, ..
    } = other.ready_user("Elsewhere").await;
    let before = footprint(&other, &user).await;
    assert_eq!(
        (
            before.litellm_user,
            before.litellm_keys,
            before.letta_providers,
            before.letta_agents
        ),
        (true, 1, 1, 1),
        "{before:?}"
    );

    let agent = other.agent_id(&token).await;
    let agent = other.state.letta.get_agent(&agent).await.unwrap().unwrap();
    assert!(
        agent
            .tags
            .contains(&"deployment:other-deployment".to_string()),
        "{:?}",
        agent.tags
    );

    // An unmarked LiteLLM user (made by hand, or before deployments were marked) named for a
    // user without a profile: it may be anyone's.
    let unmarked = uuid::Uuid::new_v4().to_string();
    let made = other
        .litellm(Method::POST, "/user/new")
        .json(&json!({"user_id": unmarked}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    // And an orphan of this deployment's own: it goes, in the same run.
    let app = spawn_app_configured(|c| c.reconcile.grace = Duration::ZERO).await;
    let TestUser { id: orphan, .. } = app.ready_user("OwnOrphan").await;
    delete_items(&app, &orphan).await;

    // Younger than the grace period, an orphan may be an account in the middle of a request.
    let patient = spawn_app_configured(|c| c.reconcile.grace = Duration::from_secs(3600)).await;
    let report = reconcile(&patient, &[&orphan], true).await;
    assert!(kinds(&report, &orphan).is_empty(), "{report}");
    assert!(footprint(&app, &orphan).await.litellm_user);
    drop(patient);

    let report = reconcile(&app, &[&user, &unmarked, &orphan], true).await;
    assert_eq!(report["errors"], json!([]), "{report}");
    assert!(kinds(&report, &user).is_empty(), "{report}");
    assert_eq!(
        kinds(&report, &unmarked),
        [("unproven".to_string(), false)],
        "{report}"
    );
    assert_eq!(
        finding(&report, &unmarked, "unproven")["litellm_user"],
        true
    );
    assert_eq!(
        kinds(&report, &orphan),
        [("orphaned".to_string(), true)],
        "{report}"
    );

    assert_eq!(footprint(&other, &user).await, before);
    assert!(footprint(&app, &unmarked).await.litellm_user);
    let gone = footprint(&app, &orphan).await;
    assert_eq!(
        (gone.litellm_user, gone.letta_providers, gone.letta_agents),
        (false, 0, 0),
        "{gone:?}"
    );
    // The other deployment's user still chats.
    let events = other.chat(&token, "still mine?", None).await.events();
    assert_eq!(text_of(&events), "echo: still mine?");
}
