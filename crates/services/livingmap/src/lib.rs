//! The living map (port 7017, `/api/living-map/`): a live picture of the
//! city.
//!
//! - `GET /api/living-map/snapshot`: the microDAOs, their rooms and agents,
//!   people present, city nodes; memberships, agents answering in rooms,
//!   activity; messages and runs a minute, open proposals; each node's
//!   place, grouped by district — as the viewer may see it — and the
//!   number of the last change it holds.
//! - `GET /api/living-map/deltas?since=`: the changes after that number.
//! - `/ws/living-map/stream?since=`: what was missed (or a snapshot), then the
//!   changes as they come, in batches (`ws`).
//!
//! The map is a projection (`project`: an event's changes, `store`: kept
//! once per event id, each change numbered): durable consumers follow the
//! city's events (one replica applies each), and every replica follows
//! the live ones (presence), the first to apply one winning.
//!
//! Layout: `domain` (nodes, edges, deltas, where things stand), `project`,
//! `store`, `mirror` (the map in memory, for snapshots), `api`, `access`.

pub mod access;
pub mod api;
pub mod domain;
pub mod mirror;
pub mod project;
pub mod store;
pub mod ws;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use daarion_bus::{Bus, Envelope, HandlerError};
use daarion_kernel::shutdown::CancellationToken;
use daarion_service::{BuildError, Context, Event, Mount, Service, live::Live};
use daarion_store::{Db, migration};
use tokio::sync::{Mutex, mpsc};

use crate::domain::{Geometry, MapError, Seen};

pub const SERVICE: &str = "living-map";

/// Deltas kept for clients catching up; further behind, they take a
/// snapshot.
const RETAINED_DELTAS: i64 = 10_000;

/// A replica publishes the changes it applied at most this often, as one
/// batch.
pub const BATCH_EVERY: Duration = Duration::from_millis(100);

/// How long the city map's shape is used before it is read again.
const GEOMETRY_TTL: Duration = Duration::from_secs(10);

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7017,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[migration!(1, "001_create_livingmap_tables")],
    rules: access::RULES,
    websocket: true,
    streams: &[],
    events: &[Event::live(ws::DELTAS)],
    settings: None,
    example: daarion_service::no_example,
    build: |ctx| Box::pin(async move { build(ctx) }),
};

/// Applies events to the projection, with the city map's shape at hand,
/// and hands what changed to the batcher.
#[derive(Clone)]
pub struct Projector {
    db: Db,
    geometry: Arc<Mutex<Option<(Instant, Geometry)>>>,
    changed: mpsc::Sender<Seen>,
}

impl Projector {
    pub fn new(db: Db, changed: mpsc::Sender<Seen>) -> Self {
        Self {
            db,
            geometry: Arc::new(Mutex::new(None)),
            changed,
        }
    }

    /// The city map's shape, read again every [`GEOMETRY_TTL`].
    pub async fn geometry(&self) -> Result<Geometry, MapError> {
        let mut cached = self.geometry.lock().await;
        if let Some((at, geometry)) = cached.as_ref()
            && at.elapsed() < GEOMETRY_TTL
        {
            return Ok(geometry.clone());
        }
        let geometry = store::geometry(&self.db).await?;
        *cached = Some((Instant::now(), geometry.clone()));
        Ok(geometry)
    }

    pub async fn apply(&self, event: &Envelope) -> Result<(), MapError> {
        let changes = project::changes(event);
        if changes.is_empty() {
            return Ok(());
        }
        let geometry = self.geometry().await?;
        for seen in store::apply(&self.db, &event.id, &changes, &geometry, RETAINED_DELTAS).await? {
            // A socket that misses a batch fills the gap from the store.
            let _ = self.changed.send(seen).await;
        }
        Ok(())
    }
}

/// Publishes what this replica applied as one live event per batch: at
/// once after a quiet spell, then at most every [`BATCH_EVERY`] while
/// changes keep coming (a throttle, not a debounce: a change waits at most
/// that long).
async fn publish_batches(
    bus: Arc<dyn Bus>,
    mut changed: mpsc::Receiver<Seen>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::new();
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            n = changed.recv_many(&mut batch, 4096) => if n == 0 { return },
        }
        tokio::time::sleep_until(next).await;
        while let Ok(more) = changed.try_recv() {
            batch.push(more);
        }
        batch.sort_by_key(|s| s.delta.seq());
        if let Err(error) = bus.publish(&ws::batch_event(&batch)).await {
            tracing::warn!(%error, "a batch of the living map's changes was not published; sockets will fill the gap");
        }
        batch.clear();
        next = tokio::time::Instant::now() + BATCH_EVERY;
    }
}

#[derive(Clone)]
pub struct MapState {
    db: Db,
    projector: Projector,
    live: Live,
    mirror: Arc<mirror::Mirror>,
}

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(daarion_access::enforce::NoResources);
    let (changed, batches) = mpsc::channel(16_384);
    let projector = Projector::new(ctx.db.clone(), changed);
    ctx.tasks.spawn(publish_batches(
        ctx.bus.clone(),
        batches,
        ctx.shutdown.clone(),
    ));
    for (i, subject) in project::DURABLE.iter().enumerate() {
        let projector = projector.clone();
        ctx.consume(&format!("living-map-{i}"), subject, move |event| {
            let projector = projector.clone();
            async move { projector.apply(&event).await.map_err(HandlerError::new) }
        });
    }
    for subject in project::LIVE {
        let (projector, bus, shutdown) = (projector.clone(), ctx.bus.clone(), ctx.shutdown.clone());
        ctx.tasks.spawn(async move {
            let followed = daarion_bus::runner::follow(bus.as_ref(), subject, shutdown, |event| {
                let projector = projector.clone();
                async move {
                    if let Err(error) = projector.apply(&event).await {
                        tracing::warn!(%error, subject = %event.subject, "a live event did not reach the living map");
                    }
                }
            })
            .await;
            if let Err(error) = followed {
                tracing::warn!(%error, subject, "the living map stopped following live events");
            }
        });
    }
    let state = MapState {
        live: ctx.live(),
        db: ctx.db,
        projector,
        mirror: Arc::default(),
    };
    Ok(Mount::new(access, api::router().with_state(state.clone()))
        .with_ws(ws::router().with_state(state)))
}
