//! Voice messages: `POST /api/v1/chat/voice` transcribes the audio through LiteLLM on a key of
//! the user's (billed per second of audio) and sends the transcript as the user's message.
//! The scripted transcription hears a WAV's `INFO` comment.

use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::helpers::*;

/// A WAV of `seconds` of 8 kHz 16-bit mono silence saying `comment` (none: nothing is heard).
fn wav(seconds: usize, comment: Option<&str>) -> Vec<u8> {
    let mut chunks = Vec::new();
    let mut chunk = |id: &[u8], body: &[u8]| {
        chunks.extend_from_slice(id);
        chunks.extend_from_slice(&(body.len() as u32).to_le_bytes());
        chunks.extend_from_slice(body);
        if body.len() % 2 == 1 {
            chunks.push(0);
        }
    };
    let fmt: Vec<u8> = [
        &1u16.to_le_bytes()[..],
        &1u16.to_le_bytes(),
        &8000u32.to_le_bytes(),
    ]
    .into_iter()
    .chain([
        &16000u32.to_le_bytes()[..],
        &2u16.to_le_bytes(),
        &16u16.to_le_bytes(),
    ])
    .flatten()
    .copied()
    .collect();
    chunk(b"fmt ", &fmt);
    if let Some(comment) = comment {
        let mut info = b"INFOICMT".to_vec();
        info.extend_from_slice(&(comment.len() as u32 + 1).to_le_bytes());
        info.extend_from_slice(comment.as_bytes());
        info.push(0);
        chunk(b"LIST", &info);
    }
    chunk(b"data", &vec![0; seconds * 16_000]);
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&(chunks.len() as u32 + 4).to_le_bytes());
    file.extend_from_slice(b"WAVE");
    file.extend(chunks);
    file
}

impl TestApp {
    /// `POST /chat/voice` with `audio` (and a conversation): the answer unread.
    async fn voice(
        &self,
        token: &str,
        audio: Vec<u8>,
        conversation: Option<&str>,
    ) -> reqwest::Response {
        let mut form = Form::new().part("audio", Part::bytes(audio).file_name("voice"));
        if let Some(id) = conversation {
            form = form.text("conversation_id", id.to_string());
        }
        self.http
            .post(format!("{}/api/v1/chat/voice", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("voice request")
    }
}

#[tokio::test]
async fn a_voice_message_is_transcribed_billed_and_answered_like_a_typed_one() {
    let app = spawn_app().await;
    let TestUser { token, id, .. } = app.ready_user("Speaker").await;

    // Four seconds saying "my name is Vera": `transcript` first, then the turn.
    let events = read_chat(
        app.voice(&token, wav(4, Some("my name is Vera")), None)
            .await,
    )
    .await
    .events();
    assert_eq!(events[0].name, "transcript", "{:?}", names(&events));
    assert_eq!(events[0].data["text"], "my name is Vera");
    assert_eq!(events[0].id, "1");
    assert_eq!(events[1].name, "start");
    assert_eq!(names(&events).last(), Some(&"done"), "{:?}", names(&events));
    // The transcript is the user's message, and the agent acted on it.
    let page = app.history(&token, "?limit=2").await;
    let asked = &page.body["messages"][1];
    assert_eq!(asked["role"], "user", "{}", page.body);
    assert_eq!(asked["content"], "my name is Vera");
    assert_eq!(asked["id"], events[1].data["user_message_id"]);
    let human = app.human_block(&token).await;
    assert!(human["value"].as_str().unwrap().contains("Vera"), "{human}");

    // LiteLLM billed the audio to the user (4 s at the local price, 0.0001 USD a second), and
    // the day's usage counts it with the turn and the title: the same total as LiteLLM's.
    let usage = app.usage(&token, "").await;
    let recorded = usage.body["totals"]["cost_usd"].as_f64().unwrap();
    let spend = eventually("LiteLLM's spend", Duration::from_secs(30), || {
        let app = &app;
        let id = id.clone();
        async move {
            let info = app.state.litellm.user_info(&id).await.ok()??;
            info.user_info
                .map(|u| u.spend)
                .filter(|s| (s - recorded).abs() < 1e-9)
        }
    })
    .await;
    let turn = events.iter().find(|e| e.name == "usage").unwrap().data["cost_usd"]
        .as_f64()
        .unwrap();
    assert!(spend - turn >= 0.0004 - 1e-9, "spend {spend}, turn {turn}");

    // In a named conversation too; another user's is 404.
    let conversation = app.new_conversation(&token, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let said = wav(1, Some("what is my name?"));
    let events = read_chat(app.voice(&token, said.clone(), Some(&conversation)).await)
        .await
        .events();
    assert_eq!(text_of(&events), "Your name is Vera.");
    assert_eq!(events[1].data["conversation_id"], conversation.as_str());
    let stranger = app.ready_user("Eavesdropper").await;
    let theirs = read_chat(app.voice(&stranger.token, said, Some(&conversation)).await)
        .await
        .json();
    assert_eq!(theirs.status, 404, "{}", theirs.body);
}

#[tokio::test]
async fn bad_voice_messages_are_refused_with_what_is_wrong() {
    let app = spawn_app_configured(|c| c.http.voice_max_bytes = 20_000).await;
    let TestUser { token, .. } = app.ready_user("Mumbler").await;
    let refused = |status: u16, code: &'static str| {
        move |reply: Reply| {
            assert_eq!(reply.status, status, "{}", reply.body);
            assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
            reply
        }
    };
    let send = |audio: Vec<u8>| {
        let (app, token) = (&app, &token);
        async move { read_chat(app.voice(token, audio, None).await).await.json() }
    };
    // Silence: nothing heard, nothing stored.
    refused(422, "no_speech")(send(wav(1, None)).await);
    // Not audio: the accepted kinds are named.
    let text = refused(415, "unsupported_media_type")(send(b"just some text".to_vec()).await);
    assert!(
        text.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webm, ogg, mp3, mp4/m4a, wav"),
        "{}",
        text.body
    );
    // Above `VOICE_MAX_BYTES` (here 20,000): 413 with the limit.
    let big = refused(413, "payload_too_large")(send(wav(2, Some("too long"))).await);
    assert_eq!(big.body["error"]["limit_bytes"], 20_000);
    // Empty, and not a form at all.
    refused(422, "validation_failed")(send(Vec::new()).await);
    let json_body = app
        .post_with("/api/v1/chat/voice", &token, json!({"audio": "x"}))
        .await;
    refused(415, "unsupported_media_type")(json_body);
    let page = app.history(&token, "").await;
    assert_eq!(page.body["messages"], json!([]), "nothing was stored");
}
