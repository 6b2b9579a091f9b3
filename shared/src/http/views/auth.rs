//! What the auth function answers: sessions, the signed-in user, the account's profile.

use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    clients::{
        litellm::UserRecord,
        supabase::{Session, User as SupabaseUser},
    },
    domain::{Profile, ProvisioningState},
};

use super::{BudgetView, ProvisioningStateView, budget};

/// The session as clients see it.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The access token (a Supabase JWT): `Authorization: Bearer <access_token>`.
    access_token: String,
    /// The refresh token (single use): `POST /api/v1/auth/refresh`.
    refresh_token: String,
    /// `bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// When it expires (epoch seconds).
    expires_at: Option<u64>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        Self {
            access_token: s.access_token.expose().to_string(),
            refresh_token: s.refresh_token.expose().to_string(),
            token_type: s.token_type.clone(),
            expires_in: s.expires_in,
            expires_at: s.expires_at,
        }
    }
}

/// `{session}` after a refresh.
#[derive(Serialize, ToSchema)]
pub struct RefreshedView {
    /// The new session (the old refresh token is spent).
    session: SessionView,
}

/// A refreshed session.
pub fn refreshed(session: &Session) -> RefreshedView {
    RefreshedView {
        session: session.into(),
    }
}

/// The signed-in user.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    /// The Supabase user id (a UUID).
    id: String,
    /// The email.
    email: String,
    /// When the Supabase user was created.
    created_at: String,
}

/// `{id, email, created_at}` of the signed-in user.
pub fn user(p: &Profile) -> UserView {
    UserView {
        id: p.user_id.to_string(),
        email: p.email.clone(),
        created_at: p.user_created_at.clone(),
    }
}

/// The profile in the auth endpoints' answers (no key material, no internal ids beyond the
/// agent's).
#[derive(Serialize, ToSchema)]
pub struct AccountProfileView {
    /// Where provisioning stands.
    state: ProvisioningStateView,
    /// Whether the account is ready to chat.
    ready: bool,
    /// The name the agent knows the user by.
    display_name: Option<String>,
    /// The user's agent.
    agent_id: Option<String>,
    /// The model the agent uses.
    model: String,
    /// When the profile was made.
    created_at: String,
    /// The budget, when LiteLLM could say.
    budget: Option<BudgetView>,
    /// Why provisioning stopped (only while the account is not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    provisioning_error: Option<Option<String>>,
}

/// The profile of the auth endpoints, with the budget when LiteLLM could say.
pub fn account_profile(
    profile: &Profile,
    budget_record: Option<&UserRecord>,
) -> AccountProfileView {
    let ready = profile.state == ProvisioningState::Ready;
    AccountProfileView {
        state: profile.state.into(),
        ready,
        display_name: profile.display_name.clone(),
        agent_id: profile.letta_agent_id.clone(),
        model: profile.model.clone(),
        created_at: profile.created_at.clone(),
        budget: budget_record.map(budget),
        provisioning_error: (!ready).then(|| profile.provisioning_error.clone()),
    }
}

/// `{user, session, profile}` after registration or login.
#[derive(Serialize, ToSchema)]
pub struct SignedInView {
    /// Who signed in.
    user: UserView,
    /// The session.
    session: SessionView,
    /// The account.
    profile: AccountProfileView,
}

/// `{user, session, profile}` after registration or login.
pub fn signed_in(
    session: &Session,
    profile: &Profile,
    budget_record: Option<&UserRecord>,
) -> SignedInView {
    SignedInView {
        user: user(profile),
        session: session.into(),
        profile: account_profile(profile, budget_record),
    }
}

/// `{user, profile}` of `GET /auth/me`.
#[derive(Serialize, ToSchema)]
pub struct MeView {
    /// Who is signed in.
    user: UserView,
    /// The account.
    profile: AccountProfileView,
}

/// The signed-in user and the account.
pub fn me(profile: &Profile, budget_record: Option<&UserRecord>) -> MeView {
    MeView {
        user: user(profile),
        profile: account_profile(profile, budget_record),
    }
}

/// A user waiting for the email confirmation.
#[derive(Serialize, ToSchema)]
pub struct PendingUserView {
    /// The Supabase user id.
    id: String,
    /// The email.
    email: Option<String>,
}

/// The 202 answer when the Supabase project confirms emails.
#[derive(Serialize, ToSchema)]
pub struct ConfirmationRequiredView {
    /// `confirmation_required`.
    #[schema(example = "confirmation_required")]
    status: &'static str,
    /// What to do next.
    message: &'static str,
    /// The user made.
    user: PendingUserView,
}

/// The 202 answer when the Supabase project confirms emails.
pub fn confirmation_required(user: &SupabaseUser) -> ConfirmationRequiredView {
    ConfirmationRequiredView {
        status: "confirmation_required",
        message: "Check your email to confirm your address, then sign in.",
        user: PendingUserView {
            id: user.id.clone(),
            email: user.email.clone(),
        },
    }
}
