//! Values parsed at the boundary (once one exists, it is valid) and the entities the backend
//! keeps: profile, conversations and messages. No I/O here.

mod account;
mod api_key;
mod audio;
mod chat;
mod conversation;
mod document;
mod identity;
mod ids;
mod message;
mod page;
mod profile;
mod text;

pub use account::{DisplayName, Email, Password};
pub use api_key::{
    API_KEY_PREFIX, ApiKeyName, NewApiKey, api_key_hash, api_key_lifetime, is_api_key,
};
pub use audio::{ACCEPTED_AUDIO, AudioKind, VoiceClip};
pub use chat::ChatContent;
pub use conversation::{Conversation, ConversationId, Title};
pub use document::{ACCEPTED_DOCUMENTS, Document, DocumentKind};
pub use identity::SignedInUser;
pub use ids::{IdempotencyKey, UserId};
pub use message::{ErrorRecord, Message, MessageStatus, Role, ToolCall, Usage};
pub use page::{PageLimit, decode_cursor, encode_cursor};
pub use profile::{BudgetUsedUp, Profile, ProvisioningState};
pub use text::{without_controls, without_nul};
