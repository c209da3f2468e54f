//! HTTP routes and wire types. Handlers parse, call the domain and store,
//! relay what the store staged, and map [`MessagingError`] to [`ApiError`]
//! once. `rooms`: rooms and conversations; `messages`: what is said in
//! them, read markers, topics and search.

mod messages;
mod rooms;

use daarion_access::{Principal, vocab::roles::DaoRole};
use daarion_kernel::ApiError;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use messages::{
    ChatMessageEditView, ChatMessageView, ChatReactionView, ChatTopicView, EditChatMessage,
    MarkRead, PostChatMessage,
};
pub use rooms::{
    AddParticipant, ChatRoomView, CreateDaoRoom, CreatePublicRoom, StartDirect, StartGroup,
    UpdateRoom,
};

use crate::{
    MessagingState,
    domain::{self, MessagingError},
    store::Readable,
};

impl From<MessagingError> for ApiError {
    fn from(error: MessagingError) -> Self {
        match &error {
            MessagingError::Invalid(message) => ApiError::validation(message.clone()),
            MessagingError::NotFound(message) => ApiError::not_found(message.clone()),
            MessagingError::Forbidden(message) => ApiError::forbidden(message.clone()),
            MessagingError::Conflict(message) => ApiError::conflict(message.clone()),
            MessagingError::TooFast {
                message,
                retry_after,
            } => ApiError::new(daarion_kernel::ErrorCode::RateLimited, message.clone())
                .with_retry_after(std::time::Duration::from_secs(*retry_after)),
            MessagingError::Interrupted(_) => ApiError::unavailable(&error),
            MessagingError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            MessagingError::Bus(daarion_bus::BusError::Unavailable(_)) => {
                ApiError::unavailable(&error)
            }
            MessagingError::Cache(daarion_cache::CacheError::Unavailable(_)) => {
                ApiError::unavailable(&error)
            }
            _ => ApiError::internal(&error),
        }
    }
}

pub fn router() -> OpenApiRouter<MessagingState> {
    OpenApiRouter::new()
        .routes(routes!(rooms::list_chat_rooms, rooms::create_public_room))
        .routes(routes!(rooms::start_direct))
        .routes(routes!(rooms::start_group))
        .routes(routes!(rooms::list_dao_rooms, rooms::create_dao_room))
        .routes(routes!(rooms::get_chat_room, rooms::update_room))
        .routes(routes!(rooms::archive_room))
        .routes(routes!(rooms::list_participants, rooms::add_participant))
        .routes(routes!(rooms::remove_participant))
        .routes(routes!(messages::history, messages::post_chat_message))
        .routes(routes!(messages::edit_message, messages::delete_message))
        .routes(routes!(messages::message_edits))
        .routes(routes!(messages::react, messages::unreact))
        .routes(routes!(messages::topics))
        .routes(routes!(messages::mark_read))
        .routes(routes!(messages::search_room))
        .routes(routes!(messages::search))
}

/// The microDAO roles on a principal, the strongest per microDAO.
fn dao_roles(principal: &Principal) -> Vec<(String, DaoRole)> {
    let rank = |role: DaoRole| domain::bounds_reached(role).count();
    let mut found: Vec<(String, DaoRole)> = Vec::new();
    for group in &principal.roles {
        let Some((dao, role)) = DaoRole::of_group(group) else {
            continue;
        };
        match found.iter_mut().find(|(d, _)| d == dao) {
            Some(held) if rank(role) > rank(held.1) => held.1 = role,
            Some(_) => {}
            None => found.push((dao.to_owned(), role)),
        }
    }
    found
}

/// What `principal` may read, as a condition on rooms (`$1`, `$2`...).
fn readable(principal: &Principal) -> Readable {
    Readable::of(&principal.name(), &dao_roles(principal), 1)
}

/// A room id from a path the enforcement layer already resolved.
fn room_id(raw: &str) -> Result<String, ApiError> {
    if raw.starts_with("rm_") && raw.len() <= 64 {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::not_found("no such room"))
    }
}
