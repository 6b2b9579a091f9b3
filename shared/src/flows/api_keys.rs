//! Personal API keys: made with a session token (never with a key), listed without their
//! secret, revoked at once; a key authenticates its user on the OpenAI-compatible routes,
//! within the user's rate limits and budget, and is refused after logout-everywhere (as a
//! token issued before it is) and once the account is deleted (its lookup goes with it).

use time::OffsetDateTime;

use crate::{
    app::{
        clock::now_rfc3339,
        error::{AppError, ErrorCode},
        secret::Secret,
    },
    domain::{ApiKeyName, NewApiKey, SignedInUser, UserId, api_key_hash},
    flows::agent,
    state::AppState,
    store::{ApiKeyRecord, KeyStored},
};

/// The most keys a user may have.
pub const MAX_API_KEYS: u64 = 10;

/// A key just made: its record and the key itself, shown this once.
pub struct CreatedKey {
    pub record: ApiKeyRecord,
    pub key: Secret,
}

/// Makes a key named `name` that expires after `days` (never without).
pub async fn create(
    state: &AppState,
    user: &SignedInUser,
    name: &ApiKeyName,
    days: Option<u32>,
) -> Result<CreatedKey, AppError> {
    // A key is for the user's agent: the account is set up first, as any agent request does.
    agent::ready_agent(state, user).await?;
    let new = NewApiKey::generate()?;
    let now = OffsetDateTime::now_utc();
    let expires = days.map(|d| now + time::Duration::days(i64::from(d)));
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let record = ApiKeyRecord {
        id: ulid::Ulid::new().to_string(),
        name: name.as_str().to_string(),
        prefix: new.prefix,
        key_hash: new.hash,
        created_at: rfc3339(now),
        created_epoch: now.unix_timestamp(),
        expires_at: expires.map(rfc3339),
        expires_epoch: expires.map(OffsetDateTime::unix_timestamp),
        last_used_at: None,
    };
    match state
        .store
        .create_api_key(&user.id, &record, MAX_API_KEYS)
        .await?
    {
        KeyStored::Stored => Ok(CreatedKey {
            record,
            key: new.key,
        }),
        KeyStored::LimitReached => Err(AppError::Conflict {
            code: ErrorCode::ApiKeyLimit,
            message: format!("you have {MAX_API_KEYS} API keys; revoke one to make another"),
        }),
    }
}

/// The user's keys, without their secret.
pub async fn list(state: &AppState, user: &SignedInUser) -> Result<Vec<ApiKeyRecord>, AppError> {
    Ok(state.store.api_keys(&user.id).await?)
}

/// Revokes one of the user's keys at once; 404 for an id that is not the user's.
pub async fn revoke(state: &AppState, user: &SignedInUser, id: &str) -> Result<(), AppError> {
    if state.store.delete_api_key(&user.id, id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("no such API key of yours".into()))
    }
}

/// The user a presented key belongs to, as a signed-in user whose "token" was issued when the
/// key was made (so the gate refuses it after logout-everywhere); 401 for an unknown, revoked
/// or expired key. Records the key's use.
pub async fn key_user(state: &AppState, key: &str) -> Result<SignedInUser, AppError> {
    let invalid =
        || AppError::Unauthorized("the API key is not valid (revoked or mistyped)".into());
    let owner = state
        .store
        .api_key_owner(&api_key_hash(key))
        .await?
        .ok_or_else(invalid)?;
    if owner
        .expires_epoch
        .is_some_and(|at| at <= OffsetDateTime::now_utc().unix_timestamp())
    {
        return Err(AppError::Unauthorized("the API key has expired".into()));
    }
    let id = UserId::parse(&owner.user_id).map_err(|_| invalid())?;
    state
        .store
        .touch_api_key(&id, &owner.key_id, &now_rfc3339())
        .await?;
    Ok(SignedInUser {
        id,
        email: None,
        issued_at: u64::try_from(owner.created_epoch).ok(),
        token: Secret::new(key),
    })
}
