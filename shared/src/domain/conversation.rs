//! Conversations: threads of one user with the same agent (and so the same memory). Every user
//! has the `default` one (the agent's own message history, what clients without conversations
//! use); the others are Letta conversations, created on their first message.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::app::{clock::now_rfc3339, error::AppError};

/// A conversation id: `default` or a ULID the backend gave.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConversationId(String);

impl ConversationId {
    /// The id of every user's default conversation.
    pub const DEFAULT: &'static str = "default";

    /// The user's default conversation.
    pub fn default_conversation() -> Self {
        Self(Self::DEFAULT.into())
    }

    /// A new conversation's id.
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }

    /// Parses an id from a path or a body. Anything else cannot name a conversation of the
    /// user's, so it is 404, the same answer as another user's id.
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        if raw == Self::DEFAULT {
            return Ok(Self::default_conversation());
        }
        raw.parse::<ulid::Ulid>()
            .map(|u| Self(u.to_string()))
            .map_err(|_| Self::not_found())
    }

    /// The answer for an id that names no conversation of the user's.
    pub fn not_found() -> AppError {
        AppError::NotFound("no such conversation".into())
    }

    /// Whether this is the default conversation.
    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConversationId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).map_err(|_| format!("{s:?} is not a conversation id"))
    }
}

impl From<ConversationId> for String {
    fn from(id: ConversationId) -> String {
        id.0
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A conversation's title: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// The longest title, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Parses a title the user gave; 422 naming `title` otherwise.
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let title = raw.trim();
        if title.is_empty() || title.chars().count() > Self::MAX_CHARS {
            return Err(AppError::validation(
                "title",
                format!("must be 1 to {} characters", Self::MAX_CHARS),
            ));
        }
        super::without_controls("title", title)?;
        Ok(Self(title.to_string()))
    }

    /// A title made from text a model or the user wrote: one line, quotes and trailing
    /// punctuation trimmed, cut at a word boundary to fit. `None` when nothing is left.
    pub fn summarize(text: &str) -> Option<Self> {
        let line: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let line = line.trim_matches(|c: char| "\"'`*#.:;!- ".contains(c));
        let mut title = String::new();
        for word in line.split(' ') {
            if title.chars().count() + word.chars().count() + 1 > 60 {
                break;
            }
            if !title.is_empty() {
                title.push(' ');
            }
            title.push_str(word);
        }
        if title.is_empty() {
            title = line.chars().take(60).collect();
        }
        (!title.is_empty()).then_some(Self(title))
    }

    /// The title as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A conversation as the backend keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    /// `default` or a ULID.
    pub id: ConversationId,
    /// Its title, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The user named it (an automatic title never replaces the user's).
    #[serde(default)]
    pub title_by_user: bool,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When its last message was stored (RFC 3339).
    pub last_activity: String,
    /// How many messages it has (the user's and the replies).
    #[serde(default)]
    pub message_count: u64,
    /// Letta's conversation (`conv-…`), made on the first message; the default conversation
    /// has none (it is the agent's own history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letta_conversation_id: Option<String>,
}

impl Conversation {
    /// A new, empty conversation.
    pub fn new(id: ConversationId, title: Option<Title>) -> Self {
        let now = now_rfc3339();
        Self {
            id,
            title_by_user: title.is_some(),
            title: title.map(|t| t.0),
            created_at: now.clone(),
            last_activity: now,
            message_count: 0,
            letta_conversation_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_default_or_ulids() {
        assert!(ConversationId::parse("default").unwrap().is_default());
        let id = ulid::Ulid::new().to_string();
        assert_eq!(ConversationId::parse(&id).unwrap().as_str(), id);
        for bad in ["", "DEFAULT", "conv-123", "../x", "01J!"] {
            assert!(ConversationId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn titles_are_bounded_and_summaries_fit() {
        assert_eq!(Title::parse("  Trip  ").unwrap().as_str(), "Trip");
        assert!(Title::parse(" ").is_err());
        assert!(Title::parse(&"x".repeat(101)).is_err());
        assert!(Title::parse("a\u{7}b").is_err());
        assert_eq!(
            Title::summarize("\"Planning a trip.\"\n").unwrap().as_str(),
            "Planning a trip"
        );
        let long = "word ".repeat(40);
        let t = Title::summarize(&long).unwrap();
        assert!(t.as_str().chars().count() <= 60 && t.as_str().ends_with("word"));
        assert!(Title::summarize(" ... ").is_none());
    }
}
