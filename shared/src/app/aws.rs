//! What every AWS SDK client of a function shares: its caller name in the user agent
//! (`app/chat-backend-<function>`), so CloudTrail tells which function made a call, and so does
//! the recording proxy `make test` puts in front of DynamoDB Local and Secrets Manager (the test
//! that holds each function to its role in `template.yaml`).

use aws_config::AppName;

/// The prefix of every function's app name.
pub const APP_PREFIX: &str = "chat-backend-";

/// The SDK app name of `function` (`auth`, `chat`, `user`, `agent`, `reconciler`).
pub fn app_name(function: &str) -> AppName {
    AppName::new(format!("{APP_PREFIX}{function}"))
        .unwrap_or_else(|_| AppName::new("chat-backend").expect("a valid app name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_has_its_own_app_name() {
        assert_eq!(app_name("auth").to_string(), "chat-backend-auth");
        assert_eq!(app_name("no spaces").to_string(), "chat-backend");
    }
}
