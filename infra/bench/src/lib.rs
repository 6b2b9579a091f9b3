//! `make bench`: the backend side by side with what users would run instead, on the local
//! stack, in one run (the machine is noisy: differences and ratios within a run are the figures
//! that count). The gateway runs in this process (a release build under `make bench`) with a
//! counting proxy in front of DynamoDB; the same turns go through it and straight to Letta's
//! stream on the same agent, interleaved.

pub mod cpu;
pub mod dynamo;
pub mod report;
pub mod runtime;
pub mod tap;
pub mod turns;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use shared::{AppState, app::config::Config};
use turns::{Target, Timing};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Turns each side for the latency comparison.
    pub turns: usize,
    /// Users and turns per user of the concurrent load, each side.
    pub load: (usize, usize),
    /// Start the release bootstraps under the runtime emulator (and the Python stack).
    pub starts: bool,
    /// The workspace (for `events/`, `target/release`, `.aws-sam`).
    pub workspace: PathBuf,
    /// The bench venv's Python (the seed's Python stack), when installed.
    pub python: Option<PathBuf>,
}

impl Options {
    /// A few turns and no bootstraps: the smoke run of `make test`.
    pub fn smoke(workspace: PathBuf) -> Self {
        Self {
            turns: 2,
            load: (2, 1),
            starts: false,
            workspace,
            python: None,
        }
    }
}

/// Every figure of one run.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Backend turns' times, in order.
    pub backend: Vec<Timing>,
    /// Letta-direct turns' times, in order.
    pub letta: Vec<Timing>,
    /// Failed turns, each side.
    pub errors: (usize, usize),
    /// Relay delay of each reply text event (Letta's event at the tap → the client has it).
    pub relay: Vec<Duration>,
    /// Reply text events the tap and the client did not both see, in the tapped turns.
    pub relay_unpaired: usize,
    /// DynamoDB operations per request, by endpoint.
    pub dynamodb: BTreeMap<String, BTreeMap<String, usize>>,
    /// DynamoDB operations of a warm plain turn before Letta was asked for the stream.
    pub dynamodb_before_letta: Option<BTreeMap<String, usize>>,
    /// Prompt tokens of a plain turn on a fresh agent and of a memory-writing turn.
    pub prompt_tokens: Option<(u64, u64)>,
    /// Concurrent load: users × turns, first-text times each side, errors each side.
    pub load: Option<Load>,
    /// Each function's release bootstrap under the emulator.
    pub starts: BTreeMap<String, runtime::Start>,
    /// The seed's Python stack: import and app build (ms), RSS (KiB).
    pub python: Option<(f64, u64)>,
    /// Each function's bootstrap, zipped (bytes), when `sam build` made it.
    pub zips: BTreeMap<String, u64>,
}

/// The concurrent load's figures.
#[derive(Debug, Clone)]
pub struct Load {
    /// Users.
    pub users: usize,
    /// Turns each.
    pub turns: usize,
    /// First reply text through the backend.
    pub backend: Vec<Duration>,
    /// First reply text straight from Letta.
    pub letta: Vec<Duration>,
    /// Failed turns each side.
    pub errors: (usize, usize),
    /// Wall time each side.
    pub wall: (Duration, Duration),
    /// CPU time each side, by process.
    pub cpu: (cpu::Usage, cpu::Usage),
}

impl Load {
    /// The first reply text's p95 through the backend over Letta direct's (0 without Letta's).
    pub fn p95_ratio(&self) -> f64 {
        let (b, l) = (
            turns::quantile(&self.backend, 0.95),
            turns::quantile(&self.letta, 0.95),
        );
        if l.is_zero() {
            0.0
        } else {
            b.as_secs_f64() / l.as_secs_f64()
        }
    }
}

struct Bench {
    /// The gateway the latencies are measured on: nothing between it and the services.
    base: String,
    /// A second gateway in this process, with the counting proxy in front of DynamoDB and the
    /// tap in front of Letta: for the DynamoDB requests and the relay delay.
    instrumented: String,
    http: reqwest::Client,
    letta_base: String,
    letta_password: Option<String>,
    counter: dynamo::Counter,
    tap: tap::Tap,
    max_budget: f64,
    /// Where the local services' pid files are.
    run_dir: PathBuf,
}

struct User {
    token: String,
    agent_id: String,
}

impl Bench {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.call_at(&self.base, method, path, token, body).await
    }

    async fn call_at(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{path}: HTTP {status}: {body}"))
        }
    }

    /// A new user with a ready agent and the highest budget a user may set.
    async fn user(&self, n: usize) -> Result<User, String> {
        let email = format!(
            "bench-{}-{n}-{}@example.com",
            std::process::id(),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let registered = self
            .http
            .post(format!("{}/api/v1/auth/register", self.base))
            .json(&json!({"email": email, "password": "bench-password-1", "display_name": format!("Bench {n}")}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let registered: Value = registered.json().await.map_err(|e| e.to_string())?;
        let token = registered["session"]["access_token"]
            .as_str()
            .ok_or_else(|| format!("registration: {registered}"))?
            .to_string();
        let status = self
            .call(reqwest::Method::GET, "/api/v1/agent/status", &token, None)
            .await?;
        let agent_id = status["agent_id"].as_str().ok_or("no agent")?.to_string();
        self.call(
            reqwest::Method::POST,
            "/api/v1/user/budget",
            &token,
            Some(json!({"max_budget": self.max_budget})),
        )
        .await?;
        Ok(User { token, agent_id })
    }

    fn backend(&self, user: &User) -> Target {
        Target::Backend {
            base: self.base.clone(),
            token: user.token.clone(),
        }
    }

    fn instrumented(&self, user: &User) -> Target {
        Target::Backend {
            base: self.instrumented.clone(),
            token: user.token.clone(),
        }
    }

    fn letta(&self, user: &User) -> Target {
        Target::Letta {
            base: self.letta_base.clone(),
            password: self.letta_password.clone(),
            agent_id: user.agent_id.clone(),
        }
    }
}

/// Serves `app` on a loopback port of its own (the proxies and the runtime emulator); returns
/// the address.
pub(crate) async fn serve_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(gateway::no_delay(listener), app).await });
    address
}

/// Hosts a gateway in this process with `config`; returns its base URL.
async fn serve(config: Config) -> Result<String, String> {
    let state = AppState::new(config).await;
    shared::store::table::ensure_table(&state.store)
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let app = gateway::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(gateway::no_delay(listener), app).await });
    Ok(base)
}

/// Hosts the two gateways: the plain one, and the one behind the counting proxy and the tap.
async fn host(workspace: &Path) -> Result<Bench, String> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    // One machine's worth of users: the limits are not what is measured.
    config.rates.requests_per_minute = 1_000_000;
    config.rates.chat_per_minute = 1_000_000;
    config.rates.chat_per_day = 1_000_000;
    config.rates.auth_per_minute = 1_000_000;
    let letta_base = config.letta.base_url.clone();
    let letta_password = config
        .letta
        .api_key
        .as_ref()
        .map(|p| p.expose().to_string());
    let max_budget = config.budget.max_budget;
    let mut instrumented = config.clone();
    let upstream = config
        .dynamodb
        .endpoint
        .clone()
        .ok_or("DYNAMODB_ENDPOINT: the bench runs on the local stack")?;
    let (proxy, counter) = dynamo::start(&upstream).await;
    instrumented.dynamodb.endpoint = Some(proxy);
    let (tapped, tap) = tap::start(&letta_base).await;
    instrumented.letta.base_url = tapped;
    Ok(Bench {
        base: serve(config).await?,
        instrumented: serve(instrumented).await?,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| e.to_string())?,
        letta_base,
        letta_password,
        counter,
        tap,
        max_budget,
        run_dir: std::env::var("STATE_DIR")
            .map_or_else(|_| workspace.join(".state"), PathBuf::from)
            .join("run"),
    })
}

/// Runs everything `options` asks for.
pub async fn run(options: &Options) -> Result<Results, String> {
    let bench = Box::pin(host(&options.workspace)).await?;
    let mut results = Results::default();
    let user = bench.user(0).await?;
    // Start-up first, while the machine is quiet (after the load, Letta and LiteLLM are still
    // busy with their own background work).
    if options.starts {
        starts(options, &user, &mut results).await?;
    }
    side_by_side(&bench, options, &user, &mut results).await?;
    relay(&bench, options, &user, &mut results).await?;
    dynamodb_requests(&bench, &user, &mut results).await?;
    results.prompt_tokens = Some(prompt_tokens(&bench).await?);
    results.load = Some(load(&bench, options).await?);
    Ok(results)
}

/// Turns through the backend and straight to Letta, interleaved.
async fn side_by_side(
    bench: &Bench,
    options: &Options,
    user: &User,
    results: &mut Results,
) -> Result<(), String> {
    let (backend, letta) = (bench.backend(user), bench.letta(user));
    // Warm both paths (connections, caches) before anything is counted.
    for target in [&backend, &letta] {
        turns::turn(&bench.http, target, "warm up").await?;
    }

    eprintln!("bench: {} turns each side, interleaved", options.turns);
    for i in 0..options.turns {
        let text = format!("bench turn {i}: tell me something");
        // Alternate who goes first, so neither side always follows the other.
        let order = if i % 2 == 0 {
            [&backend, &letta]
        } else {
            [&letta, &backend]
        };
        for target in order {
            let timing = turns::turn(&bench.http, target, &text).await;
            let is_backend = matches!(target, Target::Backend { .. });
            match (timing, is_backend) {
                (Ok(t), true) => results.backend.push(t),
                (Ok(t), false) => results.letta.push(t),
                (Err(e), true) => {
                    eprintln!("bench: backend turn failed: {e}");
                    results.errors.0 += 1;
                }
                (Err(e), false) => {
                    eprintln!("bench: Letta turn failed: {e}");
                    results.errors.1 += 1;
                }
            }
        }
    }
    Ok(())
}

/// The delay the backend adds to each event, measured against a tap in front of Letta.
async fn relay(
    bench: &Bench,
    options: &Options,
    user: &User,
    results: &mut Results,
) -> Result<(), String> {
    eprintln!(
        "bench: {} turns through the tap in front of Letta (relay delay per event)",
        options.turns
    );
    let tapped = bench.instrumented(user);
    turns::turn(&bench.http, &tapped, "warm up").await?;
    for i in 0..options.turns {
        bench.tap.take();
        let mut arrived = Vec::new();
        let text = format!("bench turn {i}: tell me something");
        if let Err(e) = turns::turn_traced(&bench.http, &tapped, &text, &mut arrived).await {
            eprintln!("bench: tapped turn failed: {e}");
            continue;
        }
        let seen = bench.tap.take();
        results.relay_unpaired += seen.len().abs_diff(arrived.len());
        for ((at_tap, sent), (at_client, got)) in seen.iter().zip(&arrived) {
            if sent == got {
                results
                    .relay
                    .push(at_client.saturating_duration_since(*at_tap));
            } else {
                results.relay_unpaired += 1;
            }
        }
    }
    Ok(())
}

/// The DynamoDB requests of one call of each endpoint.
async fn dynamodb_requests(
    bench: &Bench,
    user: &User,
    results: &mut Results,
) -> Result<(), String> {
    let tapped = bench.instrumented(user);
    eprintln!("bench: DynamoDB requests per endpoint");
    let mark = bench.counter.mark();
    bench.tap.first_stream_request();
    turns::turn(&bench.http, &tapped, "count my requests").await?;
    let asked_letta = bench.tap.first_stream_request();
    results.dynamodb_before_letta = Some(bench.counter.between(mark, asked_letta));
    results.dynamodb.insert(
        "POST /api/v1/chat/message".into(),
        bench.counter.since(mark),
    );
    for path in [
        "/api/v1/auth/me",
        "/api/v1/chat/history",
        "/api/v1/conversations",
        "/api/v1/user/profile",
        "/api/v1/user/usage",
        "/api/v1/user/budget",
        "/api/v1/models",
        "/api/v1/agent/status",
        "/api/v1/agent/memory",
    ] {
        let mark = bench.counter.mark();
        bench
            .call_at(
                &bench.instrumented,
                reqwest::Method::GET,
                path,
                &user.token,
                None,
            )
            .await?;
        results
            .dynamodb
            .insert(format!("GET {path}"), bench.counter.since(mark));
    }
    Ok(())
}

/// The prompt tokens of a plain turn on a fresh agent and of a turn that writes memory (two
/// steps: the memory tool, then the answer), from the backend's `usage` events.
async fn prompt_tokens(bench: &Bench) -> Result<(u64, u64), String> {
    let fresh = bench.user(usize::MAX).await?;
    let target = bench.backend(&fresh);
    let mut tokens = [0; 2];
    for (n, text) in ["hello", "my name is Bench Reader"].iter().enumerate() {
        let timing = turns::turn(&bench.http, &target, text).await?;
        tokens[n] = timing.prompt_tokens.ok_or("no usage event")?;
    }
    Ok((tokens[0], tokens[1]))
}

/// Many users' turns at once, each side in turn.
async fn load(bench: &Bench, options: &Options) -> Result<Load, String> {
    let (users, per_user) = options.load;
    eprintln!("bench: {users} users x {per_user} turns at once, each side");
    let people: Vec<User> = stream::iter(0..users)
        .map(|n| bench.user(n + 1))
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut load = Load {
        users,
        turns: per_user,
        backend: Vec::new(),
        letta: Vec::new(),
        errors: (0, 0),
        wall: (Duration::ZERO, Duration::ZERO),
        cpu: (Vec::new(), Vec::new()),
    };
    for side in [true, false] {
        let started = Instant::now();
        let cpu_before = cpu::snapshot(&bench.run_dir);
        let outcomes: Vec<Result<Timing, String>> = stream::iter(&people)
            .map(|person| {
                let target = if side {
                    bench.backend(person)
                } else {
                    bench.letta(person)
                };
                let http = bench.http.clone();
                async move {
                    let mut times = Vec::new();
                    for t in 0..per_user {
                        times.push(turns::turn(&http, &target, &format!("load turn {t}")).await);
                    }
                    times
                }
            })
            .buffer_unordered(users.max(1))
            .flat_map(stream::iter)
            .collect()
            .await;
        let wall = started.elapsed();
        let cpu = cpu::since(&cpu_before, &cpu::snapshot(&bench.run_dir));
        for outcome in outcomes {
            match (outcome, side) {
                (Ok(t), true) => load.backend.push(t.first_text),
                (Ok(t), false) => load.letta.push(t.first_text),
                (Err(_), true) => load.errors.0 += 1,
                (Err(_), false) => load.errors.1 += 1,
            }
        }
        if side {
            (load.wall.0, load.cpu.0) = (wall, cpu);
        } else {
            (load.wall.1, load.cpu.1) = (wall, cpu);
        }
    }
    Ok(load)
}

/// The release bootstraps under the emulator, the Python stack, and the zips.
async fn starts(options: &Options, user: &User, results: &mut Results) -> Result<(), String> {
    let ws = &options.workspace;
    let release = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| ws.join("target"))
        .join("release");
    let plan: [(&str, &[&str]); 4] = [
        ("auth", &["auth-me"]),
        ("chat", &["chat-message", "chat-history"]),
        ("user", &["user-profile", "user-budget", "user-models"]),
        ("agent", &["agent-status", "agent-memory"]),
    ];
    for (name, files) in plan {
        let binary = release.join(name);
        if !binary.exists() {
            return Err(format!(
                "{}: build it with `cargo build --release -p {name}`",
                binary.display()
            ));
        }
        eprintln!("bench: starting the {name} bootstrap under the runtime emulator");
        let first = runtime::sample_event(ws, &format!("{name}-health"), &user.token)?;
        let events = (0..20)
            .map(|i| runtime::sample_event(ws, files[i % files.len()], &user.token))
            .collect::<Result<Vec<_>, _>>()?;
        let start = runtime::start_and_run(&binary, name, first, events).await?;
        results.starts.insert(name.into(), start);
        // `cargo lambda build --arm64 --output-format zip` (make bench) writes the package.
        let zip = release.join("../lambda").join(name).join("bootstrap.zip");
        if let Ok(meta) = std::fs::metadata(&zip) {
            results.zips.insert(name.into(), meta.len());
        }
    }
    if let Some(python) = &options.python {
        results.python = python_stack(python, ws)?;
    }
    Ok(())
}

/// The seed's Python stack imported and its app built: (ms from process start, RSS KiB), the
/// best of three runs (the first reads the packages from disk; the bootstraps get the same).
fn python_stack(python: &Path, ws: &Path) -> Result<Option<(f64, u64)>, String> {
    let script = ws.join("infra/bench/python/seed_stack.py");
    let mut best: Option<(f64, u64)> = None;
    for _ in 0..3 {
        let started = Instant::now();
        let out = std::process::Command::new(python)
            .arg(&script)
            .output()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        let wall = turns::ms(started.elapsed());
        if !out.status.success() {
            eprintln!(
                "bench: the Python stack failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let rss = v["rss_kib"].as_u64().unwrap_or(0);
        if best.is_none_or(|(ms, _)| wall < ms) {
            best = Some((wall, rss));
        }
    }
    Ok(best)
}
