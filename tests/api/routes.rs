//! One helper per route of the API on [`TestApp`], so tests say what they do
//! (`app.budget(&token)`) rather than how (`app.get("/api/v1/user/budget", &token)`).
//! Tests of the routes' edges (bad paths, methods, bodies) still send their own requests.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ChatReply, Reply, TestApp, read_chat, unique_email};

impl TestApp {
    /// Registers a new user and returns (email, password, register reply).
    pub(crate) async fn register(&self, display_name: &str) -> (String, String, Reply) {
        let email = unique_email();
        let password = "correct-horse-battery".to_string();
        let reply = self
            .post(
                "/api/v1/auth/register",
                json!({"email": email, "password": password, "display_name": display_name}),
            )
            .await;
        (email, password, reply)
    }

    pub(crate) async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// `POST /auth/refresh`.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// `GET /auth/me`.
    pub(crate) async fn me(&self, token: &str) -> Reply {
        self.get("/api/v1/auth/me", token).await
    }

    /// `DELETE /api/v1/auth/account` with the token and, when given, the password.
    pub(crate) async fn delete_account(&self, token: &str, password: Option<&str>) -> Reply {
        let body = password.map(|p| json!({"password": p}));
        self.call(Method::DELETE, "/api/v1/auth/account", Some(token), body)
            .await
    }

    /// `GET /user/profile`.
    pub(crate) async fn profile(&self, token: &str) -> Reply {
        self.get("/api/v1/user/profile", token).await
    }

    /// `PATCH /user/profile`.
    pub(crate) async fn update_profile(&self, token: &str, changes: Value) -> Reply {
        self.call(
            Method::PATCH,
            "/api/v1/user/profile",
            Some(token),
            Some(changes),
        )
        .await
    }

    /// `GET /user/budget`.
    pub(crate) async fn budget(&self, token: &str) -> Reply {
        self.get("/api/v1/user/budget", token).await
    }

    /// `POST /user/budget`.
    pub(crate) async fn set_budget(&self, token: &str, body: Value) -> Reply {
        self.post_with("/api/v1/user/budget", token, body).await
    }

    /// `GET /user/usage` with a query (`""`, or `?from=…`).
    pub(crate) async fn usage(&self, token: &str, query: &str) -> Reply {
        self.get(&format!("/api/v1/user/usage{query}"), token).await
    }

    /// `GET /user/health`.
    pub(crate) async fn account_health(&self, token: &str) -> Reply {
        self.get("/api/v1/user/health", token).await
    }

    /// `GET /models`.
    pub(crate) async fn models(&self, token: &str) -> Reply {
        self.get("/api/v1/models", token).await
    }

    /// `GET /agent/status`.
    pub(crate) async fn agent_status(&self, token: &str) -> Reply {
        self.get("/api/v1/agent/status", token).await
    }

    /// `GET /agent/memory`.
    pub(crate) async fn memory(&self, token: &str) -> Reply {
        self.get("/api/v1/agent/memory", token).await
    }

    /// `POST /agent/memory`: a block's new value, or an archival memory.
    pub(crate) async fn write_memory(&self, token: &str, body: Value) -> Reply {
        self.post_with("/api/v1/agent/memory", token, body).await
    }

    /// `GET /agent/memory/archival` with a query (`""`, or `?query=…`).
    pub(crate) async fn archival(&self, token: &str, query: &str) -> Reply {
        self.get(&format!("/api/v1/agent/memory/archival{query}"), token)
            .await
    }

    /// `POST /agent/reset`.
    pub(crate) async fn reset(&self, token: &str, body: Value) -> Reply {
        self.post_with("/api/v1/agent/reset", token, body).await
    }

    /// `GET /conversations` with a query (`""`, or `?limit=…`).
    pub(crate) async fn conversations(&self, token: &str, query: &str) -> Reply {
        self.get(&format!("/api/v1/conversations{query}"), token)
            .await
    }

    /// `POST /conversations`.
    pub(crate) async fn create_conversation(&self, token: &str, body: Value) -> Reply {
        self.post_with("/api/v1/conversations", token, body).await
    }

    /// `POST /chat/message` with `body` (and an `Idempotency-Key`, when given): the answer
    /// unread.
    pub(crate) async fn send_chat(
        &self,
        token: &str,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/api/v1/chat/message", self.base))
            .bearer_auth(token)
            .json(&body);
        if let Some(k) = idempotency_key {
            request = request.header("idempotency-key", k);
        }
        request.send().await.expect("chat request")
    }

    /// A message to the default conversation: the answer unread.
    pub(crate) async fn chat_request(
        &self,
        token: &str,
        content: &str,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let body = json!({ "content": content });
        self.send_chat(token, body, idempotency_key).await
    }

    /// Sends a message and reads the whole SSE stream (or the JSON error).
    pub(crate) async fn chat(
        &self,
        token: &str,
        content: &str,
        idempotency_key: Option<&str>,
    ) -> ChatReply {
        let res = self.chat_request(token, content, idempotency_key).await;
        read_chat(res).await
    }

    pub(crate) async fn history(&self, token: &str, query: &str) -> Reply {
        self.get(&format!("/api/v1/chat/history{query}"), token)
            .await
    }

    /// Sends a message in a conversation and reads the whole stream (or the JSON error).
    pub(crate) async fn chat_in(
        &self,
        token: &str,
        conversation: &str,
        content: &str,
    ) -> ChatReply {
        let body = json!({"content": content, "conversation_id": conversation});
        read_chat(self.send_chat(token, body, None).await).await
    }

    /// `PATCH /api/v1/user/profile` choosing `model`.
    pub(crate) async fn choose_model(&self, token: &str, model: &str) -> Reply {
        self.update_profile(token, json!({ "model": model })).await
    }

    /// The names `GET /api/v1/models` offers.
    pub(crate) async fn model_names(&self, token: &str) -> Vec<String> {
        let models = self.models(token).await;
        models.body["models"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", models.body))
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// `POST /conversations`, which must answer 201: the conversation.
    pub(crate) async fn new_conversation(&self, token: &str, body: Option<Value>) -> Value {
        let reply = self
            .call(Method::POST, "/api/v1/conversations", Some(token), body)
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body
    }

    /// Every NDJSON line of the user's export.
    pub(crate) async fn export(&self, token: &str) -> Vec<Value> {
        let res = self
            .http
            .get(format!("{}/api/v1/user/export", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("export");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "application/x-ndjson"
        );
        let text = res.text().await.unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
            .collect()
    }

    /// `GET /conversations/{id}`.
    pub(crate) async fn conversation(&self, token: &str, id: &str) -> Reply {
        self.get(&format!("/api/v1/conversations/{id}"), token)
            .await
    }

    /// `PATCH /conversations/{id}` with a title.
    pub(crate) async fn rename_conversation(&self, token: &str, id: &str, title: &str) -> Reply {
        let path = format!("/api/v1/conversations/{id}");
        self.call(
            Method::PATCH,
            &path,
            Some(token),
            Some(json!({ "title": title })),
        )
        .await
    }

    /// `POST /conversations/{id}/cancel`: stops the conversation's running turn.
    pub(crate) async fn cancel_turn(&self, token: &str, id: &str) -> Reply {
        let path = format!("/api/v1/conversations/{id}/cancel");
        self.call(Method::POST, &path, Some(token), None).await
    }

    /// `POST /agent/files` with one file.
    pub(crate) async fn upload(&self, token: &str, name: &str, bytes: Vec<u8>) -> Reply {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        let res = self
            .http
            .post(format!("{}/api/v1/agent/files", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        read_chat(res).await.json()
    }

    /// `DELETE /conversations/{id}`.
    pub(crate) async fn delete_conversation(&self, token: &str, id: &str) -> Reply {
        let path = format!("/api/v1/conversations/{id}");
        self.call(Method::DELETE, &path, Some(token), None).await
    }
}
