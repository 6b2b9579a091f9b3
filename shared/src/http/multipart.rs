//! `multipart/form-data` uploads (voice messages): each field read with its own limit, so no
//! part of a form is held beyond what the endpoint takes.

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};

use crate::app::error::{AppError, ErrorCode};

/// A body that is not a form: 415 naming what the endpoint takes.
pub fn not_a_form(_: MultipartRejection) -> AppError {
    AppError::UnsupportedMedia {
        what: "body",
        accepted: "multipart/form-data",
    }
}

/// A form that cannot be read (a broken boundary, a cut-off part): 400.
pub fn broken_form(error: MultipartError) -> AppError {
    AppError::BadRequest {
        code: ErrorCode::BadRequest,
        message: format!("the form cannot be read: {}", error.body_text()),
    }
}

/// A field's bytes; 413 once they pass `limit`.
pub async fn read_field(mut field: Field<'_>, limit: usize) -> Result<Vec<u8>, AppError> {
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
pub async fn read_text(field: Field<'_>, limit: usize) -> Result<String, AppError> {
    let name = field.name().unwrap_or_default().to_string();
    let bytes = read_field(field, limit).await?;
    String::from_utf8(bytes).map_err(|_| AppError::validation(name, "not UTF-8 text"))
}
