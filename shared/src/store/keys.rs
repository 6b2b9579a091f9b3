//! Key formats of the table: every key is built from the JWT's `sub`, so no request can name
//! another user's partition.

use crate::domain::{ConversationId, UserId};

/// The partition key attribute.
pub const PARTITION_KEY: &str = "pk";
/// The sort key attribute.
pub const SORT_KEY: &str = "sk";
/// Epoch seconds; DynamoDB deletes the item some time after. Reads must not rely on it.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// The prefix of a user's partition.
pub(crate) const USER_PREFIX: &str = "USER#";

/// The partition of a user's items.
pub(crate) fn user_pk(user: &UserId) -> String {
    format!("{USER_PREFIX}{user}")
}

/// The partition of a user's rate-limit counters: apart from the user's data (they expire by
/// themselves within a day).
pub(crate) fn user_limits_pk(user: &UserId) -> String {
    format!("LIMIT#USER#{user}")
}

/// The partition of a client address's rate-limit counters (`LIMIT#IP#-` when unknown). An IPv6
/// client counts per /64: one host usually has a whole /64 to rotate through.
pub(crate) fn client_pk(ip: Option<std::net::IpAddr>) -> String {
    match ip {
        Some(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("LIMIT#IP#{}/64", std::net::Ipv6Addr::from(prefix))
        }
        Some(ip) => format!("LIMIT#IP#{}", ip.to_canonical()),
        None => "LIMIT#IP#-".to_string(),
    }
}

/// The partition of an account's failed password checks, by a hash of its normalized email
/// (the table keeps no address in a key).
pub(crate) fn account_pk(email: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, email.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("LIMIT#ACCOUNT#{hex}")
}

/// The profile item.
pub(crate) const PROFILE_SK: &str = "PROFILE";
/// The user's session revocation (`sessions_revoked_at`), in the limits partition: it outlives
/// the profile when the account is deleted, and expires once every token it refuses has.
pub(crate) const REVOCATION_SK: &str = "REVOKED";
/// Messages: `MSG#<conversation>#<ulid>`, so a conversation's messages sort by time.
pub(crate) const MESSAGE_PREFIX: &str = "MSG#";
/// Conversations: `CONV#<conversation>`.
pub(crate) const CONVERSATION_PREFIX: &str = "CONV#";
/// Daily usage: `USAGE#<yyyy-mm-dd>`.
pub(crate) const USAGE_PREFIX: &str = "USAGE#";

pub(crate) fn message_sk(conversation: &ConversationId, id: &str) -> String {
    format!("{}{id}", conversation_messages_prefix(conversation))
}

/// The prefix of one conversation's messages.
pub(crate) fn conversation_messages_prefix(conversation: &ConversationId) -> String {
    format!("{MESSAGE_PREFIX}{conversation}#")
}

pub(crate) fn conversation_sk(conversation: &ConversationId) -> String {
    format!("{CONVERSATION_PREFIX}{conversation}")
}

/// The turn lock of a conversation (one turn at a time in each).
pub(crate) fn turn_sk(conversation: &ConversationId) -> String {
    format!("TURN#{conversation}")
}

/// One of a user's turn slots (`TURNSLOT#<n>`): a turn holds one while it runs, so a user has
/// at most as many turns at once, across conversations, as there are slots.
pub(crate) fn turn_slot_sk(slot: u32) -> String {
    format!("{TURN_SLOT_PREFIX}{slot}")
}

/// The prefix of the turn slots' sort keys.
pub(crate) const TURN_SLOT_PREFIX: &str = "TURNSLOT#";

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
        let default = ConversationId::default_conversation();
        assert_eq!(message_sk(&default, "01J"), "MSG#default#01J");
        assert_eq!(conversation_sk(&default), "CONV#default");
        assert_eq!(turn_sk(&default), "TURN#default");
        assert_eq!(usage_sk("2026-01-02"), "USAGE#2026-01-02");
        assert_eq!(idempotency_sk("k"), "IDEM#k");
    }

    #[test]
    fn an_ipv6_client_counts_per_64_and_an_account_by_a_hash() {
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(client_pk(ip("198.51.100.7")), "LIMIT#IP#198.51.100.7");
        assert_eq!(
            client_pk(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "LIMIT#IP#2001:db8:1:2::/64"
        );
        assert_eq!(
            client_pk(ip("2001:db8:1:2::1")),
            client_pk(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            client_pk(ip("2001:db8:1:2::1")),
            client_pk(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            client_pk(ip("::ffff:198.51.100.7")),
            "LIMIT#IP#198.51.100.7"
        );
        assert_eq!(client_pk(None), "LIMIT#IP#-");
        let pk = account_pk("ada@example.com");
        assert!(
            pk.starts_with("LIMIT#ACCOUNT#") && !pk.contains("ada"),
            "{pk}"
        );
        assert_eq!(pk.len(), "LIMIT#ACCOUNT#".len() + 64);
    }
}
