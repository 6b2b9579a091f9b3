//! Load and soak: many users chatting at once, and a soak with faults switched on and off at
//! random in front of every dependency. Afterwards every accepted message is stored with a
//! final status and the reconciler finds nothing: nothing lost, orphaned or billed twice.
//!
//! `make test` runs short versions; `make soak` the full ones (`LOAD_USERS=50 LOAD_TURNS=10
//! SOAK_SECS=600`).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use shared::{AppState, domain::UserId};

use crate::{
    fault_proxy::{DYNAMODB_THROTTLED, Fault, FaultProxy},
    helpers::*,
};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A random number below `n` (uuid's v4 generator is the tests' source of randomness).
fn below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n.max(1))) as u64
}

/// This process's resident memory, in KiB (the gateway runs in it).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Registers `count` users, `parallel` at a time; their (token, id).
async fn users(app: &TestApp, count: usize, parallel: usize) -> Vec<(String, String)> {
    stream::iter(0..count)
        .map(|i| async move {
            let TestUser { token, id, .. } = app.ready_user(&format!("Load {i}")).await;
            (token, id)
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// A reconciler run over `users` after LiteLLM's spend logs settled: it must find nothing.
/// LiteLLM writes spend logs in batches, later still under load: a turn its logs do not show
/// yet is checked again (up to 30 s); one billed otherwise than recorded stays and fails.
async fn reconciled_clean(state: &AppState, users: &[(String, String)]) -> Value {
    let ids: Vec<UserId> = users
        .iter()
        .map(|(_, id)| UserId::parse(id).unwrap())
        .collect();
    let settle = state.config.reconcile.settle;
    tokio::time::sleep(settle + Duration::from_secs(1)).await;
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let report = reconciler::run(state, ids.clone(), true)
            .await
            .expect("a run");
        let report = serde_json::to_value(&report).unwrap();
        assert_eq!(report["errors"], json!([]), "{report}");
        assert_eq!(report["unsettled_turns"], 0, "{report}");
        let open: Vec<&Value> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["fixed"] != true)
            .collect();
        let unlogged_yet = |f: &&Value| {
            f["kind"] == "turn_billing"
                && f["billed_calls"].as_u64() < f["calls"].as_u64()
                && f["billed_usd"].as_f64().unwrap_or(0.0)
                    <= f["stored_usd"].as_f64().unwrap_or(0.0)
        };
        if !open.is_empty() && open.iter().all(unlogged_yet) && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_secs(3)).await;
            continue;
        }
        assert!(open.is_empty(), "open findings: {open:?}");
        return report;
    }
}

#[tokio::test]
async fn many_users_chat_at_once_and_nothing_is_lost_or_billed_twice() {
    let (count, turns) = (setting("LOAD_USERS", 8), setting("LOAD_TURNS", 3));
    let app = spawn_app_configured(|c| c.reconcile.settle = Duration::from_secs(3)).await;
    let started = Instant::now();
    let users = users(&app, count, 8).await;
    let registered = started.elapsed();

    let started = Instant::now();
    let results: Vec<Vec<(Duration, Option<Duration>)>> = stream::iter(users.iter())
        .map(|(token, _)| {
            let app = &app;
            async move {
                let mut timings = Vec::new();
                for turn in 0..turns {
                    let text = format!("turn {turn} of {token:.8}");
                    let sent = Instant::now();
                    let res = app.chat_request(token, &text, None).await;
                    assert_eq!(res.status(), 200);
                    let mut events = sse_events(res);
                    let (mut first, mut all) = (None, Vec::new());
                    while let Some(event) = events.next().await {
                        if event.name == "delta" && first.is_none() {
                            first = Some(sent.elapsed());
                        }
                        all.push(event);
                    }
                    assert_eq!(text_of(&all), format!("echo: {text}"), "{:?}", names(&all));
                    assert_eq!(all.last().unwrap().name, "done");
                    timings.push((sent.elapsed(), first));
                }
                timings
            }
        })
        .buffer_unordered(count)
        .collect()
        .await;
    let chatted = started.elapsed();

    // Every message and reply stored, complete.
    for (token, _) in &users {
        let history = app
            .history(token, &format!("?limit={}", 2 * turns + 1))
            .await;
        let messages = history.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2 * turns, "{}", history.body);
        assert!(
            messages.iter().all(|m| m["status"] == "complete"),
            "{}",
            history.body
        );
    }
    let report = reconciled_clean(&app.state, &users).await;
    assert_eq!(report["findings"], json!([]), "{report}");

    let mut latencies: Vec<Duration> = results.iter().flatten().map(|t| t.0).collect();
    let mut firsts: Vec<Duration> = results.iter().flatten().filter_map(|t| t.1).collect();
    latencies.sort();
    firsts.sort();
    println!(
        "load: {count} users registered in {registered:.1?}; {} turns in {chatted:.1?} \
         ({:.1} turns/s); turn p50 {:.0?} p95 {:.0?}; first token p50 {:.0?} p95 {:.0?}; \
         0 errors, 0 lost, reconciler clean",
        latencies.len(),
        latencies.len() as f64 / chatted.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&firsts, 0.5),
        percentile(&firsts, 0.95),
    );
}

/// Every message of the user's default conversation, page by page.
async fn whole_history(app: &TestApp, token: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut query = "?limit=100".to_string();
    loop {
        let page = app.history(token, &query).await;
        assert_eq!(page.status, 200, "{}", page.body);
        messages.extend(page.body["messages"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=100&before={cursor}"),
            None => return messages,
        }
    }
}

/// What a soak worker saw.
#[derive(Default)]
struct Seen {
    /// Answers by status (chat streams by their last event).
    answers: HashMap<String, usize>,
    /// The user messages the backend accepted (a stream started for them), by user.
    accepted: Vec<(usize, String)>,
}

#[tokio::test]
async fn a_soak_with_random_faults_loses_nothing_and_memory_stays_flat() {
    let seconds = setting("SOAK_SECS", 40) as u64;
    let config = stack_config();
    let letta = FaultProxy::start(&config.letta.base_url).await;
    let litellm = FaultProxy::start(&config.litellm.base_url).await;
    let dynamodb = FaultProxy::start(config.dynamodb.endpoint.as_deref().unwrap()).await;
    let supabase = FaultProxy::start(&config.supabase.url).await;
    let urls = (
        letta.url.clone(),
        litellm.url.clone(),
        dynamodb.url.clone(),
        supabase.url.clone(),
    );
    // A request that waits on a hung dependency gives up after 4 s (in Lambda: the deadline).
    let timeout = Duration::from_secs(4);
    let app = spawn_app_exclusive_configured(|c| {
        c.letta.base_url = urls.0;
        c.litellm.base_url = urls.1;
        c.dynamodb.endpoint = Some(urls.2);
        c.supabase.url = urls.3;
        c.http.upstream_timeout = timeout;
        // The workers chat as fast as they can, which the per-user limits would refuse.
        c.rates.chat_per_minute = 100_000;
        c.rates.chat_per_day = 100_000;
        c.rates.requests_per_minute = 100_000;
        // Hundreds of turns each: a budget that outlasts the run.
        c.budget.default_budget = 1_000.0;
        c.budget.max_budget = 1_000.0;
    })
    .await;
    let users = users(&app, 4, 4).await;
    let rss_start = rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let faults = Arc::new(AtomicUsize::new(0));
    let proxies = [&letta, &litellm, &dynamodb, &supabase];
    let chaos = inject_faults(
        proxies.iter().map(|p| (*p).clone()).collect(),
        stop.clone(),
        faults.clone(),
    );

    let seen = Arc::new(Mutex::new(Seen::default()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = users
        .iter()
        .enumerate()
        .map(|(n, (token, _))| soak_worker(&app, n, token, deadline, seen.clone()));
    futures_util::future::join_all(workers).await;
    stop.store(true, Ordering::Relaxed);
    chaos.await.unwrap();
    for proxy in proxies {
        proxy.set(Fault::Pass);
    }

    // Every accepted message is in history with a final status; the turn locks are free.
    // A turn the faults left running ends within its own bounds: a silent Letta after
    // LETTA_STREAM_SILENCE_SECS (30 s), then the read-back, the pricing (5 s at most) and the
    // end's write, each with its retries: about 70 s in the worst case, so up to 120 s here.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    settled_and_answering(&app, &users, &seen).await;
    let rss_end = rss_kib();

    // Nothing orphaned, nothing billed twice (the reconciler reaches the services directly).
    let direct = AppState::new({
        let mut c = stack_config();
        c.reconcile.settle = Duration::from_secs(3);
        c
    })
    .await;
    let report = reconciled_clean(&direct, &users).await;
    let mut answers: Vec<_> = seen.answers.into_iter().collect();
    answers.sort();
    println!(
        "soak: {seconds} s, {} faults injected, {} messages accepted; answers {answers:?}; \
         reconciler repaired {}; RSS {} MiB at start, {} MiB at end",
        faults.load(Ordering::Relaxed),
        seen.accepted.len(),
        report["findings"].as_array().unwrap().len(),
        rss_start / 1024,
        rss_end / 1024,
    );
    assert!(
        rss_end < rss_start + 64 * 1024,
        "resident memory grew from {rss_start} KiB to {rss_end} KiB"
    );
}

/// Every few seconds, one dependency gets a random fault for a moment, until `stop`.
fn inject_faults(
    proxies: Vec<FaultProxy>,
    stop: Arc<AtomicBool>,
    faults: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(1_000 + below(3_000))).await;
            let which = below(4) as usize;
            let fault = match (which, below(5)) {
                (2, 0 | 1) => Fault::Answer {
                    status: 400,
                    body: DYNAMODB_THROTTLED,
                    times: 1 + below(4) as usize,
                },
                (_, 0) => Fault::Latency(Duration::from_millis(300)),
                (_, 1) => Fault::Answer {
                    status: 503,
                    body: r#"{"detail":"injected"}"#,
                    times: 1 + below(3) as usize,
                },
                (_, 2) => Fault::Close,
                (_, 3) => Fault::Hang,
                _ => Fault::ResetAfter(500 + below(4_000) as usize),
            };
            proxies[which].set(fault);
            faults.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(300 + below(1_500))).await;
            proxies[which].set(Fault::Pass);
        }
    })
}

/// Every request ends in bounded time: the dependency timeout, its retries and a turn's own
/// length, never the client's patience.
const SOAK_BOUND: Duration = Duration::from_secs(60);

/// One user's traffic until `deadline`: turns (six in ten) and reads, each answer checked and
/// counted in `seen`.
async fn soak_worker(
    app: &TestApp,
    n: usize,
    token: &str,
    deadline: Instant,
    seen: Arc<Mutex<Seen>>,
) {
    let mut turn = 0;
    while Instant::now() < deadline {
        if below(10) < 6 {
            turn += 1;
            soak_turn(app, n, token, &format!("soak {n}-{turn}"), &seen).await;
        } else {
            soak_read(app, token, &seen).await;
        }
    }
}

/// A turn under faults: a stream from `start` to `done` or `error`, or a 503 or 409.
async fn soak_turn(app: &TestApp, n: usize, token: &str, text: &str, seen: &Mutex<Seen>) {
    let answer = tokio::time::timeout(SOAK_BOUND, async {
        read_chat(app.chat_request(token, text, None).await).await
    })
    .await
    .expect("a chat turn ends in bounded time");
    let mut seen = seen.lock().unwrap();
    match answer {
        ChatReply::Stream(events) => {
            let start = events.first().expect("a start event");
            assert_eq!(start.name, "start", "{:?}", names(&events));
            let id = start.data["user_message_id"].as_str().unwrap();
            let last = events.last().unwrap();
            assert!(
                last.name == "done" || last.name == "error",
                "{:?}",
                names(&events)
            );
            seen.accepted.push((n, id.to_string()));
            *seen
                .answers
                .entry(format!("chat {}", last.name))
                .or_default() += 1;
        }
        ChatReply::Json(reply) => {
            let status = reply.status.as_u16();
            assert!(
                status == 503 || status == 409,
                "chat: {status} {}",
                reply.body
            );
            if status == 503 {
                assert!(reply.headers.contains_key("retry-after"));
            }
            *seen.answers.entry(format!("chat {status}")).or_default() += 1;
        }
    }
}

/// A read under faults: 200, or 503 with `Retry-After`.
async fn soak_read(app: &TestApp, token: &str, seen: &Mutex<Seen>) {
    let path = [
        "/api/v1/chat/history?limit=5",
        "/api/v1/user/budget",
        "/api/v1/agent/memory",
        "/api/v1/user/usage",
    ][below(4) as usize];
    let reply = tokio::time::timeout(SOAK_BOUND, app.get(path, token))
        .await
        .expect("a read ends in bounded time");
    let status = reply.status.as_u16();
    assert!(
        status == 200 || status == 503,
        "{path}: {status} {}",
        reply.body
    );
    if status == 503 {
        assert!(reply.headers.contains_key("retry-after"));
    }
    *seen
        .lock()
        .unwrap()
        .answers
        .entry(format!("read {status}"))
        .or_default() += 1;
}

/// Once the faults are off: every accepted message is in history with a final status, and
/// each user's next message is answered (the turn locks and slots are free). Prints how long
/// both took.
async fn settled_and_answering(app: &TestApp, users: &[(String, String)], seen: &Seen) {
    let faults_off = std::time::Instant::now();
    let mut settled_after = Duration::ZERO;
    let mut answered_after = Vec::new();
    for (n, (token, _)) in users.iter().enumerate() {
        let ids: Vec<&String> = seen
            .accepted
            .iter()
            .filter(|(u, _)| *u == n)
            .map(|(_, id)| id)
            .collect();
        let stored = eventually("every turn settled", Duration::from_secs(120), || async {
            let messages = whole_history(app, token).await;
            messages
                .iter()
                .all(|m| m["status"] != "pending")
                .then_some(messages)
        })
        .await;
        for id in ids {
            let message = stored
                .iter()
                .find(|m| m["id"] == id.as_str())
                .unwrap_or_else(|| panic!("accepted message {id} is in history"));
            assert!(
                message["status"] == "complete" || message["status"] == "failed",
                "{message}"
            );
        }
        settled_after = settled_after.max(faults_off.elapsed());
        // The turn lock and slots are free: the next message starts a turn (never a 409).
        // Letta may still be working through the messages the faults cut off (it goes on
        // with a message after its client is gone), so it may take longer than this test's
        // 4 s to take a new one (503): tries until it is answered, for as long as a turn the
        // faults left can take.
        let asked = std::time::Instant::now();
        let mut answered = false;
        while !answered && asked.elapsed() < Duration::from_secs(120) {
            match app.chat(token, "all quiet now?", None).await {
                ChatReply::Stream(events) => {
                    answered = text_of(&events) == "echo: all quiet now?";
                }
                ChatReply::Json(reply) => {
                    assert_eq!(reply.status.as_u16(), 503, "{}", reply.body);
                }
            }
            if !answered {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        assert!(answered, "the agent answers once the faults are off");
        answered_after.push(asked.elapsed());
    }
    println!(
        "soak: every turn settled {:.1} s after the faults stopped; the first answer after \
         them took {:?} per user",
        settled_after.as_secs_f64(),
        answered_after
            .iter()
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
}
