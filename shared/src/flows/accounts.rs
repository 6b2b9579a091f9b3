//! Account flows: register, login, refresh, logout, me, delete.

use serde_json::{Value, json};

use crate::{
    app::{
        clock::now_epoch,
        dependency::{DependencyError, Service},
        error::AppError,
    },
    clients::{
        litellm::UserRecord,
        supabase::{self, Session, SignUp, User as SupabaseUser},
    },
    domain::{DisplayName, Email, Password, Profile, ProvisioningState, SignedInUser, UserId},
    flows::provisioning::{self, agent_name, agent_tag, provider_name},
    state::AppState,
};

/// A token younger than this counts as a fresh sign-in for account deletion.
pub const FRESH_TOKEN_SECS: i64 = 300;

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
            code: "email_taken",
            message: "an account with this email already exists".into(),
        },
        Some("weak_password") => AppError::validation("password", "is too weak"),
        Some("validation_failed") | Some("email_address_invalid") => {
            AppError::validation(field_hint, "was rejected by the identity provider")
        }
        Some("invalid_credentials") => AppError::InvalidCredentials,
        Some("email_not_confirmed") => AppError::Forbidden {
            code: "email_not_confirmed",
            message: "confirm your email address first (see the message we sent)".into(),
        },
        _ => err.into(),
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

/// The profile for a Supabase user, created when missing.
async fn profile_for(
    state: &AppState,
    user: &SupabaseUser,
    display_name: Option<String>,
) -> Result<Profile, AppError> {
    let id = user_id_of(user)?;
    if let Some(p) = state.store.get_profile(&id).await? {
        return Ok(p);
    }
    let display_name = display_name.or_else(|| {
        user.user_metadata
            .get("display_name")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let profile = Profile::new(
        id,
        user.email.as_deref().unwrap_or_default(),
        display_name,
        &state.config.letta.model,
        user.created_at.as_deref().unwrap_or_default(),
    );
    Ok(state.store.create_profile(&profile).await?)
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
    let session = state
        .supabase
        .sign_in_with_password(&email.trim().to_lowercase(), password)
        .await
        .map_err(|e| map_supabase_error(e, "email"))?;
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
    match state.supabase.sign_out(user.token.expose()).await {
        Ok(()) => Ok(()),
        // The session is already gone: logging out again is not an error.
        Err(e)
            if matches!(
                supabase::error_code(&e).as_deref(),
                Some("session_not_found") | Some("user_not_found")
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The signed-in user's profile, provisioning resumed when unfinished.
pub async fn me(
    state: &AppState,
    user: &SignedInUser,
) -> Result<(Profile, Option<UserRecord>), AppError> {
    let profile = provisioning::ensure_ready(state, &user.id)
        .await?
        .ok_or_else(|| AppError::NotFound("no account for this user".into()))?;
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
    delete_everything(state, &user.id).await
}

/// The password (checked at Supabase) or a token issued in the last `FRESH_TOKEN_SECS`.
async fn confirm_identity(
    state: &AppState,
    user: &SignedInUser,
    password: Option<&str>,
) -> Result<(), AppError> {
    match password {
        Some(password) => {
            // The profile's email is authoritative; the token's claim is the fallback.
            let email = match state.store.get_profile(&user.id).await? {
                Some(p) => p.email,
                None => user.email.clone().unwrap_or_default(),
            };
            state
                .supabase
                .sign_in_with_password(&email, password)
                .await
                .map_err(|e| map_supabase_error(e, "password"))?;
        }
        None => {
            let fresh = user
                .issued_at
                .is_some_and(|iat| now_epoch() - iat as i64 <= FRESH_TOKEN_SECS);
            if !fresh {
                return Err(AppError::Forbidden {
                    code: "reauthentication_required",
                    message: format!(
                        "confirm with your password, or sign in again: a token from the last {} minutes is needed",
                        FRESH_TOKEN_SECS / 60
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Deletes the user in all four systems, in an order that never leaves an agent without its
/// provider.
async fn delete_everything(state: &AppState, id: &UserId) -> Result<(), AppError> {
    let profile = state.store.get_profile(id).await?;

    // 1. Letta agents (and their archives) before the provider: an agent whose provider is
    //    gone silently falls back to Letta's global key.
    let mut agent_ids: Vec<String> = profile
        .as_ref()
        .and_then(|p| p.letta_agent_id.clone())
        .into_iter()
        .collect();
    for agent in state.letta.find_agents_by_name(&agent_name(id)).await? {
        agent_ids.push(agent.id);
    }
    for agent in state.letta.find_agents_by_tag(&agent_tag(id)).await? {
        agent_ids.push(agent.id);
    }
    agent_ids.sort();
    agent_ids.dedup();
    for agent_id in &agent_ids {
        state.letta.delete_agent_and_archives(agent_id).await?;
    }
    // 2. The BYOK provider holding the user's key.
    if let Some(provider) = state.letta.find_provider(&provider_name(id)).await? {
        state.letta.delete_provider(&provider.id).await?;
    }
    // 3. LiteLLM: the user's keys, then the user.
    if let Some(info) = state.litellm.user_info(id.as_str()).await? {
        let hashes: Vec<String> = info.keys.into_iter().map(|k| k.token).collect();
        state.litellm.delete_keys(&hashes).await?;
        state.litellm.delete_user(id.as_str()).await?;
    }
    // 4. Every DynamoDB item of the user.
    let items = state.store.delete_user_items(id).await?;
    // 5. The identity itself.
    state.supabase.admin_delete_user(id.as_str()).await?;
    tracing::info!(user = %id, agents = agent_ids.len(), items, "account deleted");
    Ok(())
}
