//! Account flows: register, login, refresh, logout, me, delete.

use serde_json::{Value, json};

use crate::{
    app::{
        clock::{self, now_epoch},
        dependency::{DependencyError, Service},
        error::{AppError, ErrorCode},
    },
    clients::{
        litellm::UserRecord,
        supabase::{self, Session, SignUp, User as SupabaseUser},
    },
    domain::{DisplayName, Email, Password, Profile, ProvisioningState, SignedInUser, UserId},
    flows::provisioning::{self, provider_name},
    state::AppState,
    store::RateLimit,
};

/// The budget from LiteLLM, or `None` when LiteLLM cannot say right now.
pub async fn budget_summary(state: &AppState, user: &UserId) -> Option<UserRecord> {
    match state.litellm.user_info(user.as_str()).await {
        Ok(info) => info?.user_info,
        Err(e) => {
            tracing::warn!(error = %e, "budget summary unavailable");
            None
        }
    }
}

fn map_supabase_error(err: DependencyError, field_hint: &str) -> AppError {
    match supabase::error_code(&err).as_deref() {
        Some("user_already_exists") | Some("email_exists") => AppError::Conflict {
            code: ErrorCode::EmailTaken,
            message: "an account with this email already exists".into(),
        },
        Some("weak_password") => AppError::validation("password", "is too weak"),
        Some("validation_failed") | Some("email_address_invalid") => {
            AppError::validation(field_hint, "was rejected by the identity provider")
        }
        Some("invalid_credentials") => AppError::InvalidCredentials,
        Some("email_not_confirmed") => AppError::Forbidden {
            code: ErrorCode::EmailNotConfirmed,
            message: "confirm your email address first (see the message we sent)".into(),
        },
        _ => err.into(),
    }
}

/// Checks a password at Supabase, at most `RATE_PASSWORD_FAILURES` failures per account in 15
/// minutes whatever the client addresses (the per-address limit alone yields to many
/// addresses): beyond them, 429 `password_failures` with `Retry-After`, the right password too.
async fn check_password(
    state: &AppState,
    email: &str,
    password: &str,
    field: &str,
) -> Result<Session, AppError> {
    let limit = RateLimit {
        name: "password_failures",
        max: state.config.rates.password_failures,
        window_secs: 15 * 60,
    };
    if let Some(exceeded) = state
        .store
        .password_failures_exceeded(email, &limit)
        .await?
    {
        return Err(exceeded.into());
    }
    match state.supabase.sign_in_with_password(email, password).await {
        Ok(session) => Ok(session),
        Err(e) => {
            let error = map_supabase_error(e, field);
            if matches!(error, AppError::InvalidCredentials) {
                state.store.count_password_failure(email, &limit).await?;
            }
            Err(error)
        }
    }
}

/// A registration, parsed.
pub struct Registration {
    /// The email.
    pub email: Email,
    /// The password.
    pub password: Password,
    /// The name the agent will know.
    pub display_name: Option<DisplayName>,
}

/// What registration gives.
pub enum Registered {
    /// Signed in and provisioned.
    Ready {
        /// The new session.
        session: Box<Session>,
        /// The ready profile.
        profile: Box<Profile>,
    },
    /// Email confirmation is on: provisioning happens at first login.
    ConfirmationRequired {
        /// The Supabase user awaiting confirmation.
        user: SupabaseUser,
    },
}

fn user_id_of(user: &SupabaseUser) -> Result<UserId, AppError> {
    UserId::parse(&user.id).map_err(|e| AppError::Upstream {
        service: Service::SupabaseAuth,
        message: e,
    })
}

/// The name a new profile starts with: the one given at registration, else the user's
/// `user_metadata` (`display_name`, `full_name` or `name`, as sign-in providers set them), else
/// the email's local part; each validated like registration input, an invalid one skipped.
fn initial_display_name(user: &SupabaseUser, given: Option<String>) -> Option<String> {
    let metadata = ["display_name", "full_name", "name"]
        .into_iter()
        .filter_map(|key| user.user_metadata.get(key).and_then(Value::as_str));
    let local_part = user
        .email
        .as_deref()
        .and_then(|e| e.split('@').next())
        .map(|l| l.chars().take(DisplayName::MAX_CHARS).collect::<String>());
    given
        .into_iter()
        .chain(metadata.map(str::to_string))
        .chain(local_part)
        .find_map(|candidate| DisplayName::parse(&candidate).ok())
        .map(|n| n.as_str().to_string())
}

/// The profile for a Supabase user, created when missing (the same for every entry point:
/// registration, login, and the first request of a user who signed in elsewhere).
async fn profile_for(
    state: &AppState,
    user: &SupabaseUser,
    display_name: Option<String>,
) -> Result<Profile, AppError> {
    let id = user_id_of(user)?;
    if let Some(p) = state.store.get_profile(&id).await? {
        return settle_confirmation(state, p, user).await;
    }
    let mut profile = Profile::new(
        id,
        user.email.as_deref().unwrap_or_default(),
        initial_display_name(user, display_name),
        &state.config.letta.model,
        user.created_at.as_deref().unwrap_or_default(),
    );
    profile.awaiting_confirmation = user.email_confirmed_at.is_none();
    Ok(state.store.create_profile(&profile).await?)
}

/// A profile made before its email was confirmed gets its budget once Supabase says the
/// email is confirmed (until then LiteLLM holds it at 0).
async fn settle_confirmation(
    state: &AppState,
    profile: Profile,
    user: &SupabaseUser,
) -> Result<Profile, AppError> {
    if !profile.awaiting_confirmation || user.email_confirmed_at.is_none() {
        return Ok(profile);
    }
    let id = &profile.user_id;
    if state.litellm.user_info(id.as_str()).await?.is_some() {
        let budget = &state.config.budget;
        state
            .litellm
            .update_user_budget(id.as_str(), budget.default_budget, Some(&budget.duration))
            .await?;
    }
    state
        .store
        .set_profile_field(id, "awaiting_confirmation", None)
        .await?;
    tracing::info!(user = %id, "email confirmed; the default budget is granted");
    Ok(Profile {
        awaiting_confirmation: false,
        ..profile
    })
}

/// The signed-in user's account, ready: made on the first request of a user who signed in
/// elsewhere (supabase-js, OAuth, magic links), provisioning resumed when unfinished, and the
/// budget granted once the email is confirmed. 409 `provisioning` while another request holds
/// the lease.
pub async fn account(state: &AppState, user: &SignedInUser) -> Result<Profile, AppError> {
    let stored = state.store.get_profile(&user.id).await?;
    account_from(state, user, stored).await
}

/// [`account`] from the profile as the caller read it (`None`: none stored).
pub async fn account_from(
    state: &AppState,
    user: &SignedInUser,
    stored: Option<Profile>,
) -> Result<Profile, AppError> {
    let profile = profile_from(state, user, stored).await?;
    if profile.state == ProvisioningState::Ready {
        return Ok(profile);
    }
    provisioning::resume(state, profile)
        .await
        .map_err(provisioning_failed)
}

/// The signed-in user's profile as it stands (no provisioning run): made on a first request,
/// and its budget granted once the email is confirmed.
pub async fn profile_of(state: &AppState, user: &SignedInUser) -> Result<Profile, AppError> {
    let stored = state.store.get_profile(&user.id).await?;
    profile_from(state, user, stored).await
}

async fn profile_from(
    state: &AppState,
    user: &SignedInUser,
    stored: Option<Profile>,
) -> Result<Profile, AppError> {
    Ok(match stored {
        Some(p) if !p.awaiting_confirmation => p,
        // Supabase says who the user is and whether the email is confirmed; the token does not.
        _ => {
            let supabase_user =
                state
                    .supabase
                    .get_user(user.token.expose())
                    .await
                    .map_err(|e| match e.status() {
                        // Verified, but Supabase no longer knows the user or the session.
                        Some(401 | 403 | 404) => AppError::Unauthorized(
                            "the access token's user or session no longer exists; sign in again"
                                .into(),
                        ),
                        _ => e.into(),
                    })?;
            if user_id_of(&supabase_user)? != user.id {
                return Err(AppError::Unauthorized(
                    "the access token does not match its user".into(),
                ));
            }
            profile_for(state, &supabase_user, None).await?
        }
    })
}

fn provisioning_failed(e: AppError) -> AppError {
    match e {
        AppError::Unavailable { service, message } => AppError::Unavailable {
            service,
            message: format!(
                "{message}. Your account exists; sign in again shortly to finish setting it up"
            ),
        },
        other => other,
    }
}

/// Signs the user up at Supabase and provisions the account (or leaves that to the first login when emails must be confirmed).
pub async fn register(state: &AppState, input: Registration) -> Result<Registered, AppError> {
    let data = match &input.display_name {
        Some(n) => json!({"display_name": n.as_str()}),
        None => json!({}),
    };
    let signed_up = state
        .supabase
        .sign_up(input.email.as_str(), input.password.expose(), data)
        .await
        .map_err(|e| map_supabase_error(e, "email"))?;
    let display_name = input.display_name.map(|n| n.as_str().to_string());
    match signed_up {
        SignUp::ConfirmationSent(user) => {
            profile_for(state, &user, display_name).await?;
            Ok(Registered::ConfirmationRequired { user })
        }
        SignUp::Session(session) => {
            let profile = profile_for(state, &session.user, display_name).await?;
            let profile = provisioning::resume(state, profile)
                .await
                .map_err(provisioning_failed)?;
            Ok(Registered::Ready {
                session,
                profile: Box::new(profile),
            })
        }
    }
}

/// Signs in and finishes provisioning when an earlier try stopped.
pub async fn login(
    state: &AppState,
    email: &str,
    password: &str,
) -> Result<(Session, Profile), AppError> {
    if email.trim().is_empty() {
        return Err(AppError::validation("email", "is required"));
    }
    if password.is_empty() {
        return Err(AppError::validation("password", "is required"));
    }
    let session = check_password(state, &email.trim().to_lowercase(), password, "email").await?;
    let mut profile = profile_for(state, &session.user, None).await?;
    if profile.state != ProvisioningState::Ready {
        profile = provisioning::resume(state, profile)
            .await
            .map_err(provisioning_failed)?;
    }
    Ok((session, profile))
}

/// A new session for a refresh token (each can be used once).
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<Session, AppError> {
    if refresh_token.trim().is_empty() {
        return Err(AppError::validation("refresh_token", "is required"));
    }
    state.supabase.refresh(refresh_token).await.map_err(|e| {
        match supabase::error_code(&e).as_deref() {
            Some(code)
                if code.starts_with("refresh_token")
                    || code == "invalid_grant"
                    || code == "session_not_found" =>
            {
                AppError::Unauthorized(
                    "the refresh token is invalid or was already used; sign in again".into(),
                )
            }
            _ => map_supabase_error(e, "refresh_token"),
        }
    })
}

/// Ends every session of the user at Supabase.
pub async fn logout(state: &AppState, user: &SignedInUser) -> Result<(), AppError> {
    // Access tokens stay valid until they expire as far as Supabase goes; the backend refuses
    // every one issued before now or in this second (see `http::limits`).
    let revoked_at = now_epoch();
    state.store.revoke_sessions(&user.id, revoked_at).await?;
    match state.supabase.sign_out(user.token.expose()).await {
        Ok(()) => {}
        // The session is already gone: logging out again is not an error.
        Err(e)
            if matches!(
                supabase::error_code(&e).as_deref(),
                Some("session_not_found") | Some("user_not_found")
            ) => {}
        Err(e) => return Err(e.into()),
    }
    // A sign-in after this answer must get a token of a later second than the revocation, or
    // it would be refused: answer once that second has begun.
    clock::sleep_past(revoked_at).await;
    Ok(())
}

/// The signed-in user's profile, provisioning resumed when unfinished.
pub async fn me(
    state: &AppState,
    user: &SignedInUser,
) -> Result<(Profile, Option<UserRecord>), AppError> {
    let profile = account(state, user).await?;
    let budget = budget_summary(state, &user.id).await;
    Ok((profile, budget))
}

/// Deletes everything of the user in all four systems. Each step is idempotent, so a retry
/// after a partial failure finishes the job.
pub async fn delete_account(
    state: &AppState,
    user: &SignedInUser,
    password: Option<&str>,
) -> Result<(), AppError> {
    confirm_identity(state, user, password).await?;
    if state.store.get_profile(&user.id).await?.is_none() {
        // Never used the backend (or a deletion stopped after the table): no lease to take.
        return delete_everything(state, &user.id).await;
    }
    // Under the provisioning lease: a first request of the same account cannot set it up again
    // while it is being deleted (it answers 409 `provisioning` instead).
    let busy = "your account is being set up or changed; try again in a few seconds".to_string();
    provisioning::with_lease(state, &user.id, busy, |_| {
        delete_everything(state, &user.id)
    })
    .await
}

/// The password, checked at Supabase, of the token's own user. A fresh token alone is not
/// enough: a stolen refresh token makes fresh tokens. The session Supabase gives back must be
/// the token's user (an email that now names another account is refused).
async fn confirm_identity(
    state: &AppState,
    user: &SignedInUser,
    password: Option<&str>,
) -> Result<(), AppError> {
    let Some(password) = password else {
        return Err(AppError::Forbidden {
            code: ErrorCode::ReauthenticationRequired,
            message: "confirm the deletion with your password".into(),
        });
    };
    // The profile's email is authoritative; the token's claim is the fallback.
    let email = match state.store.get_profile(&user.id).await? {
        Some(p) => p.email,
        None => user.email.clone().unwrap_or_default(),
    };
    let session = check_password(state, &email, password, "password").await?;
    if session.user.id != user.id.as_str() {
        return Err(AppError::Forbidden {
            code: ErrorCode::ReauthenticationRequired,
            message: "the password does not belong to the signed-in account".into(),
        });
    }
    // The session the check made ends with the user, deleted next.
    Ok(())
}

/// Deletes the user in all four systems, in an order that never leaves an agent without its
/// provider. The caller holds the provisioning lease.
pub(crate) async fn delete_everything(state: &AppState, id: &UserId) -> Result<(), AppError> {
    let profile = state.store.get_profile(id).await?;
    let known_agent = profile.as_ref().and_then(|p| p.letta_agent_id.clone());
    // 1–3. Letta and LiteLLM.
    let agents = delete_resources(state, id, known_agent).await?;
    // 4. Every DynamoDB item of the user (the lease's profile item with them).
    let items = state.store.delete_user_items(id).await?;
    // 5. Every session (tokens still within their lifetime open nothing), then the identity. Last,
    //    so a deletion that stopped part way finishes when the user asks again.
    state.store.revoke_sessions(id, now_epoch()).await?;
    state.supabase.admin_delete_user(id.as_str()).await?;
    tracing::info!(user = %id, agents, items, "account deleted");
    Ok(())
}

/// Deletes what Letta and LiteLLM hold for the user (agents with their archives, the
/// documents' folder, the provider, keys, the LiteLLM user), agents first; returns how many agents there were.
pub(crate) async fn delete_resources(
    state: &AppState,
    id: &UserId,
    known_agent: Option<String>,
) -> Result<usize, AppError> {
    // 1. Letta agents (and their archives) before the provider: an agent whose provider is
    //    gone silently falls back to Letta's global key.
    //    Another deployment's agents of the same identity are not ours to delete.
    let mut agent_ids: Vec<String> = known_agent.into_iter().collect();
    for agent in provisioning::agents_of(state, id).await? {
        agent_ids.push(agent.id);
    }
    agent_ids.sort();
    agent_ids.dedup();
    for agent_id in &agent_ids {
        state
            .letta
            .delete_agent_and_archives(agent_id, &provisioning::agent_tag(id))
            .await?;
    }
    // 2. The user's documents (the folder is not the agent's: it outlives it otherwise).
    provisioning::delete_folders(state, id).await?;
    // 3. The BYOK provider holding the user's key.
    if let Some(provider) = state.letta.find_provider(&provider_name(id)).await? {
        state.letta.delete_provider(&provider.id).await?;
    }
    // 4. LiteLLM: the user's keys, then the user.
    if let Some(info) = state.litellm.user_info(id.as_str()).await? {
        let hashes: Vec<String> = info.keys.into_iter().map(|k| k.token).collect();
        state.litellm.delete_keys(&hashes).await?;
        state.litellm.delete_user(id.as_str()).await?;
    }
    Ok(agent_ids.len())
}
