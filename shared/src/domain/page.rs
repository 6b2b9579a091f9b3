//! Paging: how many items a page holds, and the cursor that names where the next page starts.
//! Cursors are opaque to clients and bound to the user they were made for, so one user's
//! cursor is worthless to another.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::UserId;
use crate::app::error::{AppError, ErrorCode};

/// Items per page, 1–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u32);

impl PageLimit {
    /// The most a page holds.
    pub const MAX: u32 = 100;

    /// The client's `limit`, or `default`; 422 naming `limit` outside 1–100.
    pub fn parse(raw: Option<u32>, default: u32) -> Result<Self, AppError> {
        let limit = raw.unwrap_or(default);
        if !(1..=Self::MAX).contains(&limit) {
            return Err(AppError::validation(
                "limit",
                format!("must be between 1 and {}", Self::MAX),
            ));
        }
        Ok(Self(limit))
    }

    /// The limit.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The limit as a count of items.
    pub fn items(self) -> usize {
        self.0 as usize
    }
}

/// Where a page ends, with the user it belongs to: `{"u": user, …position}` in base64url.
#[derive(Serialize, Deserialize)]
struct Bound<T> {
    u: String,
    #[serde(flatten)]
    at: T,
}

/// The cursor of a page that ends at `at`.
pub fn encode_cursor<T: Serialize>(user: &UserId, at: T) -> String {
    let bound = Bound {
        u: user.to_string(),
        at,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&bound).unwrap_or_default())
}

/// Where the page before `cursor` ended; 400 `invalid_cursor` for a cursor that is malformed
/// or another user's.
pub fn decode_cursor<T: DeserializeOwned>(user: &UserId, cursor: &str) -> Result<T, AppError> {
    let invalid = || AppError::BadRequest {
        code: ErrorCode::InvalidCursor,
        message: "the cursor is not valid".into(),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| invalid())?;
    let bound: Bound<T> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if bound.u != user.as_str() {
        return Err(invalid());
    }
    Ok(bound.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct At {
        m: String,
    }

    #[test]
    fn cursors_are_bound_to_their_user() {
        let ada = UserId::parse("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let bob = UserId::parse("7f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let cursor = encode_cursor(&ada, At { m: "01J".into() });
        let at: At = decode_cursor(&ada, &cursor).unwrap();
        assert_eq!(at, At { m: "01J".into() });
        let other: Result<At, _> = decode_cursor(&bob, &cursor);
        assert_eq!(other.unwrap_err().code(), ErrorCode::InvalidCursor);
        let junk: Result<At, _> = decode_cursor(&ada, "not a cursor");
        assert_eq!(junk.unwrap_err().code(), ErrorCode::InvalidCursor);
    }

    #[test]
    fn a_limit_is_1_to_100() {
        assert_eq!(PageLimit::parse(None, 20).unwrap().get(), 20);
        assert_eq!(PageLimit::parse(Some(100), 20).unwrap().items(), 100);
        for bad in [0, 101] {
            let e = PageLimit::parse(Some(bad), 20).unwrap_err();
            assert_eq!(e.code(), ErrorCode::ValidationFailed);
        }
    }
}
