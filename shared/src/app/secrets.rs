//! The function's secrets from AWS Secrets Manager, read once per cold start: the secret named
//! by `SECRETS_ID` is a JSON object whose keys are the secret variables
//! ([`SECRET_VARIABLES`]), so `lambda:GetFunctionConfiguration` shows none of them and each
//! function's role can read only its own secret. Local runs set the variables directly.

use std::collections::HashMap;

use aws_sdk_secretsmanager::error::DisplayErrorContext;

/// The variables that hold secrets. With `SECRETS_ID` set they come from the secret only.
pub const SECRET_VARIABLES: [&str; 7] = [
    "LITELLM_MASTER_KEY",
    "LETTA_API_KEY",
    "LETTA_SERVER_PASSWORD",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_JWT_SECRET",
    "CLOUDFRONT_ORIGIN_SECRET",
];

/// Adds the variables of the secret `SECRETS_ID` names (if any) to `vars`, read by `function`;
/// returns the problems found, each naming what to fix.
pub async fn add_secrets(vars: &mut HashMap<String, String>, function: &str) -> Vec<String> {
    let Some(id) = vars
        .get("SECRETS_ID")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Vec::new();
    };
    match fetch(&id, function).await {
        Ok(text) => merge(vars, &id, &text),
        Err(e) => vec![format!(
            "SECRETS_ID: the secret {id} could not be read: {e}"
        )],
    }
}

/// The secret's text (`SecretString`).
async fn fetch(id: &str, function: &str) -> Result<String, String> {
    // The SDK's own configuration chain: the function's role in AWS; `AWS_ENDPOINT_URL_SECRETS_MANAGER`
    // points it at an emulator.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .app_name(super::aws::app_name(function))
        .load()
        .await;
    let out = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(e).to_string())?;
    out.secret_string
        .ok_or_else(|| "it has no SecretString (a binary secret)".to_string())
}

/// Adds the secret's variables; a variable that is not a secret one, or that the environment
/// also sets, is a problem (one place for each secret, so a rotation cannot be shadowed).
fn merge(vars: &mut HashMap<String, String>, id: &str, text: &str) -> Vec<String> {
    let Ok(values) = serde_json::from_str::<HashMap<String, String>>(text) else {
        return vec![format!(
            "SECRETS_ID: the secret {id} must be a JSON object of strings, keyed by variable name"
        )];
    };
    let mut problems = Vec::new();
    for (name, value) in values {
        if !SECRET_VARIABLES.contains(&name.as_str()) {
            problems.push(format!(
                "the secret {id} holds {name}, which is not a secret variable (set it in the environment)"
            ));
        } else if vars.get(&name).is_some_and(|v| !v.trim().is_empty()) {
            problems.push(format!(
                "{name} is set both in the environment and in the secret {id}; keep it in the secret only"
            ));
        } else {
            vars.insert(name, value);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_adds_its_variables_and_refuses_others_and_doubles() {
        let mut vars: HashMap<String, String> =
            [("SUPABASE_ANON_KEY".to_string(), "from-env".to_string())].into();
        let problems = merge(
            &mut vars,
            "fn/chat",
            r#"{"LITELLM_MASTER_KEY":"sk-m","SUPABASE_ANON_KEY":"x","TABLE_NAME":"t"}"#,
        );
        assert_eq!(vars["LITELLM_MASTER_KEY"], "sk-m");
        assert_eq!(vars["SUPABASE_ANON_KEY"], "from-env");
        assert!(!vars.contains_key("TABLE_NAME"));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("TABLE_NAME")));
        assert!(problems.iter().any(|p| p.contains("both")));
        let problems = merge(&mut vars, "fn/chat", "not json");
        assert!(problems[0].contains("JSON object"), "{problems:?}");
    }
}
