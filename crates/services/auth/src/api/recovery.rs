//! My recovery codes: how many are left, ten new ones.

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryStatus {
    pub remaining: i64,
}

/// How many unused recovery codes I have.
#[utoipa::path(get, path = "/recovery-codes", tag = "auth", responses((status = 200, body = RecoveryStatus)))]
pub(super) async fn recovery_status(
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

/// Replaces my recovery codes with ten new ones (needs a recent sign-in
/// or re-authentication).
#[utoipa::path(post, path = "/recovery-codes", tag = "auth", responses((status = 201, body = RecoveryCodes)))]
pub(super) async fn new_recovery_codes(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    recent_passkey(&state, &principal).await?;
    let codes: Vec<String> = (0..10).map(|_| domain::new_recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| domain::hash_secret(c)).collect();
    store::replace_recovery_codes(&state.db, &principal.id, &hashes).await?;
    Ok((StatusCode::CREATED, Json(RecoveryCodes { codes })).into_response())
}
