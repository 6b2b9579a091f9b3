//! Every sample event in `events/` through `sam local invoke`: `sam build`'s output for
//! `template.yaml` (arm64, under qemu-user on another processor) in a Lambda container with
//! SAM's runtime interface emulator, with real tokens against the local stack. Each function
//! reads its own secret, `<SecretsPrefix>/<function>`, from Secrets Manager (moto) at cold start,
//! as deployed. `make test` prepares the image and the build (`infra/local/sam.sh`).

use std::{path::PathBuf, time::Instant};

use sam_local::{Invocation, Options, Session};
use serde_json::Value;

/// Runs sample events in order, filling their placeholders, and says what each answered.
struct Journey {
    session: Session,
    workspace: PathBuf,
    fill: Vec<(&'static str, String)>,
    started: Instant,
}

impl Journey {
    /// The function an event is for: its file name's first word.
    fn function(event: &str) -> &'static str {
        match event.split('-').next().unwrap() {
            "auth" => "AuthFunction",
            "chat" => "ChatFunction",
            "user" => "UserFunction",
            "agent" => "AgentFunction",
            other => panic!("no function for {other}"),
        }
    }

    async fn run(&self, event: &str) -> Invocation {
        let mut text = std::fs::read_to_string(self.workspace.join(format!("events/{event}.json")))
            .expect("the event file");
        for (from, to) in &self.fill {
            text = text.replace(from, to);
        }
        let began = Instant::now();
        let answer = self
            .session
            .invoke(Self::function(event), &text)
            .await
            .unwrap_or_else(|e| panic!("{event}: {e}"));
        println!(
            "{event:<28} {} in {:>5} ms (at +{} s)",
            answer.status,
            began.elapsed().as_millis(),
            self.started.elapsed().as_secs()
        );
        answer
    }

    /// The event's answer, which must have `status`, as JSON.
    async fn expect(&self, event: &str, status: u16) -> Value {
        let answer = self.run(event).await;
        assert_eq!(
            answer.status, status,
            "{event}: {}\n{}",
            answer.body, answer.logs
        );
        answer.json()
    }

    fn set(&mut self, placeholder: &'static str, value: &Value) {
        let value = value
            .as_str()
            .unwrap_or_else(|| panic!("{placeholder}: {value}"));
        self.fill.retain(|(p, _)| *p != placeholder);
        self.fill.push((placeholder, value.to_string()));
    }

    // The journey's steps, each a function's sample events in order.

    /// Registers, logs in, refreshes, and asks who it is: the tokens are set.
    async fn sign_up(&mut self) {
        let health = self.expect("auth-health", 200).await;
        assert_eq!(health["function"], "auth", "{health}");
        assert_eq!(health["status"], "ok", "{health}");
        self.expect("auth-register", 201).await;
        let login = self.expect("auth-login", 200).await;
        self.set("REFRESH_TOKEN", &login["session"]["refresh_token"]);
        let refreshed = self.expect("auth-refresh", 200).await;
        self.set("ACCESS_TOKEN", &refreshed["session"]["access_token"]);
        let me = self.expect("auth-me", 200).await;
        assert_eq!(me["profile"]["state"], "ready", "{me}");
    }

    /// The user function's events.
    async fn user_events(&mut self) {
        for event in [
            "user-health",
            "user-profile",
            "user-profile-update",
            "user-usage",
            "user-budget",
            "user-budget-update",
            "user-account-health",
        ] {
            self.expect(event, 200).await;
        }
        let models = self.expect("user-models", 200).await;
        assert!(!models["models"].as_array().unwrap().is_empty(), "{models}");
    }

    /// The agent function's events; the archival memory listed is deleted, a document
    /// uploaded, listed and deleted.
    async fn agent_events(&mut self) {
        for event in [
            "agent-health",
            "agent-status",
            "agent-memory",
            "agent-memory-update",
        ] {
            self.expect(event, 200).await;
        }
        let listed = self.expect("agent-archival-search", 200).await;
        self.set("PASSAGE_ID", &listed["memories"][0]["id"]);
        self.expect("agent-archival-delete", 200).await;
        // A document: a multipart form, base64 in the function URL's event.
        let uploaded = self.expect("agent-files-upload", 201).await;
        assert_eq!(uploaded["name"], "packing.txt", "{uploaded}");
        self.set("FILE_ID", &uploaded["id"]);
        let listed = self.expect("agent-files", 200).await;
        assert_eq!(listed["files"].as_array().unwrap().len(), 1, "{listed}");
        self.expect("agent-files-delete", 200).await;
        self.expect("agent-reset", 200).await;
    }

    /// A real turn: the stream of SSE events after the prelude, ending with `done`.
    async fn chat_turn(&mut self) {
        let health = self.expect("chat-health", 200).await;
        assert_eq!(health["status"], "ok", "{health}");
        // A real turn: the stream of SSE events after the prelude, ending with `done`.
        let turn = self.run("chat-message").await;
        assert_eq!(turn.status, 200, "{}", turn.body);
        assert!(
            turn.headers["content-type"]
                .as_str()
                .unwrap()
                .starts_with("text/event-stream"),
            "{:?}",
            turn.headers
        );
        let events: Vec<&str> = turn
            .body
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(events.first(), Some(&"start"), "{}", turn.body);
        assert!(events.contains(&"delta"), "{}", turn.body);
        assert_eq!(events.last(), Some(&"done"), "{}", turn.body);
        let history = self.expect("chat-history", 200).await;
        assert_eq!(
            history["messages"].as_array().unwrap().len(),
            2,
            "{history}"
        );
    }

    /// A voice message: a multipart form, base64 in the function URL's event; the stream
    /// starts with its transcript.
    async fn voice_turn(&mut self) {
        let turn = self.run("chat-voice").await;
        assert_eq!(turn.status, 200, "{}\n{}", turn.body, turn.logs);
        let events: Vec<&str> = turn
            .body
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(events.first(), Some(&"transcript"), "{}", turn.body);
        assert_eq!(events.last(), Some(&"done"), "{}", turn.body);
        assert!(
            turn.body.contains(r#"{"text":"what is my name?"}"#),
            "{}",
            turn.body
        );
    }

    /// A personal API key made and listed, a streamed completion and the model list with it
    /// through the OpenAI-compatible routes, then the key revoked.
    async fn openai_events(&mut self) {
        let made = self.expect("user-api-keys-create", 201).await;
        self.set("API_KEY", &made["key"]);
        self.set("KEY_ID", &made["id"]);
        let listed = self.expect("user-api-keys", 200).await;
        assert_eq!(listed["api_keys"].as_array().unwrap().len(), 1, "{listed}");
        let turn = self.run("chat-completions").await;
        assert_eq!(turn.status, 200, "{}\n{}", turn.body, turn.logs);
        assert!(turn.body.contains("chat.completion.chunk"), "{}", turn.body);
        assert!(
            turn.body.trim_end().ends_with("data: [DONE]"),
            "{}",
            turn.body
        );
        let models = self.expect("chat-models", 200).await;
        assert_eq!(models["object"], "list", "{models}");
        self.expect("user-api-keys-delete", 200).await;
    }

    /// A conversation made, listed, read, renamed, stopped (nothing running) and deleted.
    async fn conversation_events(&mut self) {
        let created = self.expect("chat-conversation-create", 201).await;
        assert_eq!(created["title"], "Trip to Lisbon", "{created}");
        self.set("CONVERSATION_ID", &created["id"]);
        let listed = self.expect("chat-conversations", 200).await;
        assert_eq!(
            listed["conversations"].as_array().unwrap().len(),
            2,
            "{listed}"
        );
        self.expect("chat-conversation", 200).await;
        let renamed = self.expect("chat-conversation-rename", 200).await;
        assert_eq!(renamed["title"], "Lisbon in May");
        // Stop with no reply being written: the turn lock and the profile read, refused.
        let idle = self.expect("chat-conversation-cancel", 409).await;
        assert_eq!(idle["error"]["code"], "no_turn_in_progress", "{idle}");
        let deleted = self.expect("chat-conversation-delete", 200).await;
        assert_eq!(deleted["deleted"], true);
    }

    /// The export streams NDJSON: one line per record, the last one `end`.
    async fn export(&mut self) {
        // The export streams NDJSON: one line per record, the last one `end`.
        let export = self.run("user-export").await;
        assert_eq!(export.status, 200, "{}", export.body);
        let lines: Vec<Value> = export
            .body
            .trim()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(
            lines.iter().any(|l| l["type"] == "message"),
            "{}",
            export.body
        );
        assert_eq!(lines.last().unwrap()["type"], "end", "{}", export.body);
    }

    /// Logs out, logs in again and deletes the account: the token is refused after.
    async fn sign_out_and_delete(&mut self) {
        self.expect("auth-logout", 204).await;
        // Logout revoked the token: deletion signs in again first.
        let login = self.expect("auth-login", 200).await;
        self.set("ACCESS_TOKEN", &login["session"]["access_token"]);
        self.expect("auth-delete-account", 204).await;
        let gone = self.run("auth-me").await;
        assert_eq!(gone.status, 401, "{}", gone.body);
    }
}

#[tokio::test]
async fn every_sample_event_answers_through_sam_local_invoke_in_a_lambda_container() {
    let _stack = crate::helpers::share_stack().await;
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let binaries = crate::helpers::workspace_binary("aws-recorder")
        .parent()
        .unwrap()
        .to_path_buf();
    let options = Options::from_env(&workspace, &binaries).expect("make test's environment");
    let session = Session::start(options)
        .await
        .expect("the sam local session");
    let email = format!(
        "sam-{}-{}@example.com",
        std::process::id(),
        crate::helpers::now()
    );
    let mut j = Journey {
        session,
        workspace,
        fill: vec![("new-user@example.com", email)],
        started: Instant::now(),
    };

    j.sign_up().await;
    j.user_events().await;
    j.agent_events().await;
    j.chat_turn().await;
    j.voice_turn().await;
    j.openai_events().await;
    j.conversation_events().await;
    j.export().await;
    j.sign_out_and_delete().await;
    println!("every sample event in {} s", j.started.elapsed().as_secs());
}
