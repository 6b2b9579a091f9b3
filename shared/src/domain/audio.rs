//! A voice message's audio, parsed at the boundary: not empty, not above the limit, and of a
//! kind its own bytes show (what the client calls it is not trusted).

use crate::app::error::AppError;

/// The kinds of audio a voice message may be.
pub const ACCEPTED_AUDIO: &str = "webm, ogg, mp3, mp4/m4a, wav";

/// An audio container, known from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioKind {
    Webm,
    Ogg,
    Mp3,
    Mp4,
    Wav,
}

impl AudioKind {
    /// The container `bytes` start with, if it is one of the accepted ones.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        let at = |range: std::ops::Range<usize>| bytes.get(range);
        if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
            Some(Self::Webm) // EBML: WebM (what browsers record) or Matroska
        } else if bytes.starts_with(b"OggS") {
            Some(Self::Ogg)
        } else if bytes.starts_with(b"ID3")
            || (bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0)
        {
            Some(Self::Mp3)
        } else if at(4..8) == Some(b"ftyp") {
            Some(Self::Mp4)
        } else if bytes.starts_with(b"RIFF") && at(8..12) == Some(b"WAVE") {
            Some(Self::Wav)
        } else {
            None
        }
    }

    /// Its media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Webm => "audio/webm",
            Self::Ogg => "audio/ogg",
            Self::Mp3 => "audio/mpeg",
            Self::Mp4 => "audio/mp4",
            Self::Wav => "audio/wav",
        }
    }

    /// A file name for it (transcription services read the extension).
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Webm => "voice.webm",
            Self::Ogg => "voice.ogg",
            Self::Mp3 => "voice.mp3",
            Self::Mp4 => "voice.m4a",
            Self::Wav => "voice.wav",
        }
    }
}

/// Audio a voice message carries.
#[derive(Debug)]
pub struct VoiceClip {
    bytes: Vec<u8>,
    kind: AudioKind,
}

impl VoiceClip {
    /// 422 when empty, 413 above `max_bytes`, 415 when not an accepted kind.
    pub fn parse(bytes: Vec<u8>, max_bytes: usize) -> Result<Self, AppError> {
        if bytes.is_empty() {
            return Err(AppError::validation("audio", "the audio is empty"));
        }
        if bytes.len() > max_bytes {
            return Err(AppError::PayloadTooLarge { limit: max_bytes });
        }
        let kind = AudioKind::sniff(&bytes).ok_or(AppError::UnsupportedMedia {
            what: "audio",
            accepted: ACCEPTED_AUDIO,
        })?;
        Ok(Self { bytes, kind })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn kind(&self) -> AudioKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_tell_the_kind() {
        let kind = |b: &[u8]| AudioKind::sniff(b);
        assert_eq!(kind(b"\x1a\x45\xdf\xa3\x01"), Some(AudioKind::Webm));
        assert_eq!(kind(b"OggS\0\x02"), Some(AudioKind::Ogg));
        assert_eq!(kind(b"ID3\x04"), Some(AudioKind::Mp3));
        assert_eq!(kind(&[0xFF, 0xFB, 0x90]), Some(AudioKind::Mp3));
        assert_eq!(kind(b"\0\0\0\x20ftypM4A "), Some(AudioKind::Mp4));
        assert_eq!(kind(b"RIFF\x24\0\0\0WAVEfmt "), Some(AudioKind::Wav));
        assert_eq!(kind(b"%PDF-1.7"), None);
        assert_eq!(kind(b"RIFF\x24\0\0\0AVI "), None);
        let code = |r: Result<VoiceClip, AppError>| r.unwrap_err().status().as_u16();
        assert_eq!(code(VoiceClip::parse(Vec::new(), 10)), 422);
        assert_eq!(code(VoiceClip::parse(b"OggS-long".to_vec(), 4)), 413);
        assert_eq!(code(VoiceClip::parse(b"hello".to_vec(), 10)), 415);
    }
}
