//! Proposals close by themselves: every replica sweeps for open proposals
//! past their deadline and closes each (and carries out passed actions,
//! `execute`) (the store's conditional update
//! lets one replica count it), and a read of a proposal past its deadline
//! closes it first, so no one ever sees one open after its time. Opening
//! and closing are announced in the microDAO's governance room (or its
//! general room), once per event.

use std::time::Duration;

use daarion_access::Principal;
use daarion_bus::{Envelope, HandlerError};
use daarion_kernel::shutdown::CancellationToken;
use daarion_messaging::Posting;

use crate::{
    DaoGovState,
    domain::{DaoGovError, Proposal, ProposalStatus},
    store,
};

/// The proposal as it stands now: closed first if its deadline passed.
pub async fn settle(state: &DaoGovState, p: Proposal) -> Result<Proposal, DaoGovError> {
    let due = p.status == ProposalStatus::Active
        && p.closes_at
            .as_deref()
            .is_some_and(|at| at <= daarion_store::now().as_str());
    if !due {
        return Ok(p);
    }
    if let Some((closed, staged)) = store::close(&state.db, &state.outbox, &p.id).await? {
        state.outbox.relay(staged).await;
        return Ok(closed);
    }
    // Another replica closed it meanwhile.
    store::get(&state.db, &p.id)
        .await?
        .ok_or_else(|| DaoGovError::NotFound("no such proposal".into()))
}

/// Closes what is due, every `every`, until shutdown.
pub async fn sweep(state: DaoGovState, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = close_due(&state).await {
            tracing::warn!(%error, "closing proposals past their deadline failed; trying again");
        }
        if let Err(error) = crate::execute::execute_due(&state).await {
            tracing::warn!(%error, "carrying out passed proposals failed; trying again");
        }
    }
}

async fn close_due(state: &DaoGovState) -> Result<(), DaoGovError> {
    loop {
        let due = store::due(&state.db, 100).await?;
        for id in &due {
            if let Some((_, staged)) = store::close(&state.db, &state.outbox, id).await? {
                state.outbox.relay(staged).await;
            }
        }
        if due.len() < 100 {
            return Ok(());
        }
    }
}

/// What a proposal's event says in its microDAO's room, if anything.
fn announcement(subject: &str, payload: &serde_json::Value) -> Option<(String, String)> {
    let what = subject.split('.').nth(2)?;
    let dao = payload.get("dao")?.as_str()?;
    let title = payload.get("title")?.as_str()?;
    let id = payload.get("id")?.as_str()?;
    let text = match what {
        "opened" => format!(
            "🗳️ Voting is open on **{title}** until {} — `{id}`",
            payload.get("closes_at")?.as_str()?
        ),
        "closed" => format!(
            "🗳️ Voting on **{title}** has closed: **{}** — `{id}`",
            payload.get("outcome")?.as_str()?
        ),
        _ => return None,
    };
    Some((dao.to_owned(), text))
}

/// The `dao-announcements` consumer: posts a proposal's opening and close
/// in its microDAO's governance room (general where there is none), as
/// the service, once per event (its id is the post's idempotency key).
pub async fn announce(state: &DaoGovState, event: &Envelope) -> Result<(), HandlerError> {
    let Some((dao, text)) = announcement(&event.subject, &event.payload) else {
        return Ok(());
    };
    let mut room = None;
    for name in ["governance", "general"] {
        room = daarion_messaging::store::by_key(&state.db, &format!("dao:{dao}:{name}"))
            .await
            .map_err(HandlerError::new)?;
        if room.is_some() {
            break;
        }
    }
    let Some(room) = room else {
        return Ok(());
    };
    let posting = Posting {
        body: &text,
        topic: None,
        reply_to: None,
        attachments: Vec::new(),
        max_chars: 4000,
    };
    state
        .poster
        .post(
            &room,
            &Principal::service(crate::SERVICE),
            posting,
            Some(&format!("dao-announce:{}", event.id)),
        )
        .await
        .map_err(HandlerError::new)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn only_openings_and_closes_are_announced() {
        let payload = serde_json::json!({
            "id": "prp_1", "dao": "makers", "title": "Kettle",
            "closes_at": "2026-12-06T12:00:00Z", "outcome": "passed",
        });
        let (dao, text) = announcement("dao.proposal.opened.makers", &payload).unwrap();
        assert_eq!(dao, "makers");
        assert!(text.contains("Kettle") && text.contains("2026-12-06T12:00:00Z"));
        let (_, text) = announcement("dao.proposal.closed.makers", &payload).unwrap();
        assert!(text.contains("passed"));
        assert!(announcement("dao.proposal.updated.makers", &payload).is_none());
    }
}
