//! One-time invitations to register (city admins, and the operator's
//! `daarion admin invite`).

use super::*;

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
pub(super) async fn create_invite(
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
