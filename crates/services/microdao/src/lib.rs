//! MicroDAO service (port 7015): communities of people and agents.
//!
//! - `GET/POST /api/microdao/daos`, `GET/PATCH /api/microdao/daos/{dao}`,
//!   `POST …/{dao}/archive`: create (the creator owns it; nested under a
//!   parent its admins may write), change, archive (read-only after).
//! - `GET …/{dao}/members`, `POST …/{dao}/join` (public ones), `POST
//!   …/{dao}/leave`, `PUT/DELETE …/{dao}/members/{member}` (role, remove,
//!   ban): owners change anyone, admins those below admin, never the last
//!   owner.
//! - `GET …/{dao}/roles`, `PUT/DELETE …/{dao}/roles/{role}`, `PUT/DELETE
//!   …/roles/{role}/holders/{member}`: custom roles (owners define them
//!   from the permissions the policies know — `write`, `invite`, `rooms`,
//!   `treasury` — and give each member at most one).
//! - `GET/POST …/{dao}/invites`, `DELETE …/invites/{id}`, `POST
//!   /api/microdao/invites/accept`: codes with a use count and an expiry.
//! - `GET …/{dao}/treasury` (balances now or at a past time), `GET
//!   …/treasury/movements`, `POST …/treasury/mint` (owners), `POST
//!   …/treasury/transfers`: the points ledger (`treasury`).
//!
//! Memberships reach every request's principal as `dao:<slug>:<role>`
//! (and custom roles as `dao:<slug>:can:<permission>`) through
//! [`roles::MembershipRoles`] (an `access::RoleSource` every
//! process installs), so the policies decide on them everywhere.
//!
//! Layout: `domain` (rules), `store` (queries, one transaction per change,
//! events staged with it), `api` (routes), `access` (rules, microDAOs as the
//! policies see them), `events`, `roles`.

pub mod access;
pub mod api;
pub mod domain;
pub mod events;
pub mod roles;
pub mod store;
pub mod treasury;

use std::sync::Arc;

use daarion_access::{Enforcer, Kind};
use daarion_bus::{Outbox, subject::StreamDef};
use daarion_service::{BuildError, Context, Event, Mount, Service};
use daarion_store::{Db, migration};

pub use roles::MembershipRoles;

pub const SERVICE: &str = "microdao";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7015,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_microdao_tables"),
        migration!(2, "002_create_microdao_treasury"),
        migration!(3, "003_create_microdao_roles"),
        migration!(4, "004_add_orchestrators"),
    ],
    rules: access::RULES,
    websocket: false,
    streams: &[StreamDef {
        name: "MICRODAO",
        subjects: &["microdao.>"],
    }],
    events: &[
        Event::durable(events::DAO_CHANGED),
        Event::durable(events::MEMBER_CHANGED),
        Event::durable(events::ROLE_CHANGED),
        Event::durable(events::MOVED),
    ],
    settings: None,
    example: |kind| {
        (kind == Kind::MicroDao)
            .then(|| access::dao_resource("makers", domain::Visibility::Private))
    },
    build: |ctx| Box::pin(build(ctx)),
};

#[derive(Clone)]
pub struct DaoState {
    db: Db,
    outbox: Outbox,
    access: Arc<Enforcer>,
    /// The process's role cache, told at once about changes made here.
    roles: MembershipRoles,
}

async fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(access::DaoResources { db: ctx.db.clone() });
    let state = DaoState {
        roles: ctx.component::<MembershipRoles>()?,
        db: ctx.db,
        outbox: ctx.outbox,
        access: access.clone(),
    };
    Ok(Mount::new(access, api::router().with_state(state)))
}
