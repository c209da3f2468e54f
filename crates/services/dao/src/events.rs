//! What governance publishes (stream `DAO`, staged with its data): a
//! proposal's life (`dao.proposal.<what>.<dao>`), every vote
//! (`dao.vote.cast.<dao>`, without the ballot while the tally is hidden),
//! delegations and settings. The living map and the microDAO's room read
//! them.

use daarion_bus::Envelope;
use serde_json::json;

use crate::{SERVICE, domain::Proposal};

pub const PROPOSAL_CHANGED: &str = "dao.proposal.*.*";
pub const VOTE_CAST: &str = "dao.vote.cast.*";
pub const DELEGATION_CHANGED: &str = "dao.delegation.*.*";
pub const SETTINGS_CHANGED: &str = "dao.settings.changed.*";

/// `created`, `updated`, `opened`, `cancelled`, `closed`, `executed` or
/// `execution_failed`.
pub fn proposal(what: &str, p: &Proposal, actor: &str) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("dao.proposal.{what}.{}", p.dao),
        json!({
            "id": p.id,
            "dao": p.dao,
            "title": p.title,
            "kind": p.kind.as_str(),
            "method": p.method.as_str(),
            "status": p.status.as_str(),
            "closes_at": p.closes_at,
            "outcome": p.result.as_ref().map(|r| r.outcome.as_str()),
            "execution": p.execution.map(|e| e.as_str()),
        }),
    )
    .with_actor(actor)
}

/// A vote on the proposal `id` of `dao` (its ballot left out while the
/// tally is `hidden`).
pub fn vote_cast(
    (dao, id, hidden): (&str, &str, bool),
    seq: i64,
    voter: &str,
    ballot: &crate::domain::Ballot,
) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("dao.vote.cast.{dao}"),
        json!({
            "proposal": id,
            "dao": dao,
            "seq": seq,
            "voter": voter,
            "ballot": (!hidden).then_some(ballot),
        }),
    )
    .with_actor(voter)
}

/// `set` or `revoked`.
pub fn delegation(what: &str, dao: &str, delegator: &str, delegate: Option<&str>) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("dao.delegation.{what}.{dao}"),
        json!({ "dao": dao, "delegator": delegator, "delegate": delegate }),
    )
    .with_actor(delegator)
}

pub fn settings_changed(dao: &str, agents_vote: bool, actor: &str) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("dao.settings.changed.{dao}"),
        json!({ "dao": dao, "agents_vote": agents_vote }),
    )
    .with_actor(actor)
}
