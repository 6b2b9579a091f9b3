//! What an instance remembers between a user's turns: the profile facts a turn acts on and the
//! conversation, so a turn on a warm instance starts in one DynamoDB request. Nothing here is
//! trusted: the turn's start transaction checks every remembered fact against the stored
//! items (see [`KnownFacts::profile_condition`] and [`KnownFacts::conversation_condition`]),
//! so an entry another instance made stale fails the start, which then reads them again.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use aws_sdk_dynamodb::types::AttributeValue;

use super::attrs::s;
use crate::domain::{Conversation, ConversationId, Profile, ProvisioningState, UserId};

/// At most this many (user, conversation) entries; a full cache starts over.
const CAPACITY: usize = 4096;

/// The profile facts a turn acts on: whose agent it calls, of which type, with which model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFacts {
    /// The user's agent.
    pub agent_id: String,
    /// Its architecture, as recorded.
    pub agent_type: Option<String>,
    /// The model the user chose.
    pub model: String,
}

impl ProfileFacts {
    /// The facts of a ready profile whose agent is `agent_id`.
    pub fn new(agent_id: String, profile: &Profile) -> Self {
        Self {
            agent_id,
            agent_type: profile.letta_agent_type.clone(),
            model: profile.model.clone(),
        }
    }
}

/// Whether a later turn may start on `profile`'s facts without reading it: ready, its email
/// confirmed and no used-up budget on record (an expired one too: the read path clears the way).
pub fn rememberable(profile: &Profile) -> bool {
    profile.state == ProvisioningState::Ready
        && !profile.awaiting_confirmation
        && profile.budget_used_up.is_none()
}

/// A user's profile facts and one of their conversations, as last read or written here.
#[derive(Debug, Clone)]
pub struct KnownFacts {
    /// The profile's facts.
    pub profile: ProfileFacts,
    /// The conversation.
    pub conversation: Conversation,
}

type Values = HashMap<String, AttributeValue>;

impl KnownFacts {
    /// The condition on the profile item that holds while these facts do (its values added to
    /// `values`).
    pub(super) fn profile_condition(&self, values: &mut Values) -> String {
        let facts = &self.profile;
        values.insert(":ready".into(), s(ProvisioningState::Ready.as_str()));
        values.insert(":agent".into(), s(&facts.agent_id));
        values.insert(":model".into(), s(&facts.model));
        values.insert(":no".into(), AttributeValue::Bool(false));
        let agent_type = match &facts.agent_type {
            Some(t) => {
                values.insert(":type".into(), s(t));
                "letta_agent_type = :type"
            }
            None => "attribute_not_exists(letta_agent_type)",
        };
        format!(
            "#state = :ready AND letta_agent_id = :agent AND model = :model AND {agent_type} \
             AND attribute_not_exists(budget_used_up) \
             AND (attribute_not_exists(awaiting_confirmation) OR awaiting_confirmation = :no)"
        )
    }

    /// The condition on the conversation item that holds while the conversation is as known:
    /// it exists (the default one need not be stored yet), its Letta conversation is the same
    /// and it has a title exactly when the known one has.
    pub(super) fn conversation_condition(&self, values: &mut Values) -> String {
        let conversation = &self.conversation;
        let mut parts = Vec::new();
        if !conversation.id.is_default() {
            parts.push("attribute_exists(pk)".to_string());
            match &conversation.letta_conversation_id {
                Some(id) => {
                    values.insert(":letta".into(), s(id));
                    parts.push("letta_conversation_id = :letta".into());
                }
                None => parts.push("attribute_not_exists(letta_conversation_id)".into()),
            }
        }
        parts.push(match conversation.title {
            Some(_) => "attribute_exists(title)".into(),
            None => "attribute_not_exists(title)".into(),
        });
        parts.join(" AND ")
    }
}

/// Known facts by user and conversation, for the life of the instance.
#[derive(Debug, Default)]
pub struct TurnCache {
    entries: Mutex<HashMap<(UserId, ConversationId), KnownFacts>>,
}

impl TurnCache {
    /// What is known of the user and the conversation, if anything.
    pub fn get(&self, user: &UserId, conversation: &ConversationId) -> Option<KnownFacts> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(&(user.clone(), conversation.clone())).cloned()
    }

    /// Remembers `facts` of the user (the conversation's id is the key's second half).
    pub fn remember(&self, user: &UserId, facts: KnownFacts) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert((user.clone(), facts.conversation.id.clone()), facts);
    }

    /// Forgets what is known of the user's conversation (a start found it stale).
    pub fn forget(&self, user: &UserId, conversation: &ConversationId) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(&(user.clone(), conversation.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        let mut p = Profile::new(
            UserId::parse("00000000-0000-4000-8000-000000000001").unwrap(),
            "a@example.com",
            None,
            "gpt-4",
            "2026-12-07T00:00:00Z",
        );
        p.state = ProvisioningState::Ready;
        p.letta_agent_id = Some("agent-1".into());
        p
    }

    #[test]
    fn only_a_profile_a_turn_can_start_on_is_remembered() {
        assert!(rememberable(&profile()));
        let mut awaiting = profile();
        awaiting.awaiting_confirmation = true;
        assert!(!rememberable(&awaiting));
        let mut provisioning = profile();
        provisioning.state = ProvisioningState::LettaAgent;
        assert!(!rememberable(&provisioning));
        let mut used_up = profile();
        used_up.budget_used_up = Some(crate::domain::BudgetUsedUp {
            spend: 1.0,
            limit: 1.0,
            until: Some("2026-01-01T00:00:00Z".into()),
        });
        assert!(
            !rememberable(&used_up),
            "even a used-up budget that expired"
        );
    }

    #[test]
    fn the_conditions_name_every_remembered_fact() {
        let facts = KnownFacts {
            profile: ProfileFacts::new("agent-1".into(), &profile()),
            conversation: Conversation::new(ConversationId::generate(), None),
        };
        let mut values = Values::new();
        let profile = facts.profile_condition(&mut values);
        assert!(profile.contains("attribute_not_exists(letta_agent_type)"));
        assert_eq!(values[":agent"], s("agent-1"));
        let conversation = facts.conversation_condition(&mut values);
        assert_eq!(
            conversation,
            "attribute_exists(pk) AND attribute_not_exists(letta_conversation_id) \
             AND attribute_not_exists(title)"
        );
        let default = KnownFacts {
            conversation: Conversation::new(ConversationId::default_conversation(), None),
            ..facts
        };
        assert_eq!(
            default.conversation_condition(&mut values),
            "attribute_not_exists(title)"
        );
    }
}
