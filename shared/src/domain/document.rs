//! A document for the agent, parsed at the boundary: a name, not empty, not above the limit,
//! and text, Markdown or PDF as its own bytes show (what the client calls it is not trusted).

use crate::app::error::AppError;

/// The kinds of document the agent may be given.
pub const ACCEPTED_DOCUMENTS: &str = "text (.txt), Markdown (.md), PDF (.pdf)";

/// A document's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Text,
    Markdown,
    Pdf,
}

impl DocumentKind {
    /// Its media type, as Letta is told.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Pdf => "application/pdf",
        }
    }

    /// The extension its name must end with (Letta reads it).
    fn extension(self) -> &'static str {
        match self {
            Self::Text => ".txt",
            Self::Markdown => ".md",
            Self::Pdf => ".pdf",
        }
    }
}

/// An uploaded document.
#[derive(Debug)]
pub struct Document {
    name: String,
    bytes: Vec<u8>,
    kind: DocumentKind,
}

impl Document {
    /// 422 when empty, 413 above `max_bytes`, 415 when neither a PDF nor UTF-8 text. A PDF is
    /// known by its `%PDF-` header; any other file must be UTF-8 text without NUL characters,
    /// Markdown when its name ends in `.md` or `.markdown`. The name keeps its last path part,
    /// at most 200 characters without control characters, and gets the kind's extension.
    pub fn parse(name: Option<&str>, bytes: Vec<u8>, max_bytes: usize) -> Result<Self, AppError> {
        if bytes.is_empty() {
            return Err(AppError::validation("file", "the file is empty"));
        }
        if bytes.len() > max_bytes {
            return Err(AppError::PayloadTooLarge { limit: max_bytes });
        }
        let name = clean_name(name.unwrap_or_default());
        let lower = name.to_lowercase();
        let kind = if bytes.starts_with(b"%PDF-") {
            DocumentKind::Pdf
        } else if std::str::from_utf8(&bytes).is_ok_and(|text| !text.contains('\0')) {
            if lower.ends_with(".md") || lower.ends_with(".markdown") {
                DocumentKind::Markdown
            } else {
                DocumentKind::Text
            }
        } else {
            return Err(AppError::UnsupportedMedia {
                what: "file",
                accepted: ACCEPTED_DOCUMENTS,
            });
        };
        let name = match name {
            n if n.is_empty() => format!("document{}", kind.extension()),
            n if kind == DocumentKind::Markdown || lower.ends_with(kind.extension()) => n,
            n => format!("{n}{}", kind.extension()),
        };
        Ok(Self { name, bytes, kind })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn kind(&self) -> DocumentKind {
        self.kind
    }

    /// What embedding it may cost, in characters: a text's own; a PDF's size, an upper bound
    /// of the text it holds (it is parsed by Letta, after the upload).
    pub fn embedding_chars(&self) -> u64 {
        match self.kind {
            DocumentKind::Pdf => self.bytes.len() as u64,
            _ => String::from_utf8_lossy(&self.bytes).chars().count() as u64,
        }
    }
}

fn clean_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    last.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_tell_the_kind_and_the_name_is_kept_tidy() {
        let parse = |name: &str, bytes: &[u8]| Document::parse(Some(name), bytes.to_vec(), 100);
        let pdf = parse("../../etc/report.PDF", b"%PDF-1.7 ...").unwrap();
        assert_eq!((pdf.kind(), pdf.name()), (DocumentKind::Pdf, "report.PDF"));
        let md = parse("notes.md", b"# Notes").unwrap();
        assert_eq!(md.kind(), DocumentKind::Markdown);
        let txt = parse("plan", "caf\u{e9}".as_bytes()).unwrap();
        assert_eq!((txt.kind(), txt.name()), (DocumentKind::Text, "plan.txt"));
        assert_eq!(txt.embedding_chars(), 4);
        let unnamed = parse("", b"hello").unwrap();
        assert_eq!(unnamed.name(), "document.txt");
        let status = |r: Result<Document, AppError>| r.unwrap_err().status().as_u16();
        assert_eq!(status(parse("a.png", b"\x89PNG\r\n\x1a\n\0\0")), 415);
        assert_eq!(status(parse("a.txt", b"nul\0inside")), 415);
        assert_eq!(status(parse("a.txt", b"")), 422);
        assert_eq!(status(parse("a.txt", &[b'a'; 101])), 413);
    }
}
