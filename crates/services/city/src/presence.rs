//! Presence: who is in the city. Each open presence socket is a member
//! `<user>|<connection>` of an expiring set in the cache, refreshed by
//! heartbeats; a user is present while any of their connections is. Join,
//! heartbeat and leave events go out on `presence.city.<kind>`: a join when a
//! user's first connection appears, a leave when their last one goes. A
//! sweeper on every replica turns expired connections into leaves; the cache
//! hands each expired member to exactly one sweeper, so a timeout is announced
//! once.

use std::{collections::BTreeSet, time::Duration};

use crate::{CityState, domain::CityError};

const KEY: &str = "city:presence";

fn member(user: &str, connection: &str) -> String {
    format!("{user}|{connection}")
}

fn user_of(member: &str) -> &str {
    member.split_once('|').map_or(member, |(user, _)| user)
}

/// Users present now, sorted.
pub async fn present(state: &CityState) -> Result<Vec<String>, CityError> {
    let members = state.cache.set_members(KEY).await?;
    let users: BTreeSet<&str> = members.iter().map(|m| user_of(m)).collect();
    Ok(users.into_iter().map(str::to_owned).collect())
}

async fn connections_of(state: &CityState, user: &str) -> Result<usize, CityError> {
    let members = state.cache.set_members(KEY).await?;
    Ok(members.iter().filter(|m| user_of(m) == user).count())
}

async fn announce(state: &CityState, kind: &str, user: &str, reason: Option<&str>) {
    state
        .publish(&crate::events::presence(kind, user, reason))
        .await;
}

/// Marks one connection of `user` present; announces a join when it is the
/// user's only one.
pub async fn heartbeat(state: &CityState, user: &str, connection: &str) -> Result<(), CityError> {
    let fresh = state
        .cache
        .set_add(
            KEY,
            &member(user, connection),
            state.settings.presence_ttl(),
        )
        .await?;
    let joined = fresh && connections_of(state, user).await? == 1;
    announce(state, if joined { "join" } else { "heartbeat" }, user, None).await;
    Ok(())
}

/// A connection closed; announces a leave when it was the user's last.
pub async fn leave(state: &CityState, user: &str, connection: &str) -> Result<(), CityError> {
    let removed = state
        .cache
        .set_remove(KEY, &member(user, connection))
        .await?;
    if removed && connections_of(state, user).await? == 0 {
        announce(state, "leave", user, Some("disconnect")).await;
    }
    Ok(())
}

/// Announces the leave of users whose heartbeats stopped, until shutdown.
pub async fn sweep(state: CityState) {
    let period = (state.settings.presence_ttl() / 3).max(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        if let Err(error) = sweep_once(&state).await {
            tracing::warn!(%error, "presence sweep failed");
        }
    }
}

async fn sweep_once(state: &CityState) -> Result<(), CityError> {
    let expired = state.cache.set_take_expired(KEY).await?;
    let users: BTreeSet<&str> = expired.iter().map(|m| user_of(m)).collect();
    for user in users {
        if connections_of(state, user).await? == 0 {
            announce(state, "leave", user, Some("timeout")).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_name_their_user() {
        assert_eq!(user_of(&member("alice", "c1")), "alice");
        assert_eq!(user_of("legacy"), "legacy");
    }
}
