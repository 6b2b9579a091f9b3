//! Text the backend hands on to Letta, which keeps it in PostgreSQL: PostgreSQL's text cannot
//! hold the NUL character, so text with one is refused here (422) instead of failing there.

use crate::app::error::AppError;

/// 422 naming `field` when `text` holds a NUL character.
pub fn without_nul<'a>(field: &str, text: &'a str) -> Result<&'a str, AppError> {
    if text.contains('\0') {
        return Err(AppError::validation(
            field,
            "must not contain the NUL character",
        ));
    }
    Ok(text)
}

/// 422 naming `field` when `text` holds a control character (a tag, a name or a title: one
/// line).
pub fn without_controls<'a>(field: &str, text: &'a str) -> Result<&'a str, AppError> {
    if text.chars().any(char::is_control) {
        return Err(AppError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_refused_everywhere_and_controls_in_one_line_text() {
        assert_eq!(without_nul("text", "two\nlines\t").unwrap(), "two\nlines\t");
        assert!(without_nul("text", "a\0b").is_err());
        assert!(without_controls("tag", "kites").is_ok());
        let e = without_controls("tag", "a\u{7}").unwrap_err();
        assert_eq!(e.body().error.field.as_deref(), Some("tag"));
    }
}
