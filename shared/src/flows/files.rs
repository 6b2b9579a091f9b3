//! Documents for the agent: the user's own Letta folder, made with the first upload and
//! attached to the user's agent only. Letta parses, chunks and embeds each file in the
//! background and gives the agent tools to open, grep and search it.

use crate::{
    app::error::{AppError, ErrorCode},
    clients::letta::{FolderFile, Upload},
    domain::{Document, SignedInUser, UserId},
    flows::{agent, provisioning},
    state::AppState,
};

/// Gives the agent a document: its embedding counted against the user's daily quota, a place
/// under `FILES_MAX` reserved, then the upload. Letta processes it after the answer (its
/// `status` tells how far).
pub async fn upload(
    state: &AppState,
    user: &SignedInUser,
    document: &Document,
) -> Result<FolderFile, AppError> {
    let (profile, agent_id) = agent::ready_agent(state, user).await?;
    let chars = usize::try_from(document.embedding_chars()).unwrap_or(usize::MAX);
    agent::embed(state, user, chars).await?;
    let cap = state.config.letta.files_max;
    if !state.store.reserve_file(&user.id, cap).await? {
        return Err(AppError::Conflict {
            code: ErrorCode::FileLimit,
            message: format!("the agent holds at most {cap} documents; delete some to add more"),
        });
    }
    let uploaded = async {
        let folder = match profile.letta_folder_id {
            Some(folder) => folder,
            None => new_folder(state, &user.id, &agent_id).await?,
        };
        let upload = Upload {
            name: document.name(),
            media_type: document.kind().media_type(),
            bytes: document.bytes(),
        };
        Ok::<_, AppError>(state.letta.upload_file(&folder, &upload).await?)
    }
    .await;
    if uploaded.is_err()
        && let Err(e) = state.store.count_files(&user.id, -1).await
    {
        tracing::warn!(error = %e, "could not give back a failed upload's place");
    }
    uploaded
}

/// The user's folder, attached to the agent and recorded: one an earlier try made (found by
/// its name), or a new one. When another request recorded its own first, that one is used and
/// this one deleted, so there is never a second folder.
async fn new_folder(state: &AppState, user: &UserId, agent_id: &str) -> Result<String, AppError> {
    let (letta, name) = (&state.letta, provisioning::folder_name(user));
    let folder = match letta.folders_named(&name).await?.into_iter().next() {
        Some(found) => found,
        None => {
            let provider = provisioning::provider_name(user);
            letta.create_folder(&name, &provider).await?
        }
    };
    letta.attach_folder(agent_id, &folder).await?;
    if state.store.set_folder(user, &folder).await? {
        return Ok(folder);
    }
    let recorded = recorded_folder(state, user)
        .await?
        .ok_or_else(|| AppError::Internal("a folder recorded, then gone".into()))?;
    if recorded != folder {
        letta.delete_folder(&folder).await?;
    }
    Ok(recorded)
}

/// The user's folder, as the profile records it (none before the first upload).
async fn recorded_folder(state: &AppState, user: &UserId) -> Result<Option<String>, AppError> {
    let profile = state.store.get_profile(user).await?;
    Ok(profile.and_then(|p| p.letta_folder_id))
}

/// The user's documents with their processing status (none before the first upload).
pub async fn list(state: &AppState, user: &SignedInUser) -> Result<Vec<FolderFile>, AppError> {
    match recorded_folder(state, &user.id).await? {
        Some(folder) => Ok(state.letta.folder_files(&folder).await?),
        None => Ok(Vec::new()),
    }
}

/// Removes one of the user's documents from the agent (its passages go with it); 404 for an
/// id that is not in the user's folder (another user's included).
pub async fn delete(state: &AppState, user: &SignedInUser, id: &str) -> Result<(), AppError> {
    let not_found = || AppError::NotFound("no such document of yours".into());
    let folder = recorded_folder(state, &user.id)
        .await?
        .ok_or_else(not_found)?;
    let files = state.letta.folder_files(&folder).await?;
    if !files.iter().any(|f| f.id == id) {
        return Err(not_found());
    }
    state.letta.delete_folder_file(&folder, id).await?;
    if let Err(e) = state.store.count_files(&user.id, -1).await {
        tracing::warn!(error = %e, "could not count the deleted document");
    }
    Ok(())
}
