//! HTTP routes, wire types and the access rule of every endpoint.

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use daarion_access::{
    Access::{Check, Public, SignedIn},
    Action, Credential, KeyLimits, Principal, Rule, Scope, Target,
    enforce::{API_KEY_PREFIX, SESSION_COOKIE},
    vocab::roles::CityRole,
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

const fn rule(method: Method, path: &'static str, access: daarion_access::Access) -> Rule {
    Rule::new(method, path, access)
}

const OWN_READ: daarion_access::Access = Check(Action::Read, Target::Myself);
const OWN_MANAGE: daarion_access::Access = Check(Action::Manage, Target::Myself);

/// Who may call what. Ceremonies are public (they are how one signs in);
/// everything about an account is its owner's (`account.cedar`).
pub static RULES: &[Rule] = &[
    rule(Method::POST, "/api/auth/register/begin", Public),
    rule(Method::POST, "/api/auth/register/finish", Public),
    rule(Method::POST, "/api/auth/login/begin", Public),
    rule(Method::POST, "/api/auth/login/finish", Public),
    rule(Method::POST, "/api/auth/recover/begin", Public),
    rule(Method::POST, "/api/auth/recover/finish", Public),
    rule(Method::POST, "/api/auth/logout", SignedIn),
    rule(Method::GET, "/api/auth/me", SignedIn),
    rule(Method::GET, "/api/auth/passkeys", OWN_READ),
    rule(Method::POST, "/api/auth/passkeys/begin", OWN_MANAGE),
    rule(Method::POST, "/api/auth/passkeys/finish", OWN_MANAGE),
    rule(Method::PATCH, "/api/auth/passkeys/{id}", OWN_MANAGE),
    rule(Method::DELETE, "/api/auth/passkeys/{id}", OWN_MANAGE),
    rule(Method::GET, "/api/auth/sessions", OWN_READ),
    rule(Method::DELETE, "/api/auth/sessions", OWN_MANAGE),
    rule(Method::DELETE, "/api/auth/sessions/{id}", OWN_MANAGE),
    rule(Method::GET, "/api/auth/recovery-codes", OWN_READ),
    rule(Method::POST, "/api/auth/recovery-codes", OWN_MANAGE),
    rule(Method::GET, "/api/auth/api-keys", OWN_READ),
    rule(Method::POST, "/api/auth/api-keys", OWN_MANAGE),
    rule(Method::DELETE, "/api/auth/api-keys/{id}", OWN_MANAGE),
    rule(
        Method::POST,
        "/api/auth/invites",
        Check(Action::Invite, Target::City),
    ),
];

pub fn router() -> OpenApiRouter<AuthState> {
    OpenApiRouter::new()
        .routes(routes!(register_begin))
        .routes(routes!(register_finish))
        .routes(routes!(login_begin))
        .routes(routes!(login_finish))
        .routes(routes!(recover_begin))
        .routes(routes!(recover_finish))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_passkeys))
        .routes(routes!(passkey_begin))
        .routes(routes!(passkey_finish))
        .routes(routes!(rename_passkey, delete_passkey))
        .routes(routes!(list_sessions, revoke_other_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(recovery_status, new_recovery_codes))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
        .routes(routes!(create_invite))
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

impl AuthState {
    /// Sign-in attempts are limited per client address and per username.
    async fn limit_attempts(&self, ip: &str, username: Option<&str>) -> Result<(), AuthError> {
        let per_minute = f64::from(self.settings.login_attempts_per_minute);
        let limit = RateLimit {
            per_second: per_minute / 60.0,
            burst: self.settings.login_attempts_per_minute,
        };
        let mut keys = vec![format!("auth:attempts:ip:{ip}")];
        if let Some(name) = username {
            keys.push(format!("auth:attempts:user:{name}"));
        }
        for key in keys {
            let decision = self.cache.rate_limit(&key, limit).await?;
            if !decision.allowed {
                self.authenticator
                    .audit_failure("sign-in rate limited", serde_json::json!({ "key": key }))
                    .await;
                return Err(AuthError::RateLimited(
                    decision.retry_after.max(Duration::from_secs(1)),
                ));
            }
        }
        Ok(())
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
        set_session_cookie(&mut response, &token, absolute.as_secs());
        Ok(response)
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

/// The session cookie: HttpOnly, Secure, SameSite=Lax; `max_age` 0 clears it.
fn set_session_cookie(response: &mut Response, token: &str, max_age: u64) {
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
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

async fn account(state: &AuthState, principal: &Principal) -> Result<User, ApiError> {
    store::user_by_id(&state.db, &principal.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("account no longer exists"))
}

fn passkey_name(raw: Option<&str>) -> Result<String, AuthError> {
    domain::label(raw.unwrap_or("passkey"), "passkey name")
}

/// Starts registering a new person with a passkey. The first person to
/// register becomes the city admin.
#[utoipa::path(post, path = "/register/begin", tag = "auth", request_body = BeginRegistration,
    responses((status = 200, body = CeremonyStarted), (status = 409, description = "username taken"),
        (status = 401, description = "Invitation unknown, used or expired"),
        (status = 403, description = "Registration is by invitation only")))]
async fn register_begin(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    Json(body): Json<BeginRegistration>,
) -> Result<Json<CeremonyStarted>, ApiError> {
    let username = Username::parse(&body.username)?;
    let display = domain::label(
        body.display_name.as_deref().unwrap_or(username.as_str()),
        "display name",
    )?;
    state.limit_attempts(&ip, None).await?;
    let (id, options) = state
        .begin_registration(&username, &display, body.invite.as_deref())
        .await?;
    started(id, &options)
}

/// Finishes registration: creates the account, its first passkey and a session.
#[utoipa::path(post, path = "/register/finish", tag = "auth", request_body = FinishRegistration,
    responses((status = 201, body = SignedInView),
        (status = 401, description = "Ceremony unknown or expired, credential rejected, or invitation spent"),
        (status = 409, description = "username taken")))]
async fn register_finish(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    Json(body): Json<FinishRegistration>,
) -> Result<Response, ApiError> {
    let name = passkey_name(body.passkey_name.as_deref())?;
    let user = state
        .audited(
            "registration failed",
            &ip,
            state.finish_registration(&body.ceremony_id, &body.credential, &name),
        )
        .await?;
    metrics::counter!("auth_registrations_total").increment(1);
    state.sign_in(user, &headers, StatusCode::CREATED).await
}

/// Starts signing in: with a username, that person's passkeys are offered;
/// without, the browser offers any passkey for this site (autofill).
#[utoipa::path(post, path = "/login/begin", tag = "auth", request_body = BeginLogin,
    responses((status = 200, body = CeremonyStarted),
        (status = 401, description = "No passkey is registered for that username")))]
async fn login_begin(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    Json(body): Json<BeginLogin>,
) -> Result<Json<CeremonyStarted>, ApiError> {
    let username = body.username.as_deref().map(Username::parse).transpose()?;
    state
        .limit_attempts(&ip, username.as_ref().map(Username::as_str))
        .await?;
    let (id, options) = state
        .audited("sign-in refused", &ip, state.begin_login(username.as_ref()))
        .await?;
    started(id, &options)
}

/// Finishes signing in and opens a session (cookie).
#[utoipa::path(post, path = "/login/finish", tag = "auth", request_body = FinishLogin,
    responses((status = 200, body = SignedInView), (status = 401, description = "assertion rejected")))]
async fn login_finish(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    Json(body): Json<FinishLogin>,
) -> Result<Response, ApiError> {
    state.limit_attempts(&ip, None).await?;
    let user = state
        .audited(
            "sign-in failed",
            &ip,
            state.finish_login(&body.ceremony_id, &body.credential),
        )
        .await?;
    metrics::counter!("auth_logins_total").increment(1);
    state.sign_in(user, &headers, StatusCode::OK).await
}

/// Spends a recovery code and starts registering a new passkey, for a
/// person who lost every device.
#[utoipa::path(post, path = "/recover/begin", tag = "auth", request_body = BeginRecovery,
    responses((status = 200, body = CeremonyStarted),
        (status = 401, description = "Unknown username or recovery code")))]
async fn recover_begin(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    Json(body): Json<BeginRecovery>,
) -> Result<Json<CeremonyStarted>, ApiError> {
    let username = Username::parse(&body.username)?;
    state.limit_attempts(&ip, Some(username.as_str())).await?;
    let user = state
        .audited(
            "recovery refused",
            &ip,
            state.spend_recovery_code(&username, &body.code),
        )
        .await?;
    let (id, options) = state.begin_add_passkey(&user).await?;
    started(id, &options)
}

/// Finishes recovery: the new passkey is added and a session opened.
#[utoipa::path(post, path = "/recover/finish", tag = "auth", request_body = FinishRegistration,
    responses((status = 201, body = SignedInView),
        (status = 401, description = "Ceremony unknown or expired, or credential rejected")))]
async fn recover_finish(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    Json(body): Json<FinishRegistration>,
) -> Result<Response, ApiError> {
    let name = passkey_name(body.passkey_name.as_deref())?;
    let (user_id, _) = state
        .audited(
            "recovery failed",
            &ip,
            state.finish_add_passkey(&body.ceremony_id, &body.credential, &name, None),
        )
        .await?;
    let user = store::user_by_id(&state.db, &user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("account no longer exists"))?;
    state.sign_in(user, &headers, StatusCode::CREATED).await
}

/// Ends this session.
#[utoipa::path(post, path = "/logout", tag = "auth", responses((status = 204)))]
async fn logout(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    if let Some(id) = current_session(&principal) {
        let hashes = store::revoke_sessions(&state.db, &principal.id, Some(id), None).await?;
        state.authenticator.revoked(&hashes).await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_session_cookie(&mut response, "", 0);
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// Absent for agents and services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
    pub principal: Principal,
}

/// Who am I: the principal this request authenticates as.
#[utoipa::path(get, path = "/me", tag = "auth", responses((status = 200, body = MeView)))]
async fn me(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<MeView>, ApiError> {
    let user = match principal.kind {
        daarion_access::PrincipalKind::User => store::user_by_id(&state.db, &principal.id)
            .await?
            .map(UserView::from),
        _ => None,
    };
    Ok(Json(MeView { user, principal }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<store::StoredPasskey> for PasskeyView {
    fn from(p: store::StoredPasskey) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// My passkeys.
#[utoipa::path(get, path = "/passkeys", tag = "auth", responses((status = 200, body = Page<PasskeyView>)))]
async fn list_passkeys(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<Page<PasskeyView>>, ApiError> {
    let items = store::passkeys_of(&state.db, &principal.id)
        .await?
        .into_iter()
        .map(PasskeyView::from)
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Starts adding another passkey to my account.
#[utoipa::path(post, path = "/passkeys/begin", tag = "auth", responses((status = 200, body = CeremonyStarted)))]
async fn passkey_begin(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<CeremonyStarted>, ApiError> {
    let user = account(&state, &principal).await?;
    let (id, options) = state.begin_add_passkey(&user).await?;
    started(id, &options)
}

/// Finishes adding a passkey.
#[utoipa::path(post, path = "/passkeys/finish", tag = "auth", request_body = FinishRegistration,
    responses((status = 201, body = PasskeyView)))]
async fn passkey_finish(
    State(state): State<AuthState>,
    principal: Principal,
    Json(body): Json<FinishRegistration>,
) -> Result<Response, ApiError> {
    let name = passkey_name(body.passkey_name.as_deref())?;
    let (_, passkey_id) = state
        .finish_add_passkey(
            &body.ceremony_id,
            &body.credential,
            &name,
            Some(&principal.id),
        )
        .await?;
    let view = store::passkey_by_id(&state.db, &passkey_id)
        .await?
        .map(PasskeyView::from)
        .ok_or_else(|| ApiError::not_found("passkey not found after adding"))?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenamePasskey {
    pub name: String,
}

/// Renames one of my passkeys.
#[utoipa::path(patch, path = "/passkeys/{id}", tag = "auth", request_body = RenamePasskey, responses((status = 204)))]
async fn rename_passkey(
    State(state): State<AuthState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<RenamePasskey>,
) -> Result<StatusCode, ApiError> {
    let name = domain::label(&body.name, "passkey name")?;
    store::rename_passkey(&state.db, &principal.id, &id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes one of my passkeys (never the last one).
#[utoipa::path(delete, path = "/passkeys/{id}", tag = "auth", responses((status = 204), (status = 409, description = "last passkey")))]
async fn delete_passkey(
    State(state): State<AuthState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    store::delete_passkey(&state.db, &principal.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// My open sessions.
#[utoipa::path(get, path = "/sessions", tag = "auth", responses((status = 200, body = Page<SessionView>)))]
async fn list_sessions(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<Page<SessionView>>, ApiError> {
    let current = current_session(&principal);
    let items = store::sessions_of(&state.db, &principal.id)
        .await?
        .into_iter()
        .map(|s| session_view(s, current))
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: usize,
}

/// Signs out everywhere else: every session but this one.
#[utoipa::path(delete, path = "/sessions", tag = "auth", responses((status = 200, body = Revoked)))]
async fn revoke_other_sessions(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<Revoked>, ApiError> {
    let hashes =
        store::revoke_sessions(&state.db, &principal.id, None, current_session(&principal)).await?;
    state.authenticator.revoked(&hashes).await;
    Ok(Json(Revoked {
        revoked: hashes.len(),
    }))
}

/// Revokes one of my sessions.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "auth", responses((status = 204), (status = 404)))]
async fn revoke_session(
    State(state): State<AuthState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let hashes = store::revoke_sessions(&state.db, &principal.id, Some(&id), None).await?;
    if hashes.is_empty() {
        return Err(ApiError::not_found("no such session"));
    }
    state.authenticator.revoked(&hashes).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryStatus {
    pub remaining: i64,
}

/// How many unused recovery codes I have.
#[utoipa::path(get, path = "/recovery-codes", tag = "auth", responses((status = 200, body = RecoveryStatus)))]
async fn recovery_status(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<RecoveryStatus>, ApiError> {
    let remaining = store::unused_recovery_codes(&state.db, &principal.id).await?;
    Ok(Json(RecoveryStatus { remaining }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Shown once: store them somewhere safe. Each works once.
    pub codes: Vec<String>,
}

/// Replaces my recovery codes with ten new ones.
#[utoipa::path(post, path = "/recovery-codes", tag = "auth", responses((status = 201, body = RecoveryCodes)))]
async fn new_recovery_codes(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    let codes: Vec<String> = (0..10).map(|_| domain::new_recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| domain::hash_secret(c)).collect();
    store::replace_recovery_codes(&state.db, &principal.id, &hashes).await?;
    Ok((StatusCode::CREATED, Json(RecoveryCodes { codes })).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// Set when the key authenticates as one of my agents.
    pub agent: Option<String>,
    pub scopes: Vec<String>,
    /// Model aliases and per-minute budgets for the LLM proxy.
    pub limits: KeyLimits,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

fn api_key_view(k: store::ApiKey) -> ApiKeyView {
    ApiKeyView {
        scopes: k.scopes.into_iter().map(String::from).collect(),
        limits: k.limits,
        id: k.id,
        name: k.name,
        agent: k.agent_id,
        created_at: k.created_at,
        expires_at: k.expires_at,
        last_used_at: k.last_used_at,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    /// `*`, `<action>`, `<service>:*` or `<service>:<action>`; default `["*"]`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<Vec<Scope>>,
    /// Days until the key stops working (1-3650); default: never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// Bind the key to an agent identity of mine (claimed on first use).
    #[serde(default)]
    pub agent: Option<String>,
    /// Model aliases the key may call through the LLM proxy, and its own
    /// requests and tokens per minute; default: any model, no key limit.
    #[serde(default)]
    pub limits: KeyLimits,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The secret, shown this once: send it as `Authorization: Bearer <key>`.
    pub key: String,
    #[serde(flatten)]
    pub info: ApiKeyView,
}

fn validate_limits(limits: &KeyLimits) -> Result<(), ApiError> {
    if let Some(models) = &limits.models {
        let well_formed = |m: &String| {
            (1..=128).contains(&m.len())
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
        };
        if models.len() > 64 || !models.iter().all(well_formed) {
            return Err(ApiError::validation(
                "limits.models lists at most 64 model aliases of letters, digits, '-', '_', '.', ':', '/'",
            ));
        }
    }
    if limits.requests_per_minute == Some(0) || limits.tokens_per_minute == Some(0) {
        return Err(ApiError::validation(
            "per-minute limits are positive; leave them out for no limit",
        ));
    }
    Ok(())
}

/// My API keys (the secrets are never shown again).
#[utoipa::path(get, path = "/api-keys", tag = "auth", responses((status = 200, body = Page<ApiKeyView>)))]
async fn list_api_keys(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<Page<ApiKeyView>>, ApiError> {
    let items = store::api_keys_of(&state.db, &principal.id)
        .await?
        .into_iter()
        .map(api_key_view)
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// Creates an API key for scripts or an agent.
#[utoipa::path(post, path = "/api-keys", tag = "auth", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey)))]
async fn create_api_key(
    State(state): State<AuthState>,
    principal: Principal,
    Json(body): Json<CreateApiKey>,
) -> Result<Response, ApiError> {
    if principal.kind != daarion_access::PrincipalKind::User || principal.scopes.is_some() {
        return Err(ApiError::forbidden(
            "API keys are created by a person signed in with a passkey",
        ));
    }
    let name = domain::label(&body.name, "key name")?;
    let scopes = body.scopes.unwrap_or_else(|| {
        vec![Scope::try_from("*".to_owned()).unwrap_or_else(|_| unreachable!())]
    });
    if scopes.is_empty() || scopes.len() > 32 {
        return Err(ApiError::validation("scopes must list 1 to 32 scopes"));
    }
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(daarion_store::format_time(
            chrono::Utc::now() + chrono::Duration::days(i64::from(days)),
        )),
        Some(_) => {
            return Err(ApiError::validation(
                "expires_in_days must be between 1 and 3650",
            ));
        }
    };
    validate_limits(&body.limits)?;
    let agent = body
        .agent
        .as_deref()
        .map(|a| Username::parse(a).map(|u| u.as_str().to_owned()))
        .transpose()
        .map_err(|_| {
            ApiError::validation(
                "agent must be an agent id: 3-32 lowercase letters, digits, '-', '_', '.'",
            )
        })?;
    let key = store::ApiKey {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        user_id: principal.id.clone(),
        agent_id: agent,
        name,
        scopes,
        limits: body.limits,
        created_at: daarion_store::now(),
        expires_at,
        last_used_at: None,
    };
    let secret = format!("{API_KEY_PREFIX}{}", domain::new_secret());
    store::create_api_key(&state.db, &key, &domain::hash_secret(&secret)).await?;
    let body = CreatedApiKey {
        key: secret,
        info: api_key_view(key),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revokes one of my API keys, at once, on every replica.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "auth", responses((status = 204), (status = 404)))]
async fn revoke_api_key(
    State(state): State<AuthState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let hash = store::revoke_api_key(&state.db, &principal.id, &id).await?;
    state.authenticator.revoked(&[hash]).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Invitations start with this, so a pasted token says what it is.
pub const INVITE_PREFIX: &str = "inv_";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    /// Default `citizen`.
    #[serde(default)]
    pub role: Option<CityRole>,
    /// Hours the invitation stays open, 1 to 720 (default 72).
    #[serde(default)]
    pub expires_in_hours: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvite {
    /// The one-time token, shown once: the invitee sends it as `invite`
    /// when registering.
    pub invite: String,
    pub role: CityRole,
    pub expires_at: String,
}

/// Creates a one-time invitation to register (city admins).
#[utoipa::path(post, path = "/invites", tag = "auth", request_body = CreateInvite,
    responses((status = 201, body = CreatedInvite), (status = 403)))]
async fn create_invite(
    State(state): State<AuthState>,
    principal: Principal,
    Json(body): Json<CreateInvite>,
) -> Result<Response, ApiError> {
    let hours = body.expires_in_hours.unwrap_or(72);
    if !(1..=720).contains(&hours) {
        return Err(ApiError::validation(
            "expires_in_hours must be between 1 and 720",
        ));
    }
    let role = body.role.unwrap_or(CityRole::Citizen);
    let (invite, expires_at) = issue_invite(
        &state.db,
        role,
        &principal.name(),
        Duration::from_secs(u64::from(hours) * 3600),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvite {
            invite,
            role,
            expires_at,
        }),
    )
        .into_response())
}

/// Mints an invitation; returns the token and when it expires. Also used
/// by `daarion admin invite`.
pub async fn issue_invite(
    db: &daarion_store::Db,
    role: CityRole,
    created_by: &str,
    valid_for: Duration,
) -> Result<(String, String), AuthError> {
    let token = format!("{INVITE_PREFIX}{}", domain::new_secret());
    let expires_at = store::create_invite(
        db,
        &domain::hash_secret(&token),
        role,
        created_by,
        valid_for,
    )
    .await?;
    Ok((token, expires_at))
}
