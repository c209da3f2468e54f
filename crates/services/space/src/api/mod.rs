//! HTTP routes and wire types: the directory of planets (`planets`) and
//! the node registry (`nodes`). [`SpaceError`] maps to [`ApiError`] here,
//! once.

mod nodes;
mod planets;

use daarion_kernel::ApiError;
use utoipa_axum::router::OpenApiRouter;

use crate::{SpaceState, domain::SpaceError};

impl From<SpaceError> for ApiError {
    fn from(error: SpaceError) -> Self {
        match &error {
            SpaceError::Invalid(message) => ApiError::validation(message.clone()),
            SpaceError::NotFound(message) => ApiError::not_found(message.clone()),
            SpaceError::Conflict(message) => ApiError::conflict(message.clone()),
            SpaceError::BadNodeToken => ApiError::unauthorized(error.to_string()),
            SpaceError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            SpaceError::Bus(daarion_bus::BusError::Unavailable(_)) => ApiError::unavailable(&error),
            _ => ApiError::internal(&error),
        }
    }
}

pub fn router() -> OpenApiRouter<SpaceState> {
    OpenApiRouter::new()
        .merge(planets::router())
        .merge(nodes::router())
}
