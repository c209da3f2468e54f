//! My sessions: list, revoke one, sign out everywhere else.

use super::*;

/// My open sessions.
#[utoipa::path(get, path = "/sessions", tag = "auth", responses((status = 200, body = Page<SessionView>)))]
pub(super) async fn list_sessions(
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
pub(super) async fn revoke_other_sessions(
    State(state): State<AuthState>,
    principal: Principal,
) -> Result<Json<Revoked>, ApiError> {
    let revoked =
        store::revoke_sessions(&state.db, &principal.id, None, current_session(&principal)).await?;
    state.authenticator.revoked(&revoked).await;
    Ok(Json(Revoked {
        revoked: revoked.len(),
    }))
}

/// Revokes one of my sessions.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "auth", responses((status = 204), (status = 404)))]
pub(super) async fn revoke_session(
    State(state): State<AuthState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let revoked = store::revoke_sessions(&state.db, &principal.id, Some(&id), None).await?;
    if revoked.is_empty() {
        return Err(ApiError::not_found("no such session"));
    }
    state.authenticator.revoked(&revoked).await;
    Ok(StatusCode::NO_CONTENT)
}
