//! Presence: who is in the city. Each user is a member of an expiring set in
//! the cache, refreshed by heartbeats. Join, heartbeat and leave events go
//! out on `presence.city.<kind>`; a sweeper on every replica turns expired
//! members into `leave` events, and the cache hands each expired member to
//! exactly one sweeper, so a leave is announced once.

use std::time::Duration;

use daarion_bus::Envelope;
use serde_json::json;

use crate::{CityState, SERVICE, domain::CityError};

const KEY: &str = "city:presence";
pub const SUBJECTS: &str = "presence.city.*";

pub async fn present(state: &CityState) -> Result<Vec<String>, CityError> {
    Ok(state.cache.set_members(KEY).await?)
}

async fn announce(state: &CityState, kind: &str, user: &str, reason: Option<&str>) {
    let mut payload = json!({ "user": user });
    if let Some(reason) = reason {
        payload["reason"] = reason.into();
    }
    let event = Envelope::new(SERVICE, format!("presence.city.{kind}"), payload).with_actor(user);
    state.publish(&event).await;
}

/// Marks `user` present; announces a join if they were not.
pub async fn heartbeat(state: &CityState, user: &str) -> Result<(), CityError> {
    let joined = state
        .cache
        .set_add(KEY, user, state.settings.presence_ttl())
        .await?;
    announce(state, if joined { "join" } else { "heartbeat" }, user, None).await;
    Ok(())
}

pub async fn leave(state: &CityState, user: &str) -> Result<(), CityError> {
    if state.cache.set_remove(KEY, user).await? {
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
        match state.cache.set_take_expired(KEY).await {
            Ok(expired) => {
                for user in expired {
                    announce(&state, "leave", &user, Some("timeout")).await;
                }
            }
            Err(error) => tracing::warn!(%error, "presence sweep failed"),
        }
    }
}
