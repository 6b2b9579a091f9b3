//! Key formats of the table: every key is built from the JWT's `sub`, so no request can name
//! another user's partition.

use crate::domain::UserId;

/// The partition of a user's items.
pub(crate) fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

/// The profile item.
pub(crate) const PROFILE_SK: &str = "PROFILE";
/// The per-user turn lock.
pub(crate) const TURN_SK: &str = "TURN";
/// Messages: `MSG#<ulid>`, so they sort by time.
pub(crate) const MESSAGE_PREFIX: &str = "MSG#";
/// Daily usage: `USAGE#<yyyy-mm-dd>`.
pub(crate) const USAGE_PREFIX: &str = "USAGE#";

pub(crate) fn message_sk(id: &str) -> String {
    format!("{MESSAGE_PREFIX}{id}")
}

pub(crate) fn usage_sk(day: &str) -> String {
    format!("{USAGE_PREFIX}{day}")
}

pub(crate) fn idempotency_sk(key: &str) -> String {
    format!("IDEM#{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_built_from_the_user_id() {
        let id = UserId::parse("6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap();
        assert_eq!(user_pk(&id), "USER#6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert_eq!(message_sk("01J"), "MSG#01J");
        assert_eq!(usage_sk("2026-01-02"), "USAGE#2026-01-02");
        assert_eq!(idempotency_sk("k"), "IDEM#k");
    }
}
