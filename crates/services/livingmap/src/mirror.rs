//! The whole map held in memory by each replica, for snapshots: reading
//! 10 000 nodes and as many edges row by row took most of a snapshot's
//! time (82 ms at p50 in `bench/living-map`), while the changes since the
//! last one are few. Before answering, the mirror catches up with the
//! store — the deltas after the number it holds, or the whole map when
//! those are no longer kept — so a snapshot is never older than the
//! store, on any replica, and every viewer's is cut from the same copy
//! by the same rule as the store's (`Viewer::sees`).

use std::collections::BTreeMap;

use daarion_store::Db;
use tokio::sync::RwLock;

use crate::{
    domain::{Delta, MapEdge, MapError, MapNode, Viewer},
    store,
};

/// Deltas read per page while catching up.
const PAGE: u32 = 1_000;

type EdgeKey = (String, String, &'static str);

#[derive(Default)]
struct Held {
    /// `None` until first loaded.
    seq: Option<i64>,
    nodes: BTreeMap<String, MapNode>,
    edges: BTreeMap<EdgeKey, MapEdge>,
}

fn edge_key(edge: &MapEdge) -> EdgeKey {
    (edge.from.clone(), edge.to.clone(), edge.kind.as_str())
}

impl Held {
    /// What a client does with a delta (`store::replay`), keyed.
    fn apply(&mut self, delta: Delta) {
        match delta {
            Delta::Node { node, .. } => {
                self.nodes.insert(node.id.clone(), node);
            }
            Delta::RemoveNode { id, .. } => {
                self.nodes.remove(&id);
                self.edges
                    .retain(|(from, to, _), _| *from != id && *to != id);
            }
            Delta::Edge { edge, .. } => {
                self.edges.insert(edge_key(&edge), edge);
            }
            Delta::RemoveEdge { from, to, kind, .. } => {
                self.edges.remove(&(from, to, kind.as_str()));
            }
        }
    }
}

#[derive(Default)]
pub struct Mirror {
    held: RwLock<Held>,
}

/// Sees everything: the mirror holds the whole map.
fn everything() -> Viewer {
    Viewer {
        admin: true,
        daos: Default::default(),
    }
}

impl Mirror {
    /// The map as `viewer` may see it, as of the store's last change:
    /// that number, the nodes by id and the edges by (from, to, kind),
    /// the order of the store's own snapshot.
    pub async fn snapshot(
        &self,
        db: &Db,
        viewer: &Viewer,
    ) -> Result<(i64, Vec<MapNode>, Vec<MapEdge>), MapError> {
        self.catch_up(db).await?;
        let held = self.held.read().await;
        let nodes = held
            .nodes
            .values()
            .filter(|n| viewer.sees(n.public, n.dao.as_deref()))
            .cloned()
            .collect();
        let edges = held
            .edges
            .values()
            .filter(|e| viewer.sees(e.public, e.dao.as_deref()))
            .cloned()
            .collect();
        Ok((held.seq.unwrap_or(0), nodes, edges))
    }

    async fn catch_up(&self, db: &Db) -> Result<(), MapError> {
        let all = everything();
        let Some(since) = self.held.read().await.seq else {
            return self.reload(db).await;
        };
        let (mut page, mut last) = match store::deltas(db, &all, since, PAGE).await {
            Ok(found) => found,
            Err(MapError::TooFarBehind(_)) => return self.reload(db).await,
            Err(e) => return Err(e),
        };
        if last == since {
            return Ok(());
        }
        let mut held = self.held.write().await;
        // Another request may have caught up meanwhile: what it applied
        // is skipped.
        let mut at = held.seq.unwrap_or(0);
        loop {
            let full = page.len() == PAGE as usize;
            for delta in page {
                if delta.seq() > at {
                    at = delta.seq();
                    held.apply(delta);
                }
            }
            if !full {
                break;
            }
            (page, last) = match store::deltas(db, &all, at, PAGE).await {
                Ok(found) => found,
                Err(MapError::TooFarBehind(_)) => {
                    drop(held);
                    return self.reload(db).await;
                }
                Err(e) => return Err(e),
            };
        }
        held.seq = Some(at.max(last));
        Ok(())
    }

    async fn reload(&self, db: &Db) -> Result<(), MapError> {
        let (seq, nodes, edges) = store::snapshot(db, &everything()).await?;
        let mut held = self.held.write().await;
        if held.seq.is_some_and(|s| s >= seq) {
            return Ok(());
        }
        *held = Held {
            seq: Some(seq),
            nodes: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
            edges: edges.into_iter().map(|e| (edge_key(&e), e)).collect(),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::domain::{Anchor, Change, Geometry, MapEdgeKind, MapNodeKind};

    fn node(id: &str, kind: MapNodeKind, dao: Option<&str>, public: bool) -> Change {
        Change::Node {
            id: id.into(),
            kind,
            label: id.into(),
            dao: dao.map(Into::into),
            public,
            district: None,
            anchor: dao.map_or(Anchor::Square, |d| Anchor::Around(format!("dao:{d}"))),
        }
    }

    fn member(from: &str, dao: &str, public: bool) -> Change {
        Change::Edge {
            from: from.into(),
            to: format!("dao:{dao}"),
            kind: MapEdgeKind::Member,
            dao: Some(dao.into()),
            public,
            weight: 1,
        }
    }

    fn viewers() -> Vec<Viewer> {
        vec![
            everything(),
            Viewer {
                admin: false,
                daos: Default::default(),
            },
            Viewer {
                admin: false,
                daos: ["quiet".to_owned()].into(),
            },
        ]
    }

    /// The mirror's snapshot is the store's, for each kind of viewer.
    async fn same_as_the_store(mirror: &Mirror, db: &Db) {
        for viewer in viewers() {
            let held = mirror.snapshot(db, &viewer).await.unwrap();
            let read = store::snapshot(db, &viewer).await.unwrap();
            assert_eq!(held, read, "as {viewer:?}");
        }
    }

    #[tokio::test]
    async fn the_mirror_keeps_up_with_the_store_and_reloads_when_too_far_behind() {
        for test in daarion_testkit::migrated_dbs(&[crate::SPEC.migration_set()]).await {
            let db = &test.db;
            let apply = |id: &'static str, changes: Vec<Change>, retained: i64| async move {
                store::apply(db, id, &changes, &Geometry::default(), retained)
                    .await
                    .unwrap()
            };
            let mirror = Mirror::default();
            same_as_the_store(&mirror, db).await;
            apply(
                "evt_1",
                vec![
                    node("dao:open", MapNodeKind::Dao, Some("open"), true),
                    node("dao:quiet", MapNodeKind::Dao, Some("quiet"), false),
                    node("person:ann", MapNodeKind::Person, None, true),
                    node("person:bo", MapNodeKind::Person, None, true),
                    member("person:ann", "open", true),
                    member("person:ann", "quiet", false),
                    member("person:bo", "quiet", false),
                ],
                10_000,
            )
            .await;
            same_as_the_store(&mirror, db).await;
            // A node leaves with its edges; a community goes public.
            apply(
                "evt_2",
                vec![
                    Change::RemoveNode("person:bo".into()),
                    node("dao:quiet", MapNodeKind::Dao, Some("quiet"), true),
                    Change::RemoveEdge {
                        from: "person:ann".into(),
                        to: "dao:open".into(),
                        kind: MapEdgeKind::Member,
                    },
                    Change::Status {
                        id: "person:ann".into(),
                        status: "away".into(),
                    },
                ],
                10_000,
            )
            .await;
            same_as_the_store(&mirror, db).await;
            // More changes than the store keeps: the mirror starts over.
            let mut many = Vec::new();
            for i in 0..5 {
                many.push(node(
                    &format!("person:p{i}"),
                    MapNodeKind::Person,
                    None,
                    true,
                ));
            }
            apply("evt_3", many, 2).await;
            same_as_the_store(&mirror, db).await;
            let (seq, nodes, _) = mirror.snapshot(db, &everything()).await.unwrap();
            assert!(nodes.iter().any(|n| n.id == "person:p4"));
            assert_eq!(seq, store::snapshot(db, &everything()).await.unwrap().0);
        }
    }
}
