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
    // C: provisioning that stopped before the agent (the agent gone, the state one step back).
    let TestUser {
        token: token_c,
        id: unfinished,
        ..
    } = app.ready_user("Unfinished").await;
    let agent_c = app.agent_id(&token_c).await;
    let deleted = app
        .letta(Method::DELETE, &format!("/v1/agents/{agent_c}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    set_item_field(
        &app,
        &unfinished,
        "PROFILE",
        "state",
        AttributeValue::S("letta_provider".into()),
    )
    .await;
    // D: a second key and a second agent left by earlier tries.
    let TestUser {
        token: token_d,
        id: leftovers,
        ..
    } = app.ready_user("Leftovers").await;
    let key = app
        .litellm(Method::POST, "/key/generate")
        .json(&json!({"user_id": leftovers, "key_alias": format!("user-{leftovers}-extra")}))
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 200);
    let id_d = UserId::parse(&leftovers).unwrap();
    let profile_d = app.state.store.get_profile(&id_d).await.unwrap().unwrap();
    let extra = shared::flows::provisioning::create_agent(&app.state, &profile_d)
        .await
        .unwrap();
    let before = footprint(&app, &leftovers).await;
    assert_eq!((before.litellm_keys, before.letta_agents), (2, 2));
    // F: a ready account whose provider was deleted in Letta.
    let TestUser {
        token: token_f,
        id: broken,
        ..
    } = app.ready_user("Broken").await;
    let id_f = UserId::parse(&broken).unwrap();
    let provider = app.state.store.get_profile(&id_f).await.unwrap().unwrap();
    let provider = provider.letta_provider_id.unwrap();
    let gone_provider = app
        .letta(Method::DELETE, &format!("/v1/providers/{provider}"))
        .send()
        .await
        .unwrap();
    assert!(gone_provider.status().is_success());
    // G: an archive named for a user's agent but attached to none.
    let TestUser { id: loose, .. } = app.ready_user("Loose").await;
    let archive = app
        .letta(Method::POST, "/v1/archives/")
        .json(&json!({"name": format!("agent-{loose}'s Archive")}))
        .send()
        .await
        .unwrap();
    assert!(archive.status().is_success());
    assert_eq!(footprint(&app, &loose).await.letta_archives, 1);
    // E: nothing wrong.
    let TestUser {
        token: token_e,
        id: fine,
        ..
    } = app.ready_user("Fine").await;
    let chat = app.chat(&token_e, "hello", None).await.events();
    assert_eq!(text_of(&chat), "echo: hello");

    let users = [
        gone.as_str(),
        &orphan,
        &unfinished,
        &leftovers,
        &broken,
        &loose,
        &fine,
    ];
    // The reconciler lists Supabase users through the admin API; the official client reads the
    // local server's pages the same way (newest first: Fine was made last by this test).
    let supabase = &app.state.config.supabase;
    let service_key = service_role_key();
    let page =
        |n: &str| crate::first_use::supabase_client(&["list", &supabase.url, &service_key, n, "2"]);
    let (first, second) = (page("1"), page("2"));
    assert_eq!(first["user_ids"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["user_ids"][0], fine.as_str(), "{first}");
    assert_ne!(first["user_ids"][1], second["user_ids"][0]);
    let report = reconcile(&app, &users, false).await;
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(kinds(&report, &gone), [("no_identity".into(), false)]);
    assert_eq!(kinds(&report, &orphan), [("orphaned".into(), false)]);
    let orphaned = finding(&report, &orphan, "orphaned");
    assert_eq!(orphaned["litellm_keys"], 1, "{orphaned}");
    assert_eq!(orphaned["letta_provider"], true, "{orphaned}");
    assert_eq!(orphaned["letta_agents"].as_array().unwrap().len(), 1);
    assert_eq!(
        kinds(&report, &unfinished),
        [("half_provisioned".into(), false)]
    );
    assert_eq!(
        finding(&report, &unfinished, "half_provisioned")["state"],
        "letta_provider"
    );
    assert_eq!(
        kinds(&report, &leftovers),
        [("stale_keys".into(), false), ("extra_agents".into(), false)]
    );
    assert_eq!(
        finding(&report, &leftovers, "extra_agents")["agents"],
        json!([extra.id])
    );
    assert_eq!(kinds(&report, &broken), [("broken".into(), false)]);
    assert_eq!(
        finding(&report, &broken, "broken")["missing"],
        json!(["letta_provider"])
    );
    assert_eq!(kinds(&report, &loose), [("orphan_archives".into(), false)]);
    assert_eq!(kinds(&report, &fine), []);
    // A report names ids and counts: no key, no password, no message text.
    let text = report.to_string();
    assert!(!text.contains("sk-") && !text.contains("hello"), "{text}");

    let fixed = reconcile(&app, &users, true).await;
    assert!(
        fixed["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["fixed"] == true),
        "{fixed}"
    );
    assert_eq!(footprint(&app, &orphan).await, Footprint::nothing());
    assert_eq!(footprint(&app, &gone).await, Footprint::nothing());
    let after = footprint(&app, &leftovers).await;
    assert_eq!((after.litellm_keys, after.letta_agents), (1, 1));
    assert_eq!(
        app.agent_id(&token_d).await,
        profile_d.letta_agent_id.unwrap()
    );
    // The unfinished account was finished: a new agent, which answers.
    let resumed = app.chat(&token_c, "are you there?", None).await.events();
    assert_eq!(text_of(&resumed), "echo: are you there?");
    assert_ne!(app.agent_id(&token_c).await, agent_c);

    // The broken account has a provider again and answers; the loose archive is gone.
    let answered = app.chat(&token_f, "still mine?", None).await.events();
    assert_eq!(text_of(&answered), "echo: still mine?");
    assert_eq!(footprint(&app, &broken).await.letta_providers, 1);
    assert_eq!(footprint(&app, &loose).await.letta_archives, 0);

    // The next run finds nothing; as a command it exits 0 (1 while something is open).
    let clean = reconcile(&app, &users, false).await;
    assert_eq!(clean["findings"], json!([]), "{clean}");
    let command = |user: &str| {
        std::process::Command::new(workspace_binary("reconciler"))
            .args(["reconcile", "--grace-secs", "0", "--user", user])
            .output()
            .unwrap()
    };
    let out = command(&fine);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("the report on stdout");
    assert_eq!(printed["users_checked"], 1);
    delete_identity(&app, &fine).await;
    let out = command(&fine);
    assert_eq!(out.status.code(), Some(1));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kinds(&printed, &fine), [("no_identity".into(), false)]);
}

#[tokio::test]
async fn turns_and_days_are_checked_against_what_litellm_billed_and_repaired_where_safe() {
    let app = spawn_app_configured(|c| c.reconcile.settle = Duration::from_secs(3)).await;
    let TestUser {
        token, id: user, ..
    } = app.ready_user("Billed").await;
    for text in ["my name is Ada", "what is my name?"] {
        let events = app.chat(&token, text, None).await.events();
        assert!(names(&events).contains(&"done"), "{:?}", names(&events));
    }
    let settled = || async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        reconcile(&app, &[&user], false).await
    };
    let report = settled().await;
    assert_eq!(report["findings"], json!([]), "{report}");
    assert_eq!(report["unsettled_turns"], 0, "{report}");

    // A reply recording another cost than LiteLLM billed for its calls (matched by LiteLLM's
    // request ids, which the reply keeps).
    let history = app.history(&token, "?limit=4").await;
    let reply = &history.body["messages"][0];
    assert_eq!(reply["role"], "assistant");
    let (reply_id, cost) = (
        reply["id"].as_str().unwrap().to_string(),
        reply["cost_usd"].as_f64().unwrap(),
    );
    assert!(cost > 0.0, "{reply}");
    let sk = format!("MSG#default#{reply_id}");
    set_item_field(&app, &user, &sk, "cost_usd", number(cost * 2.0)).await;
    let report = settled().await;
    let billing = finding(&report, &user, "turn_billing");
    assert_eq!(billing["reply"], reply_id.as_str());
    assert!((billing["billed_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
    assert!(billing["calls"].as_u64().unwrap() >= 1);
    assert_eq!(billing["billed_calls"], billing["calls"]);
    // A complete turn billed differently is an error somewhere: reported, never "fixed".
    let report = reconcile(&app, &[&user], true).await;
    assert_eq!(kinds(&report, &user), [("turn_billing".into(), false)]);
    set_item_field(&app, &user, &sk, "cost_usd", number(cost)).await;
    assert_eq!(
        reconcile(&app, &[&user], false).await["findings"],
        json!([])
    );

    // A turn whose usage never reached its day (DynamoDB refused the write, say): the fix
    // records LiteLLM's bill in the day's usage.
    let day = &reply["created_at"].as_str().unwrap()[..10];
    let usage_sk = format!("USAGE#{day}");
    let recorded = app
        .raw_item(&format!("USER#{user}"), &usage_sk)
        .await
        .unwrap();
    let recorded = recorded["cost_usd"].as_f64().unwrap();
    set_item_field(&app, &user, &usage_sk, "cost_usd", number(recorded - cost)).await;
    let report = reconcile(&app, &[&user], true).await;
    assert_eq!(
        kinds(&report, &user),
        [("day_billing".into(), true)],
        "{report}"
    );
    let day_billing = finding(&report, &user, "day_billing");
    assert!((day_billing["billed_usd"].as_f64().unwrap() - recorded).abs() < 1e-9);
    let repaired = app
        .raw_item(&format!("USER#{user}"), &usage_sk)
        .await
        .unwrap();
    assert!((repaired["cost_usd"].as_f64().unwrap() - recorded).abs() < 1e-9);
    assert_eq!(
        reconcile(&app, &[&user], false).await["findings"],
        json!([])
    );

    // A user message left pending by a turn that died with its invocation.
    let asked = &history.body["messages"][3];
    assert_eq!(asked["role"], "user");
    let asked_sk = format!("MSG#default#{}", asked["id"].as_str().unwrap());
    set_item_field(
        &app,
        &user,
        &asked_sk,
        "status",
        AttributeValue::S("pending".into()),
    )
    .await;
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::minutes(20);
    let long_ago = long_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    set_item_field(
        &app,
        &user,
        &asked_sk,
        "created_at",
        AttributeValue::S(long_ago),
    )
    .await;
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
    assert_eq!(
        reconcile(&app, &[&user], false).await["findings"],
        json!([])
    );

    // A call billed to the user that no turn recorded (made here with a key of the user's).
    let key = app
        .litellm(Method::POST, "/key/generate")
        .json(&json!({"user_id": user, "duration": "1m"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let call = app
        .http
        .post(format!(
            "{}/v1/chat/completions",
            app.state.config.litellm.base_url
        ))
        .bearer_auth(&key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    let report = settled().await;
    let day_billing = finding(&report, &user, "day_billing");
    assert!(
        day_billing["billed_usd"].as_f64().unwrap() > day_billing["recorded_usd"].as_f64().unwrap(),
        "{day_billing}"
    );
    // The fix records the bill in the day's usage (the report keeps the finding); then clean.
    let report = reconcile(&app, &[&user], true).await;
    assert_eq!(
        kinds(&report, &user),
        [("day_billing".into(), true)],
        "{report}"
    );
    assert_eq!(
        reconcile(&app, &[&user], false).await["findings"],
        json!([])
    );
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
