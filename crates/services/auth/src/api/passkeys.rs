//! My passkeys: list, add another, rename, delete (never the last).

use super::*;

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
pub(super) async fn list_passkeys(
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

/// Starts adding another passkey to my account (needs a recent sign-in
/// or re-authentication).
#[utoipa::path(post, path = "/passkeys/begin", tag = "auth", responses((status = 200, body = CeremonyStarted)))]
pub(super) async fn passkey_begin(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<CeremonyStarted>, ApiError> {
    recent_passkey(&state, &principal).await?;
    let user = account(&state, &principal).await?;
    let (id, options) = state.begin_add_passkey(&user).await?;
    started(id, &options)
}

/// Finishes adding a passkey.
#[utoipa::path(post, path = "/passkeys/finish", tag = "auth", request_body = FinishRegistration,
    responses((status = 201, body = PasskeyView)))]
pub(super) async fn passkey_finish(
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
pub(super) async fn rename_passkey(
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
pub(super) async fn delete_passkey(
    State(state): State<AuthState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    store::delete_passkey(&state.db, &principal.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
