//! Each function's role in `template.yaml` against what the function did. DynamoDB Local and
//! moto enforce no IAM, so `make test` runs every AWS request through `aws-recorder`, which
//! writes down each action (a transaction as its item actions, as IAM authorizes them) with the
//! function that made it (the SDK app name in its user agent). After the whole suite, the test
//! below fails for an action a function performed that its role does not grant (AccessDenied in
//! AWS), and for a granted action no test exercised (least privilege), unless [`UNEXERCISED`]
//! says why that path cannot run here.

use std::collections::{BTreeMap, BTreeSet};

use aws_recorder::Call;
use serde_norway::Value;

use super::template::{s, template};

/// The deployed functions: template resource and the name their requests carry.
const FUNCTIONS: [(&str, &str); 5] = [
    ("AuthFunction", "auth"),
    ("ChatFunction", "chat"),
    ("UserFunction", "user"),
    ("AgentFunction", "agent"),
    ("ReconcilerFunction", "reconciler"),
];

/// Callers that are not deployed: the local gateway's own `/health` and table creation, and
/// the tests' own clients (no app name).
const NOT_DEPLOYED: [&str; 2] = ["gateway", "-"];

/// Granted actions no test can exercise here, each with the reason.
const UNEXERCISED: &[(&str, &str, &str)] = &[
    // A run over every user (the daily Lambda's) scans the table for the profiles; the tests
    // run the reconciler over their own users, since a run over all would judge every other
    // test's users in the middle of their requests.
    (
        "ReconcilerFunction",
        "dynamodb:Scan",
        "only a run over every user lists the profiles",
    ),
    // The reconciler runs in-process and as a command with its environment; only the scheduled
    // Lambda host reads its secret at cold start, and no test starts that host.
    (
        "ReconcilerFunction",
        "secretsmanager:GetSecretValue",
        "only the scheduled host reads its secret",
    ),
];

/// The actions each role grants, by template resource.
fn granted(t: &Value, resource: &str) -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    for policy in t["Resources"][resource]["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
    {
        for statement in policy["Statement"].as_sequence().unwrap() {
            assert_eq!(s(&statement["Effect"]), "Allow", "{resource}");
            match &statement["Action"] {
                Value::Sequence(list) => actions.extend(list.iter().map(s)),
                one => {
                    actions.insert(s(one));
                }
            }
        }
    }
    actions
}

/// The recording of this `make test` run, as actions by caller.
fn recorded() -> BTreeMap<String, BTreeSet<String>> {
    let path = std::env::var("AWS_CALLS_LOG").expect("AWS_CALLS_LOG (set by make test)");
    let text = std::fs::read_to_string(&path).expect("the recording of this run");
    let mut by_caller: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let call: Call = serde_json::from_str(line).expect("a recorded call");
        assert!(
            !call.resource.contains("/index/"),
            "{} queried an index ({}); the roles grant the table only",
            call.caller,
            call.resource
        );
        by_caller
            .entry(call.caller)
            .or_default()
            .insert(call.action);
    }
    by_caller
}

/// What is wrong with one function's role, given what it did.
fn problems(
    resource: &str,
    caller: &str,
    did: &BTreeSet<String>,
    grants: &BTreeSet<String>,
) -> Vec<String> {
    let mut found: Vec<String> = did
        .difference(grants)
        .map(|a| format!("{resource} ({caller}) performs {a}, which its role does not grant"))
        .collect();
    for action in grants.difference(did) {
        if !UNEXERCISED
            .iter()
            .any(|(r, a, _)| *r == resource && a == action)
        {
            found.push(format!(
                "{resource}'s role grants {action}, which no test exercised (remove it, or say in UNEXERCISED why it cannot run here)"
            ));
        }
    }
    found
}

#[tokio::test]
#[ignore = "reads the whole run's recording: `make test` runs it after every other test"]
async fn each_role_grants_exactly_the_aws_actions_its_function_performed() {
    let t = template();
    let by_caller = recorded();
    let mut found = Vec::new();
    for caller in by_caller.keys() {
        let known = FUNCTIONS.iter().any(|(_, c)| c == caller) || NOT_DEPLOYED.contains(&&**caller);
        assert!(known, "requests from an unknown caller: {caller}");
    }
    for (resource, caller) in FUNCTIONS {
        let did = by_caller.get(caller).cloned().unwrap_or_default();
        let grants = granted(&t, resource);
        println!("{resource} ({caller}): performed {did:?}");
        found.extend(problems(resource, caller, &did, &grants));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn a_missing_grant_and_an_unused_one_are_named() {
    let did: BTreeSet<String> = ["dynamodb:GetItem", "dynamodb:ConditionCheckItem"]
        .map(String::from)
        .into();
    let grants: BTreeSet<String> = ["dynamodb:GetItem", "dynamodb:Scan"]
        .map(String::from)
        .into();
    assert_eq!(
        problems("ChatFunction", "chat", &did, &grants),
        [
            "ChatFunction (chat) performs dynamodb:ConditionCheckItem, which its role does not grant",
            "ChatFunction's role grants dynamodb:Scan, which no test exercised (remove it, or say in UNEXERCISED why it cannot run here)",
        ]
    );
    let reconciler = ["secretsmanager:GetSecretValue".to_string()].into();
    assert!(
        problems(
            "ReconcilerFunction",
            "reconciler",
            &BTreeSet::new(),
            &reconciler
        )
        .is_empty()
    );
}
