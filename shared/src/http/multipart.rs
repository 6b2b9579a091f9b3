//! `multipart/form-data` uploads (voice messages, documents): each field read with its own
//! limit, so no part of a form is held beyond what the endpoint takes.

use axum::extract::{
    Multipart,
    multipart::{Field, MultipartError, MultipartRejection},
};

use crate::app::error::{AppError, ErrorCode};

/// A body that is not a form: 415 naming what the endpoint takes.
fn not_a_form(_: MultipartRejection) -> AppError {
    AppError::UnsupportedMedia {
        what: "body",
        accepted: "multipart/form-data",
    }
}

/// A form that cannot be read (a broken boundary, a cut-off part): 400.
fn broken_form(error: MultipartError) -> AppError {
    AppError::BadRequest {
        code: ErrorCode::BadRequest,
        message: format!("the form cannot be read: {}", error.body_text()),
    }
}

/// A field's bytes; 413 once they pass `limit`.
async fn read_field(mut field: Field<'_>, limit: usize) -> Result<Vec<u8>, AppError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(broken_form)? {
        if bytes.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A short text field (an id): at most `limit` bytes of UTF-8.
async fn read_text(field: Field<'_>, limit: usize) -> Result<String, AppError> {
    let name = field.name().unwrap_or_default().to_string();
    let bytes = read_field(field, limit).await?;
    String::from_utf8(bytes).map_err(|_| AppError::validation(name, "not UTF-8 text"))
}

/// An upload's form: one file and a few short text fields.
pub struct UploadForm {
    /// The file's name (as the client gave it) and bytes, when it was sent.
    pub file: Option<(Option<String>, Vec<u8>)>,
    /// The text fields sent, by name.
    texts: Vec<(&'static str, String)>,
}

impl UploadForm {
    /// A text field's value, when sent.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.texts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The file, or 422 naming its field.
    pub fn require_file(
        &mut self,
        field: &'static str,
    ) -> Result<(Option<String>, Vec<u8>), AppError> {
        self.file
            .take()
            .ok_or_else(|| AppError::validation(field, "the file is missing"))
    }
}

/// Reads a form of one file field (`file_field`, at most `max` bytes) and the short text
/// fields `texts` (64 bytes each); any other field, or a second file, is 422.
pub async fn read_upload(
    form: Result<Multipart, MultipartRejection>,
    file_field: &'static str,
    max: usize,
    texts: &[&'static str],
) -> Result<UploadForm, AppError> {
    let mut form = form.map_err(not_a_form)?;
    let mut upload = UploadForm {
        file: None,
        texts: Vec::new(),
    };
    while let Some(field) = form.next_field().await.map_err(broken_form)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == file_field && upload.file.is_none() {
            let file_name = field.file_name().map(str::to_string);
            upload.file = Some((file_name, read_field(field, max).await?));
        } else if let Some(text) = texts.iter().find(|t| **t == name) {
            upload.texts.push((text, read_text(field, 64).await?));
        } else {
            let expected = std::iter::once(file_field)
                .chain(texts.iter().copied())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(AppError::validation(
                name,
                format!("not a field of this form ({expected}), or sent twice"),
            ));
        }
    }
    Ok(upload)
}
