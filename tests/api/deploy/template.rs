//! `template.yaml` checked for what the linters miss: the table is the one the code creates (and
//! the local stack has), chat streams, every binary exists, CORS lets the frontend's headers
//! through, least-privilege policies, timeouts above the upstream timeout.

use std::path::PathBuf;

use serde_norway::Value;

use crate::helpers::{dynamodb, share_stack, stack_config};

pub(super) fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A YAML file of the workspace (CloudFormation's tags kept as tagged values).
pub(super) fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(workspace().join(path)).expect(path);
    serde_norway::from_str(&text).expect(path)
}

pub(super) fn template() -> Value {
    yaml("template.yaml")
}

pub(super) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Tagged(t) => format!("{} {}", t.tag, s(&t.value)),
        other => format!("{other:?}"),
    }
}

const FUNCTIONS: [(&str, &str); 4] = [
    ("AuthFunction", "auth"),
    ("ChatFunction", "chat"),
    ("UserFunction", "user"),
    ("AgentFunction", "agent"),
];

#[test]
fn every_function_is_an_arm64_rust_binary_of_this_workspace_with_a_function_url() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(s(&globals["Runtime"]), "provided.al2023");
    assert_eq!(s(&globals["Architectures"][0]), "arm64");
    assert_eq!(s(&globals["Handler"]), "bootstrap");
    for (resource, binary) in FUNCTIONS {
        let f = &t["Resources"][resource];
        assert_eq!(s(&f["Type"]), "AWS::Serverless::Function");
        assert_eq!(s(&f["Metadata"]["BuildMethod"]), "rust-cargolambda");
        assert_eq!(s(&f["Metadata"]["BuildProperties"]["Binary"]), binary);
        let manifest =
            std::fs::read_to_string(workspace().join(format!("functions/{binary}/Cargo.toml")))
                .unwrap();
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "{binary} is a workspace package"
        );
        assert!(
            workspace()
                .join(format!("functions/{binary}/src/main.rs"))
                .exists(),
            "{binary} has a main"
        );
        // An operator can reserve (and so cap) each function's concurrency.
        let reserved = s(&f["Properties"]["ReservedConcurrentExecutions"]);
        let prefix = resource.trim_end_matches("Function");
        assert!(
            reserved.contains(&format!("{prefix}ConcurrencyCapped"))
                && reserved.contains(&format!("{prefix}ReservedConcurrency")),
            "{resource}: {reserved}"
        );
        let url = &f["Properties"]["FunctionUrlConfig"];
        // The JWT is verified in the function; the URL itself is public.
        assert_eq!(s(&url["AuthType"]), "NONE", "{resource}");
        // Chat streams SSE; user streams the NDJSON export.
        let expected_mode = if binary == "chat" || binary == "user" {
            "RESPONSE_STREAM"
        } else {
            ""
        };
        let mode = if url["InvokeMode"].is_null() {
            String::new()
        } else {
            s(&url["InvokeMode"])
        };
        assert_eq!(mode, expected_mode, "{resource} InvokeMode");
        let headers: Vec<String> = url["Cors"]["AllowHeaders"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|h| s(h).to_lowercase())
            .collect();
        for needed in ["authorization", "content-type", "idempotency-key"] {
            assert!(
                headers.contains(&needed.to_string()),
                "{resource} CORS allows {needed}"
            );
        }
        assert!(
            s(&url["Cors"]["AllowOrigins"]).contains("AllowedOrigins"),
            "origins come from the parameter"
        );
        // Timeouts: the function outlives its calls to dependencies.
        let timeout = f["Properties"]["Timeout"]
            .as_u64()
            .or(globals["Timeout"].as_u64())
            .unwrap();
        let upstream = f["Properties"]["Environment"]["Variables"]["UPSTREAM_TIMEOUT_SECS"]
            .as_u64()
            .unwrap();
        assert!(
            upstream > 16 && upstream < timeout,
            "{resource}: Letta's ~16 s < {upstream} < {timeout}"
        );
        assert!(
            !s(&f["Properties"]["LoggingConfig"]["LogGroup"]).is_empty(),
            "{resource} logs to a group with retention"
        );
    }
    let chat_timeout = t["Resources"]["ChatFunction"]["Properties"]["Timeout"]
        .as_u64()
        .unwrap();
    assert!(chat_timeout >= 120, "long agent turns fit");
    // A turn lock outlives any turn, and frees the user soon after a timed-out invocation.
    let lock = shared::store::TURN_LOCK_TTL_SECS as u64;
    assert!(
        chat_timeout < lock && lock <= chat_timeout + 60,
        "turn lock {lock} s vs chat timeout {chat_timeout} s"
    );
    for output in ["AuthUrl", "ChatUrl", "UserUrl", "AgentUrl", "TableName"] {
        assert!(!t["Outputs"][output].is_null(), "output {output}");
    }
}

const SECRET_VARIABLES: [&str; 7] = [
    "LITELLM_MASTER_KEY",
    "LETTA_API_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_JWT_SECRET",
    "LETTA_SERVER_PASSWORD",
    "SUPABASE_ANON_KEY",
    "CLOUDFRONT_ORIGIN_SECRET",
];

/// The statements of a function's policies that grant actions of one AWS service.
fn statements<'a>(t: &'a Value, resource: &str, service: &str) -> Vec<&'a Value> {
    t["Resources"][resource]["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|p| p["Statement"].as_sequence().unwrap())
        .filter(|st| {
            let actions = match &st["Action"] {
                Value::Sequence(a) => a.iter().map(s).collect(),
                one => vec![s(one)],
            };
            actions
                .iter()
                .all(|a| a.starts_with(&format!("{service}:")))
        })
        .collect()
}

#[test]
fn each_function_reads_only_its_own_secret_at_cold_start() {
    let t = template();
    let globals = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    for (resource, function) in FUNCTIONS {
        let env = t["Resources"][resource]["Properties"]["Environment"]["Variables"]
            .as_mapping()
            .unwrap();
        // No secret in the configuration `lambda:GetFunctionConfiguration` shows.
        for secret in SECRET_VARIABLES {
            let key = Value::String(secret.into());
            assert!(
                !globals.contains_key(&key) && !env.contains_key(&key),
                "{secret} is not an environment variable of {resource}"
            );
        }
        assert_eq!(
            s(&env[&Value::String("SECRETS_ID".into())]),
            format!("!Sub ${{SecretsPrefix}}/{function}")
        );
        let granted = statements(&t, resource, "secretsmanager");
        assert_eq!(granted.len(), 1, "{resource}");
        assert_eq!(s(&granted[0]["Action"]), "secretsmanager:GetSecretValue");
        assert!(
            s(&granted[0]["Resource"])
                .ends_with(&format!(":secret:${{SecretsPrefix}}/{function}-??????")),
            "{resource}: {}",
            s(&granted[0]["Resource"])
        );
    }
    let params = t["Parameters"].as_mapping().unwrap();
    for (name, _) in params {
        let name = s(name).to_lowercase();
        assert!(
            !(name.contains("key") || name.contains("password") || name.contains("jwtsecret")),
            "no secret parameter: {name}"
        );
    }
    // Only auth deletes users, so only its start requires the service-role key.
    assert_eq!(auth::REQUIRED_VARIABLES, ["SUPABASE_SERVICE_ROLE_KEY"]);
}

#[test]
fn each_function_s_dynamodb_grant_is_this_table_alone_and_names_its_actions() {
    let t = template();
    for (resource, _) in FUNCTIONS {
        let dynamodb = statements(&t, resource, "dynamodb");
        assert_eq!(dynamodb.len(), 1, "{resource}");
        let others = statements(&t, resource, "secretsmanager").len();
        let all: usize = t["Resources"][resource]["Properties"]["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["Statement"].as_sequence().unwrap().len())
            .sum();
        assert_eq!(
            all,
            1 + others,
            "{resource}: no statement of a third service"
        );
        for statement in dynamodb {
            assert_eq!(s(&statement["Resource"]), "!GetAtt Table.Arn", "{resource}");
            for action in statement["Action"].as_sequence().unwrap() {
                let action = s(action);
                assert!(
                    !action.contains('*')
                        && action != "dynamodb:DeleteTable"
                        && action != "dynamodb:Scan",
                    "{resource}: {action}"
                );
            }
        }
    }
    // Which actions each function needs is what it did in the tests: see `permissions`.
}

#[tokio::test]
async fn the_table_is_the_one_the_code_creates_and_the_local_stack_has() {
    use shared::store::table;
    let t = template();
    let p = &t["Resources"]["Table"]["Properties"];
    assert_eq!(s(&p["BillingMode"]), "PAY_PER_REQUEST");
    assert_eq!(s(&p["KeySchema"][0]["AttributeName"]), table::PARTITION_KEY);
    assert_eq!(s(&p["KeySchema"][0]["KeyType"]), "HASH");
    assert_eq!(s(&p["KeySchema"][1]["AttributeName"]), table::SORT_KEY);
    assert_eq!(s(&p["KeySchema"][1]["KeyType"]), "RANGE");
    assert!(
        p["AttributeDefinitions"]
            .as_sequence()
            .unwrap()
            .iter()
            .all(|a| s(&a["AttributeType"]) == "S")
    );
    assert_eq!(
        s(&p["TimeToLiveSpecification"]["AttributeName"]),
        table::TTL_ATTRIBUTE
    );
    assert_eq!(
        p["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));

    // The table the local stack created with the code's definition has the same shape.
    let _stack = share_stack().await;
    let state = shared::AppState::new(stack_config()).await;
    shared::store::table::ensure_table(&state.store)
        .await
        .unwrap();
    let client = dynamodb(&state.config).await;
    let described = client
        .describe_table()
        .table_name(state.store.table_name())
        .send()
        .await
        .unwrap();
    let live = described.table().unwrap();
    let keys: Vec<(String, String)> = live
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                k.key_type().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            (table::PARTITION_KEY.into(), "HASH".into()),
            (table::SORT_KEY.into(), "RANGE".into())
        ]
    );
    assert_eq!(
        live.billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str()),
        Some("PAY_PER_REQUEST")
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(state.store.table_name())
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some(table::TTL_ATTRIBUTE)
    );
}

#[test]
fn the_reconciler_is_a_daily_schedule_that_is_off_unless_asked_for_and_has_no_url() {
    let t = template();
    let f = &t["Resources"]["ReconcilerFunction"];
    assert_eq!(s(&f["Metadata"]["BuildProperties"]["Binary"]), "reconciler");
    assert!(
        workspace()
            .join("functions/reconciler/src/main.rs")
            .exists(),
        "the reconciler has a main"
    );
    let p = &f["Properties"];
    assert!(
        p["FunctionUrlConfig"].is_null(),
        "only the schedule invokes it"
    );
    assert_eq!(
        p["ReservedConcurrentExecutions"].as_u64(),
        Some(1),
        "one run at a time"
    );
    let daily = &p["Events"]["Daily"];
    assert_eq!(s(&daily["Type"]), "Schedule");
    assert_eq!(s(&daily["Properties"]["Schedule"]), "rate(1 day)");
    let state = s(&daily["Properties"]["State"]);
    assert!(state.contains("ReconcilerScheduled"), "{state}");
    let param = &t["Parameters"]["ReconcilerSchedule"];
    assert_eq!(s(&param["Default"]), "off");
    let scheduled = s(&t["Conditions"]["ReconcilerScheduled"]);
    assert!(
        scheduled.starts_with("!Not")
            && scheduled.contains("ReconcilerSchedule")
            && scheduled.contains("off"),
        "{scheduled}"
    );
    let env = &p["Environment"]["Variables"];
    assert!(s(&env["RECONCILE_FIX"]).contains("ReconcilerFixes"));
    assert_eq!(s(&env["SECRETS_ID"]), "!Sub ${SecretsPrefix}/reconciler");
    let timeout = p["Timeout"].as_u64().unwrap();
    assert!(timeout >= 600, "a run over every user takes minutes");
    let dynamodb = statements(&t, "ReconcilerFunction", "dynamodb");
    let actions: Vec<String> = dynamodb[0]["Action"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(
        actions.contains(&"dynamodb:Scan".to_string()),
        "lists the profiles"
    );
    assert!(
        !actions
            .iter()
            .any(|a| a.contains('*') || a == "dynamodb:DeleteTable")
    );
    let secrets = statements(&t, "ReconcilerFunction", "secretsmanager");
    assert!(s(&secrets[0]["Resource"]).ends_with(":secret:${SecretsPrefix}/reconciler-??????"));
    // It lists and deletes Supabase users: its start requires the service-role key.
    assert_eq!(
        reconciler::REQUIRED_VARIABLES,
        ["SUPABASE_SERVICE_ROLE_KEY"]
    );
}

/// Whether a CloudFront path pattern (`*` any characters) matches a path.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((head, tail)) => path.strip_prefix(head).is_some_and(|rest| {
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && pattern_matches(tail, &rest[i..]))
        }),
    }
}

/// The managed origin request policy `AllViewerExceptHostHeader`: every viewer header but Host,
/// and all CloudFront headers (CloudFront-Viewer-Address among them).
const ALL_VIEWER_EXCEPT_HOST_HEADER: &str = "b689b0a8-53d0-40ab-baf2-68738e2966ac";

/// The CloudFront distribution's config, and its origins by id.
fn distribution(t: &Value) -> (&Value, std::collections::HashMap<String, &Value>) {
    let config = &t["Resources"]["Distribution"]["Properties"]["DistributionConfig"];
    let origins = config["Origins"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|o| (s(&o["Id"]), o))
        .collect();
    (config, origins)
}

#[test]
fn the_cloudfront_option_sends_every_route_to_its_function_and_caches_no_api_answer() {
    let t = template();
    assert_eq!(s(&t["Parameters"]["CloudFront"]["Default"]), "off");
    for resource in [
        "Distribution",
        "WebBucket",
        "WebBucketPolicy",
        "WebOriginAccessControl",
        "SecurityHeadersPolicy",
    ] {
        assert_eq!(
            s(&t["Resources"][resource]["Condition"]),
            "WithCloudFront",
            "{resource} exists only with the option"
        );
    }
    let (config, origins) = distribution(&t);
    let behaviors = config["CacheBehaviors"].as_sequence().unwrap();
    // Each function's routes, from the code: CloudFront picks the first pattern that matches.
    for function in gateway::FUNCTIONS {
        for path in function.openapi().paths.paths.keys() {
            let concrete = path.replace("{id}", "01JABCDEF");
            let behavior = behaviors
                .iter()
                .find(|b| pattern_matches(&s(&b["PathPattern"]), &concrete))
                .unwrap_or_else(|| panic!("{path} reaches no function through CloudFront"));
            assert_eq!(s(&behavior["TargetOriginId"]), function.name, "{path}");
            let origin = origins[function.name];
            assert!(
                s(&origin["DomainName"]).contains(&format!(
                    "{}FunctionUrl.FunctionUrl",
                    match function.name {
                        "auth" => "Auth",
                        "chat" => "Chat",
                        "user" => "User",
                        _ => "Agent",
                    }
                )),
                "{path}: the origin is the function URL"
            );
            assert_eq!(
                s(&behavior["CachePolicyId"]),
                "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
                "{path}: Managed-CachingDisabled"
            );
            assert_eq!(behavior["Compress"].as_bool(), Some(false), "{path}");
            // Every viewer header but Host (function URLs answer only to their own host), and
            // CloudFront's own CloudFront-Viewer-Address for auth's sign-in limit: the managed
            // policy documented for function URL origins does both.
            assert_eq!(
                s(&behavior["OriginRequestPolicyId"]),
                ALL_VIEWER_EXCEPT_HOST_HEADER,
                "{path}: Managed-AllViewerExceptHostHeader"
            );
            let methods: Vec<String> = behavior["AllowedMethods"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(s)
                .collect();
            assert_eq!(
                methods.len(),
                7,
                "{path}: every method reaches the function"
            );
        }
    }
    // No policy of the template's own: `allExcept` would add no CloudFront header (so auth
    // would count CloudFront's address), `allViewerAndWhitelistCloudFront` would forward Host.
    let resources = t["Resources"].as_mapping().unwrap();
    assert!(
        !resources
            .values()
            .any(|r| s(&r["Type"]) == "AWS::CloudFront::OriginRequestPolicy"),
        "the API behaviours use the managed policy"
    );
}

#[test]
fn every_cloudfront_answer_carries_the_security_headers_and_the_gateways_csp() {
    let t = template();
    let (config, _) = distribution(&t);
    let behaviors = config["CacheBehaviors"].as_sequence().unwrap();
    // Every answer carries the security headers; the CSP is the local gateway's, strict.
    let default = &config["DefaultCacheBehavior"];
    for behavior in behaviors.iter().chain([default]) {
        assert_eq!(
            s(&behavior["ResponseHeadersPolicyId"]),
            "!Ref SecurityHeadersPolicy",
            "{}",
            s(&behavior["PathPattern"])
        );
    }
    let headers = &t["Resources"]["SecurityHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]
        ["SecurityHeadersConfig"];
    let csp = s(&headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]);
    assert_eq!(csp, gateway::CONTENT_SECURITY_POLICY);
    assert!(!csp.contains("unsafe-"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(headers["ContentTypeOptions"]["Override"].as_bool().unwrap());
    assert_eq!(
        s(&headers["ReferrerPolicy"]["ReferrerPolicy"]),
        "no-referrer"
    );
    assert!(
        headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"]
            .as_u64()
            .unwrap()
            >= 31_536_000
    );
}

#[test]
fn cloudfront_proves_itself_to_auth_and_serves_the_page_from_a_private_bucket() {
    let t = template();
    let (config, origins) = distribution(&t);
    // The viewer address is believed only with the origin secret from auth's own secret.
    let verify = &origins["auth"]["OriginCustomHeaders"][0];
    assert_eq!(
        s(&verify["HeaderName"]),
        shared::http::limits::ORIGIN_VERIFY
    );
    assert!(
        s(&verify["HeaderValue"])
            .contains("${SecretsPrefix}/auth:SecretString:CLOUDFRONT_ORIGIN_SECRET")
    );
    // The page comes from the private bucket, only through CloudFront.
    assert_eq!(s(&config["DefaultCacheBehavior"]["TargetOriginId"]), "web");
    assert!(s(&origins["web"]["OriginAccessControlId"]).contains("WebOriginAccessControl"));
    let block = &t["Resources"]["WebBucket"]["Properties"]["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting].as_bool(), Some(true), "{setting}");
    }
    for output in ["BaseUrl", "WebBucketName"] {
        assert_eq!(s(&t["Outputs"][output]["Condition"]), "WithCloudFront");
    }
}
