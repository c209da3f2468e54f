//! What the microDAO service publishes; it consumes nothing. Every event
//! is durable (the `MICRODAO` stream), staged with its data and relayed by
//! the outbox. Membership events also tell every process's role cache to
//! forget the member's roles, custom role events every member's
//! (`roles::follow`).

use daarion_bus::Envelope;
use serde_json::json;

use crate::{
    SERVICE,
    store::{CustomRole, Dao, MemberChange},
    treasury::Movement,
};

pub const DAO_CHANGED: &str = "microdao.dao.*.*";
pub const MEMBER_CHANGED: &str = "microdao.member.*.*";
pub const ROLE_CHANGED: &str = "microdao.role.*.*";
pub const MOVED: &str = "microdao.treasury.*.*";

/// `created`, `updated` or `archived`.
pub fn dao_changed(what: &str, dao: &Dao, actor: &str) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("microdao.dao.{what}.{}", dao.slug),
        json!({
            "slug": dao.slug,
            "name": dao.name,
            "visibility": dao.visibility.as_str(),
            "parent": dao.parent,
            "district": dao.district,
            "archived": dao.archived_at.is_some(),
            "orchestrator": dao.orchestrator,
        }),
    )
    .with_actor(actor)
}

pub fn member_changed(change: &MemberChange) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("microdao.member.{}.{}", change.change.as_str(), change.dao),
        json!({
            "dao": change.dao,
            "principal": change.principal,
            "handle": change.handle,
            "role": change.role.map(|r| r.as_str()),
            "custom_role": change.custom_role,
            "change": change.change.as_str(),
            "by": change.by,
        }),
    )
    .with_actor(change.by.as_str())
}

/// A custom role `defined`, `changed` or `deleted`: what it grants.
pub fn role_changed(what: &str, role: &CustomRole, actor: &str) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("microdao.role.{what}.{}", role.dao),
        json!({
            "dao": role.dao,
            "name": role.name,
            "permissions": role.permissions,
        }),
    )
    .with_actor(actor)
}

/// A treasury movement (`mint` or `transfer`).
pub fn moved(movement: &Movement) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("microdao.treasury.{}.{}", movement.kind, movement.dao),
        json!({
            "id": movement.id,
            "dao": movement.dao,
            "from": movement.from,
            "to": movement.to,
            "amount": movement.amount,
            "memo": movement.memo,
        }),
    )
    .with_actor(movement.actor.as_str())
}
