//! `infra/aws/llm-gateway.yaml` (LiteLLM on ECS with Aurora and Redis) checked for its wiring,
//! which the linters cannot see: only the model routes are public, health checks do not call
//! models, two or more tasks in two zones, Serverless v2 scaling, Redis in LiteLLM's own
//! configuration, no secret as a parameter or an environment value, and every output the
//! functions' stack takes as a parameter.

use serde_norway::Value;

use super::template::{s, template, workspace, yaml};

fn gateway() -> Value {
    yaml("infra/aws/llm-gateway.yaml")
}

fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| s(&r["Type"]) == kind)
        .map(|(name, r)| (s(name), r))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|items| items.iter().map(s).collect())
        .unwrap_or_default()
}

#[test]
fn only_the_model_routes_are_public_and_admin_routes_stay_inside() {
    let t = gateway();
    let public = &t["Resources"]["PublicListener"]["Properties"];
    assert_eq!(s(&public["Protocol"]), "HTTPS");
    let default = &public["DefaultActions"][0];
    assert_eq!(
        s(&default["Type"]),
        "fixed-response",
        "unmatched paths are refused"
    );
    assert_eq!(s(&default["FixedResponseConfig"]["StatusCode"]), "404");
    let mut public_routes = Vec::new();
    for (name, rule) in of_type(&t, "AWS::ElasticLoadBalancingV2::ListenerRule") {
        let p = &rule["Properties"];
        if s(&p["ListenerArn"]) != "!Ref PublicListener" {
            continue;
        }
        let conditions = p["Conditions"].as_sequence().unwrap();
        let field = |f: &str| conditions.iter().find(|c| s(&c["Field"]) == f);
        let paths = strings(&field("path-pattern").expect(&name)["PathPatternConfig"]["Values"]);
        let methods = strings(
            &field("http-request-method").expect("each public rule names its method")["HttpRequestMethodConfig"]
                ["Values"],
        );
        for path in paths {
            public_routes.push(format!("{} {path}", methods.join(",")));
        }
    }
    public_routes.sort();
    assert_eq!(
        public_routes,
        [
            "GET /v1/models",
            "POST /v1/chat/completions",
            "POST /v1/embeddings"
        ]
    );
    // The admin API is reached on the internal load balancer, from the functions only.
    let internal = &t["Resources"]["InternalLoadBalancer"]["Properties"];
    assert_eq!(s(&internal["Scheme"]), "internal");
    let ingress =
        &t["Resources"]["InternalLoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"];
    for rule in ingress.as_sequence().unwrap() {
        assert_eq!(
            s(&rule["SourceSecurityGroupId"]),
            "!Ref FunctionSecurityGroup"
        );
        assert!(rule["CidrIp"].is_null(), "no address range reaches it");
    }
    // The port 80 listener of the public one only redirects.
    let redirect = &t["Resources"]["PublicRedirect"]["Properties"]["DefaultActions"][0];
    assert_eq!(s(&redirect["Type"]), "redirect");
}

#[test]
fn health_checks_read_readiness_and_never_call_models() {
    let t = gateway();
    for name in ["PublicTargetGroup", "InternalTargetGroup"] {
        let p = &t["Resources"][name]["Properties"];
        assert_eq!(s(&p["HealthCheckPath"]), "/health/readiness", "{name}");
        assert_eq!(s(&p["Port"]), "4000");
    }
}

#[test]
fn two_or_more_tasks_in_two_zones_scale_on_cpu_after_the_migration() {
    let t = gateway();
    let desired = &t["Parameters"]["DesiredTasks"];
    assert!(desired["MinValue"].as_u64().unwrap() >= 2);
    assert!(desired["Default"].as_u64().unwrap() >= 2);
    let service = &t["Resources"]["Service"];
    assert_eq!(
        s(&service["Properties"]["DesiredCount"]),
        "!Ref DesiredTasks"
    );
    assert_eq!(
        strings(&service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]),
        ["!Ref PrivateSubnetA", "!Ref PrivateSubnetB"]
    );
    let zone = |subnet: &str| s(&t["Resources"][subnet]["Properties"]["AvailabilityZone"]);
    assert_ne!(zone("PrivateSubnetA"), zone("PrivateSubnetB"));
    // A version serves only after its migration task succeeded.
    assert!(strings(&service["DependsOn"]).contains(&"MigrationRun".to_string()));
    let migrate =
        &t["Resources"]["MigrationTaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    assert!(strings(&migrate["Command"]).contains(&"--skip_server_startup".to_string()));
    let target = &t["Resources"]["ScalableTarget"]["Properties"];
    assert_eq!(s(&target["MinCapacity"]), "!Ref DesiredTasks");
    let policy = &t["Resources"]["CpuScaling"]["Properties"];
    assert_eq!(s(&policy["PolicyType"]), "TargetTrackingScaling");
}

#[test]
fn the_database_is_serverless_v2_encrypted_private_and_kept() {
    let t = gateway();
    let db = &t["Resources"]["Database"];
    assert_eq!(s(&db["DeletionPolicy"]), "Snapshot");
    let p = &db["Properties"];
    assert_eq!(s(&p["Engine"]), "aurora-postgresql");
    let scaling = &p["ServerlessV2ScalingConfiguration"];
    assert_eq!(s(&scaling["MinCapacity"]), "!Ref DatabaseMinCapacity");
    assert_eq!(s(&scaling["MaxCapacity"]), "!Ref DatabaseMaxCapacity");
    for flag in [
        "StorageEncrypted",
        "DeletionProtection",
        "ManageMasterUserPassword",
    ] {
        assert_eq!(p[flag].as_bool(), Some(true), "{flag}");
    }
    let writer = &t["Resources"]["DatabaseWriter"]["Properties"];
    assert_eq!(s(&writer["DBInstanceClass"]), "db.serverless");
    assert_eq!(writer["PubliclyAccessible"].as_bool(), Some(false));
    let rotation = &t["Resources"]["DatabasePasswordRotation"]["Properties"];
    assert!(s(&rotation["SecretId"]).contains("Database.MasterUserSecret"));
    let cache = &t["Resources"]["Cache"]["Properties"];
    assert_eq!(cache["TransitEncryptionEnabled"].as_bool(), Some(true));
    assert_eq!(cache["MultiAZEnabled"].as_bool(), Some(true));
}

#[test]
fn litellm_shares_its_limits_and_spend_through_redis_and_fails_closed() {
    let config = yaml("infra/aws/litellm/config.yaml");
    let router = &config["router_settings"];
    for field in ["redis_host", "redis_port", "redis_password"] {
        assert!(
            s(&router[field]).starts_with("os.environ/"),
            "{field} comes from the task's environment"
        );
    }
    let general = &config["general_settings"];
    assert_eq!(
        general["use_redis_transaction_buffer"].as_bool(),
        Some(true)
    );
    assert_eq!(
        general["allow_requests_on_db_unavailable"].as_bool(),
        Some(false)
    );
    assert!(general["proxy_batch_write_at"].as_u64().is_some());
    assert!(general["database_connection_pool_limit"].as_u64().is_some());
    let t = gateway();
    let container = &t["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    let env: Vec<String> = container["Environment"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| s(&e["Name"]))
        .collect();
    for name in [
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_SSL",
        "DISABLE_SCHEMA_UPDATE",
    ] {
        assert!(env.contains(&name.to_string()), "{name} in {env:?}");
    }
}

#[test]
fn no_secret_is_a_parameter_or_an_environment_value() {
    let t = gateway();
    for (name, parameter) in t["Parameters"].as_mapping().unwrap() {
        let name = s(name);
        assert!(
            parameter["NoEcho"].is_null(),
            "{name}: secrets are not parameters"
        );
        let secretish = ["Key", "Password", "Token", "Secret"]
            .iter()
            .any(|w| name.contains(w));
        assert!(
            !secretish || name.ends_with("Arn") || name.ends_with("Name"),
            "{name} names a secret, not holds one"
        );
    }
    for (name, task) in of_type(&t, "AWS::ECS::TaskDefinition") {
        for container in task["Properties"]["ContainerDefinitions"]
            .as_sequence()
            .unwrap()
        {
            for var in container["Environment"].as_sequence().unwrap() {
                let var = s(&var["Name"]);
                assert!(
                    !["KEY", "PASSWORD", "TOKEN", "SECRET"]
                        .iter()
                        .any(|w| var.contains(w)),
                    "{name}: {var} is a secret in plain environment"
                );
            }
            let secrets: Vec<String> = container["Secrets"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|e| s(&e["Name"]))
                .collect();
            assert!(
                !secrets.is_empty(),
                "{name} reads its secrets from Secrets Manager"
            );
        }
    }
}

#[test]
fn every_output_the_functions_take_is_one_of_their_parameters() {
    let gateway = gateway();
    let functions = template();
    let outputs = gateway["Outputs"].as_mapping().unwrap();
    for name in [
        "VpcSubnetIds",
        "VpcSecurityGroupIds",
        "LiteLlmBaseUrl",
        "LiteLlmUrlForLetta",
        "LettaBaseUrl",
    ] {
        assert!(outputs.contains_key(name), "the gateway outputs {name}");
        assert!(
            !functions["Parameters"][name].is_null(),
            "template.yaml takes {name}"
        );
    }
    // The script that turns outputs into parameters passes exactly those that are parameters.
    let script =
        std::fs::read_to_string(workspace().join("infra/aws/gateway-parameters.sh")).unwrap();
    for (name, _) in outputs {
        let name = s(name);
        let taken = !functions["Parameters"][name.as_str()].is_null();
        assert_eq!(
            script.contains(&format!("\"{name}\"")),
            taken,
            "gateway-parameters.sh and {name}"
        );
    }
    // The functions reach DynamoDB and Secrets Manager through endpoints, the rest through NAT.
    let endpoints: Vec<String> = of_type(&gateway, "AWS::EC2::VPCEndpoint")
        .iter()
        .map(|(_, e)| s(&e["Properties"]["ServiceName"]))
        .collect();
    assert!(
        endpoints
            .iter()
            .any(|e| e.ends_with(".dynamodb'") || e.ends_with(".dynamodb"))
    );
    assert!(endpoints.iter().any(|e| e.contains(".secretsmanager")));
    for route in ["PrivateDefaultRouteA", "PrivateDefaultRouteB"] {
        assert!(
            !gateway["Resources"][route]["Properties"]["NatGatewayId"].is_null(),
            "{route}"
        );
    }
}
