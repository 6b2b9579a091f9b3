//! What the agent function answers: its status, core and archival memory, the reset.

use serde::Serialize;
use utoipa::ToSchema;

use super::ProvisioningStateView;

use crate::{
    clients::letta::{Block, Passage},
    flows::agent::{AgentStatus, ArchivalPage, ResetOutcome},
};

/// A core memory block's size.
#[derive(Serialize, ToSchema)]
pub struct BlockSizeView {
    /// `human`, `persona`, …
    label: String,
    /// Its length, in characters.
    chars: usize,
    /// Its limit, in characters.
    limit: Option<u64>,
}

/// `GET /agent/status`.
#[derive(Serialize, ToSchema)]
pub struct AgentStatusView {
    /// Where provisioning stands.
    state: ProvisioningStateView,
    /// The user's agent.
    agent_id: Option<String>,
    /// Whether Letta has the agent.
    responding: bool,
    /// The model the agent uses.
    model: String,
    /// Messages in the agent's context window.
    context_messages: Option<usize>,
    /// Messages stored by the backend.
    message_count: u64,
    /// When the newest stored message was written.
    last_activity: Option<String>,
    /// The core memory blocks' sizes.
    memory_blocks: Vec<BlockSizeView>,
    /// Archival memories, as the backend counted them.
    archival_passages: Option<u64>,
}

/// `GET /agent/status`.
pub fn agent_status(s: &AgentStatus) -> AgentStatusView {
    AgentStatusView {
        state: s.profile.state.into(),
        agent_id: s.profile.letta_agent_id.clone(),
        responding: s.responding,
        model: s.profile.model.clone(),
        context_messages: s.context_messages,
        message_count: s.message_count,
        last_activity: s.last_activity.clone(),
        memory_blocks: s
            .blocks
            .iter()
            .map(|b| BlockSizeView {
                label: b.label.clone(),
                chars: b.value.chars().count(),
                limit: b.limit,
            })
            .collect(),
        archival_passages: s.archival_passages,
    }
}

/// A core memory block.
#[derive(Serialize, ToSchema)]
pub struct BlockView {
    /// `human` or `persona`.
    label: String,
    /// Its text.
    value: String,
    /// Its limit, in characters.
    limit: Option<u64>,
    /// What it is for (shown to the agent).
    description: Option<String>,
}

impl From<&Block> for BlockView {
    fn from(b: &Block) -> Self {
        Self {
            label: b.label.clone(),
            value: b.value.clone(),
            limit: b.limit,
            description: b.description.clone(),
        }
    }
}

/// `GET /agent/memory`.
#[derive(Serialize, ToSchema)]
pub struct MemoryView {
    /// The core memory blocks.
    blocks: Vec<BlockView>,
}

/// `GET /agent/memory`.
pub fn memory(blocks: &[Block]) -> MemoryView {
    MemoryView {
        blocks: blocks.iter().map(BlockView::from).collect(),
    }
}

/// A block after it was replaced.
#[derive(Serialize, ToSchema)]
pub struct BlockReplacedView {
    /// The block as Letta now has it.
    block: BlockView,
}

/// A block after it was replaced.
pub fn block(block: &Block) -> BlockReplacedView {
    BlockReplacedView {
        block: block.into(),
    }
}

/// An archival memory.
#[derive(Serialize, ToSchema)]
pub struct PassageView {
    /// Its id.
    id: String,
    /// Its text.
    text: String,
    /// Its tags.
    tags: Option<Vec<String>>,
    /// When it was stored.
    created_at: Option<String>,
}

impl From<&Passage> for PassageView {
    fn from(p: &Passage) -> Self {
        Self {
            id: p.id.clone(),
            text: p.text.clone(),
            tags: p.tags.clone(),
            created_at: p.created_at.clone(),
        }
    }
}

/// Archival memories just added (Letta splits a long text into several).
#[derive(Serialize, ToSchema)]
pub struct PassagesView {
    /// What was stored.
    passages: Vec<PassageView>,
}

/// Archival memories just added.
pub fn passages(passages: &[Passage]) -> PassagesView {
    PassagesView {
        passages: passages.iter().map(PassageView::from).collect(),
    }
}

/// An archival memory found by a search or a listing.
#[derive(Serialize, ToSchema)]
pub struct ArchivalMemoryView {
    /// Its id (absent for some search results).
    id: Option<String>,
    /// Its text.
    text: String,
    /// Its tags.
    tags: Option<Vec<String>>,
    /// When it was stored.
    created_at: Option<String>,
}

/// `GET /agent/memory/archival`.
#[derive(Serialize, ToSchema)]
pub struct ArchivalView {
    /// The search, if one was made.
    query: Option<String>,
    /// The page's memories.
    memories: Vec<ArchivalMemoryView>,
    /// The next page's cursor.
    next_cursor: Option<String>,
}

/// `GET /agent/memory/archival`.
pub fn archival(page: &ArchivalPage) -> ArchivalView {
    ArchivalView {
        query: page.query.clone(),
        memories: page
            .memories
            .iter()
            .map(|m| ArchivalMemoryView {
                id: m.id.clone(),
                text: m.text.clone(),
                tags: m.tags.clone(),
                created_at: m.created_at.clone(),
            })
            .collect(),
        next_cursor: page.next_cursor.clone(),
    }
}

/// `POST /agent/reset`.
#[derive(Serialize, ToSchema)]
pub struct ResetView {
    /// `messages` or `all`.
    #[schema(example = "messages")]
    scope: &'static str,
    /// The agent after the reset (a new one for `all`).
    agent_id: String,
    /// Stored messages deleted.
    history_deleted: usize,
}

/// `POST /agent/reset`.
pub fn reset(r: &ResetOutcome) -> ResetView {
    ResetView {
        scope: r.scope.as_str(),
        agent_id: r.agent_id.clone(),
        history_deleted: r.history_deleted,
    }
}
