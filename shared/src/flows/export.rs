//! Everything the backend holds for a user, as a stream of records (the http layer writes one
//! NDJSON line per record): the profile, each conversation followed by its messages, usage per
//! day, core memory blocks and archival passages, then an `end` record with the counts. Pages
//! are read as they are written, so an account of any size streams in constant memory.

use std::collections::BTreeMap;

use tokio::sync::mpsc;
use tracing::Instrument;

use crate::{
    app::error::AppError,
    clients::letta::{Block, FolderFile, Passage},
    domain::{Conversation, ConversationId, Message, Profile, SignedInUser},
    flows::{agent::ready_agent, conversations},
    state::AppState,
    store::DayUsage,
};

/// One record of an export.
pub enum ExportRecord {
    /// The profile.
    Profile(Profile),
    /// A conversation; its messages follow it.
    Conversation(Conversation),
    /// A message (newest first within its conversation).
    Message(Message),
    /// One day's usage.
    Usage(String, DayUsage),
    /// A core memory block.
    Block(Block),
    /// A document of the user's (its metadata; the file stays in Letta).
    Document(FolderFile),
    /// An archival memory.
    Passage(Passage),
    /// The last record: how many of each were written.
    End(BTreeMap<&'static str, u64>),
    /// The export broke off (a dependency failed); it is incomplete.
    Error(AppError),
}

const PAGE: u32 = 100;

/// Starts an export; failures before the first record (sign-in, provisioning) are plain JSON
/// errors, later ones end the stream with an `Error` record (and no `End`).
pub async fn export(
    state: &AppState,
    user: &SignedInUser,
) -> Result<mpsc::Receiver<ExportRecord>, AppError> {
    let (profile, agent_id) = ready_agent(state, user).await?;
    let (tx, rx) = mpsc::channel(32);
    let state = state.clone();
    let user = user.clone();
    tokio::spawn(
        async move {
            let mut out = Writer {
                tx,
                counts: BTreeMap::new(),
            };
            match write_all(&state, &user, profile, &agent_id, &mut out).await {
                Ok(()) => {
                    let counts = std::mem::take(&mut out.counts);
                    out.tx.send(ExportRecord::End(counts)).await.ok();
                }
                Err(Stop::ClientGone) => tracing::info!("the client left the export"),
                Err(Stop::Failed(e)) => {
                    tracing::warn!(error = %e, "export broke off");
                    out.tx.send(ExportRecord::Error(e)).await.ok();
                }
            }
        }
        .in_current_span(),
    );
    Ok(rx)
}

enum Stop {
    ClientGone,
    Failed(AppError),
}

impl<E: Into<AppError>> From<E> for Stop {
    fn from(e: E) -> Self {
        Self::Failed(e.into())
    }
}

struct Writer {
    tx: mpsc::Sender<ExportRecord>,
    counts: BTreeMap<&'static str, u64>,
}

impl Writer {
    async fn write(&mut self, kind: &'static str, record: ExportRecord) -> Result<(), Stop> {
        *self.counts.entry(kind).or_default() += 1;
        self.tx.send(record).await.map_err(|_| Stop::ClientGone)
    }
}

async fn write_all(
    state: &AppState,
    user: &SignedInUser,
    profile: Profile,
    agent_id: &str,
    out: &mut Writer,
) -> Result<(), Stop> {
    let folder = profile.letta_folder_id.clone();
    out.write("profile", ExportRecord::Profile(profile)).await?;
    let mut all = state.store.conversations(&user.id).await?;
    if !all.iter().any(|c| c.id.is_default()) {
        // Messages of the default conversation are exported even before its item exists.
        all.push(conversations::get(state, user, &ConversationId::default_conversation()).await?);
    }
    for conversation in all {
        let id = conversation.id.clone();
        out.write("conversations", ExportRecord::Conversation(conversation))
            .await?;
        let mut before: Option<String> = None;
        loop {
            let page = state
                .store
                .history(&user.id, &id, PAGE, before.as_deref())
                .await?;
            before = page.messages.last().map(|m| m.id.clone());
            let more = page.next_cursor.is_some();
            for message in page.messages {
                out.write("messages", ExportRecord::Message(message))
                    .await?;
            }
            if !more {
                break;
            }
        }
    }
    let days = state
        .store
        .usage_days(&user.id, "0000-01-01", "9999-12-31")
        .await?;
    for (day, usage) in days {
        out.write("usage_days", ExportRecord::Usage(day, usage))
            .await?;
    }
    for block in state.letta.blocks(agent_id).await? {
        out.write("memory_blocks", ExportRecord::Block(block))
            .await?;
    }
    if let Some(folder) = &folder {
        for file in state.letta.folder_files(folder).await? {
            out.write("documents", ExportRecord::Document(file)).await?;
        }
    }
    let mut before: Option<String> = None;
    loop {
        let page = state
            .letta
            .list_passages(agent_id, PAGE, before.as_deref())
            .await?;
        let full = page.len() == PAGE as usize;
        before = page.last().map(|p| p.id.clone());
        for passage in page {
            out.write("archival_passages", ExportRecord::Passage(passage))
                .await?;
        }
        if !full {
            return Ok(());
        }
    }
}
