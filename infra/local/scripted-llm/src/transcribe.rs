//! `/v1/audio/transcriptions`, as OpenAI's `whisper-1` answers it, with a deterministic
//! transcript (a stand-in by nature: it hears nothing):
//! - a WAV file says what its `LIST`/`INFO` comment (`ICMT`) says; one without a comment is
//!   silence (an empty transcript);
//! - any other audio says [`OTHER_AUDIO`].
//!
//! The duration is the WAV's own (data size / byte rate), or one second per 16 KB of other
//! audio (about Opus at 128 kbit/s). `response_format`: `json` (the default: `text` and a
//! `usage` of `type: duration`), `verbose_json` (LiteLLM's choice, which prices by its
//! `duration`) or `text`.

use axum::{
    Json,
    extract::Multipart,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// What audio that is not WAV says.
pub(crate) const OTHER_AUDIO: &str = "Hello from a voice message.";

/// A WAV file's comment and duration in seconds; `None` when the bytes are not WAV.
fn wav(bytes: &[u8]) -> Option<(String, f64)> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let (mut comment, mut byte_rate, mut data_len) = (String::new(), 0u32, 0usize);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        match id {
            b"fmt " if body.len() >= 12 => {
                byte_rate = u32::from_le_bytes(body[8..12].try_into().ok()?);
            }
            b"data" => data_len = body.len(),
            b"LIST" if body.starts_with(b"INFO") => comment = info_comment(&body[4..]),
            _ => {}
        }
        at += 8 + len + len % 2;
    }
    let seconds = match byte_rate {
        0 => 0.0,
        rate => data_len as f64 / f64::from(rate),
    };
    Some((comment, seconds))
}

/// The `ICMT` sub-chunk of an `INFO` list, without its NUL padding.
fn info_comment(mut list: &[u8]) -> String {
    while list.len() >= 8 {
        let len = u32::from_le_bytes([list[4], list[5], list[6], list[7]]) as usize;
        let body = &list[8..(8 + len).min(list.len())];
        if &list[..4] == b"ICMT" {
            return String::from_utf8_lossy(body)
                .trim_end_matches('\0')
                .trim()
                .to_string();
        }
        list = &list[(8 + len + len % 2).min(list.len())..];
    }
    String::new()
}

/// What the audio says and how long it lasts.
pub(crate) fn transcript(bytes: &[u8]) -> (String, f64) {
    wav(bytes).unwrap_or_else(|| (OTHER_AUDIO.to_string(), bytes.len() as f64 / 16_000.0))
}

pub(crate) async fn transcriptions(mut form: Multipart) -> Response {
    let (mut file, mut format) = (None, "json".to_string());
    loop {
        match form.next_field().await {
            Ok(Some(field)) => match field.name() {
                Some("file") => file = field.bytes().await.ok(),
                Some("response_format") => format = field.text().await.unwrap_or_default(),
                _ => {}
            },
            Ok(None) => break,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    }
    let Some(file) = file else {
        let error =
            json!({"error": {"message": "file is required", "type": "invalid_request_error"}});
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    };
    let (text, seconds) = transcript(&file);
    match format.as_str() {
        "text" => text.into_response(),
        "verbose_json" => Json(json!({
            "task": "transcribe", "language": "english", "duration": seconds,
            "text": text, "segments": [],
        }))
        .into_response(),
        _ => Json(json!({
            "text": text,
            "usage": {"type": "duration", "seconds": seconds.ceil() as u64},
        }))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV of `samples` silent 16-bit mono samples at 8 kHz, with `comment` when given.
    fn wav_file(samples: usize, comment: Option<&str>) -> Vec<u8> {
        let mut chunks = Vec::new();
        let mut chunk = |id: &[u8], body: &[u8]| {
            chunks.extend_from_slice(id);
            chunks.extend_from_slice(&(body.len() as u32).to_le_bytes());
            chunks.extend_from_slice(body);
            if body.len() % 2 == 1 {
                chunks.push(0);
            }
        };
        let mut fmt = Vec::new();
        for v in [1u16, 1] {
            fmt.extend_from_slice(&v.to_le_bytes());
        }
        for v in [8000u32, 16000] {
            fmt.extend_from_slice(&v.to_le_bytes());
        }
        for v in [2u16, 16] {
            fmt.extend_from_slice(&v.to_le_bytes());
        }
        chunk(b"fmt ", &fmt);
        if let Some(comment) = comment {
            let mut info = b"INFOICMT".to_vec();
            info.extend_from_slice(&(comment.len() as u32 + 1).to_le_bytes());
            info.extend_from_slice(comment.as_bytes());
            info.push(0);
            chunk(b"LIST", &info);
        }
        chunk(b"data", &vec![0; samples * 2]);
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(chunks.len() as u32 + 4).to_le_bytes());
        file.extend_from_slice(b"WAVE");
        file.extend(chunks);
        file
    }

    #[test]
    fn a_wav_says_its_comment_for_as_long_as_it_lasts() {
        let (text, seconds) = transcript(&wav_file(16_000, Some("what is my name?")));
        assert_eq!(text, "what is my name?");
        assert!((seconds - 2.0).abs() < 1e-9);
        assert_eq!(transcript(&wav_file(800, None)).0, "");
        assert_eq!(transcript(b"\x1aE\xdf\xa3 webm").0, OTHER_AUDIO);
    }
}
