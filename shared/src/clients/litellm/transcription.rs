//! Speech to text through LiteLLM's `/v1/audio/transcriptions`, on a key of the user's, so
//! LiteLLM bills the audio to the user (priced per second).

use serde::Deserialize;

use super::LiteLlm;
use crate::{
    app::{
        dependency::{DependencyError, Service},
        secret::Secret,
    },
    clients::http as upstream,
};

/// Audio to transcribe: its bytes, a file name and its media type.
pub struct Audio<'a> {
    pub bytes: &'a [u8],
    pub file_name: &'a str,
    pub media_type: &'a str,
}

/// What LiteLLM heard, and what it billed for it.
pub struct Transcript {
    /// The words (`""` for silence).
    pub text: String,
    /// USD, from LiteLLM's `x-litellm-response-cost` (`None` when it names none).
    pub cost_usd: Option<f64>,
}

impl LiteLlm {
    /// What `audio` says, as `model` hears it.
    pub async fn transcribe(
        &self,
        key: &Secret,
        model: &str,
        audio: &Audio<'_>,
    ) -> Result<Transcript, DependencyError> {
        #[derive(Deserialize)]
        struct Answer {
            text: String,
        }
        let boundary = format!("chat-backend-{}", ulid::Ulid::new());
        let body = form(&boundary, model, audio);
        let request = self
            .http
            .post(format!("{}/v1/audio/transcriptions", self.base))
            .bearer_auth(key.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        let response = upstream::send(Service::LiteLlm, request).await?;
        let cost_usd = response
            .headers()
            .get("x-litellm-response-cost")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| upstream::from_reqwest(Service::LiteLlm, e))?;
        let answer: Answer =
            serde_json::from_slice(&bytes).map_err(|e| DependencyError::Decode {
                service: Service::LiteLlm,
                detail: e.to_string(),
            })?;
        Ok(Transcript {
            text: answer.text,
            cost_usd,
        })
    }
}

/// The `multipart/form-data` body (RFC 7578): `model`, `response_format` and the `file`. Made
/// as bytes, not with reqwest's streaming form, so the request can be timed and sent like
/// every other one (a streamed body cannot be cloned for its attempt).
fn form(boundary: &str, model: &str, audio: &Audio<'_>) -> Vec<u8> {
    // Quotes and line breaks in a file name would break the header; the name is informative.
    let file_name: String = audio
        .file_name
        .chars()
        .map(|c| if c == '"' || c.is_control() { '_' } else { c })
        .collect();
    let mut body = Vec::with_capacity(audio.bytes.len() + 512);
    for (name, value) in [("model", model), ("response_format", "json")] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {}\r\n\r\n",
            audio.media_type
        )
        .as_bytes(),
    );
    body.extend_from_slice(audio.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}
