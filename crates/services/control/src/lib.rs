//! Control plane (port 9200, `/api/control/`): versioned system prompts per
//! agent, agent entitlements and modes, typed config (feature flags, routing
//! rules), quotas per person / agent / microDAO, and policy changes. Every
//! change is a new version, audited by the enforcement layer, and announced
//! on the bus so every replica's [`ControlClient`] drops its cached copy.
//!
//! Layout: `domain` (document kinds and validation), `store` (versions and
//! current pointers), `client` (the cached reader), `api` (routes), `access`
//! (rules; agents and quota subjects as the policies see them).

pub mod access;
pub mod api;
pub mod client;
pub mod domain;
pub mod store;

use std::sync::Arc;

use daarion_access::{Attr, Kind, Resource, Subject};
use daarion_bus::Bus;
use daarion_service::{BuildError, Context, Event, Mount, Service};
use daarion_store::{Db, migration};

pub use client::ControlClient;

pub const SERVICE: &str = "control";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 9200,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[migration!(1, "001_create_control_tables")],
    rules: access::RULES,
    websocket: false,
    streams: &[],
    // Cached copies also expire after 30 s, so a lost announcement only
    // delays a change.
    events: &[
        Event::live(client::CHANGED),
        Event::live(daarion_access::events::POLICY_CHANGED),
    ],
    settings: None,
    example,
    build: |ctx| Box::pin(async move { build(ctx) }),
};

/// The agent and the quota the authorization matrix decides on: another
/// person's.
fn example(kind: Kind) -> Option<Resource> {
    match kind {
        Kind::Agent => Some(
            Resource::new(Kind::Agent, "bot2")
                .attr("owner", Attr::Entity(Kind::User, "someone-else".into())),
        ),
        Kind::Quota => Some(Resource::about(
            Kind::Quota,
            &Subject::User("someone-else".into()),
        )),
        _ => None,
    }
}

#[derive(Clone)]
pub struct ControlState {
    db: Db,
    bus: Arc<dyn Bus>,
    client: ControlClient,
    access: Arc<daarion_access::Enforcer>,
}

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(access::ControlResources {
        directory: ctx.access.authn.clone(),
    });
    let state = ControlState {
        // The process's cached reader (its `follow` task runs in every process).
        client: ctx.component()?,
        db: ctx.db,
        bus: ctx.bus,
        access: access.clone(),
    };
    Ok(Mount::new(access, api::router().with_state(state)))
}
