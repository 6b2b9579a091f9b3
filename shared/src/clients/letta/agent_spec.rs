//! What a new agent is made of: the spec the provisioning fills in, and the typed body of
//! `POST /v1/agents/` it becomes.

use serde::Serialize;

use super::model_choice::{Embedding, ModelChoice};
use crate::app::config::{LettaConfig, PLAIN_CONTENT_AGENT_TYPE};

/// What a new agent is made of (the body of `POST /v1/agents/`).
pub struct AgentSpec<'a> {
    /// The agent's name.
    pub name: &'a str,
    /// The BYOK provider it calls the model through.
    pub provider_name: &'a str,
    /// The LiteLLM model it asks for.
    pub model: &'a str,
    /// The `human` block's first value.
    pub human: &'a str,
    /// The `persona` block's value.
    pub persona: &'a str,
    pub tags: &'a [String],
}

/// The tool with which an agent saves an archival memory itself.
pub const ARCHIVAL_INSERT_TOOL: &str = "archival_memory_insert";
/// The tool with which an agent searches its archival memory (its query is embedded).
pub const ARCHIVAL_SEARCH_TOOL: &str = "archival_memory_search";

/// The tools an agent of `agent_type` gets: core memory edits, conversation search and
/// archival memory. `letta_v1_agent` replies in plain content (no `send_message`, no
/// heartbeats). Its core memory tools are Letta's `core_memory_append`/`core_memory_replace`
/// rather than its v1 defaults `memory_insert`/`memory_replace`: the same edits (add, change,
/// delete a line) in a fifth of the schema, which every turn sends to the model (≈ 600 prompt
/// tokens a turn fewer).
pub fn agent_tools(agent_type: &str) -> &'static [&'static str] {
    match agent_type {
        PLAIN_CONTENT_AGENT_TYPE => &[
            "core_memory_append",
            "core_memory_replace",
            "conversation_search",
            ARCHIVAL_INSERT_TOOL,
            ARCHIVAL_SEARCH_TOOL,
        ],
        _ => &[
            "send_message",
            "core_memory_append",
            "core_memory_replace",
            ARCHIVAL_INSERT_TOOL,
            ARCHIVAL_SEARCH_TOOL,
        ],
    }
}

impl<'a> AgentSpec<'a> {
    /// The request body: the model chosen through the user's own provider (see
    /// [`ModelChoice`]), so every LLM call carries the user's own LiteLLM key.
    pub fn body(&self, config: &'a LettaConfig) -> CreateAgent<'a> {
        CreateAgent {
            name: self.name,
            agent_type: &config.agent_type,
            system: (config.agent_type == PLAIN_CONTENT_AGENT_TYPE).then_some(SYSTEM_PROMPT),
            tags: self.tags,
            memory_blocks: [
                BlockRequest {
                    label: "human",
                    value: self.human,
                    limit: BLOCK_LIMIT,
                    description: "What I know about the person I am talking with: name, \
                                  preferences, facts they shared.",
                },
                BlockRequest {
                    label: "persona",
                    value: self.persona,
                    limit: BLOCK_LIMIT,
                    description: "Who I am and how I behave in this conversation.",
                },
            ],
            tools: agent_tools(&config.agent_type),
            include_base_tools: false,
            model: ModelChoice::new(
                config,
                self.provider_name,
                self.model,
                config.context_window,
                Embedding::Included,
            ),
        }
    }
}

/// The instructions of a `letta_v1_agent`, in place of Letta's generic ones (which describe a
/// file system these agents do not have): what its memory is and which tool does what. Letta
/// appends the memory blocks and their metadata. Every turn sends it to the model, so it stays
/// short.
const SYSTEM_PROMPT: &str = "\
You are the user's personal assistant, with a memory that lasts across conversations.
<memory>
Your core memory blocks follow: `human` (what you know about the user) and `persona` (who you \
are). They are always in front of you. When you learn something lasting about the user, add it \
with core_memory_append or correct it with core_memory_replace (an empty new_content deletes). \
Longer or less central facts go to archival memory: archival_memory_insert saves, \
archival_memory_search finds by meaning. conversation_search finds earlier messages.
</memory>
Answer directly; call a tool only when it helps the user.";

/// A core memory block's size limit, characters.
const BLOCK_LIMIT: u32 = 5000;

/// `POST /v1/agents/`'s body: the fields of letta-client's `AgentCreateParams` the backend
/// sets.
#[derive(Debug, Serialize)]
pub struct CreateAgent<'a> {
    name: &'a str,
    agent_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'static str>,
    tags: &'a [String],
    memory_blocks: [BlockRequest<'a>; 2],
    tools: &'static [&'static str],
    include_base_tools: bool,
    #[serde(flatten)]
    model: ModelChoice<'a>,
}

/// A core memory block to make (`CreateBlockParam`).
#[derive(Debug, Serialize)]
struct BlockRequest<'a> {
    label: &'static str,
    value: &'a str,
    limit: u32,
    description: &'static str,
}
