//! Users, sessions and refresh tokens, kept in memory and saved to a JSON file when one is given.

use std::{collections::HashMap, num::NonZeroU32, path::PathBuf};

use aws_lc_rs::{
    pbkdf2,
    rand::{SecureRandom, SystemRandom},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_salt: String,
    pub password_hash: String,
    pub user_metadata: Value,
    pub created_at: String,
    pub updated_at: String,
    pub email_confirmed_at: Option<String>,
    pub confirmation_sent_at: Option<String>,
    pub last_sign_in_at: Option<String>,
    pub identity_id: String,
    /// Signed in anonymously: no email, no identity, never confirmed.
    #[serde(default)]
    pub is_anonymous: bool,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct RefreshToken {
    pub user_id: String,
    pub session_id: String,
    pub revoked: bool,
}

#[derive(Default, Serialize, Deserialize)]
pub struct Data {
    pub users: HashMap<String, User>,
    /// Session id → user id.
    pub sessions: HashMap<String, String>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
}

pub struct Db {
    file: Option<PathBuf>,
    pub data: Data,
}

const ITERATIONS: NonZeroU32 = NonZeroU32::new(10_000).unwrap();

pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system randomness");
    URL_SAFE_NO_PAD.encode(buf)
}

fn hash_password(password: &str, salt: &str) -> String {
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        ITERATIONS,
        salt.as_bytes(),
        password.as_bytes(),
        &mut out,
    );
    URL_SAFE_NO_PAD.encode(out)
}

impl User {
    pub fn new(email: &str, password: &str, user_metadata: Value, confirmed: bool) -> Self {
        let salt = random_token(16);
        let stamp = now();
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            email: email.to_string(),
            password_hash: hash_password(password, &salt),
            password_salt: salt,
            user_metadata,
            created_at: stamp.clone(),
            updated_at: stamp.clone(),
            email_confirmed_at: confirmed.then(|| stamp.clone()),
            confirmation_sent_at: (!confirmed).then(|| stamp.clone()),
            last_sign_in_at: None,
            identity_id: uuid::Uuid::new_v4().to_string(),
            is_anonymous: false,
        }
    }

    /// An anonymous user (`signInAnonymously`): no email or password, never confirmed.
    pub fn anonymous(user_metadata: Value) -> Self {
        let mut user = Self::new("", &random_token(16), user_metadata, false);
        user.confirmation_sent_at = None;
        user.is_anonymous = true;
        user
    }

    /// `app_metadata`: the provider the user signed up with.
    pub fn app_metadata(&self) -> Value {
        if self.is_anonymous {
            json!({})
        } else {
            json!({"provider": "email", "providers": ["email"]})
        }
    }

    pub fn password_matches(&self, password: &str) -> bool {
        let expected = hash_password(password, &self.password_salt);
        // Constant-time comparison.
        expected.len() == self.password_hash.len()
            && expected
                .bytes()
                .zip(self.password_hash.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    pub fn set_password(&mut self, password: &str) {
        self.password_salt = random_token(16);
        self.password_hash = hash_password(password, &self.password_salt);
    }

    /// GoTrue's `models.User` JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": self.email,
            "phone": "",
            "app_metadata": self.app_metadata(),
            "user_metadata": self.user_metadata,
            "identities": [{
                "identity_id": self.identity_id,
                "id": self.id,
                "user_id": self.id,
                "identity_data": {
                    "email": self.email, "email_verified": self.email_confirmed_at.is_some(),
                    "phone_verified": false, "sub": self.id,
                },
                "provider": "email",
                "last_sign_in_at": self.created_at,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
                "email": self.email,
            }],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "is_anonymous": self.is_anonymous,
        });
        let obj = v.as_object_mut().expect("object");
        if self.is_anonymous {
            obj.insert("identities".into(), json!([]));
        }
        if let Some(t) = &self.email_confirmed_at {
            obj.insert("email_confirmed_at".into(), json!(t));
            obj.insert("confirmed_at".into(), json!(t));
        }
        if let Some(t) = &self.confirmation_sent_at {
            obj.insert("confirmation_sent_at".into(), json!(t));
        }
        if let Some(t) = &self.last_sign_in_at {
            obj.insert("last_sign_in_at".into(), json!(t));
        }
        v
    }
}

impl Db {
    pub fn open(file: Option<PathBuf>) -> Result<Self, String> {
        let data = match &file {
            Some(f) if f.exists() => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
                serde_json::from_str(&text)
                    .map_err(|e| format!("cannot parse {}: {e}", f.display()))?
            }
            _ => Data::default(),
        };
        Ok(Self { file, data })
    }

    /// Writes the data file atomically (temp file + rename).
    pub fn save(&self) {
        let Some(file) = &self.file else { return };
        let tmp = file.with_extension("tmp");
        let text = serde_json::to_string(&self.data).expect("serialisable data");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, file)) {
            eprintln!("local-auth: cannot save {}: {e}", file.display());
        }
    }

    pub fn by_email(&self, email: &str) -> Option<&User> {
        self.data
            .users
            .values()
            .find(|u| !u.is_anonymous && u.email == email)
    }

    /// Starts a session: returns (session id, refresh token).
    pub fn new_session(&mut self, user_id: &str) -> (String, String) {
        let session_id = uuid::Uuid::new_v4().to_string();
        self.data
            .sessions
            .insert(session_id.clone(), user_id.to_string());
        let refresh = self.new_refresh_token(user_id, &session_id);
        (session_id, refresh)
    }

    pub fn new_refresh_token(&mut self, user_id: &str, session_id: &str) -> String {
        let token = random_token(16);
        self.data.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                user_id: user_id.to_string(),
                session_id: session_id.to_string(),
                revoked: false,
            },
        );
        token
    }

    pub fn end_sessions(&mut self, user_id: &str, only: Option<&str>, except: Option<&str>) {
        let doomed: Vec<String> = self
            .data
            .sessions
            .iter()
            .filter(|(sid, uid)| {
                *uid == user_id
                    && only.is_none_or(|o| o == sid.as_str())
                    && except.is_none_or(|e| e != sid.as_str())
            })
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in &doomed {
            self.data.sessions.remove(sid);
        }
        self.data
            .refresh_tokens
            .retain(|_, t| !doomed.contains(&t.session_id));
    }

    pub fn delete_user(&mut self, user_id: &str) -> bool {
        let existed = self.data.users.remove(user_id).is_some();
        self.end_sessions(user_id, None, None);
        existed
    }
}
