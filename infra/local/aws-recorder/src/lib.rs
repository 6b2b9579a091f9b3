//! What an AWS request is, as IAM authorizes it: the actions it performs (a DynamoDB
//! transaction is its item actions, `ConditionCheckItem`, `PutItem`, `UpdateItem`,
//! `DeleteItem`, `GetItem`), on which resource, for which caller (the `app/<name>` part of
//! the SDK's user agent, which each function sets to `chat-backend-<function>`).

use std::{path::Path, process::Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The prefix of the functions' SDK app names (`shared::app::aws`).
pub const APP_PREFIX: &str = "chat-backend-";

/// One action a request performed, as a line of the recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The function (`auth`, `chat`, …), or `-` when the request carried no app name.
    pub caller: String,
    /// The IAM action, e.g. `dynamodb:PutItem`.
    pub action: String,
    /// The table (with `/index/<name>` for an index) or the secret's id.
    pub resource: String,
}

/// The caller named by a request's user-agent headers (`x-amz-user-agent`, then `user-agent`).
pub fn caller<'a>(user_agents: impl IntoIterator<Item = &'a str>) -> String {
    user_agents
        .into_iter()
        .flat_map(str::split_whitespace)
        .find_map(|part| part.strip_prefix("app/"))
        .map(|app| app.strip_prefix(APP_PREFIX).unwrap_or(app).to_string())
        .unwrap_or_else(|| "-".to_string())
}

/// The actions of one request: its `X-Amz-Target` (`DynamoDB_20120810.PutItem`,
/// `secretsmanager.GetSecretValue`) and JSON body.
pub fn actions(target: &str, body: &Value) -> Vec<(String, String)> {
    let Some((service, operation)) = target.split_once('.') else {
        return vec![(format!("unknown:{target}"), String::new())];
    };
    if service.eq_ignore_ascii_case("secretsmanager") {
        let secret = body["SecretId"].as_str().unwrap_or_default().to_string();
        return vec![(format!("secretsmanager:{operation}"), secret)];
    }
    if !service.starts_with("DynamoDB") {
        return vec![(format!("{service}:{operation}"), String::new())];
    }
    let dynamodb = |action: &str, item: &Value| {
        let table = item["TableName"].as_str().unwrap_or_default();
        let resource = match item["IndexName"].as_str() {
            Some(index) => format!("{table}/index/{index}"),
            None => table.to_string(),
        };
        (format!("dynamodb:{action}"), resource)
    };
    match operation {
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let (kind, inner) = item.as_object()?.iter().next()?;
                let action = match kind.as_str() {
                    "ConditionCheck" => "ConditionCheckItem",
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "Get" => "GetItem",
                    _ => return Some((format!("dynamodb:{kind}?"), String::new())),
                };
                Some(dynamodb(action, inner))
            })
            .collect(),
        "BatchWriteItem" | "BatchGetItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(table, _)| (format!("dynamodb:{operation}"), table.clone()))
            .collect(),
        _ => vec![dynamodb(operation, body)],
    }
}

/// The recorder binary running in front of an upstream, ended when dropped.
pub struct Running {
    _child: tokio::process::Child,
    /// Where to send the requests instead of the upstream.
    pub url: String,
}

/// Starts `binary` (this crate's `aws-recorder`) in front of `upstream` on a free loopback
/// port, appending to `log`.
pub async fn spawn(binary: &Path, log: &Path, upstream: &str) -> Result<Running, String> {
    let mut child = tokio::process::Command::new(binary)
        .env("RECORD_UPSTREAM", upstream)
        .env("RECORD_LOG", log)
        .env("RECORD_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or("the recorder has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("the recorder said {line:?}"))?
        .to_string();
    Ok(Running { _child: child, url })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_caller_is_the_app_name_of_the_user_agent() {
        let ua = "aws-sdk-rust/1.3.9 ua/2.1 api/dynamodb#1.98.0 os/linux lang/rust#1.95.0 app/chat-backend-chat";
        assert_eq!(caller([ua]), "chat");
        assert_eq!(
            caller(["aws-sdk-rust/1.3.9 os/linux", "app/other"]),
            "other"
        );
        assert_eq!(caller(["aws-sdk-rust/1.3.9 os/linux"]), "-");
    }

    #[test]
    fn a_transaction_is_its_item_actions_and_a_batch_its_tables() {
        let body = json!({"TransactItems": [
            {"ConditionCheck": {"TableName": "t", "Key": {}}},
            {"Update": {"TableName": "t"}},
            {"Put": {"TableName": "t"}},
            {"Delete": {"TableName": "u"}},
        ]});
        let got = actions("DynamoDB_20120810.TransactWriteItems", &body);
        let want = [
            ("dynamodb:ConditionCheckItem", "t"),
            ("dynamodb:UpdateItem", "t"),
            ("dynamodb:PutItem", "t"),
            ("dynamodb:DeleteItem", "u"),
        ];
        assert_eq!(got, want.map(|(a, r)| (a.to_string(), r.to_string())));
        let got = actions(
            "DynamoDB_20120810.TransactGetItems",
            &json!({"TransactItems": [{"Get": {"TableName": "t"}}]}),
        );
        assert_eq!(got, [("dynamodb:GetItem".to_string(), "t".to_string())]);
        let got = actions(
            "DynamoDB_20120810.BatchGetItem",
            &json!({"RequestItems": {"t": {"Keys": []}}}),
        );
        assert_eq!(
            got,
            [("dynamodb:BatchGetItem".to_string(), "t".to_string())]
        );
        let got = actions(
            "DynamoDB_20120810.Query",
            &json!({"TableName": "t", "IndexName": "by-x"}),
        );
        assert_eq!(
            got,
            [("dynamodb:Query".to_string(), "t/index/by-x".to_string())]
        );
        let got = actions(
            "secretsmanager.GetSecretValue",
            &json!({"SecretId": "chat-backend/auth"}),
        );
        assert_eq!(
            got,
            [(
                "secretsmanager:GetSecretValue".to_string(),
                "chat-backend/auth".to_string()
            )]
        );
    }
}
