//! `sam local invoke` of `sam build`'s output for `template.yaml`, against the running local
//! stack. Each invoke runs one function in a Lambda container: SAM's runtime interface emulator
//! on the `provided.al2023` image (or the base image `SAM_INVOKE_IMAGE` names, where ECR Public
//! cannot be reached). A container reaches this machine only at the Docker bridge's host
//! address, so a [`Session`]:
//! - forwards a port there to each local service (they all listen on loopback);
//! - plays Secrets Manager with moto: each function reads its own secret,
//!   `<SecretsPrefix>/<function>`, at cold start, as in AWS (behind the AWS recorder when
//!   `make test` records the run's AWS actions);
//! - invokes a copy of the built template whose functions also get the local endpoints
//!   (`DYNAMODB_ENDPOINT`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`, ...): SAM passes a function only
//!   the variables its template declares, and these are not the deployed template's business.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    task::JoinHandle,
};

/// The template's functions: logical id and name (the name is the secret's last part).
pub const FUNCTIONS: [(&str, &str); 5] = [
    ("AuthFunction", "auth"),
    ("ChatFunction", "chat"),
    ("UserFunction", "user"),
    ("AgentFunction", "agent"),
    ("ReconcilerFunction", "reconciler"),
];

/// The functions whose secret holds the service-role key (they delete Supabase users).
const WITH_SERVICE_ROLE_KEY: [&str; 2] = ["auth", "reconciler"];

/// The variables a function's secret holds (`shared::app::secrets`).
const SECRET_VARIABLES: [&str; 4] = [
    "LITELLM_MASTER_KEY",
    "LETTA_API_KEY",
    "SUPABASE_ANON_KEY",
    "SUPABASE_JWT_SECRET",
];

/// Local settings the functions get besides the template's own variables.
const PASSED_THROUGH: [&str; 3] = [
    "RATE_AUTH_PER_MINUTE",
    "RATE_CHAT_PER_MINUTE",
    "LETTA_ALLOW_NO_PASSWORD",
];

/// What `sam` keeps of the caller's environment.
const SAM_ENVIRONMENT: [&str; 6] = [
    "PATH",
    "HOME",
    "LANG",
    "TMPDIR",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
];

/// How a session is set up.
pub struct Options {
    /// The workspace (its `.aws-sam/build` holds `sam build`'s output).
    pub workspace: PathBuf,
    /// The stack's environment (`.state/local.env`, as `make` exports it).
    pub stack: HashMap<String, String>,
    /// The `sam` command.
    pub sam: PathBuf,
    /// moto's server command.
    pub moto: PathBuf,
    /// The base image for the functions (`--invoke-image`); `None`: SAM's own from ECR Public.
    pub invoke_image: Option<String>,
    /// The AWS recorder and the file it appends to, to record the secret reads.
    pub recorder: Option<(PathBuf, PathBuf)>,
}

impl Options {
    /// Options from this process's environment, as `make` sets it: the stack's variables,
    /// `LOCAL_SAM`, `LOCAL_TOOLS_PYTHON` (moto is beside it), `SAM_INVOKE_IMAGE`, and
    /// `AWS_CALLS_LOG` with `aws-recorder` from `recorder_dir`.
    pub fn from_env(workspace: &Path, recorder_dir: &Path) -> Result<Self, String> {
        let stack: HashMap<String, String> = std::env::vars().collect();
        let var = |name: &str| {
            stack
                .get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("{name} is not set: start the local stack (make services-up) and run this through make"))
        };
        let python = PathBuf::from(var("LOCAL_TOOLS_PYTHON")?);
        let moto = python
            .parent()
            .map(|bin| bin.join("moto_server"))
            .ok_or("LOCAL_TOOLS_PYTHON has no folder")?;
        let recorder = stack
            .get("AWS_CALLS_LOG")
            .filter(|v| !v.is_empty())
            .map(|log| (recorder_dir.join("aws-recorder"), PathBuf::from(log)));
        Ok(Self {
            workspace: workspace.to_path_buf(),
            sam: PathBuf::from(var("LOCAL_SAM")?),
            moto,
            invoke_image: stack
                .get("SAM_INVOKE_IMAGE")
                .filter(|v| !v.is_empty())
                .cloned(),
            recorder,
            stack,
        })
    }
}

/// A child process ended with the session.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// The bridge, moto and the local template, for as long as it lives.
pub struct Session {
    sam: PathBuf,
    build: PathBuf,
    template: PathBuf,
    overrides: Vec<String>,
    invoke_image: Option<String>,
    _bridge: Bridge,
    _moto: Moto,
    _recorder: Option<aws_recorder::Running>,
}

/// One function's answer to one event.
#[derive(Debug)]
pub struct Invocation {
    /// The function URL's status code.
    pub status: u16,
    /// Its headers.
    pub headers: Value,
    /// Its body (for a streaming function, everything after the prelude).
    pub body: String,
    /// What the function and the emulator logged.
    pub logs: String,
}

impl Invocation {
    /// The body as JSON (`null` when empty); panics on another body, naming it.
    pub fn json(&self) -> Value {
        if self.body.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: the body is not JSON: {}", self.body))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.template);
    }
}

/// Ports on the Docker bridge's host address, each forwarded to a local service.
struct Bridge {
    address: String,
    forwarders: Vec<JoinHandle<()>>,
}

impl Bridge {
    async fn new() -> Result<Self, String> {
        Ok(Self {
            address: bridge_address().await?,
            forwarders: Vec::new(),
        })
    }

    /// `url`'s service at a new port of the bridge: the URL a container uses.
    async fn expose(&mut self, url: &str) -> Result<String, String> {
        let (task, address) = forward(&self.address, url).await?;
        self.forwarders.push(task);
        Ok(format!("http://{address}"))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for forwarder in &self.forwarders {
            forwarder.abort();
        }
    }
}

impl Session {
    /// Sets the bridge, moto and the local template up.
    pub async fn start(options: Options) -> Result<Self, String> {
        let build = options.workspace.join(".aws-sam/build");
        let built = build.join("template.yaml");
        if !built.exists() {
            return Err(format!(
                "{} is missing: build first (make sam-build)",
                built.display()
            ));
        }
        let var = |name: &str| {
            options
                .stack
                .get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| {
                    format!("{name} is not set: is the local stack's environment loaded?")
                })
        };
        let mut bridge = Bridge::new().await?;
        let letta = bridge.expose(&var("LETTA_BASE_URL")?).await?;
        let litellm = bridge.expose(&var("LITELLM_BASE_URL")?).await?;
        let supabase = bridge.expose(&var("SUPABASE_URL")?).await?;
        let dynamodb = bridge.expose(&var("DYNAMODB_ENDPOINT")?).await?;

        let moto = Moto::start(&options.moto).await?;
        let prefix = format!("sam-local-{}-{}", std::process::id(), moto.port);
        store_secrets(&moto, &prefix, &options.stack).await?;
        let recorder = match &options.recorder {
            Some((binary, log)) => Some(aws_recorder::spawn(binary, log, &moto.url).await?),
            None => None,
        };
        let secrets_upstream = recorder.as_ref().map_or(&moto.url, |r| &r.url).clone();
        let secrets = bridge.expose(&secrets_upstream).await?;

        let mut variables = vec![
            ("TABLE_NAME".to_string(), var("TABLE_NAME")?),
            ("DYNAMODB_ENDPOINT".to_string(), dynamodb),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER".to_string(), secrets),
            // The local auth server signs tokens as its loopback address.
            (
                "SUPABASE_JWT_ISSUER".to_string(),
                format!("{}/auth/v1", var("SUPABASE_URL")?.trim_end_matches('/')),
            ),
        ];
        for name in PASSED_THROUGH {
            if let Some(value) = options.stack.get(name).filter(|v| !v.is_empty()) {
                variables.push((name.to_string(), value.clone()));
            }
        }
        let template = build.join(format!("template.local-{prefix}.yaml"));
        write_local_template(&built, &template, &variables)?;
        let exposed = Exposed {
            letta,
            litellm,
            supabase,
        };
        let overrides = overrides(&exposed, &options.stack, &prefix)?;
        Ok(Self {
            sam: options.sam,
            build,
            template,
            overrides,
            invoke_image: options.invoke_image,
            _bridge: bridge,
            _moto: moto,
            _recorder: recorder,
        })
    }

    /// `sam local invoke <function> -e <event>`: the function's answer to `event` (the text of
    /// a function URL event).
    pub async fn invoke(&self, function: &str, event: &str) -> Result<Invocation, String> {
        let file = std::env::temp_dir().join(format!(
            "sam-event-{}-{}.json",
            std::process::id(),
            ulid_like()
        ));
        std::fs::write(&file, event).map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.sam);
        command
            .args(["local", "invoke", function, "--template-file"])
            .arg(&self.template)
            .arg("--event")
            .arg(&file)
            .arg("--parameter-overrides")
            .args(&self.overrides)
            .current_dir(&self.build)
            // SAM gives a declared variable the value of the same name in its own environment
            // before the template's: only what SAM itself needs goes through.
            .env_clear()
            .envs(std::env::vars().filter(|(name, _)| SAM_ENVIRONMENT.contains(&name.as_str())))
            .env("SAM_CLI_TELEMETRY", "0")
            .kill_on_drop(true);
        if let Some(image) = &self.invoke_image {
            command.args(["--invoke-image", image, "--skip-pull-image"]);
        }
        // A container that never answers (seen once in a CI rehearsal: an arm64 bootstrap under
        // qemu-user, "No response from invoke container" after the function's whole timeout,
        // while the same invocation answers in seconds when run again) is started once more;
        // the first attempt's logs are kept in front of the second's.
        let mut hung = String::new();
        let out = loop {
            let out = command
                .output()
                .await
                .map_err(|e| format!("{}: {e}", self.sam.display()));
            let Ok(answered) = &out else { break out };
            let logs = String::from_utf8_lossy(&answered.stderr);
            if !hung.is_empty() || !logs.contains("No response from invoke container") {
                break out;
            }
            eprintln!("sam-local: {function} never answered; invoking it once more");
            hung = format!("{logs}\n(the container never answered; invoked again)\n");
        };
        let _ = std::fs::remove_file(&file);
        let out = out?;
        let logs = hung + &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("sam local invoke {function} failed: {logs}"));
        }
        match parse_output(&out.stdout) {
            Ok((status, headers, body)) => Ok(Invocation {
                status,
                headers,
                body,
                logs,
            }),
            Err(e) => Err(format!("{function}: {e}\n{logs}")),
        }
    }
}

/// The answer in `sam local invoke`'s output: a buffered function prints the function URL
/// response as JSON; a streaming one its raw stream, the prelude (JSON), eight zero bytes, then
/// the body.
pub fn parse_output(stdout: &[u8]) -> Result<(u16, Value, String), String> {
    const DELIMITER: &[u8] = &[0; 8];
    if let Some(at) = stdout.windows(8).position(|w| w == DELIMITER) {
        let prelude: Value = serde_json::from_slice(&stdout[..at])
            .map_err(|e| format!("the stream's prelude is not JSON: {e}"))?;
        let status = prelude["statusCode"].as_u64().unwrap_or(200);
        let body = String::from_utf8_lossy(&stdout[at + 8..]).to_string();
        return Ok((status as u16, prelude["headers"].clone(), body));
    }
    let text = String::from_utf8_lossy(stdout);
    let payload: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("the answer is neither a stream nor JSON ({e}): {text}"))?;
    let status = payload["statusCode"]
        .as_u64()
        .ok_or_else(|| format!("no statusCode: {payload}"))?;
    let body = payload["body"].as_str().unwrap_or_default().to_string();
    Ok((status as u16, payload["headers"].clone(), body))
}

/// A copy of the built template whose functions also get `variables`.
fn write_local_template(
    built: &Path,
    to: &Path,
    variables: &[(String, String)],
) -> Result<(), String> {
    let text = std::fs::read_to_string(built).map_err(|e| format!("{}: {e}", built.display()))?;
    let mut template: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", built.display()))?;
    let globals = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping_mut()
        .ok_or("the template has no Globals.Function.Environment.Variables")?;
    for (name, value) in variables {
        globals.insert(name.clone().into(), value.clone().into());
    }
    let text = serde_norway::to_string(&template).map_err(|e| e.to_string())?;
    std::fs::write(to, text).map_err(|e| format!("{}: {e}", to.display()))
}

/// The Docker bridge's host address (where containers reach this machine): its gateway, or
/// where the daemon does not name one, the bridge interface's own address.
pub async fn bridge_address() -> Result<String, String> {
    let inspect = |format: &'static str| async move {
        let out = Command::new("docker")
            .args(["network", "inspect", "bridge", "--format", format])
            .output()
            .await
            .map_err(|e| format!("docker: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the Docker bridge is unknown (is the daemon up? make sam-image starts it): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let gateway = inspect("{{range .IPAM.Config}}{{.Gateway}}{{end}}").await?;
    if !gateway.is_empty() && gateway != "<no value>" {
        return Ok(gateway);
    }
    let mut device = inspect(r#"{{index .Options "com.docker.network.bridge.name"}}"#).await?;
    if device.is_empty() || device == "<no value>" {
        device = "docker0".into();
    }
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", &device])
        .output()
        .await
        .map_err(|e| format!("ip: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_string)
        .ok_or_else(|| format!("{device} has no IPv4 address: {text}"))
}

/// Forwards a new port on `bridge` to the host and port of `url`; returns the forwarder's task
/// and address.
async fn forward(bridge: &str, url: &str) -> Result<(JoinHandle<()>, SocketAddr), String> {
    let target = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/')
        .to_string();
    let listener = TcpListener::bind((bridge, 0))
        .await
        .map_err(|e| format!("listening on {bridge}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok((task, address))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

async fn wait_for(url: &str) -> Result<(), String> {
    let started = Instant::now();
    while reqwest::get(url).await.is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("{url} did not answer within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// moto's server playing Secrets Manager on a free loopback port, ended when dropped.
pub struct Moto {
    _process: Process,
    /// Its port.
    pub port: u16,
    /// Its URL.
    pub url: String,
}

impl Moto {
    /// Starts `moto_server` (from the tools venv) and waits until it answers.
    pub async fn start(binary: &Path) -> Result<Self, String> {
        let port = free_port()?;
        let process = Process(
            Command::new(binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("{}: {e}", binary.display()))?,
        );
        let url = format!("http://127.0.0.1:{port}");
        wait_for(&format!("{url}/moto-api/")).await?;
        Ok(Self {
            _process: process,
            port,
            url,
        })
    }

    /// Creates the secret `id` holding `values` (a JSON object, as the functions read it).
    pub async fn create_secret(
        &self,
        id: &str,
        values: &serde_json::Map<String, Value>,
    ) -> Result<(), String> {
        let res = reqwest::Client::new()
            .post(&self.url)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "secretsmanager.CreateSecret")
            // moto routes by the credential scope's service; it checks no signature.
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
            )
            .json(&json!({"Name": id, "SecretString": Value::Object(values.clone()).to_string()}))
            .send()
            .await
            .map_err(|e| format!("moto: {e}"))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("moto refused the secret {id}: {}", res.status()))
        }
    }
}

/// A name unique enough for a temporary file of this process.
fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The bridge's addresses of the stack's HTTP services.
struct Exposed {
    letta: String,
    litellm: String,
    supabase: String,
}

/// Each function's secret in moto, as the template names it (`<prefix>/<function>`).
async fn store_secrets(
    moto: &Moto,
    prefix: &str,
    stack: &HashMap<String, String>,
) -> Result<(), String> {
    for (_, function) in FUNCTIONS {
        let mut names: Vec<&str> = SECRET_VARIABLES.to_vec();
        if WITH_SERVICE_ROLE_KEY.contains(&function) {
            names.push("SUPABASE_SERVICE_ROLE_KEY");
        }
        let values: serde_json::Map<String, Value> = names
            .into_iter()
            .filter_map(|n| Some((n.to_string(), stack.get(n)?.clone().into())))
            .collect();
        moto.create_secret(&format!("{prefix}/{function}"), &values)
            .await?;
    }
    Ok(())
}

/// The template's parameters: the services at the bridge's addresses.
fn overrides(
    exposed: &Exposed,
    stack: &HashMap<String, String>,
    prefix: &str,
) -> Result<Vec<String>, String> {
    let litellm_for_letta = stack
        .get("LITELLM_BASE_URL")
        .cloned()
        .ok_or("LITELLM_BASE_URL is not set: is the local stack's environment loaded?")?;
    let algorithms = stack
        .get("SUPABASE_JWT_ALGORITHMS")
        .cloned()
        .unwrap_or_else(|| "HS256".into());
    Ok(vec![
        format!("LettaBaseUrl={}", exposed.letta),
        format!("LiteLlmBaseUrl={}", exposed.litellm),
        // Letta calls LiteLLM itself, on this machine.
        format!("LiteLlmUrlForLetta={litellm_for_letta}"),
        format!("SupabaseUrl={}", exposed.supabase),
        format!("SupabaseJwtAlgorithms={algorithms}"),
        format!("SecretsPrefix={prefix}"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffered_answer_and_a_streamed_one_are_read() {
        let buffered = br#"{"statusCode":201,"headers":{"content-type":"application/json"},"body":"{\"a\":1}"}"#;
        let (status, headers, body) = parse_output(buffered).unwrap();
        assert_eq!(status, 201);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, r#"{"a":1}"#);
        let mut streamed =
            br#"{"statusCode":200,"headers":{"content-type":"text/event-stream"},"cookies":[]}"#
                .to_vec();
        streamed.extend([0; 8]);
        streamed.extend(b"event: start\ndata: {}\n\n");
        let (status, headers, body) = parse_output(&streamed).unwrap();
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(body, "event: start\ndata: {}\n\n");
        assert!(parse_output(b"Error: no such function").is_err());
    }

    #[test]
    fn the_local_template_keeps_the_tags_and_adds_the_variables() {
        let dir = std::env::temp_dir().join(format!("sam-local-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let built = dir.join("template.yaml");
        std::fs::write(
            &built,
            "Globals:\n  Function:\n    Environment:\n      Variables:\n        TABLE_NAME: !Ref Table\nResources:\n  F:\n    Properties:\n      Environment:\n        Variables:\n          SECRETS_ID: !Sub '${SecretsPrefix}/auth'\n",
        )
        .unwrap();
        let local = dir.join("local.yaml");
        write_local_template(
            &built,
            &local,
            &[("DYNAMODB_ENDPOINT".into(), "http://172.17.0.1:1".into())],
        )
        .unwrap();
        let text = std::fs::read_to_string(&local).unwrap();
        assert!(
            text.contains("!Sub '${SecretsPrefix}/auth'")
                || text.contains("!Sub ${SecretsPrefix}/auth"),
            "{text}"
        );
        assert!(
            text.contains("DYNAMODB_ENDPOINT: http://172.17.0.1:1"),
            "{text}"
        );
        assert!(text.contains("TABLE_NAME: !Ref Table"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
