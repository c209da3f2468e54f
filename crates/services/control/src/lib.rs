//! Control plane (port 9200, `/api/control/`): versioned system prompts per
//! agent, agent entitlements and modes, typed config (feature flags, routing
//! rules), quotas per person / agent / microDAO, and policy changes. Every
//! change is a new version, audited by the enforcement layer, and announced
//! on the bus so every replica's [`ControlClient`] drops its cached copy.
//!
//! Layout: `domain` (document kinds and validation), `store` (versions and
//! current pointers), `client` (the cached reader), `api` (routes, rules).

pub mod api;
pub mod client;
pub mod domain;
pub mod store;

use std::sync::Arc;

use async_trait::async_trait;
use daarion_access::{AccessDeps, Attr, Authenticate, Kind, PrincipalKind, Resource, Resources};
use daarion_bus::Bus;
use daarion_kernel::{ApiError, ServiceDescriptor};
use daarion_store::{Db, MigrationSet, migration};

pub use client::ControlClient;

pub const SERVICE: &str = "control";

pub const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
    name: SERVICE,
    port: 9200,
    version: env!("CARGO_PKG_VERSION"),
};

pub const MIGRATIONS: MigrationSet = MigrationSet {
    service: SERVICE,
    migrations: &[migration!(1, "001_create_control_tables")],
};

/// What the service needs from its runtime.
pub struct Deps {
    pub db: Db,
    pub bus: Arc<dyn Bus>,
    pub access: AccessDeps,
    /// The process's cached reader (its `follow` task runs in every process).
    pub client: ControlClient,
}

#[derive(Clone)]
pub struct ControlState {
    db: Db,
    bus: Arc<dyn Bus>,
    client: ControlClient,
    access: Arc<daarion_access::Enforcer>,
}

pub struct Control {
    pub api: axum::Router,
    pub openapi: utoipa::openapi::OpenApi,
}

/// Agents and quota subjects, as the policies see them.
struct ControlResources {
    directory: Arc<dyn Authenticate>,
}

#[async_trait]
impl Resources for ControlResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        match kind {
            Kind::Agent => {
                domain::validate_key(domain::DocKind::Prompt, id)?;
                let agent = self
                    .directory
                    .principal(PrincipalKind::Agent, id)
                    .await
                    .map_err(|e| ApiError::unavailable(&e))?;
                Ok(agent.and_then(|a| a.owner).map(|owner| {
                    Resource::new(Kind::Agent, id).attr("owner", Attr::Entity(Kind::User, owner))
                }))
            }
            Kind::Quota => {
                domain::validate_key(domain::DocKind::Quota, id)?;
                Ok(Some(Resource::about(Kind::Quota, id)))
            }
            _ => Ok(None),
        }
    }
}

impl From<domain::ControlError> for ApiError {
    fn from(error: domain::ControlError) -> Self {
        use domain::ControlError as E;
        match error {
            E::Pdp(e) => e.into(),
            E::Invalid(m) => ApiError::validation(m),
            E::NotFound(m) => ApiError::not_found(m),
            E::Conflict => ApiError::conflict("another change landed first; retry"),
            E::Store(e) if e.is_retryable() => ApiError::unavailable(&e),
            other => ApiError::internal(&other),
        }
    }
}

pub fn build(deps: Deps) -> Control {
    let resources = ControlResources {
        directory: deps.access.authn.clone(),
    };
    let access =
        daarion_access::Enforcer::new(SERVICE, api::RULES, Arc::new(resources), deps.access);
    let state = ControlState {
        db: deps.db,
        bus: deps.bus,
        client: deps.client,
        access: access.clone(),
    };
    let (api, openapi) = api::router().split_for_parts();
    Control {
        api: api
            .route_layer(axum::middleware::from_fn_with_state(
                access,
                daarion_access::enforce::enforce,
            ))
            .with_state(state),
        openapi,
    }
}
