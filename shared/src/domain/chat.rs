//! A chat message's text as the user sent it, trimmed and bounded.

use crate::app::error::{AppError, ErrorCode};

/// Trimmed, not empty, at most the configured number of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatContent(String);

impl ChatContent {
    /// 400 `empty_content` when empty after trimming, 413 `content_too_long` above `max_chars`.
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, AppError> {
        let content = raw.trim();
        if content.is_empty() {
            return Err(AppError::BadRequest {
                code: ErrorCode::EmptyContent,
                message: "content must not be empty".into(),
            });
        }
        super::without_nul("content", content)?;
        let chars = content.chars().count();
        if chars > max_chars {
            return Err(AppError::ContentTooLong {
                limit: max_chars,
                actual: chars,
            });
        }
        Ok(Self(content.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_trimmed_and_bounded() {
        assert_eq!(ChatContent::parse("  hi  ", 10).unwrap().as_str(), "hi");
        assert!(matches!(
            ChatContent::parse("   ", 10),
            Err(AppError::BadRequest {
                code: ErrorCode::EmptyContent,
                ..
            })
        ));
        assert!(matches!(
            ChatContent::parse(&"é".repeat(11), 10),
            Err(AppError::ContentTooLong { .. })
        ));
        assert!(ChatContent::parse(&"é".repeat(10), 10).is_ok());
        assert!(matches!(
            ChatContent::parse("a\0b", 10),
            Err(AppError::Validation { .. })
        ));
    }
}
