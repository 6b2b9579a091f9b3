//! The JSON shapes clients see, one function per resource: flows return typed values, and
//! only this file decides how they look on the wire.

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    clients::{
        letta::{Block, Passage},
        litellm::UserRecord,
        models::Model,
        supabase::{Session, User as SupabaseUser},
    },
    domain::{Conversation, Message, Profile, ProvisioningState},
    flows::{
        agent::{AgentStatus, ArchivalPage, ResetOutcome},
        chat::{ChatEvent, Done, TurnError},
        conversations::ConversationPage,
        export::ExportRecord,
        profile::{AccountHealth, Check},
        usage::{BudgetReport, SPEND_LAG_SECS, UsageReport, format_day},
    },
    store::{DayUsage, HistoryPage},
};

/// The session as clients see it.
#[derive(Serialize)]
pub struct SessionView {
    access_token: String,
    refresh_token: String,
    token_type: String,
    expires_in: u64,
    expires_at: Option<u64>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        Self {
            access_token: s.access_token.expose().to_string(),
            refresh_token: s.refresh_token.expose().to_string(),
            token_type: s.token_type.clone(),
            expires_in: s.expires_in,
            expires_at: s.expires_at,
        }
    }
}

/// `{id, email, created_at}` of the signed-in user.
pub fn user(p: &Profile) -> Value {
    json!({"id": p.user_id, "email": p.email, "created_at": p.user_created_at})
}

/// `{max_budget, spend, remaining, budget_duration, reset_at}`.
pub fn budget(record: &UserRecord) -> Value {
    json!({
        "max_budget": record.max_budget,
        "spend": record.spend,
        "remaining": record.remaining(),
        "budget_duration": record.budget_duration,
        "reset_at": record.budget_reset_at,
    })
}

/// The profile in the auth endpoints' answers (no key material, no internal ids beyond the
/// agent's), with the budget when LiteLLM could say.
pub fn account_profile(profile: &Profile, budget_record: Option<&UserRecord>) -> Value {
    let mut v = json!({
        "state": profile.state.as_str(),
        "ready": profile.state == ProvisioningState::Ready,
        "display_name": profile.display_name,
        "agent_id": profile.letta_agent_id,
        "model": profile.model,
        "created_at": profile.created_at,
        "budget": budget_record.map(budget),
    });
    if profile.state != ProvisioningState::Ready {
        v["provisioning_error"] = json!(profile.provisioning_error);
    }
    v
}

/// `{user, session, profile}` after registration or login.
pub fn signed_in(
    session: &Session,
    profile: &Profile,
    budget_record: Option<&UserRecord>,
) -> Value {
    json!({
        "user": user(profile),
        "session": SessionView::from(session),
        "profile": account_profile(profile, budget_record),
    })
}

/// The 202 answer when the Supabase project confirms emails.
pub fn confirmation_required(user: &SupabaseUser) -> Value {
    json!({
        "status": "confirmation_required",
        "message": "Check your email to confirm your address, then sign in.",
        "user": {"id": user.id, "email": user.email},
    })
}

/// `{profile: {…}}` of the user endpoints.
pub fn user_profile(p: &Profile) -> Value {
    json!({"profile": {
        "display_name": p.display_name,
        "email": p.email,
        "created_at": p.user_created_at,
        "state": p.state.as_str(),
        "agent_id": p.letta_agent_id,
        "model": p.model,
    }})
}

fn day_row(d: &DayUsage) -> Value {
    json!({"messages": d.messages, "prompt_tokens": d.prompt_tokens,
           "completion_tokens": d.completion_tokens, "cost_usd": d.cost_usd})
}

/// `GET /user/usage`.
pub fn usage(report: &UsageReport) -> Value {
    let days: Vec<Value> = report
        .days
        .iter()
        .map(|(date, row)| {
            let mut v = day_row(row);
            v["date"] = json!(format_day(*date));
            v
        })
        .collect();
    let current_period = report.current_period.as_ref().map(|u| {
        json!({"spend_usd": u.spend, "budget_duration": u.budget_duration, "reset_at": u.budget_reset_at})
    });
    json!({
        "from": format_day(report.from),
        "to": format_day(report.to),
        "days": days,
        "totals": day_row(&report.totals),
        "current_period": current_period,
    })
}

/// `GET /user/budget` (and the answer to setting it).
pub fn budget_report(report: &BudgetReport) -> Value {
    let mut view = budget(&report.record);
    view["spend_lag_seconds"] = json!(SPEND_LAG_SECS);
    view["recent_turns"] = json!({"count": report.recent_turns, "cost_usd": report.recent_cost_usd,
        "note": "LiteLLM records spend a few seconds after each call; these recent turns may not be in `spend` yet"});
    view
}

fn check(c: &Check) -> Value {
    match c {
        Ok(ok) => json!({"ok": ok}),
        Err(e) => json!({"ok": null, "error": e}),
    }
}

/// `GET /user/health`.
pub fn account_health(h: &AccountHealth) -> Value {
    json!({
        "status": h.status(),
        "checks": {
            "provisioning": {"ok": h.profile.state == ProvisioningState::Ready,
                             "state": h.profile.state.as_str(), "error": h.profile.provisioning_error},
            "letta_agent": check(&h.letta_agent),
            "litellm_user": check(&h.litellm_user),
            "budget": {"ok": h.remaining.map(|r| r > 0.0), "remaining": h.remaining},
        },
    })
}

/// `GET /agent/status`.
pub fn agent_status(s: &AgentStatus) -> Value {
    let blocks: Vec<Value> = s
        .blocks
        .iter()
        .map(|b| json!({"label": b.label, "chars": b.value.chars().count(), "limit": b.limit}))
        .collect();
    json!({
        "state": s.profile.state.as_str(),
        "agent_id": s.profile.letta_agent_id,
        "responding": s.responding,
        "model": s.profile.model,
        "context_messages": s.context_messages,
        "message_count": s.message_count,
        "last_activity": s.last_activity,
        "memory_blocks": blocks,
        "archival_passages": s.archival_passages,
    })
}

/// `GET /agent/memory`.
pub fn memory(blocks: &[Block]) -> Value {
    json!({"blocks": blocks})
}

/// A block after it was replaced.
pub fn block(block: &Block) -> Value {
    json!({"block": block})
}

/// Archival memories just added.
pub fn passages(passages: &[Passage]) -> Value {
    json!({"passages": passages})
}

/// `GET /agent/memory/archival`.
pub fn archival(page: &ArchivalPage) -> Value {
    let memories: Vec<Value> = page
        .memories
        .iter()
        .map(|m| json!({"id": m.id, "text": m.text, "tags": m.tags, "created_at": m.created_at}))
        .collect();
    json!({"query": page.query, "memories": memories, "next_cursor": page.next_cursor})
}

/// `POST /agent/reset`.
pub fn reset(r: &ResetOutcome) -> Value {
    json!({"scope": r.scope.as_str(), "agent_id": r.agent_id, "history_deleted": r.history_deleted})
}

/// A stored message as clients see it (no keys, no Letta ids).
pub fn message(m: &Message) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        for internal in ["letta_message_ids", "letta_run_id"] {
            obj.remove(internal);
        }
    }
    v
}

/// `GET /models`: the choices, and which one new accounts get.
pub fn models(choices: &[Model], default_model: &str) -> Value {
    let per_million = |per_token: f64| (per_token * 1e6 * 1e6).round() / 1e6;
    let models: Vec<Value> = choices
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "provider": m.provider,
                "context_window": m.context_window,
                "input_price_per_1m_tokens": per_million(m.price.input_per_token),
                "output_price_per_1m_tokens": per_million(m.price.output_per_token),
            })
        })
        .collect();
    json!({"models": models, "default": default_model})
}

/// One line of `GET /user/export`.
pub fn export_record(record: &ExportRecord) -> Value {
    let tagged = |kind: &str, mut v: Value| {
        if let Some(obj) = v.as_object_mut() {
            obj.insert("type".into(), json!(kind));
        }
        v
    };
    match record {
        ExportRecord::Profile(p) => {
            let mut v = user_profile(p)["profile"].clone();
            v["user_id"] = json!(p.user_id);
            tagged("profile", v)
        }
        ExportRecord::Conversation(c) => tagged("conversation", conversation(c)),
        ExportRecord::Message(m) => tagged("message", message(m)),
        ExportRecord::Usage(day, d) => {
            let mut v = day_row(d);
            v["day"] = json!(day);
            tagged("usage", v)
        }
        ExportRecord::Block(b) => tagged("memory_block", json!(b)),
        ExportRecord::Passage(p) => tagged(
            "archival_memory",
            json!({"id": p.id, "text": p.text, "tags": p.tags, "created_at": p.created_at}),
        ),
        ExportRecord::End(counts) => json!({"type": "end", "counts": counts}),
        ExportRecord::Error(e) => json!({"type": "error", "error": {
            "code": e.code(), "message": e.to_string(), "retryable": true}}),
    }
}

/// A conversation (Letta's id stays inside).
pub fn conversation(c: &Conversation) -> Value {
    json!({
        "id": c.id,
        "title": c.title,
        "title_by_user": c.title_by_user,
        "created_at": c.created_at,
        "last_activity": c.last_activity,
        "message_count": c.message_count,
    })
}

/// `GET /conversations`.
pub fn conversations(page: &ConversationPage) -> Value {
    json!({
        "conversations": page.conversations.iter().map(conversation).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })
}

/// `GET /chat/history`.
pub fn history(page: &HistoryPage) -> Value {
    json!({
        "messages": page.messages.iter().map(message).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })
}

fn done(d: &Done) -> Value {
    let mut v = json!({
        "message_id": d.message_id,
        "stop_reason": d.stop_reason,
        "latency_ms": d.latency_ms,
        "ttft_ms": d.ttft_ms,
        "text_corrected": d.text_corrected,
    });
    if let Some(text) = &d.text {
        v["text"] = json!(text);
    }
    if let Some(status) = d.replayed_status {
        v["replayed"] = json!(true);
        v["status"] = json!(status.as_str());
    }
    v
}

fn turn_error(e: &TurnError) -> Value {
    let mut v = json!({"code": e.code, "message": e.message, "retryable": e.retryable});
    if let Some((spend, limit)) = e.budget {
        v["spend"] = json!(spend);
        v["limit"] = json!(limit);
    }
    v
}

/// A chat event's SSE name and JSON data.
pub fn chat_event(event: &ChatEvent) -> (&'static str, Value) {
    match event {
        ChatEvent::Start {
            conversation_id,
            message_id,
            user_message_id,
            model,
            replayed,
        } => {
            let mut v = json!({"conversation_id": conversation_id, "message_id": message_id,
                               "user_message_id": user_message_id, "model": model});
            if *replayed {
                v["replayed"] = json!(true);
            }
            ("start", v)
        }
        ChatEvent::Reasoning { delta } => ("reasoning", json!({"delta": delta})),
        ChatEvent::ToolCall {
            id,
            name,
            arguments,
        } => (
            "tool_call",
            json!({"id": id, "name": name, "arguments": arguments}),
        ),
        ChatEvent::ToolResult {
            id,
            name,
            status,
            result,
        } => (
            "tool_result",
            json!({"id": id, "name": name, "status": status, "result": result}),
        ),
        ChatEvent::Delta { text } => ("delta", json!({"text": text})),
        ChatEvent::Usage {
            usage,
            cost_usd,
            model,
        } => (
            "usage",
            json!({
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "steps": usage.steps,
                "cost_usd": cost_usd,
                "model": model,
            }),
        ),
        ChatEvent::Done(d) => ("done", done(d)),
        ChatEvent::Error(e) => ("error", turn_error(e)),
        ChatEvent::Title {
            conversation_id,
            title,
        } => (
            "title",
            json!({"conversation_id": conversation_id, "title": title}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConversationId, MessageStatus, Role};

    #[test]
    fn message_views_hide_internal_fields() {
        let mut m = Message::new(
            &ConversationId::default_conversation(),
            &ulid::Ulid::new(),
            Role::Assistant,
            "hi".into(),
            MessageStatus::Complete,
        );
        m.letta_run_id = Some("run-1".into());
        m.letta_message_ids = vec!["message-1".into()];
        let v = message(&m);
        assert!(v.get("pk").is_none() && v.get("letta_run_id").is_none());
        assert!(v.get("letta_message_ids").is_none());
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["status"], "complete");
    }

    #[test]
    fn replayed_turns_say_so_in_start_and_done() {
        let (name, start) = chat_event(&ChatEvent::Start {
            conversation_id: ConversationId::default_conversation(),
            message_id: "m".into(),
            user_message_id: "u".into(),
            model: Some("gpt-4".into()),
            replayed: true,
        });
        assert_eq!((name, &start["replayed"]), ("start", &json!(true)));
        let (_, live) = chat_event(&ChatEvent::Start {
            conversation_id: ConversationId::default_conversation(),
            message_id: "m".into(),
            user_message_id: "u".into(),
            model: None,
            replayed: false,
        });
        assert!(live.get("replayed").is_none());
        let (name, done) = chat_event(&ChatEvent::Done(Done {
            message_id: "m".into(),
            stop_reason: None,
            latency_ms: Some(3),
            ttft_ms: None,
            text_corrected: false,
            text: None,
            replayed_status: Some(MessageStatus::Interrupted),
        }));
        assert_eq!(name, "done");
        assert_eq!(done["status"], "interrupted");
        assert_eq!(done["replayed"], true);
    }
}
