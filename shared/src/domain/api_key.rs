//! Personal API keys for the OpenAI-compatible routes: a name, an optional lifetime, and the key
//! itself (high-entropy, recognisable by its prefix), of which only a hash is ever stored.

use crate::app::{error::AppError, secret::Secret};

/// What every key starts with: a key in a log or a repository is recognisable.
pub const API_KEY_PREFIX: &str = "sk-chat-";

/// Whether a bearer token is one of these keys (not an access token).
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(API_KEY_PREFIX)
}

/// The hash a key is stored and found by (SHA-256, hex).
pub fn api_key_hash(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new key: shown once, then only its hash and its first characters are kept.
pub struct NewApiKey {
    /// The key (`sk-chat-` and 43 base62 characters: 256 random bits).
    pub key: Secret,
    /// Its SHA-256, hex.
    pub hash: String,
    /// Its first 12 characters, to tell keys apart in a list.
    pub prefix: String,
}

impl NewApiKey {
    pub fn generate() -> Result<Self, AppError> {
        let mut random = [0u8; 32];
        aws_lc_rs::rand::fill(&mut random)
            .map_err(|_| AppError::Internal("no randomness for a new key".into()))?;
        let key = format!("{API_KEY_PREFIX}{}", base62(&random));
        Ok(Self {
            hash: api_key_hash(&key),
            prefix: key.chars().take(12).collect(),
            key: Secret::new(key),
        })
    }
}

/// `bytes` as a base62 number, 43 digits for 32 bytes.
fn base62(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut number = bytes.to_vec();
    let mut out = Vec::with_capacity(43);
    for _ in 0..43 {
        let mut rest = 0u32;
        for byte in number.iter_mut() {
            let value = (rest << 8) | u32::from(*byte);
            *byte = (value / 62) as u8;
            rest = value % 62;
        }
        out.push(DIGITS[rest as usize]);
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

/// A key's name: 1–64 characters, not only spaces, no control characters.
pub struct ApiKeyName(String);

impl ApiKeyName {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(AppError::validation(
                "name",
                "1 to 64 characters, without control characters",
            ));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Days until a key expires: a whole number from 1 to 365 (JSON may write it `30.0`), or
/// never.
pub fn api_key_lifetime(days: Option<f64>) -> Result<Option<u32>, AppError> {
    match days {
        None => Ok(None),
        Some(d) if d.fract() == 0.0 && (1.0..=365.0).contains(&d) => Ok(Some(d as u32)),
        Some(_) => Err(AppError::validation(
            "expires_in_days",
            "a whole number of days from 1 to 365 (or leave it out: the key does not expire)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_long_random_recognisable_and_stored_as_its_hash() {
        let a = NewApiKey::generate().unwrap();
        let b = NewApiKey::generate().unwrap();
        let key = a.key.expose();
        assert!(
            is_api_key(key) && key.len() == API_KEY_PREFIX.len() + 43,
            "{}",
            key.len()
        );
        assert!(
            key[API_KEY_PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert_ne!(key, b.key.expose());
        assert_eq!(a.hash, api_key_hash(key));
        assert_eq!(a.hash.len(), 64);
        assert_eq!(a.prefix, &key[..12]);
        assert!(!is_api_key("eyJhbGciOi"));
        assert!(ApiKeyName::parse("  ").is_err() && ApiKeyName::parse("ci").is_ok());
        assert!(api_key_lifetime(Some(0.0)).is_err() && api_key_lifetime(Some(1.5)).is_err());
        assert_eq!(api_key_lifetime(Some(30.0)).unwrap(), Some(30));
    }
}
