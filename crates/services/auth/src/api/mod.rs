//! HTTP routes and wire types; one file per aggregate: `ceremonies`
//! (sign-up, sign-in, recovery, logout, `me`), `passkeys`, `sessions`,
//! `recovery`, `keys`, `invites`. Here: the router, and what several of
//! them share (wire types of the ceremonies, the client address, cookies,
//! attempt limits). The access rule of every endpoint is in `access.rs`.

mod ceremonies;
mod invites;
mod keys;
mod passkeys;
mod people;
mod recovery;
mod sessions;

pub use invites::{INVITE_PREFIX, issue_invite};

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use daarion_access::{
    Credential, KeyLimits, Principal, Scope, enforce::API_KEY_PREFIX, vocab::roles::CityRole,
};
use daarion_cache::RateLimit;
use daarion_kernel::{
    ApiError,
    http::{Json, Page},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use crate::{
    AuthState,
    domain::{self, AuthError, Username},
    store::{self, User},
};

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match &error {
            AuthError::Invalid(m) => ApiError::validation(m.clone()),
            AuthError::Unauthorized(m) => ApiError::unauthorized(m.clone()),
            AuthError::Ceremony(_) => ApiError::unauthorized(error.to_string()),
            AuthError::Forbidden(m) => ApiError::forbidden(m.clone()),
            AuthError::NotFound(m) => ApiError::not_found(m.clone()),
            AuthError::Conflict(m) => ApiError::conflict(m.clone()),
            AuthError::RateLimited(retry) => ApiError::rate_limited(*retry),
            AuthError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            AuthError::Cache(daarion_cache::CacheError::Unavailable(_)) => {
                ApiError::unavailable(&error)
            }
            _ => ApiError::internal(&error),
        }
    }
}

pub fn router() -> OpenApiRouter<AuthState> {
    OpenApiRouter::new()
        .routes(routes!(ceremonies::register_begin))
        .routes(routes!(ceremonies::register_finish))
        .routes(routes!(ceremonies::login_begin))
        .routes(routes!(ceremonies::login_finish))
        .routes(routes!(ceremonies::recover_begin))
        .routes(routes!(ceremonies::recover_finish))
        .routes(routes!(ceremonies::logout))
        .routes(routes!(ceremonies::reauth_begin))
        .routes(routes!(ceremonies::reauth_finish))
        .routes(routes!(ceremonies::me, ceremonies::update_me))
        .routes(routes!(passkeys::list_passkeys))
        .routes(routes!(passkeys::passkey_begin))
        .routes(routes!(passkeys::passkey_finish))
        .routes(routes!(passkeys::rename_passkey, passkeys::delete_passkey))
        .routes(routes!(
            sessions::list_sessions,
            sessions::revoke_other_sessions
        ))
        .routes(routes!(sessions::revoke_session))
        .routes(routes!(
            recovery::recovery_status,
            recovery::new_recovery_codes
        ))
        .routes(routes!(keys::list_api_keys, keys::create_api_key))
        .routes(routes!(keys::revoke_api_key))
        .routes(routes!(invites::create_invite))
        .routes(routes!(people::people))
        .routes(routes!(people::person))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub city_role: CityRole,
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            city_role: u.city_role,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    pub user_agent: String,
    /// The session this request came with.
    pub current: bool,
}

/// Options for `navigator.credentials.create()` / `.get()`, and the handle
/// to send back with the result.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyStarted {
    pub ceremony_id: String,
    #[schema(value_type = Object)]
    pub options: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignedInView {
    pub user: UserView,
    pub session: SessionView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginRegistration {
    pub username: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// An invitation (`inv_…`): required when registration is closed; an
    /// admin invitation makes the new person a city admin.
    #[serde(default)]
    pub invite: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRegistration {
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create()`.
    #[schema(value_type = Object)]
    pub credential: RegisterPublicKeyCredential,
    /// A name for this passkey ("laptop", "phone").
    #[serde(default)]
    pub passkey_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginLogin {
    /// Omit for discoverable login (autofill / conditional UI).
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishLogin {
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get()`.
    #[schema(value_type = Object)]
    pub credential: PublicKeyCredential,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginRecovery {
    pub username: String,
    /// One of the person's unused recovery codes.
    pub code: String,
}

fn started(
    ceremony_id: String,
    options: &impl Serialize,
) -> Result<Json<CeremonyStarted>, ApiError> {
    let options = serde_json::to_value(options).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(CeremonyStarted {
        ceremony_id,
        options,
    }))
}

/// The client's address, for per-address sign-in limits.
struct ClientAddr(String);

impl axum::extract::FromRequestParts<AuthState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AuthState,
    ) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(
                || "unknown".to_owned(),
                |c| {
                    daarion_kernel::http::client_ip(c.0, &parts.headers, &state.trusted_proxies)
                        .to_string()
                },
            );
        Ok(Self(ip))
    }
}

/// Wrong recovery codes for one username are counted over this window.
const RECOVERY_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

fn recovery_failures_key(username: &str) -> String {
    format!("auth:recovery-failures:{username}")
}

impl AuthState {
    /// Sign-in ceremonies are limited per client. Not per username: anyone
    /// could then spend a person's attempts by merely starting ceremonies
    /// in their name (wrong recovery codes are counted per username).
    async fn limit_attempts(&self, ip: &str) -> Result<(), AuthError> {
        let per_minute = f64::from(self.settings.login_attempts_per_minute);
        let limit = RateLimit {
            per_second: per_minute / 60.0,
            burst: self.settings.login_attempts_per_minute,
        };
        let key = format!(
            "auth:attempts:ip:{}",
            daarion_kernel::http::client_bucket(ip)
        );
        let decision = self.cache.rate_limit(&key, limit).await?;
        if !decision.allowed {
            self.authenticator
                .audit_failure("sign-in rate limited", serde_json::json!({ "key": key }))
                .await;
            return Err(AuthError::RateLimited(
                decision.retry_after.max(Duration::from_secs(1)),
            ));
        }
        Ok(())
    }

    /// Whether `username` may try another recovery code: at most
    /// `login_attempts_per_minute` wrong ones per quarter hour, from
    /// anywhere (recovery codes are the guessable secret).
    async fn recovery_allowed(&self, username: &str) -> Result<(), AuthError> {
        let failures = self
            .cache
            .get(&recovery_failures_key(username))
            .await?
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        if failures >= i64::from(self.settings.login_attempts_per_minute) {
            self.authenticator
                .audit_failure(
                    "recovery paused",
                    serde_json::json!({ "username": username, "failures": failures }),
                )
                .await;
            return Err(AuthError::RateLimited(RECOVERY_FAILURE_WINDOW));
        }
        Ok(())
    }

    async fn recovery_failed(&self, username: &str) {
        let key = recovery_failures_key(username);
        if let Err(error) = self
            .cache
            .incr(&key, 1, Some(RECOVERY_FAILURE_WINDOW))
            .await
        {
            tracing::warn!(%error, "wrong recovery code not counted");
        }
    }

    /// Opens a session and answers with it and its cookie.
    async fn sign_in(
        &self,
        user: User,
        headers: &HeaderMap,
        status: StatusCode,
    ) -> Result<Response, ApiError> {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let absolute = Duration::from_secs(self.settings.session_absolute_secs);
        let (session, token) = store::create_session(&self.db, &user.id, agent, absolute).await?;
        let body = SignedInView {
            user: user.into(),
            session: session_view(session, None),
        };
        let mut response = (status, Json(body)).into_response();
        self.set_session_cookie(&mut response, &token, absolute.as_secs());
        Ok(response)
    }

    /// The session cookie: HttpOnly, Secure, SameSite=Lax; `max_age` 0 clears it.
    fn set_session_cookie(&self, response: &mut Response, token: &str, max_age: u64) {
        let name = self.settings.session_cookie();
        let cookie =
            format!("{name}={token}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age}");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }

    /// Runs a ceremony step; a refusal is audited with the client's address.
    async fn audited<T>(
        &self,
        what: &str,
        ip: &str,
        step: impl std::future::Future<Output = Result<T, AuthError>>,
    ) -> Result<T, ApiError> {
        match step.await {
            Ok(value) => Ok(value),
            Err(error) => Err(self.failed(what, ip, error).await),
        }
    }

    async fn failed(&self, what: &str, ip: &str, error: AuthError) -> ApiError {
        if matches!(error, AuthError::Ceremony(_) | AuthError::Unauthorized(_)) {
            self.authenticator
                .audit_failure(
                    what,
                    serde_json::json!({ "client": ip, "reason": error.to_string() }),
                )
                .await;
        }
        error.into()
    }
}

fn session_view(s: store::Session, current: Option<&str>) -> SessionView {
    SessionView {
        current: current == Some(s.id.as_str()),
        id: s.id,
        created_at: s.created_at,
        last_seen_at: s.last_seen_at,
        expires_at: s.expires_at,
        user_agent: s.user_agent,
    }
}

fn current_session(principal: &Principal) -> Option<&str> {
    match &principal.credential {
        Credential::Session { id } => Some(id),
        _ => None,
    }
}

/// Refuses (403 `reauthentication_required`) unless the caller's session
/// proved a passkey within `auth.reauth_secs`.
async fn recent_passkey(state: &AuthState, principal: &Principal) -> Result<(), ApiError> {
    let Some(id) = current_session(principal) else {
        return Err(ApiError::forbidden("only a person's session may do this"));
    };
    let proved = store::session_by_id(&state.db, id)
        .await?
        .and_then(|s| daarion_store::parse_time(&s.authenticated_at));
    let window =
        chrono::Duration::seconds(i64::try_from(state.settings.reauth_secs).unwrap_or(i64::MAX));
    match proved {
        Some(at) if chrono::Utc::now() - at <= window => Ok(()),
        _ => Err(ApiError::reauthentication_required(
            "prove your passkey again first: POST /api/auth/reauth/begin and /reauth/finish",
        )),
    }
}

async fn account(state: &AuthState, principal: &Principal) -> Result<User, ApiError> {
    store::user_by_id(&state.db, &principal.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("account no longer exists"))
}

fn passkey_name(raw: Option<&str>) -> Result<String, AuthError> {
    domain::label(raw.unwrap_or("passkey"), "passkey name")
}
