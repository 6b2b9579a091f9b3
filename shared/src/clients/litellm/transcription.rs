//! Speech to text through LiteLLM's `/v1/audio/transcriptions`, on a key of the user's, so
//! LiteLLM bills the audio to the user (priced per second).

use serde::Deserialize;

use super::LiteLlm;
use crate::{
    app::{
        dependency::{DependencyError, Service},
        secret::Secret,
    },
    clients::http::{self as upstream, FilePart},
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
        let request = self
            .http
            .post(format!("{}/v1/audio/transcriptions", self.base))
            .bearer_auth(key.expose());
        let file = FilePart {
            field: "file",
            file_name: audio.file_name,
            media_type: audio.media_type,
            bytes: audio.bytes,
        };
        let fields = [("model", model), ("response_format", "json")];
        let request = upstream::multipart(request, &fields, &file);
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
