//! Who is who: the public face of accounts (username, display name), for
//! pages that show people by name (members, the audit log).

use axum::extract::Query;
use daarion_kernel::http::Page;
use utoipa::IntoParams;

use super::*;

/// The most ids one lookup takes.
const MAX_IDS: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub created_at: String,
}

impl From<User> for PersonView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PeopleParams {
    /// Account ids, comma-separated (at most 100); `user:<id>` is accepted too.
    /// The bound keeps the whole address within what the server reads.
    #[param(max_length = 4096)]
    pub ids: String,
}

/// People by account id, in the order asked; unknown ids are left out.
#[utoipa::path(get, path = "/people", tag = "auth", params(PeopleParams),
    responses((status = 200, body = Page<PersonView>), (status = 400), (status = 401),
        (status = 422, description = "More than 100 ids, or more than 4096 characters")))]
pub(super) async fn people(
    State(state): State<AuthState>,
    Query(params): Query<PeopleParams>,
) -> Result<Json<Page<PersonView>>, ApiError> {
    let ids: Vec<String> = params
        .ids
        .split(',')
        .map(|id| id.trim().trim_start_matches("user:").to_owned())
        .filter(|id| !id.is_empty())
        .collect();
    if ids.len() > MAX_IDS || params.ids.chars().count() > 4096 {
        return Err(ApiError::validation(format!(
            "at most {MAX_IDS} ids, in at most 4096 characters"
        )));
    }
    let found = store::users_by_ids(&state.db, &ids).await?;
    let items = ids
        .iter()
        .filter_map(|id| found.iter().find(|u| &u.id == id).cloned())
        .map(PersonView::from)
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

/// One person by username.
#[utoipa::path(get, path = "/people/{username}", tag = "auth",
    params(("username" = String, Path)),
    responses((status = 200, body = PersonView), (status = 401), (status = 404)))]
pub(super) async fn person(
    State(state): State<AuthState>,
    Path(username): Path<String>,
) -> Result<Json<PersonView>, ApiError> {
    let user = match Username::parse(&username) {
        Ok(name) => store::user_by_username(&state.db, name.as_str()).await?,
        Err(_) => None,
    };
    user.map(|u| Json(u.into()))
        .ok_or_else(|| ApiError::not_found(format!("no one is called {username:?}")))
}
