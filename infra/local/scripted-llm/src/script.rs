//! The script: what the model "decides" for a conversation. Pure functions, unit-tested.

use std::time::Duration;

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Say(String),
    CallTool { name: String, arguments: Value },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub action: Action,
    /// Native reasoning streamed before a plain-content answer (`reasoning_content`, as reasoning
    /// models send it through LiteLLM).
    pub reasoning: Option<String>,
    pub fail: Option<u16>,
    /// `/fail-on MODEL STATUS`: fail with STATUS only when MODEL is asked (a fallback answers).
    pub fail_on: Option<(String, u16)>,
    pub chunk_delay: Option<Duration>,
    /// Stream in coarse ~10-byte chunks instead of OpenAI's fine token shapes (content word by
    /// word; tool arguments as `{"`, key, `":"`, words, `"}`), the default as real models do.
    pub coarse: bool,
}

impl Plan {
    fn blank() -> Self {
        Self {
            action: Action::Say(String::new()),
            reasoning: None,
            fail: None,
            fail_on: None,
            chunk_delay: None,
            coarse: false,
        }
    }
}

/// The tools offered in a request, with their parameter schemas.
pub(crate) struct Tools {
    tools: Vec<(String, Value)>,
}

impl Tools {
    pub(crate) fn from_request(request: &Value) -> Self {
        let tools = request
            .get("tools")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|t| {
                        let f = t.get("function")?;
                        Some((
                            f.get("name")?.as_str()?.to_string(),
                            f.get("parameters").cloned().unwrap_or(Value::Null),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { tools }
    }

    fn schema(&self, name: &str) -> Option<&Value> {
        self.tools.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    fn has(&self, name: &str) -> bool {
        self.schema(name).is_some()
    }

    fn has_param(&self, tool: &str, param: &str) -> bool {
        self.schema(tool)
            .and_then(|s| s.pointer(&format!("/properties/{param}")))
            .is_some()
    }

    /// Arguments in schema order with `thinking` first (Letta streams best that way), plus
    /// `request_heartbeat` when the schema asks for it.
    fn arguments(
        &self,
        tool: &str,
        thinking: &str,
        args: Vec<(&str, Value)>,
        heartbeat: bool,
    ) -> Value {
        let mut map = Map::new();
        if self.has_param(tool, "thinking") {
            map.insert("thinking".into(), json!(thinking));
        }
        for (k, v) in args {
            map.insert(k.into(), v);
        }
        if self.has_param(tool, "request_heartbeat") {
            map.insert("request_heartbeat".into(), json!(heartbeat));
        }
        Value::Object(map)
    }
}

/// The text of a message's `content` (a string, or OpenAI content parts).
fn content_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The user's own words, or `None` for Letta's automated messages (heartbeats, alerts).
fn user_words(message: &Value) -> Option<String> {
    if message.get("role").and_then(Value::as_str) != Some("user") {
        return None;
    }
    let text = content_text(message);
    if let Ok(Value::Object(packed)) = serde_json::from_str::<Value>(&text) {
        return match packed.get("type").and_then(Value::as_str) {
            Some("user_message") => packed
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None, // heartbeat, system_alert, login …
        };
    }
    if text.contains("[This is an automated system message hidden from the user]") {
        return None;
    }
    Some(text)
}

/// Finds the name stored in memory ("The user's name is X." or "Name: X"), newest last.
fn remembered_name(system_prompt: &str) -> Option<String> {
    let mut found: Option<(usize, String)> = None;
    for marker in ["The user's name is ", "the user's name is ", "Name: "] {
        for (pos, _) in system_prompt.match_indices(marker) {
            let after = &system_prompt[pos + marker.len()..];
            let name: String = after
                .chars()
                .take_while(|c| !matches!(c, '.' | '\n' | '<' | ',' | '"'))
                .collect();
            let name = name.trim().to_string();
            if !name.is_empty() && found.as_ref().is_none_or(|(best, _)| pos > *best) {
                found = Some((pos, name));
            }
        }
    }
    found.map(|(_, n)| n)
}

/// The human block's `Name: …` line as it stands in the system prompt (the last one).
fn name_line(system_prompt: &str) -> Option<String> {
    let block = match system_prompt.find("<human>") {
        Some(start) => {
            let rest = &system_prompt[start..];
            &rest[..rest.find("</human>").unwrap_or(rest.len())]
        }
        None => system_prompt,
    };
    let at = block.rfind("Name: ")?;
    let line: String = block[at..]
        .chars()
        .take_while(|c| *c != '\n' && *c != '<')
        .collect();
    Some(line.trim_end().to_string())
}

fn after_prefix<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let lower = text.to_lowercase();
    let at = lower.find(prefix)?;
    // Lowercasing keeps ASCII byte offsets; our prefixes are ASCII.
    text.get(at + prefix.len()..)
}

fn clean_fact(raw: &str) -> String {
    raw.trim()
        .trim_end_matches(['.', '!', '?'])
        .trim()
        .to_string()
}

/// Decides the model's next step for a conversation.
pub(crate) fn plan(messages: &[Value], tools: &Tools) -> Plan {
    let system: String = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("system"))
        .map(content_text)
        .collect::<Vec<_>>()
        .join("\n");
    let mut plan = Plan::blank();
    if system.contains("conversation title") {
        plan.action = Action::Say(title_for(messages.last().and_then(user_words)));
        return plan;
    }
    let Some(words) = messages.last().and_then(user_words) else {
        // A tool result or a heartbeat: finish the turn, never call another tool (unless the
        // user's message asked for a runaway model).
        match looping(messages, tools) {
            Some((action, delay)) => (plan.action, plan.chunk_delay) = (action, delay),
            None => plan.action = say(tools, after_tool(messages, &system)),
        }
        return plan;
    };
    let words = apply_commands(words, &mut plan);
    if let Some((action, _)) = looping(messages, tools) {
        plan.action = action;
        return plan;
    }
    if plan.fail.is_some() || matches!(plan.action, Action::CallTool { .. }) {
        return plan;
    }
    plan.action =
        memory_tool(&words, tools, &system).unwrap_or_else(|| say(tools, answer(&words, &system)));
    if matches!(plan.action, Action::Say(_)) {
        plan.reasoning = Some(format!(
            "The user wrote {} words; I will answer.",
            words.split_whitespace().count()
        ));
    }
    plan
}

/// "/loop": a runaway model that searches its conversation again after every result, so
/// only Letta's step limit (`max_steps`) ends the turn. After "/slow MS", every step of it
/// streams slowly (the delay is returned with the call).
fn looping(messages: &[Value], tools: &Tools) -> Option<(Action, Option<Duration>)> {
    let asked = messages.iter().rev().find_map(user_words)?;
    let mut commands = Plan::blank();
    let asked = apply_commands(asked, &mut commands);
    if !asked.starts_with("/loop") || !tools.has("conversation_search") {
        return None;
    }
    let call = Action::CallTool {
        name: "conversation_search".into(),
        arguments: tools.arguments(
            "conversation_search",
            "I should search once more.",
            vec![("query", json!("again"))],
            true,
        ),
    };
    Some((call, commands.chunk_delay))
}

/// A title request ("User: …\nAssistant: …"): the first five words of the user's line.
fn title_for(prompt: Option<String>) -> String {
    let prompt = prompt.unwrap_or_default();
    let line = prompt
        .lines()
        .find_map(|l| l.strip_prefix("User: "))
        .unwrap_or(&prompt);
    let words: Vec<&str> = line.split_whitespace().take(5).collect();
    format!("Chat: {}", words.join(" "))
}

/// The closing words after a tool ran: what the last tool call did.
fn after_tool(messages: &[Value], system: &str) -> String {
    let last_call = |field: &str| {
        messages.iter().rev().find_map(|m| {
            m.get("tool_calls")?
                .as_array()?
                .first()?
                .pointer(&format!("/function/{field}"))?
                .as_str()
                .map(str::to_string)
        })
    };
    // The memory just written is in the tool call; the system prompt may not show it yet.
    let written = last_call("arguments").as_deref().and_then(remembered_name);
    match last_call("name").as_deref() {
        Some("core_memory_append" | "core_memory_replace" | "memory_insert" | "memory_replace") => {
            match written.or_else(|| remembered_name(system)) {
                Some(name) => format!("Nice to meet you, {name}! I will remember that."),
                None => "Noted, I will remember that.".to_string(),
            }
        }
        Some("archival_memory_insert") => "I saved that to my long-term memory.".to_string(),
        Some("archival_memory_search") => "I searched my long-term memory.".to_string(),
        Some("grep_files") => quote_matches(&last_tool_result(messages)),
        _ => "Done.".to_string(),
    }
}

/// A reply quoting the lines `grep_files` matched (Letta marks them `> N: `), or saying
/// nothing was found.
fn quote_matches(result: &str) -> String {
    // Letta wraps a tool's return in `{"status", "message", "time"}`.
    let text = serde_json::from_str::<Value>(result)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| result.to_string());
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .map(|l| l.split_once(": ").map_or(l, |(_, line)| line).trim())
        .collect();
    if lines.is_empty() {
        "I found nothing about that in your documents.".to_string()
    } else {
        format!("From your documents: {}", lines.join(" "))
    }
}

/// The text of the newest tool result.
fn last_tool_result(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        .map(content_text)
        .unwrap_or_default()
}

/// `/slow MS`, `/coarse`, `/tokens`, `/fail-on MODEL STATUS`, `/fail STATUS`, `/tool NAME {json}`: set on the plan; the
/// rest of the words is returned.
fn apply_commands(mut words: String, plan: &mut Plan) -> String {
    if let Some(rest) = words.strip_prefix("/slow ") {
        let (ms, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        plan.chunk_delay = ms.parse().ok().map(Duration::from_millis);
        words = tail.to_string();
    }
    if let Some(rest) = words.strip_prefix("/coarse ") {
        plan.coarse = true;
        words = rest.to_string();
    }
    // Fine token shapes are the default; `/tokens` is kept so older scripts still read.
    if let Some(rest) = words.strip_prefix("/tokens ") {
        words = rest.to_string();
    }
    if let Some(rest) = words.strip_prefix("/fail-on ") {
        let mut parts = rest.splitn(3, ' ');
        let model = parts.next().unwrap_or_default().to_string();
        let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(500);
        plan.fail_on = Some((model, status));
        words = parts.next().unwrap_or_default().to_string();
    }
    if let Some(status) = words.strip_prefix("/fail ") {
        plan.fail = Some(status.trim().parse().unwrap_or(500));
    } else if let Some(rest) = words.strip_prefix("/tool ") {
        let (name, args) = rest.split_once(' ').unwrap_or((rest, "{}"));
        let arguments = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
        plan.action = Action::CallTool {
            name: name.trim().to_string(),
            arguments,
        };
    }
    words
}

/// "my name is X" and "remember that X" call the memory tools, when offered: the `Name:` line
/// replaced (`memory_replace` or `core_memory_replace`), else the fact added (`memory_insert`
/// or `core_memory_append`).
fn memory_tool(words: &str, tools: &Tools, system: &str) -> Option<Action> {
    let call = |name: &str, thinking: &str, args: Vec<(&str, Value)>| Action::CallTool {
        name: name.into(),
        arguments: tools.arguments(name, thinking, args, true),
    };
    let thinking = "The user told me their name; I should store it in the human block.";
    if let Some(name) = after_prefix(words, "my name is ")
        .map(clean_fact)
        .filter(|n| !n.is_empty())
    {
        let fact = format!("The user's name is {name}.");
        let human = json!("human");
        if let Some(line) = name_line(system) {
            let new_line = json!(format!("Name: {name}"));
            if tools.has("memory_replace") {
                return Some(call(
                    "memory_replace",
                    thinking,
                    vec![
                        ("label", human),
                        ("old_string", json!(line)),
                        ("new_string", new_line),
                    ],
                ));
            }
            if tools.has("core_memory_replace") {
                return Some(call(
                    "core_memory_replace",
                    thinking,
                    vec![
                        ("label", human),
                        ("old_content", json!(line)),
                        ("new_content", new_line),
                    ],
                ));
            }
        }
        if tools.has("memory_insert") {
            let args = vec![("label", human), ("new_string", json!(fact))];
            return Some(call("memory_insert", thinking, args));
        }
        if tools.has("core_memory_append") {
            let args = vec![("label", human), ("content", json!(fact))];
            return Some(call("core_memory_append", thinking, args));
        }
    }
    // "what does my document say about X?": the agent's file tools (a folder is attached).
    if let Some(topic) = after_prefix(words, "my document say about ")
        .map(clean_fact)
        .filter(|t| !t.is_empty())
        && tools.has("grep_files")
    {
        return Some(call(
            "grep_files",
            "The user asks about their document; I should search it.",
            vec![("pattern", json!(topic))],
        ));
    }
    if let Some(fact) = after_prefix(words, "remember that ")
        .map(clean_fact)
        .filter(|f| !f.is_empty())
        && tools.has("archival_memory_insert")
    {
        return Some(call(
            "archival_memory_insert",
            "The user asked me to remember something for the long term.",
            vec![("content", json!(fact))],
        ));
    }
    None
}

/// A plain answer: the name from memory when asked, else an echo.
fn answer(words: &str, system: &str) -> String {
    let lower = words.to_lowercase();
    if lower.contains("what is my name") || lower.contains("what's my name") {
        match remembered_name(system) {
            Some(name) => format!("Your name is {name}."),
            None => "I don't know your name yet.".to_string(),
        }
    } else {
        format!("echo: {words}")
    }
}

fn say(tools: &Tools, text: String) -> Action {
    if tools.has("send_message") {
        let arguments = tools.arguments(
            "send_message",
            "I will answer the user.",
            vec![("message", json!(text))],
            false,
        );
        Action::CallTool {
            name: "send_message".into(),
            arguments,
        }
    } else {
        Action::Say(text)
    }
}

/// A deterministic token estimate: about four bytes a token, at least one.
pub(crate) fn count_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4).max(1)
}

pub(crate) fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A bag-of-words vector, L2-normalised: texts sharing words are close, so search is meaningful.
pub(crate) fn embed(text: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; dim];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = fnv(&word.to_lowercase());
        v[(h % dim as u64) as usize] += if (h >> 32) & 1 == 0 { 1.0 } else { -1.0 };
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v[0] = 1.0;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letta_tools() -> Tools {
        let with = |name: &str, props: Value| json!({"type": "function", "function": {"name": name, "parameters": {"properties": props}}});
        Tools::from_request(&json!({"tools": [
            with("send_message", json!({"thinking": {}, "message": {}})),
            with("core_memory_append", json!({"thinking": {}, "label": {}, "content": {}, "request_heartbeat": {}})),
            with("archival_memory_insert", json!({"thinking": {}, "content": {}, "request_heartbeat": {}})),
        ]}))
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn a_name_is_stored_in_the_human_block() {
        let plan = plan(
            &[
                json!({"role": "system", "content": "x"}),
                user("Hi, my name is Ada Lovelace."),
            ],
            &letta_tools(),
        );
        let Action::CallTool { name, arguments } = plan.action else {
            panic!("expected a tool call")
        };
        assert_eq!(name, "core_memory_append");
        assert_eq!(arguments["label"], "human");
        assert_eq!(arguments["content"], "The user's name is Ada Lovelace.");
        assert_eq!(arguments["request_heartbeat"], true);
        assert_eq!(
            arguments.as_object().unwrap().keys().next().unwrap(),
            "thinking"
        );
    }

    #[test]
    fn the_name_is_answered_from_memory_in_the_system_prompt() {
        let system = json!({"role": "system", "content": "<human>\n<value>\nName: Bob\nThe user's name is Ada.\n</value></human>"});
        let plan = plan(&[system, user("What is my name?")], &letta_tools());
        let Action::CallTool { name, arguments } = plan.action else {
            panic!("expected send_message")
        };
        assert_eq!(name, "send_message");
        assert_eq!(arguments["message"], "Your name is Ada.");
    }

    #[test]
    fn heartbeats_and_tool_results_end_the_turn_without_new_tools() {
        let heartbeat = user(r#"{"type": "heartbeat", "reason": "continue"}"#);
        for last in [
            heartbeat,
            json!({"role": "tool", "content": "ok", "tool_call_id": "1"}),
        ] {
            let p = plan(
                &[json!({"role": "system", "content": ""}), last],
                &letta_tools(),
            );
            let Action::CallTool { name, .. } = p.action else {
                panic!("expected send_message")
            };
            assert_eq!(name, "send_message");
        }
    }

    #[test]
    fn a_runaway_model_searches_again_after_every_result() {
        let tools = v1_tools();
        let asked = [
            json!({"role": "system", "content": ""}),
            user("/loop please"),
        ];
        let result = json!({"role": "tool", "content": "[]", "tool_call_id": "1"});
        let after = [asked[0].clone(), asked[1].clone(), result];
        for messages in [&asked[..], &after[..]] {
            let Action::CallTool { name, .. } = plan(messages, &tools).action else {
                panic!("expected a search")
            };
            assert_eq!(name, "conversation_search");
        }
        // After "/slow MS", every step of the loop is slow, not only the first.
        let slow = [asked[0].clone(), user("/slow 300 /loop please")];
        let after = [slow[0].clone(), slow[1].clone(), after[2].clone()];
        for messages in [&slow[..], &after[..]] {
            let p = plan(messages, &tools);
            assert!(matches!(p.action, Action::CallTool { .. }));
            assert_eq!(p.chunk_delay, Some(Duration::from_millis(300)));
        }
    }

    #[test]
    fn a_question_about_a_document_greps_it_and_quotes_the_match() {
        let tools = Tools::from_request(&json!({"tools": [
            {"type": "function", "function": {"name": "grep_files", "parameters": {"properties": {"pattern": {}}}}},
        ]}));
        let asked = [user("What does my document say about launch code?")];
        let Action::CallTool { name, arguments } = plan(&asked, &tools).action else {
            panic!("expected a search")
        };
        assert_eq!(
            (name.as_str(), &arguments["pattern"]),
            ("grep_files", &json!("launch code"))
        );
        let found = json!({"status": "OK", "message": "=== notes.txt:2 ===\n  1: Notes\n> 2: The code is PELICAN-42.\n  3: End"});
        assert_eq!(
            quote_matches(&found.to_string()),
            "From your documents: The code is PELICAN-42."
        );
        assert_eq!(
            quote_matches("No matches"),
            "I found nothing about that in your documents."
        );
    }

    fn v1_tools() -> Tools {
        let with = |name: &str, props: Value| json!({"type": "function", "function": {"name": name, "parameters": {"properties": props}}});
        Tools::from_request(&json!({"tools": [
            with("memory_insert", json!({"label": {}, "new_string": {}, "insert_line": {}})),
            with("memory_replace", json!({"label": {}, "old_string": {}, "new_string": {}})),
            with("archival_memory_insert", json!({"content": {}})),
            with("conversation_search", json!({"query": {}})),
        ]}))
    }

    #[test]
    fn with_the_core_memory_tools_the_name_line_is_replaced() {
        let with = |name: &str, props: Value| json!({"type": "function", "function": {"name": name, "parameters": {"properties": props}}});
        let tools = Tools::from_request(&json!({"tools": [
            with("core_memory_append", json!({"label": {}, "content": {}})),
            with("core_memory_replace", json!({"label": {}, "old_content": {}, "new_content": {}})),
        ]}));
        let system =
            json!({"role": "system", "content": "<human>\n<value>\nName: Bo\n</value>\n</human>"});
        let p = plan(&[system, user("my name is Ada.")], &tools);
        assert_eq!(
            p.action,
            Action::CallTool {
                name: "core_memory_replace".into(),
                arguments: json!({"label": "human", "old_content": "Name: Bo", "new_content": "Name: Ada"}),
            }
        );
    }

    #[test]
    fn with_v1_tools_the_name_line_is_replaced_or_a_line_inserted() {
        let system = json!({"role": "system", "content": "<persona>I help.</persona>\n<human>\n<value>\nName: (not told yet)\n</value>\n</human>"});
        let p = plan(&[system, user("my name is Ada.")], &v1_tools());
        assert_eq!(
            p.action,
            Action::CallTool {
                name: "memory_replace".into(),
                arguments: json!({"label": "human", "old_string": "Name: (not told yet)", "new_string": "Name: Ada"}),
            }
        );
        let bare = json!({"role": "system", "content": "<human>\n<value>\nLikes tea.\n</value>\n</human>"});
        let p = plan(&[bare, user("my name is Ada.")], &v1_tools());
        let Action::CallTool { name, arguments } = p.action else {
            panic!("expected a tool call")
        };
        assert_eq!(name, "memory_insert");
        assert_eq!(arguments["new_string"], "The user's name is Ada.");
        // The tool's result: the reply names the new name, in plain content.
        let after = plan(
            &[
                json!({"role": "system", "content": "<human>Name: (not told yet)</human>"}),
                json!({"role": "assistant", "tool_calls": [{"function": {"name": "memory_replace",
                    "arguments": "{\"label\":\"human\",\"old_string\":\"Name: (not told yet)\",\"new_string\":\"Name: Ada\"}"}}]}),
                json!({"role": "tool", "content": "ok", "tool_call_id": "1"}),
            ],
            &v1_tools(),
        );
        assert_eq!(
            after.action,
            Action::Say("Nice to meet you, Ada! I will remember that.".into())
        );
    }

    #[test]
    fn plain_answers_come_after_native_reasoning() {
        let p = plan(&[user("hello there")], &v1_tools());
        assert_eq!(p.action, Action::Say("echo: hello there".into()));
        assert!(p.reasoning.is_some_and(|r| r.contains("2 words")));
        assert!(!p.coarse);
        assert!(plan(&[user("/coarse hello")], &v1_tools()).coarse);
    }

    #[test]
    fn without_tools_it_answers_in_plain_content() {
        let p = plan(&[user("hello")], &Tools::from_request(&json!({})));
        assert_eq!(p.action, Action::Say("echo: hello".into()));
    }

    #[test]
    fn title_requests_get_the_first_words() {
        let system = json!({"role": "system", "content": "Write a short conversation title."});
        let p = plan(
            &[
                system,
                user("User: plan a trip to Lisbon in May\nAssistant: echo"),
            ],
            &Tools::from_request(&json!({})),
        );
        assert_eq!(p.action, Action::Say("Chat: plan a trip to Lisbon".into()));
    }

    #[test]
    fn failures_and_delays_are_scripted() {
        assert_eq!(plan(&[user("/fail 503")], &letta_tools()).fail, Some(503));
        let p = plan(&[user("/fail-on gpt-4 429 hello")], &v1_tools());
        assert_eq!(p.fail_on, Some(("gpt-4".to_string(), 429)));
        assert_eq!(p.fail, None);
        assert!(matches!(p.action, Action::Say(ref text) if text.contains("hello")));
        let p = plan(&[user("/slow 250 hello")], &letta_tools());
        assert_eq!(p.chunk_delay, Some(Duration::from_millis(250)));
    }

    #[test]
    fn similar_texts_have_similar_embeddings() {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let cat = embed("Ada owns a cat named Miso", 256);
        let query = embed("cat named Miso", 256);
        let other = embed("the weather in Paris is rainy", 256);
        assert!(dot(&cat, &query) > dot(&cat, &other));
        assert_eq!(embed("same", 64), embed("same", 64));
    }
}
