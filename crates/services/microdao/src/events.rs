//! What the microDAO service publishes; it consumes nothing. Every event
//! is durable (the `MICRODAO` stream), staged with its data and relayed by
//! the outbox. Membership events also tell every process's role cache to
//! forget the member's roles (`roles::follow`).

use daarion_bus::Envelope;
use serde_json::json;

use crate::{
    SERVICE,
    store::{Dao, MemberChange},
    treasury::Movement,
};

pub const DAO_CHANGED: &str = "microdao.dao.*.*";
pub const MEMBER_CHANGED: &str = "microdao.member.*.*";
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
            "change": change.change.as_str(),
            "by": change.by,
        }),
    )
    .with_actor(change.by.as_str())
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
