//! Typed configuration, read and validated once per cold start.
//!
//! Every problem is collected and reported in one error that names each variable, so an operator
//! fixes a deployment in one pass instead of one variable per cold start.

use std::{collections::HashMap, fmt, str::FromStr, time::Duration};

use crate::app::{secret::Secret, secrets};

mod letta;

pub use letta::{LettaConfig, LettaKind, PLAIN_CONTENT_AGENT_TYPE};

/// Everything read from the environment, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// This deployment's id (`DEPLOYMENT_ID`, by default the table's name): everything the
    /// backend makes in LiteLLM and Letta carries it (key and user metadata, an agent tag), and
    /// the reconciler touches nothing that carries another.
    pub deployment_id: String,
    /// The table.
    pub dynamodb: DynamoDbConfig,
    /// The Letta server and the agents it makes.
    pub letta: LettaConfig,
    /// The LiteLLM proxy.
    pub litellm: LiteLlmConfig,
    /// Supabase Auth and token verification.
    pub supabase: SupabaseConfig,
    /// Users' budgets.
    pub budget: BudgetConfig,
    /// HTTP limits and timeouts.
    pub http: HttpConfig,
    /// Rate limits.
    pub rates: RateLimitConfig,
    /// The reconciler.
    pub reconcile: ReconcileConfig,
}

/// What the reconciler checks and whether it repairs (`RECONCILE_*`).
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Repair what is safe to repair (otherwise only report).
    pub fix: bool,
    /// How old an unfinished account or an extra agent must be before it counts: younger ones
    /// may still be in the middle of a request.
    pub grace: Duration,
    /// How far back turns are checked against LiteLLM's spend logs.
    pub lookback: Duration,
    /// How long after a turn LiteLLM may still be writing its spend logs (it batches them;
    /// `proxy_batch_write_at`, 10 s by default): younger turns are not judged yet.
    pub settle: Duration,
}

/// Rate limits, counted in DynamoDB so they hold across Lambda instances.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Chat turns a user may start per minute.
    pub chat_per_minute: u64,
    /// Chat turns a user may start per day (UTC).
    pub chat_per_day: u64,
    /// Other authenticated requests a user may make per minute.
    pub requests_per_minute: u64,
    /// Register, login and refresh requests per client IP per minute.
    pub auth_per_minute: u64,
    /// Failed password checks (login, account deletion) one account may have per 15 minutes,
    /// whatever the client addresses.
    pub password_failures: u64,
    /// Chat turns one user may have running at once, across conversations
    /// (`CHAT_CONCURRENT_TURNS`, 1 to 25).
    pub concurrent_turns: u32,
    /// Conversations one user may have besides the default one (`CONVERSATIONS_MAX`).
    pub conversations_max: u64,
    /// Characters one user may have embedded per day (UTC), archival inserts and searches,
    /// the user's and the agent's (`EMBEDDING_CHARS_PER_DAY`): the operator pays for them.
    pub embedding_chars_per_day: u64,
}

impl RateLimitConfig {
    fn read(r: &mut Reader<'_>) -> Self {
        let mut positive = |name: &str, default: u64| {
            let v: u64 = r.parsed(name, default, "a positive integer");
            if v == 0 {
                r.problems.push(format!("{name} must be at least 1"));
            }
            v
        };
        Self {
            chat_per_minute: positive("RATE_CHAT_PER_MINUTE", 10),
            chat_per_day: positive("RATE_CHAT_PER_DAY", 500),
            requests_per_minute: positive("RATE_REQUESTS_PER_MINUTE", 120),
            auth_per_minute: positive("RATE_AUTH_PER_MINUTE", 10),
            password_failures: positive("RATE_PASSWORD_FAILURES", 10),
            conversations_max: positive("CONVERSATIONS_MAX", 1000),
            embedding_chars_per_day: positive("EMBEDDING_CHARS_PER_DAY", 200_000),
            concurrent_turns: r.ranged("CHAT_CONCURRENT_TURNS", 3, 1..=25),
        }
    }
}

/// Where the table is.
#[derive(Debug, Clone)]
pub struct DynamoDbConfig {
    /// The table's name.
    pub table_name: String,
    /// Set for DynamoDB Local; unset in AWS, where the SDK finds the regional endpoint.
    pub endpoint: Option<String>,
    /// How long one attempt of a DynamoDB call may take (the SDK makes up to three): a
    /// DynamoDB that does not answer ends the request with a 503, not at the function's timeout.
    pub attempt_timeout: Duration,
}

/// The LiteLLM proxy.
#[derive(Debug, Clone)]
pub struct LiteLlmConfig {
    /// Its URL.
    pub base_url: String,
    /// Its master key.
    pub master_key: Secret,
    /// Requests per minute each user key may make (`rpm_limit`).
    pub key_rpm_limit: u64,
    /// Tokens per minute each user key may use (`tpm_limit`).
    pub key_tpm_limit: u64,
    /// Calls each user key may have in flight at once (`max_parallel_requests`).
    pub key_max_parallel: u64,
    /// The speech-to-text model voice messages are transcribed with (`TRANSCRIPTION_MODEL`).
    pub transcription_model: String,
}

/// An access-token signature algorithm Supabase uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC with the project's JWT secret.
    Hs256,
    /// ECDSA P-256, keys from the JWKS.
    Es256,
    /// RSA, keys from the JWKS.
    Rs256,
}

impl FromStr for JwtAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "HS256" => Ok(Self::Hs256),
            "ES256" => Ok(Self::Es256),
            "RS256" => Ok(Self::Rs256),
            other => Err(format!(
                "unknown algorithm {other:?} (expected HS256, ES256 or RS256)"
            )),
        }
    }
}

/// Supabase Auth.
#[derive(Debug, Clone)]
pub struct SupabaseConfig {
    /// The project URL.
    pub url: String,
    /// The anon key (sent as `apikey`).
    pub anon_key: Secret,
    /// The service-role key (admin API): only the function that deletes accounts has it.
    pub service_role_key: Option<Secret>,
    /// Needed when HS256 is among the accepted algorithms.
    pub jwt_secret: Option<Secret>,
    /// Accepted algorithms.
    pub jwt_algorithms: Vec<JwtAlgorithm>,
    /// The expected `iss`.
    pub jwt_issuer: String,
}

/// Users' budgets.
#[derive(Debug, Clone)]
pub struct BudgetConfig {
    /// USD given to each new user for each budget period.
    pub default_budget: f64,
    /// The budget period (a LiteLLM duration).
    pub duration: String,
    /// The operator's ceiling on what a user may set for themselves.
    pub max_budget: f64,
}

/// HTTP limits and timeouts.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Timeout of calls to dependencies. Above Letta's ~16 s worst case of LLM retries,
    /// below the function's own timeout.
    pub upstream_timeout: Duration,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// Origins allowed by CORS; empty means no CORS headers (function URLs add their own).
    pub cors_allowed_origins: Vec<String>,
    /// Longest chat message accepted, in characters.
    pub chat_max_chars: usize,
    /// Largest voice message accepted, in bytes of audio.
    pub voice_max_bytes: usize,
    /// How long `GET /health` reuses a dependency check (per instance), so the public endpoint
    /// cannot multiply load on the dependencies.
    pub health_cache: Duration,
    /// How long a chat stream may stay silent before a `: keep-alive` comment is sent.
    pub sse_keep_alive: Duration,
    /// Retries of an idempotent dependency call (reads, deletes) after its first attempt.
    pub upstream_retries: u32,
    /// The value CloudFront sends as `x-origin-verify` (the optional one-origin distribution):
    /// a request carrying it has its client IP from `CloudFront-Viewer-Address`.
    pub cloudfront_origin_secret: Option<Secret>,
}

/// Budget durations LiteLLM accepts.
pub const BUDGET_DURATIONS: &[&str] = &["1d", "1w", "1mo", "3mo", "6mo", "1y"];

/// Every problem of the configuration, each naming its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.problems.join("; "))
    }
}

impl std::error::Error for ConfigError {}

/// Reads variables and remembers every problem instead of stopping at the first.
struct Reader<'a> {
    vars: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.vars)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn required(&mut self, name: &str) -> String {
        self.optional(name).unwrap_or_else(|| {
            self.problems.push(format!("{name} is missing"));
            String::new()
        })
    }

    fn check_url(&mut self, name: &str, value: &str) {
        if !(value.is_empty() || value.starts_with("http://") || value.starts_with("https://")) {
            self.problems
                .push(format!("{name} must be an http(s) URL, got {value:?}"));
        }
    }

    fn url(&mut self, name: &str, default: Option<&str>) -> String {
        let value = match default {
            Some(d) => self.optional(name).unwrap_or_else(|| d.to_string()),
            None => self.required(name),
        };
        self.check_url(name, &value);
        value.trim_end_matches('/').to_string()
    }

    fn optional_url(&mut self, name: &str) -> Option<String> {
        let value = self.optional(name)?;
        self.check_url(name, &value);
        Some(value.trim_end_matches('/').to_string())
    }

    /// A whole number in `range` (`default` when unset).
    fn ranged(&mut self, name: &str, default: u32, range: std::ops::RangeInclusive<u32>) -> u32 {
        let what = format!("a whole number from {} to {}", range.start(), range.end());
        let v = self.parsed(name, default, &what);
        if !range.contains(&v) {
            self.problems
                .push(format!("{name} must be {what}, got {v}"));
        }
        v
    }

    fn parsed<T: FromStr>(&mut self, name: &str, default: T, what: &str) -> T {
        match self.optional(name) {
            None => default,
            Some(raw) => raw.parse().unwrap_or_else(|_| {
                self.problems
                    .push(format!("{name} must be {what}, got {raw:?}"));
                default
            }),
        }
    }
}

impl Config {
    /// Reads the configuration once per cold start: the process environment plus, when
    /// `SECRETS_ID` names one, the function's secret in Secrets Manager (read as `function`).
    /// `required` names the optional variables this function cannot do without (only auth,
    /// which deletes accounts, needs `SUPABASE_SERVICE_ROLE_KEY`).
    pub async fn load(function: &str, required: &[&str]) -> Result<Self, ConfigError> {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        let mut problems = secrets::add_secrets(&mut vars, function).await;
        problems.extend(
            required
                .iter()
                .filter(|name| vars.get(**name).is_none_or(|v| v.trim().is_empty()))
                .map(|name| format!("{name} is missing")),
        );
        match Self::from_map(&vars) {
            Ok(config) if problems.is_empty() => Ok(config),
            Ok(_) => Err(ConfigError { problems }),
            Err(e) => {
                problems.extend(e.problems);
                Err(ConfigError { problems })
            }
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads from a map, for tests.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| map.get(name).cloned())
    }

    /// Reads every section through `vars`, collecting all problems before failing.
    pub fn from_lookup(vars: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            vars,
            problems: Vec::new(),
        };
        let dynamodb = DynamoDbConfig {
            table_name: r.required("TABLE_NAME"),
            endpoint: r.optional_url("DYNAMODB_ENDPOINT"),
            attempt_timeout: Duration::from_secs(r.parsed(
                "DYNAMODB_TIMEOUT_SECS",
                3u64,
                "a whole number of seconds",
            )),
        };
        let litellm = LiteLlmConfig {
            base_url: r.url("LITELLM_BASE_URL", None),
            master_key: Secret::new(r.required("LITELLM_MASTER_KEY")),
            key_rpm_limit: r.parsed("LITELLM_KEY_RPM_LIMIT", 60, "a positive integer"),
            key_tpm_limit: r.parsed("LITELLM_KEY_TPM_LIMIT", 200_000, "a positive integer"),
            key_max_parallel: r.parsed("LITELLM_KEY_MAX_PARALLEL", 4, "a positive integer"),
            transcription_model: r
                .optional("TRANSCRIPTION_MODEL")
                .unwrap_or_else(|| "whisper-1".into()),
        };
        let letta = LettaConfig::read(&mut r, &litellm.base_url);
        let supabase = SupabaseConfig::read(&mut r);
        let budget = BudgetConfig::read(&mut r);
        let http = HttpConfig::read(&mut r);
        let rates = RateLimitConfig::read(&mut r);
        let reconcile = ReconcileConfig {
            fix: r.parsed("RECONCILE_FIX", false, "true or false"),
            grace: Duration::from_secs(r.parsed(
                "RECONCILE_GRACE_SECS",
                3600u64,
                "a whole number of seconds",
            )),
            lookback: Duration::from_secs(
                3600 * r.parsed("RECONCILE_LOOKBACK_HOURS", 48u64, "a whole number of hours"),
            ),
            settle: Duration::from_secs(r.parsed(
                "RECONCILE_SETTLE_SECS",
                60u64,
                "a whole number of seconds",
            )),
        };
        let deployment_id = r
            .optional("DEPLOYMENT_ID")
            .unwrap_or_else(|| dynamodb.table_name.clone());
        // Empty only when TABLE_NAME is missing, which is reported already.
        if deployment_id.len() > 64
            || !deployment_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            r.problems.push(format!(
                "DEPLOYMENT_ID must be 1 to 64 letters, digits, '.', '_' or '-', got {deployment_id:?}"
            ));
        }
        if r.problems.is_empty() {
            Ok(Config {
                deployment_id,
                dynamodb,
                letta,
                litellm,
                supabase,
                budget,
                http,
                rates,
                reconcile,
            })
        } else {
            Err(ConfigError {
                problems: r.problems,
            })
        }
    }
}

impl SupabaseConfig {
    fn read(r: &mut Reader<'_>) -> Self {
        let url = r.url("SUPABASE_URL", None);
        let jwt_algorithms = Self::algorithms(r);
        let jwt_secret = r.optional("SUPABASE_JWT_SECRET").map(Secret::new);
        if jwt_algorithms.contains(&JwtAlgorithm::Hs256) && jwt_secret.is_none() {
            r.problems
                .push("SUPABASE_JWT_SECRET is missing (needed for HS256)".into());
        }
        Self {
            jwt_issuer: r
                .optional("SUPABASE_JWT_ISSUER")
                .unwrap_or_else(|| format!("{url}/auth/v1")),
            url,
            anon_key: Secret::new(r.required("SUPABASE_ANON_KEY")),
            service_role_key: r.optional("SUPABASE_SERVICE_ROLE_KEY").map(Secret::new),
            jwt_secret,
            jwt_algorithms,
        }
    }

    fn algorithms(r: &mut Reader<'_>) -> Vec<JwtAlgorithm> {
        let raw = r
            .optional("SUPABASE_JWT_ALGORITHMS")
            .unwrap_or_else(|| "HS256".into());
        let mut algorithms = Vec::new();
        let mut named_bad = false;
        for part in raw.split(',').filter(|p| !p.trim().is_empty()) {
            match part.parse() {
                Ok(alg) => algorithms.push(alg),
                Err(e) => {
                    named_bad = true;
                    r.problems.push(format!("SUPABASE_JWT_ALGORITHMS: {e}"));
                }
            }
        }
        if algorithms.is_empty() && !named_bad {
            r.problems
                .push("SUPABASE_JWT_ALGORITHMS names no algorithm".into());
        }
        algorithms
    }
}

impl BudgetConfig {
    fn read(r: &mut Reader<'_>) -> Self {
        let budget = Self {
            default_budget: r.parsed("USER_DEFAULT_BUDGET", 5.0, "a number of USD"),
            duration: r
                .optional("USER_BUDGET_DURATION")
                .unwrap_or_else(|| "1mo".into()),
            max_budget: r.parsed("USER_MAX_BUDGET", 50.0, "a number of USD"),
        };
        if !BUDGET_DURATIONS.contains(&budget.duration.as_str()) {
            r.problems.push(format!(
                "USER_BUDGET_DURATION must be one of {}, got {:?}",
                BUDGET_DURATIONS.join(", "),
                budget.duration
            ));
        }
        if !(budget.default_budget >= 0.0 && budget.default_budget.is_finite()) {
            r.problems
                .push("USER_DEFAULT_BUDGET must be zero or more".into());
        }
        if !(budget.max_budget >= budget.default_budget && budget.max_budget.is_finite()) {
            r.problems
                .push("USER_MAX_BUDGET must be at least USER_DEFAULT_BUDGET".into());
        }
        budget
    }
}

impl HttpConfig {
    fn read(r: &mut Reader<'_>) -> Self {
        let keep_alive: u64 = r.parsed("SSE_KEEP_ALIVE_SECS", 15, "a whole number of seconds");
        if keep_alive == 0 {
            r.problems
                .push("SSE_KEEP_ALIVE_SECS must be at least 1".into());
        }
        Self {
            upstream_timeout: Duration::from_secs(r.parsed(
                "UPSTREAM_TIMEOUT_SECS",
                45u64,
                "a whole number of seconds",
            )),
            body_limit_bytes: r.parsed(
                "BODY_LIMIT_BYTES",
                256 * 1024usize,
                "a whole number of bytes",
            ),
            cors_allowed_origins: r
                .optional("CORS_ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().to_string())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            chat_max_chars: r.parsed(
                "CHAT_MAX_CHARS",
                32_000usize,
                "a whole number of characters",
            ),
            voice_max_bytes: r.parsed(
                "VOICE_MAX_BYTES",
                5 * 1024 * 1024usize,
                "a whole number of bytes",
            ),
            health_cache: Duration::from_secs(r.parsed(
                "HEALTH_CACHE_SECS",
                5u64,
                "a whole number of seconds",
            )),
            sse_keep_alive: Duration::from_secs(keep_alive.max(1)),
            upstream_retries: r.parsed("UPSTREAM_RETRIES", 2, "a whole number of retries"),
            cloudfront_origin_secret: r
                .optional("CLOUDFRONT_ORIGIN_SECRET")
                .filter(|s| !s.trim().is_empty())
                .map(Secret::new),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(super) fn base() -> HashMap<String, String> {
        [
            ("TABLE_NAME", "chat"),
            ("LETTA_BASE_URL", "http://127.0.0.1:8283"),
            ("LETTA_SERVER_PASSWORD", "letta-password"),
            ("LITELLM_BASE_URL", "http://127.0.0.1:4000/"),
            ("LITELLM_MASTER_KEY", "sk-master"),
            ("SUPABASE_URL", "http://127.0.0.1:9999"),
            ("SUPABASE_ANON_KEY", "anon"),
            ("SUPABASE_SERVICE_ROLE_KEY", "service"),
            ("SUPABASE_JWT_SECRET", "secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn complete_environment_gives_defaults() {
        let cfg = Config::from_map(&base()).unwrap();
        assert_eq!(cfg.litellm.base_url, "http://127.0.0.1:4000");
        assert_eq!(cfg.letta.litellm_url_for_letta, "http://127.0.0.1:4000");
        assert_eq!(cfg.supabase.jwt_issuer, "http://127.0.0.1:9999/auth/v1");
        assert_eq!(cfg.supabase.jwt_algorithms, vec![JwtAlgorithm::Hs256]);
        assert_eq!(cfg.letta.agent_type, "letta_v1_agent");
        assert_eq!(cfg.budget.duration, "1mo");
        assert_eq!(cfg.letta.archival_max_passages, 10_000);
        // The numbers the README documents.
        assert_eq!(cfg.budget.default_budget, 5.0);
        assert_eq!(cfg.budget.max_budget, 50.0);
        assert_eq!(cfg.http.upstream_timeout, Duration::from_secs(45));
        assert_eq!(cfg.letta.stream_silence, Duration::from_secs(30));
        assert_eq!(cfg.http.body_limit_bytes, 262_144);
        assert_eq!(cfg.http.chat_max_chars, 32_000);
        assert_eq!(cfg.http.sse_keep_alive, Duration::from_secs(15));
        assert_eq!(cfg.http.upstream_retries, 2);
        assert!(!cfg.reconcile.fix);
        assert_eq!(cfg.dynamodb.attempt_timeout, Duration::from_secs(3));
        assert_eq!(cfg.reconcile.grace, Duration::from_secs(3600));
        assert_eq!(cfg.reconcile.lookback, Duration::from_secs(48 * 3600));
        assert_eq!(cfg.reconcile.settle, Duration::from_secs(60));
        assert_eq!(
            (
                cfg.rates.chat_per_minute,
                cfg.rates.chat_per_day,
                cfg.rates.requests_per_minute,
                cfg.rates.auth_per_minute,
                cfg.rates.password_failures
            ),
            (10, 500, 120, 10, 10)
        );
    }

    #[test]
    fn every_missing_variable_is_named_in_one_error() {
        let mut env = base();
        env.remove("TABLE_NAME");
        env.remove("LITELLM_MASTER_KEY");
        let err = Config::from_map(&env).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("TABLE_NAME is missing"), "{text}");
        assert!(text.contains("LITELLM_MASTER_KEY is missing"), "{text}");
        assert_eq!(err.problems.len(), 2);
    }

    #[test]
    fn malformed_values_are_named() {
        let mut env = base();
        env.insert("USER_DEFAULT_BUDGET".into(), "lots".into());
        env.insert("LETTA_BASE_URL".into(), "letta:8283".into());
        env.insert("SUPABASE_JWT_ALGORITHMS".into(), "HS256,none".into());
        env.insert("USER_BUDGET_DURATION".into(), "2d".into());
        let text = Config::from_map(&env).unwrap_err().to_string();
        assert!(
            text.contains("USER_DEFAULT_BUDGET must be a number"),
            "{text}"
        );
        assert!(
            text.contains("LETTA_BASE_URL must be an http(s) URL"),
            "{text}"
        );
        assert!(text.contains("unknown algorithm \"NONE\""), "{text}");
        assert!(
            text.contains("USER_BUDGET_DURATION must be one of"),
            "{text}"
        );
    }

    #[test]
    fn hs256_needs_the_jwt_secret_but_es256_does_not() {
        let mut env = base();
        env.remove("SUPABASE_JWT_SECRET");
        let text = Config::from_map(&env).unwrap_err().to_string();
        assert!(text.contains("SUPABASE_JWT_SECRET is missing"), "{text}");
        env.insert("SUPABASE_JWT_ALGORITHMS".into(), "ES256".into());
        assert!(Config::from_map(&env).is_ok());
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let cfg = Config::from_map(&base()).unwrap();
        let dump = format!("{cfg:?}");
        assert!(!dump.contains("sk-master"), "{dump}");
        assert!(!dump.contains("\"secret\""), "{dump}");
    }
}
