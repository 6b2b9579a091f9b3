//! LiteLLM proxy admin API (master key): users, keys, budgets, spend, prices.

mod transcription;

pub use transcription::{Audio, Transcript};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    app::{
        config::LiteLlmConfig,
        dependency::{DependencyError, Service},
        secret::Secret,
    },
    clients::http as upstream,
    domain::Usage,
};

/// The LiteLLM proxy's admin API, with the master key.
#[derive(Clone, Debug)]
pub struct LiteLlm {
    http: reqwest::Client,
    base: String,
    master_key: Secret,
    /// The deployment every user and key the backend makes is marked with (`metadata`).
    deployment: String,
    /// Requests and tokens per minute and calls in flight every user key gets (LiteLLM's
    /// field names): a key that leaks cannot be used faster than the product allows, nor can a
    /// runaway agent.
    key_limits: Value,
}

/// The `metadata` field that names the deployment a LiteLLM user or key belongs to.
pub const DEPLOYMENT_FIELD: &str = "deployment";

/// The deployment a LiteLLM record's `metadata` names, if any.
fn deployment_of(metadata: &Value) -> Option<&str> {
    metadata.get(DEPLOYMENT_FIELD).and_then(Value::as_str)
}

/// The answer to `/user/new`: the user and its first virtual key.
#[derive(Debug, Deserialize)]
pub struct NewUser {
    /// The user id (the Supabase id).
    pub user_id: String,
    /// The user's first virtual key.
    pub key: Secret,
    /// The key's alias.
    #[serde(default)]
    pub key_alias: Option<String>,
    /// The budget LiteLLM set.
    #[serde(default)]
    pub max_budget: Option<f64>,
}

/// The answer to `/user/info`.
#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    /// The user id asked for.
    pub user_id: String,
    /// The user, or `null` for unknown ids.
    pub user_info: Option<UserRecord>,
    /// The user's keys (as hashes).
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
}

/// A LiteLLM user's budget and spend.
#[derive(Debug, Clone, Deserialize)]
pub struct UserRecord {
    /// Spend in the current budget period, USD.
    #[serde(default)]
    pub spend: f64,
    /// The cap per period, USD.
    #[serde(default)]
    pub max_budget: Option<f64>,
    /// The period (`1mo`, …).
    #[serde(default)]
    pub budget_duration: Option<String>,
    /// When the period resets.
    #[serde(default)]
    pub budget_reset_at: Option<String>,
    /// When it was made (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Its metadata (this backend's users carry their deployment).
    #[serde(default)]
    pub metadata: Value,
}

impl UserRecord {
    /// The deployment that made this user, when it is marked.
    pub fn deployment(&self) -> Option<&str> {
        deployment_of(&self.metadata)
    }

    /// What is left of the budget this period (never negative); `None` without a budget.
    pub fn remaining(&self) -> Option<f64> {
        self.max_budget.map(|m| (m - self.spend).max(0.0))
    }
}

/// One of a user's keys, as `/user/info` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyRecord {
    /// The key's hash (never the key itself).
    pub token: String,
    #[serde(default)]
    pub key_alias: Option<String>,
    /// Its shortened display name.
    #[serde(default)]
    pub key_name: Option<String>,
    /// Its spend, USD.
    #[serde(default)]
    pub spend: f64,
    /// When it expires (short-lived keys), RFC 3339.
    #[serde(default)]
    pub expires: Option<String>,
    /// Its metadata (this backend's keys carry their deployment).
    #[serde(default)]
    pub metadata: Value,
}

impl KeyRecord {
    /// The deployment that made this key, when it is marked.
    pub fn deployment(&self) -> Option<&str> {
        deployment_of(&self.metadata)
    }
}

/// One LLM call as LiteLLM billed it (`/spend/logs/v2`).
#[derive(Debug, Clone, Deserialize)]
pub struct SpendLog {
    /// LiteLLM's request id.
    pub request_id: String,
    /// The hash of the key that paid.
    #[serde(default)]
    pub api_key: String,
    /// USD.
    #[serde(default)]
    pub spend: f64,
    /// When the call started (RFC 3339).
    #[serde(rename = "startTime")]
    pub start_time: String,
    /// `success` or `failure`.
    #[serde(default)]
    pub status: Option<String>,
    /// Holds `user_api_key_alias`, the alias of the key that paid.
    #[serde(default)]
    pub metadata: Value,
}

impl SpendLog {
    /// The alias of the key that paid, when it had one.
    pub fn key_alias(&self) -> Option<&str> {
        self.metadata
            .get("user_api_key_alias")
            .and_then(Value::as_str)
    }
}

/// LiteLLM's id of a key: the SHA-256 of the key, in hex.
pub fn key_hash(key: &Secret) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.expose().as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl LiteLlm {
    /// A client on the shared HTTP client; what it makes carries `deployment`.
    pub fn new(http: reqwest::Client, config: &LiteLlmConfig, deployment: &str) -> Self {
        Self {
            http,
            deployment: deployment.to_string(),
            base: config.base_url.clone(),
            master_key: config.master_key.clone(),
            key_limits: json!({
                "rpm_limit": config.key_rpm_limit,
                "tpm_limit": config.key_tpm_limit,
                "max_parallel_requests": config.key_max_parallel,
            }),
        }
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(self.master_key.expose())
    }

    /// Ready only with its database connected (keys and budgets need it).
    pub async fn health(&self) -> Result<(), DependencyError> {
        let body: Value = upstream::send_json(
            Service::LiteLlm,
            self.http.get(format!("{}/health/readiness", self.base)),
        )
        .await?;
        match body.get("db").and_then(Value::as_str) {
            Some("connected") => Ok(()),
            other => Err(DependencyError::Status {
                service: Service::LiteLlm,
                status: 503,
                body: format!("database not connected ({})", other.unwrap_or("unknown")),
            }),
        }
    }

    /// Creates a user with a budget and a first key (aliased `key_alias`).
    pub async fn new_user(
        &self,
        user_id: &str,
        key_alias: &str,
        max_budget: f64,
        budget_duration: &str,
    ) -> Result<NewUser, DependencyError> {
        let fields = self.with_key_limits(json!({
            "user_id": user_id,
            "key_alias": key_alias,
            "max_budget": max_budget,
            "budget_duration": budget_duration,
        }));
        upstream::send_json(
            Service::LiteLlm,
            self.admin(reqwest::Method::POST, "/user/new").json(&fields),
        )
        .await
    }

    /// A new virtual key for an existing user.
    pub async fn generate_key(
        &self,
        user_id: &str,
        key_alias: &str,
    ) -> Result<Secret, DependencyError> {
        self.generate(json!({"user_id": user_id, "key_alias": key_alias}))
            .await
    }

    /// A key of the user's that expires by itself after `duration` (LiteLLM's `30s`, `2m`, …),
    /// for one call the backend makes on the user's behalf (billed to the user, under the
    /// user's budget). Delete it after use.
    pub async fn short_lived_key(
        &self,
        user_id: &str,
        duration: &str,
        purpose: &str,
    ) -> Result<Secret, DependencyError> {
        self.generate(json!({"user_id": user_id, "duration": duration,
                             "metadata": {"purpose": purpose}}))
            .await
    }

    /// `fields` with the limits every user key gets (requests and tokens per minute, calls in
    /// flight at once) and this deployment's mark in its `metadata`.
    fn with_key_limits(&self, mut fields: Value) -> Value {
        if let (Some(fields), Some(limits)) = (fields.as_object_mut(), self.key_limits.as_object())
        {
            fields.extend(limits.clone());
        }
        if !fields["metadata"].is_object() {
            fields["metadata"] = json!({});
        }
        fields["metadata"][DEPLOYMENT_FIELD] = json!(self.deployment);
        fields
    }

    /// `/key/generate` with `fields`, and the per-key limits every user key gets.
    async fn generate(&self, fields: Value) -> Result<Secret, DependencyError> {
        #[derive(Deserialize)]
        struct Generated {
            key: Secret,
        }
        let fields = self.with_key_limits(fields);
        let generated: Generated = upstream::send_json(
            Service::LiteLlm,
            self.admin(reqwest::Method::POST, "/key/generate")
                .json(&fields),
        )
        .await?;
        Ok(generated.key)
    }

    /// One chat completion with a user's key: the answer's text and its token counts.
    pub async fn complete(
        &self,
        key: &Secret,
        model: &str,
        system: &str,
        prompt: &str,
        max_tokens: u32,
    ) -> Result<(String, Usage), DependencyError> {
        let answer: Value = upstream::send_json(
            Service::LiteLlm,
            self.http
                .post(format!("{}/v1/chat/completions", self.base))
                .bearer_auth(key.expose())
                .json(&json!({
                    "model": model,
                    "max_tokens": max_tokens,
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": prompt},
                    ],
                })),
        )
        .await?;
        let tokens = |field: &str| {
            answer
                .pointer(&format!("/usage/{field}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let usage = Usage {
            prompt_tokens: tokens("prompt_tokens"),
            completion_tokens: tokens("completion_tokens"),
            total_tokens: tokens("total_tokens"),
            steps: 1,
        };
        let text = answer
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok((text, usage))
    }

    /// Deletes keys by their hashes (LiteLLM accepts keys or hashes).
    pub async fn delete_keys(&self, hashes: &[String]) -> Result<(), DependencyError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let request = self
            .admin(reqwest::Method::POST, "/key/delete")
            .json(&json!({"keys": hashes}));
        upstream::absent_on_404(upstream::send(Service::LiteLlm, request).await).map(|_| ())
    }

    /// Sets a user's budget (and optionally its period).
    pub async fn update_user_budget(
        &self,
        user_id: &str,
        max_budget: f64,
        budget_duration: Option<&str>,
    ) -> Result<(), DependencyError> {
        let mut body = json!({"user_id": user_id, "max_budget": max_budget});
        if let Some(d) = budget_duration {
            body["budget_duration"] = json!(d);
        }
        upstream::send(
            Service::LiteLlm,
            self.admin(reqwest::Method::POST, "/user/update")
                .json(&body),
        )
        .await
        .map(|_| ())
    }

    /// `None` when LiteLLM has no such user.
    pub async fn user_info(&self, user_id: &str) -> Result<Option<UserInfo>, DependencyError> {
        let request = self
            .admin(reqwest::Method::GET, "/user/info")
            .query(&[("user_id", user_id)]);
        let info = upstream::absent_on_404(
            upstream::send_json::<UserInfo>(Service::LiteLlm, request).await,
        )?;
        // LiteLLM 1.106 answers 200 with `user_info: null` for some unknown ids.
        Ok(info.filter(|i| i.user_info.is_some()))
    }

    /// Deletes the user (its keys must be deleted first).
    pub async fn delete_user(&self, user_id: &str) -> Result<(), DependencyError> {
        let request = self
            .admin(reqwest::Method::POST, "/user/delete")
            .json(&json!({"user_ids": [user_id]}));
        upstream::absent_on_404(upstream::send(Service::LiteLlm, request).await).map(|_| ())
    }

    /// One page (from 1, at most 100 a page) of the ids of every LiteLLM user.
    pub async fn user_ids(
        &self,
        page: u32,
        page_size: u32,
    ) -> Result<Vec<String>, DependencyError> {
        #[derive(Deserialize)]
        struct Page {
            users: Vec<Listed>,
        }
        #[derive(Deserialize)]
        struct Listed {
            user_id: String,
        }
        let request = self
            .admin(reqwest::Method::GET, "/user/list")
            .query(&[("page", page), ("page_size", page_size.min(100))]);
        let page: Page = upstream::send_json(Service::LiteLlm, request).await?;
        Ok(page.users.into_iter().map(|u| u.user_id).collect())
    }

    /// Every call billed to the user that started in `[from, to]` (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub async fn spend_logs(
        &self,
        user_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<SpendLog>, DependencyError> {
        #[derive(Deserialize)]
        struct Page {
            data: Vec<SpendLog>,
            #[serde(default)]
            total_pages: u32,
        }
        let mut logs = Vec::new();
        for page in 1.. {
            let request = self.admin(reqwest::Method::GET, "/spend/logs/v2").query(&[
                ("user_id", user_id),
                ("start_date", from),
                ("end_date", to),
                ("page", &page.to_string()),
                ("page_size", "1000"),
            ]);
            let answer: Page = upstream::send_json(Service::LiteLlm, request).await?;
            logs.extend(answer.data);
            if page >= answer.total_pages {
                break;
            }
        }
        Ok(logs)
    }

    /// `/model/info`: each model's prices per token.
    pub async fn model_info(&self) -> Result<Value, DependencyError> {
        upstream::send_json(
            Service::LiteLlm,
            self.admin(reqwest::Method::GET, "/model/info"),
        )
        .await
    }
}
