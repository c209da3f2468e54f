//! `/ws/living-map/stream`: the map as it moves. A client opens it with the
//! number of the last change it holds (`?since=`) and gets what it missed,
//! or a fresh snapshot when that is no longer kept (or without `since`);
//! then batches of deltas, each numbered, at most every
//! [`crate::BATCH_EVERY`] per replica.
//!
//! Every replica publishes the changes it applied as one live event per
//! batch (`livingmap.deltas`, with each delta's visibility), and every
//! socket hears every replica's batches. A socket sends the viewer only
//! what they may see, never twice, and in order: batches of replicas can
//! arrive out of order, so a batch that starts past the last change the
//! socket knows is a gap, filled from the store first.
//!
//! What a socket may show follows its viewer's memberships as they
//! change: a batch holding the viewer's own membership edge (joined, left,
//! removed) changes the microDAOs it sees and starts it again from a
//! snapshot, so a private community's things leave the map of someone
//! taken out of it, and arrive on the map of someone let in.

use std::time::Duration;

use async_trait::async_trait;
use axum::{
    Router,
    extract::{State, ws::WebSocketUpgrade},
    response::Response,
    routing::get,
};
use std::collections::HashMap;

use daarion_access::{Principal, PrincipalKind};
use daarion_bus::Envelope;
use daarion_kernel::{ApiError, http::Query};
use daarion_service::live::{Flow, Gone, Handler, Limits, Outbound};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    MapState,
    domain::{Delta, MapEdgeKind, MapError, Seen, Viewer},
    store,
};

/// The live subject of each replica's batches.
pub const DELTAS: &str = "livingmap.deltas";

const LIMITS: Limits = Limits {
    max_message_bytes: 4096,
    messages_per_second: 5.0,
    burst: 10,
    ping_interval: Duration::from_secs(30),
    recheck: Duration::from_secs(60),
    max_lifetime: Duration::from_secs(24 * 3600),
};

pub fn router() -> Router<MapState> {
    Router::new().route("/stream", get(map_socket))
}

/// A batch as its live event.
pub fn batch_event(batch: &[Seen]) -> Envelope {
    Envelope::new(crate::SERVICE, DELTAS, json!({ "deltas": batch }))
}

/// What a client may send: nothing but heartbeats.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Heartbeat,
}

#[derive(Debug, Deserialize)]
pub struct Resume {
    /// The last change the client holds.
    since: Option<i64>,
}

async fn map_socket(
    State(state): State<MapState>,
    actor: Principal,
    Query(resume): Query<Resume>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if resume.since.is_some_and(|s| s < 0) {
        return Err(ApiError::validation("since must be 0 or more"));
    }
    let feed = state
        .live
        .watch(DELTAS, |event| event.payload)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    let live = state.live.clone();
    let follower = Follower {
        viewer: Viewer::of(&actor),
        me: match actor.kind {
            PrincipalKind::Agent => actor.name(),
            _ => format!("person:{}", actor.handle),
        },
        memberships: HashMap::new(),
        state,
        since: resume.since,
        last: 0,
    };
    Ok(live.serve(upgrade, &actor, LIMITS, feed, follower))
}

struct Follower {
    state: MapState,
    viewer: Viewer,
    /// The viewer's own node: membership edges from it change `viewer`.
    me: String,
    /// The number of the last membership change of the viewer's taken in,
    /// per microDAO (a replica's batch may arrive after a later one).
    memberships: HashMap<String, i64>,
    since: Option<i64>,
    /// The last change this socket knows of (seen or not).
    last: i64,
}

impl Follower {
    /// Takes in the viewer's own membership changes in `batch`; whether
    /// the microDAOs they see changed.
    fn regroup(&mut self, batch: &[Seen]) -> bool {
        let mut changed = false;
        for seen in batch {
            let (seq, from, to, joined) = match &seen.delta {
                Delta::Edge { seq, edge } if edge.kind == MapEdgeKind::Member => {
                    (*seq, &edge.from, &edge.to, true)
                }
                Delta::RemoveEdge {
                    seq,
                    from,
                    to,
                    kind,
                } if *kind == MapEdgeKind::Member => (*seq, from, to, false),
                _ => continue,
            };
            let Some(dao) = to.strip_prefix("dao:").filter(|_| *from == self.me) else {
                continue;
            };
            let known = self.memberships.entry(dao.to_owned()).or_insert(0);
            if *known >= seq {
                continue;
            }
            *known = seq;
            changed |= if joined {
                self.viewer.daos.insert(dao.to_owned())
            } else {
                self.viewer.daos.remove(dao)
            };
        }
        changed
    }

    /// What the viewer missed after `self.last`, from the store, a page
    /// at a time; a snapshot when it is no longer kept.
    async fn catch_up(&mut self, out: &mut Outbound) -> Result<(), Gone> {
        loop {
            match store::deltas(&self.state.db, &self.viewer, self.last, 1000).await {
                Ok((deltas, last)) => {
                    let full = deltas.len() == 1000;
                    self.last = match deltas.last() {
                        Some(d) if full => d.seq(),
                        _ => last,
                    };
                    if !deltas.is_empty() {
                        out.send(&json!({ "type": "deltas", "deltas": deltas, "seq": self.last }))
                            .await?;
                    }
                    if !full {
                        return Ok(());
                    }
                }
                Err(MapError::TooFarBehind(_) | MapError::Invalid(_)) => {
                    return self.snapshot(out).await;
                }
                Err(error) => {
                    let _ = out.send_error(error.into()).await;
                    return Ok(());
                }
            }
        }
    }

    async fn snapshot(&mut self, out: &mut Outbound) -> Result<(), Gone> {
        match crate::api::snapshot_of(&self.state, &self.viewer).await {
            Ok(snapshot) => {
                self.last = snapshot.seq;
                let mut frame = serde_json::to_value(&snapshot).unwrap_or(Value::Null);
                frame["type"] = "snapshot".into();
                out.send(&frame).await
            }
            Err(error) => {
                let _ = out.send_error(error).await;
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Handler for Follower {
    type Frame = ClientFrame;

    async fn opened(&mut self, out: &mut Outbound) -> Result<(), Gone> {
        match self.since {
            Some(since) => {
                self.last = since;
                self.catch_up(out).await
            }
            None => self.snapshot(out).await,
        }
    }

    async fn received(&mut self, _out: &mut Outbound, _frame: ClientFrame) -> Flow {
        Flow::Continue
    }

    async fn feed(
        &mut self,
        out: &mut Outbound,
        _key: Option<&str>,
        frame: axum::extract::ws::Utf8Bytes,
    ) -> Flow {
        let batch: Vec<Seen> = serde_json::from_str::<Value>(frame.as_str())
            .ok()
            .and_then(|v| serde_json::from_value(v["deltas"].clone()).ok())
            .unwrap_or_default();
        let Some(first) = batch.first().map(|s| s.delta.seq()) else {
            return Flow::Continue;
        };
        let sent = if self.regroup(&batch) {
            // What the viewer may see changed: start again.
            self.snapshot(out).await
        } else if first > self.last + 1 {
            self.catch_up(out).await
        } else {
            let fresh: Vec<&Delta> = batch
                .iter()
                .filter(|s| s.delta.seq() > self.last)
                .filter(|s| self.viewer.sees(s.public, s.dao.as_deref()))
                .map(|s| &s.delta)
                .collect();
            self.last = self
                .last
                .max(batch.iter().map(|s| s.delta.seq()).max().unwrap_or(0));
            if fresh.is_empty() {
                Ok(())
            } else {
                out.send(&json!({ "type": "deltas", "deltas": fresh, "seq": self.last }))
                    .await
            }
        };
        match sent {
            Ok(()) => Flow::Continue,
            Err(Gone) => Flow::Close(axum::extract::ws::close_code::AWAY, "client gone"),
        }
    }
}
