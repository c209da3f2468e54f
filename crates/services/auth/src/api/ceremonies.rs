//! Signing up, in and out: the passkey ceremonies (registration, sign-in,
//! recovery), logout and `me`.

use super::*;

/// Starts registering a new person with a passkey. The first person to
/// register becomes the city admin.
#[utoipa::path(post, path = "/register/begin", tag = "auth", request_body = BeginRegistration,
    responses((status = 200, body = CeremonyStarted), (status = 409, description = "username taken"),
        (status = 401, description = "Invitation unknown, used or expired"),
        (status = 403, description = "Registration is by invitation only")))]
pub(super) async fn register_begin(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    Json(body): Json<BeginRegistration>,
) -> Result<Json<CeremonyStarted>, ApiError> {
    let username = Username::parse(&body.username)?;
    let display = domain::label(
        body.display_name.as_deref().unwrap_or(username.as_str()),
        "display name",
    )?;
    state.limit_attempts(&ip).await?;
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
pub(super) async fn register_finish(
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

/// Starts signing in: with a username, that person's passkeys are offered
/// (an unknown username gets an answer just like it, which no passkey can
/// finish); without, the browser offers any passkey for this site (autofill).
#[utoipa::path(post, path = "/login/begin", tag = "auth", request_body = BeginLogin,
    responses((status = 200, body = CeremonyStarted)))]
pub(super) async fn login_begin(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    Json(body): Json<BeginLogin>,
) -> Result<Json<CeremonyStarted>, ApiError> {
    let username = body.username.as_deref().map(Username::parse).transpose()?;
    state.limit_attempts(&ip).await?;
    let (id, options) = state
        .audited("sign-in refused", &ip, state.begin_login(username.as_ref()))
        .await?;
    started(id, &options)
}

/// Finishes signing in and opens a session (cookie).
#[utoipa::path(post, path = "/login/finish", tag = "auth", request_body = FinishLogin,
    responses((status = 200, body = SignedInView), (status = 401, description = "assertion rejected")))]
pub(super) async fn login_finish(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    Json(body): Json<FinishLogin>,
) -> Result<Response, ApiError> {
    state.limit_attempts(&ip).await?;
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
pub(super) async fn recover_begin(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    Json(body): Json<BeginRecovery>,
) -> Result<Json<CeremonyStarted>, ApiError> {
    let username = Username::parse(&body.username)?;
    state.limit_attempts(&ip).await?;
    state.recovery_allowed(username.as_str()).await?;
    let spent = state.spend_recovery_code(&username, &body.code).await;
    if spent.is_err() {
        state.recovery_failed(username.as_str()).await;
    }
    let user = state
        .audited("recovery refused", &ip, std::future::ready(spent))
        .await?;
    let (id, options) = state.begin_add_passkey(&user).await?;
    started(id, &options)
}

/// Finishes recovery: the new passkey is added and a session opened.
#[utoipa::path(post, path = "/recover/finish", tag = "auth", request_body = FinishRegistration,
    responses((status = 201, body = SignedInView),
        (status = 401, description = "Ceremony unknown or expired, or credential rejected")))]
pub(super) async fn recover_finish(
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

/// Ends this session and clears its cookie (also when the session has
/// already ended).
#[utoipa::path(post, path = "/logout", tag = "auth", responses((status = 204)))]
pub(super) async fn logout(
    State(state): State<AuthState>,
    principal: Option<Principal>,
) -> Result<Response, ApiError> {
    if let Some(principal) = &principal
        && let Some(id) = current_session(principal)
    {
        let revoked = store::revoke_sessions(&state.db, &principal.id, Some(id), None).await?;
        state.authenticator.revoked(&revoked).await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    state.set_session_cookie(&mut response, "", 0);
    Ok(response)
}

/// Starts proving a passkey again, for changes that need a recent one
/// (adding a passkey, new recovery codes): a sign-in ceremony for the
/// session's own person.
#[utoipa::path(post, path = "/reauth/begin", tag = "auth",
    responses((status = 200, body = CeremonyStarted)))]
pub(super) async fn reauth_begin(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    principal: Principal,
) -> Result<Json<CeremonyStarted>, ApiError> {
    let user = account(&state, &principal).await?;
    let username = Username::parse(&user.username)?;
    state.limit_attempts(&ip).await?;
    let (id, options) = state
        .audited(
            "re-authentication refused",
            &ip,
            state.begin_login(Some(&username)),
        )
        .await?;
    started(id, &options)
}

/// Finishes re-authentication: the session counts as freshly signed in.
#[utoipa::path(post, path = "/reauth/finish", tag = "auth", request_body = FinishLogin,
    responses((status = 204), (status = 401, description = "assertion rejected")))]
pub(super) async fn reauth_finish(
    State(state): State<AuthState>,
    ClientAddr(ip): ClientAddr,
    principal: Principal,
    Json(body): Json<FinishLogin>,
) -> Result<StatusCode, ApiError> {
    state.limit_attempts(&ip).await?;
    let user = state
        .audited(
            "re-authentication failed",
            &ip,
            state.finish_login(&body.ceremony_id, &body.credential),
        )
        .await?;
    let session = current_session(&principal)
        .filter(|_| user.id == principal.id)
        .ok_or_else(|| ApiError::unauthorized("this passkey belongs to someone else"))?;
    store::mark_authenticated(&state.db, session).await?;
    Ok(StatusCode::NO_CONTENT)
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
pub(super) async fn me(
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfile {
    /// How others see me: 1-64 printable characters.
    #[schema(min_length = 1, max_length = 64)]
    pub display_name: String,
}

/// Changes my profile (a person's session, not an API key).
#[utoipa::path(patch, path = "/me", tag = "auth", request_body = UpdateProfile,
    responses((status = 200, body = UserView), (status = 422, description = "Not a valid display name")))]
pub(super) async fn update_me(
    State(state): State<AuthState>,
    principal: Principal,
    Json(body): Json<UpdateProfile>,
) -> Result<Json<UserView>, ApiError> {
    let display = domain::label(&body.display_name, "display name")?;
    let user = store::set_display_name(&state.db, &principal.id, &display).await?;
    Ok(Json(user.into()))
}
