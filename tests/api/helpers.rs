//! Helpers for black-box tests: the gateway on a free port, against the real local stack.

use std::{path::PathBuf, process::Command, time::Duration};

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use shared::{AppState, Config};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The local stack is shared by every test of this binary. Most tests only use it; the few that
/// stop or kill a service take it exclusively, so no other test sees the outage.
static STACK: RwLock<()> = RwLock::const_new(());

thread_local! {
    /// The stack guards this test holds: each test runs on a thread of its own (its tokio
    /// runtime too), so this counts one test's guards.
    static HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How a test holds the stack, for as long as it lives.
pub(crate) struct StackGuard {
    _lock: Option<Lock>,
}

enum Lock {
    /// Alongside other tests.
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    /// Alone: the test stops or kills services.
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

impl StackGuard {
    /// A share of the stack. A test that holds one already (a second app of its own) takes
    /// no second: the lock queues new readers behind a waiting writer, so a second share would
    /// wait for the writer while the writer waited for the first.
    async fn shared() -> Self {
        let lock = match HELD.get() {
            0 => Some(Lock::Shared(STACK.read().await)),
            _ => None,
        };
        HELD.set(HELD.get() + 1);
        Self { _lock: lock }
    }

    /// The stack alone.
    async fn exclusive() -> Self {
        assert_eq!(
            HELD.get(),
            0,
            "a test takes the stack alone before anything else"
        );
        let lock = Some(Lock::Exclusive(STACK.write().await));
        HELD.set(1);
        Self { _lock: lock }
    }
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        HELD.set(HELD.get().saturating_sub(1));
    }
}

pub(crate) struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    /// Released when the test ends (after its own clean-up guards, declared later, ran).
    _stack: StackGuard,
}

pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// The backend for a test that only uses the stack.
pub(crate) async fn spawn_app() -> TestApp {
    start(StackGuard::shared().await).await
}

/// The backend for a test that stops or kills services: no other test runs meanwhile.
pub(crate) async fn spawn_app_exclusive() -> TestApp {
    start(StackGuard::exclusive().await).await
}

/// The backend for a test that stops services, with a changed configuration.
pub(crate) async fn spawn_app_exclusive_configured(change: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = stack_config();
    change(&mut config);
    start_with(StackGuard::exclusive().await, config).await
}

/// A share of the stack for a test that uses it without the gateway.
pub(crate) async fn share_stack() -> StackGuard {
    StackGuard::shared().await
}

/// The stack's configuration, as `make test` exports it.
pub(crate) fn stack_config() -> Config {
    crate::run_log::init();
    Config::from_env().unwrap_or_else(|e| {
        panic!("the local stack's environment is missing; run `make test`. {e}")
    })
}

/// The backend with a changed configuration (a previous version's settings, say).
pub(crate) async fn spawn_app_configured(change: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = stack_config();
    change(&mut config);
    start_with(StackGuard::shared().await, config).await
}

async fn start(stack: StackGuard) -> TestApp {
    start_with(stack, stack_config()).await
}

async fn start_with(stack: StackGuard, config: Config) -> TestApp {
    let state = AppState::new(config).await;
    shared::store::table::ensure_table(&state.store)
        .await
        .expect("table");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app =
        gateway::app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(gateway::no_delay(listener), app).await.unwrap() });
    TestApp {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
        state,
        _stack: stack,
    }
}

/// A loopback port nothing listens on (for a server a test starts in another process).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A DynamoDB client of the tests' own, so checks do not go through the store they check.
pub(crate) async fn dynamodb(config: &Config) -> aws_sdk_dynamodb::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(endpoint) = &config.dynamodb.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::new(&loader.load().await)
}

/// A binary of this workspace, built by `make test` before the tests run.
pub(crate) fn workspace_binary(name: &str) -> PathBuf {
    // The test runs as target/<profile>/deps/api-<hash>; binaries are in target/<profile>.
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join(name)
}

impl TestApp {
    /// A request to Letta's REST API with its password: plain HTTP, none of the product's
    /// clients, for checks that must not go through the code they check.
    pub(crate) fn letta(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let letta = &self.state.config.letta;
        let request = self
            .http
            .request(method, format!("{}{path}", letta.base_url));
        match &letta.api_key {
            Some(p) => request.bearer_auth(p.expose()),
            None => request,
        }
    }

    /// A request to LiteLLM's admin API with the master key (plain HTTP, as [`Self::letta`]).
    pub(crate) fn litellm(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let litellm = &self.state.config.litellm;
        self.http
            .request(method, format!("{}{path}", litellm.base_url))
            .bearer_auth(litellm.master_key.expose())
    }

    /// The id of the user's agent, as `GET /auth/me` shows it.
    pub(crate) async fn agent_id(&self, token: &str) -> String {
        let me = self.me(token).await;
        assert_eq!(me.status, 200, "{}", me.body);
        me.body["profile"]["agent_id"].as_str().unwrap().to_string()
    }

    /// One item read straight from the table, as JSON; `None` when absent.
    pub(crate) async fn raw_item(&self, pk: &str, sk: &str) -> Option<Value> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let out = dynamodb(&self.state.config)
            .await
            .get_item()
            .table_name(self.state.store.table_name())
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get_item");
        out.item
            .map(|item| serde_dynamo::from_item(item).expect("a JSON-shaped item"))
    }

    /// The agent's `human` block, as `GET /agent/memory` shows it.
    pub(crate) async fn human_block(&self, token: &str) -> Value {
        let memory = self.memory(token).await;
        assert_eq!(memory.status, 200, "{}", memory.body);
        memory.body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["label"] == "human")
            .cloned()
            .expect("a human block")
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let res = request.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, None, Some(body)).await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// POSTs JSON with a token.
    pub(crate) async fn post_with(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Registers a user that must come out ready.
    pub(crate) async fn ready_user(&self, display_name: &str) -> TestUser {
        let (email, password, reply) = self.register(display_name).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_eq!(reply.body["profile"]["state"], "ready", "{}", reply.body);
        let token = reply.body["session"]["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let id = reply.body["user"]["id"].as_str().unwrap().to_string();
        TestUser {
            email,
            password,
            token,
            id,
        }
    }
}

/// A registered user whose account is ready.
pub(crate) struct TestUser {
    pub email: String,
    pub password: String,
    /// The access token.
    pub token: String,
    /// The Supabase user id.
    pub id: String,
}

pub(crate) fn unique_email() -> String {
    format!(
        "t-{}@example.com",
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// Starts or stops one local service (`services.sh start|stop NAME`).
pub(crate) fn service(action: &str, name: &str) {
    let script = std::env::var("LOCAL_SERVICES").expect("LOCAL_SERVICES (set by make test)");
    let status = Command::new("bash")
        .arg(script)
        .args([action, name])
        .status()
        .expect("services.sh");
    assert!(status.success(), "services.sh {action} {name} failed");
}

/// Starts the named services again when dropped, so a test that stops them and then fails
/// leaves the stack whole for the next (starting a running service does nothing).
pub(crate) struct Restart(pub &'static [&'static str]);

impl Drop for Restart {
    fn drop(&mut self) {
        for name in self.0 {
            service("start", name);
        }
    }
}

/// Signs a token with the local HS256 secret (for attacks and freshness tests).
pub(crate) fn sign_hs256(claims: &Value) -> String {
    let secret = std::env::var("SUPABASE_JWT_SECRET").expect("SUPABASE_JWT_SECRET");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn claims_for(user_id: &str, iat: i64) -> Value {
    let issuer = format!("{}/auth/v1", std::env::var("SUPABASE_URL").unwrap());
    json!({"iss": issuer, "sub": user_id, "aud": "authenticated", "role": "authenticated",
           "exp": iat + 3600, "iat": iat, "email": "x@example.com", "session_id": "s"})
}

/// What the four systems hold for a user.
#[derive(Debug, PartialEq)]
pub(crate) struct Footprint {
    pub supabase_user: bool,
    pub litellm_user: bool,
    pub litellm_keys: usize,
    pub letta_providers: usize,
    pub letta_agents: usize,
    pub letta_archives: usize,
    pub dynamodb_items: usize,
}

impl Footprint {
    /// Nothing of the user left anywhere.
    pub(crate) fn nothing() -> Self {
        Self {
            supabase_user: false,
            litellm_user: false,
            litellm_keys: 0,
            letta_providers: 0,
            letta_agents: 0,
            letta_archives: 0,
            dynamodb_items: 0,
        }
    }
}

/// Sends a request and reads its status and JSON body.
async fn json_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.expect("a dependency's API");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Everything the user has in the four systems, counted with plain HTTP calls to their APIs
/// (duplicates and leftovers included: nothing is collapsed to "found or not").
pub(crate) async fn footprint(app: &TestApp, user_id: &str) -> Footprint {
    let config = &app.state.config;
    let supabase_user = app
        .http
        .get(format!(
            "{}/auth/v1/admin/users/{user_id}",
            config.supabase.url
        ))
        .header("apikey", service_role_key())
        .bearer_auth(service_role_key())
        .send()
        .await
        .unwrap()
        .status()
        == 200;

    let (_, info) =
        json_of(app.litellm(Method::GET, &format!("/user/info?user_id={user_id}"))).await;
    let litellm_user = info.get("user_info").is_some_and(|u| !u.is_null());
    let (status, keys) = json_of(app.litellm(
        Method::GET,
        &format!("/key/list?user_id={user_id}&size=100"),
    ))
    .await;
    assert_eq!(status, 200, "{keys}");
    let litellm_keys = keys["keys"].as_array().expect("a key list").len();

    // Letta's names for the user's things: `user-<id>` (provider), `agent-<id>` and the tag
    // `user:<id>` (agents), "agent-<id>'s Archive" (the archives Letta makes for them).
    let list = |path: String| async move {
        let (status, body) = json_of(app.letta(Method::GET, &path)).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("a list").clone()
    };
    let providers = list(format!("/v1/providers/?name=user-{user_id}&limit=100")).await;
    let mut agents: Vec<String> = list(format!("/v1/agents/?name=agent-{user_id}&limit=100"))
        .await
        .into_iter()
        .chain(list(format!("/v1/agents/?tags=user:{user_id}&limit=100")).await)
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    agents.sort();
    agents.dedup();
    let archive_name = format!("agent-{user_id}'s Archive")
        .replace(' ', "%20")
        .replace('\'', "%27");
    let archives = list(format!("/v1/archives/?name={archive_name}&limit=100")).await;

    let id = shared::domain::UserId::parse(user_id).unwrap();
    let items = dynamodb(config)
        .await
        .query()
        .table_name(app.state.store.table_name())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("USER#{id}")),
        )
        .send()
        .await
        .unwrap()
        .count as usize;
    Footprint {
        supabase_user,
        litellm_user,
        litellm_keys,
        letta_providers: providers.len(),
        letta_agents: agents.len(),
        letta_archives: archives.len(),
        dynamodb_items: items,
    }
}

/// One SSE event as a standard parser reads it.
#[derive(Debug, Clone)]
pub(crate) struct SseEvent {
    pub id: String,
    pub name: String,
    pub data: Value,
}

pub(crate) enum ChatReply {
    Stream(Vec<SseEvent>),
    Json(Reply),
}

impl ChatReply {
    pub(crate) fn events(self) -> Vec<SseEvent> {
        match self {
            Self::Stream(events) => events,
            Self::Json(reply) => panic!("expected a stream, got {} {}", reply.status, reply.body),
        }
    }

    pub(crate) fn json(self) -> Reply {
        match self {
            Self::Json(reply) => reply,
            Self::Stream(events) => panic!("expected a JSON answer, got a stream: {events:?}"),
        }
    }
}

pub(crate) fn names(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

pub(crate) fn text_of(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.name == "delta")
        .filter_map(|e| e.data["text"].as_str())
        .collect()
}

pub(crate) async fn read_chat(res: reqwest::Response) -> ChatReply {
    use futures_util::StreamExt;
    let is_sse = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.json().await.unwrap_or(Value::Null);
        return ChatReply::Json(Reply {
            status,
            headers,
            body,
        });
    }
    ChatReply::Stream(sse_events(res).collect().await)
}

/// A chat stream's events as they arrive, for tests that act in the middle of a turn.
pub(crate) fn sse_events(
    res: reqwest::Response,
) -> impl futures_util::Stream<Item = SseEvent> + Unpin {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    res.bytes_stream().eventsource().map(|event| {
        let event = event.expect("a valid SSE stream");
        SseEvent {
            id: event.id,
            name: event.event,
            data: serde_json::from_str(&event.data).expect("JSON data"),
        }
    })
}

/// Polls until `f` gives `Some` (for what lands asynchronously).
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "{what} did not happen within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A message long enough that the agent's reply streams in many pieces.
pub(crate) const LONG_MESSAGE: &str = "please repeat these words back to me so that the stream has many small pieces in it today and tomorrow";

/// The local Supabase's service-role key (the product gives it to the auth function only).
pub(crate) fn service_role_key() -> String {
    std::env::var("SUPABASE_SERVICE_ROLE_KEY")
        .expect("SUPABASE_SERVICE_ROLE_KEY (set by make test)")
}
