//! Space service (port 7002): the node registry, and the city's
//! communities as planets.
//!
//! - `GET /api/space/planets` (`?q=`), `GET /api/space/planets/{slug}`:
//!   the public directory; each public microDAO as a planet with figures
//!   from real data (members, treasury supply, messages per day, an
//!   anomaly score against its own past) and the nodes serving it as
//!   satellites.
//! - `GET/POST /api/space/nodes`, `GET/DELETE /api/space/nodes/{node}`,
//!   `POST …/{node}/token`: city admins register nodes (DAARION instances
//!   or worker hosts), each with a token shown once.
//! - `POST /api/space/nodes/{node}/heartbeat`: a node reports, with its
//!   token in `X-Node-Token`, every `space.heartbeat_secs`; silent for
//!   `space.node_offline_secs`, it is offline.
//!
//! Planets are a projection: consumers read the microDAO service's
//! events, messaging's `message.received.*` and the runtime's
//! `agent.run.completed.*` (in a microDAO's rooms) into space's own tables
//! (`store::planets`), each event once. Layout: `domain` (rules, the
//! anomaly score), `store` (`nodes`, `planets`), `api`, `access`, `events`.

pub mod access;
pub mod api;
pub mod domain;
pub mod events;
pub mod store;

use std::{sync::Arc, time::Duration};

use daarion_access::enforce::NoResources;
use daarion_bus::{Bus, Envelope, Outbox, subject::StreamDef};
use daarion_kernel::shutdown::CancellationToken;
use daarion_service::{BuildError, Context, Event, Mount, Section, Service, ServiceSettings};
use daarion_store::{Db, migration};
use serde::Deserialize;

pub const SERVICE: &str = "space";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7002,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_space_tables"),
        migration!(2, "002_add_planet_runs"),
    ],
    rules: access::RULES,
    websocket: false,
    streams: &[StreamDef {
        name: "SPACE",
        subjects: &["space.>"],
    }],
    events: &[Event::durable(events::NODE_CHANGED)],
    settings: Some(Section::of::<Settings>()),
    example: |_| None,
    build: |ctx| Box::pin(build(ctx)),
};

/// `[space]` settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Whether people who have not signed in may browse the directory of
    /// public communities.
    pub public_directory: bool,
    /// Nodes are told to send a heartbeat this often.
    pub heartbeat_secs: u64,
    /// A node silent this long is offline.
    pub node_offline_secs: u64,
    /// Heartbeats are kept this many hours.
    pub heartbeat_retention_hours: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_directory: true,
            heartbeat_secs: 30,
            node_offline_secs: 300,
            heartbeat_retention_hours: 24,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if !(1..=3600).contains(&self.heartbeat_secs) {
            return Err("space.heartbeat_secs must be between 1 and 3600".into());
        }
        if self.node_offline_secs <= self.heartbeat_secs || self.node_offline_secs > 86_400 {
            return Err(
                "space.node_offline_secs must be above space.heartbeat_secs and at most 86400"
                    .into(),
            );
        }
        if !(1..=24 * 365).contains(&self.heartbeat_retention_hours) {
            return Err("space.heartbeat_retention_hours must be between 1 and 8760".into());
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct SpaceState {
    db: Db,
    outbox: Outbox,
    /// For the node events that describe no data write (a node coming
    /// online or going offline).
    bus: Arc<dyn Bus>,
    settings: Arc<Settings>,
    shutdown: CancellationToken,
}

impl SpaceState {
    /// Heartbeats older than this mean offline.
    fn offline_cutoff(&self) -> String {
        daarion_store::ago(Duration::from_secs(self.settings.node_offline_secs))
    }

    async fn publish(&self, event: &Envelope) {
        if let Err(error) = self.bus.publish(event).await {
            metrics::counter!("space_publish_failures_total").increment(1);
            tracing::error!(%error, subject = %event.subject, "node event not published");
        }
    }
}

async fn build(ctx: Context) -> Result<Mount, BuildError> {
    let settings: Settings = ctx.settings()?;
    let access = ctx.enforcer(NoResources);
    access.allow_public_reads(settings.public_directory);
    let state = SpaceState {
        db: ctx.db.clone(),
        outbox: ctx.outbox.clone(),
        bus: ctx.bus.clone(),
        settings: Arc::new(settings),
        shutdown: ctx.shutdown.clone(),
    };
    for (name, filter) in [
        ("space-planets", events::DAOS),
        ("space-planets-messages", events::MESSAGES),
        ("space-planets-runs", events::RUNS),
    ] {
        let applier = state.clone();
        ctx.consume_batches(name, filter, move |events| {
            events::apply(applier.clone(), events)
        });
    }
    ctx.tasks.spawn(sweep(state.clone()));
    Ok(Mount::new(access, api::router().with_state(state)))
}

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Marks silent nodes offline (each announced once, whichever replica
/// finds it) and prunes old heartbeats and applied-event ids, until
/// shutdown.
async fn sweep(state: SpaceState) {
    let period = Duration::from_secs((state.settings.heartbeat_secs / 3).max(1));
    // Pruning is not urgent: the first round, then about hourly.
    let mut pruned_at: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        match store::nodes::expire(&state.db, &state.offline_cutoff()).await {
            Ok(nodes) => {
                for node in nodes {
                    let event = events::node_changed("offline", &node, &format!("node:{node}"));
                    state.publish(&event).await;
                }
            }
            Err(error) => tracing::warn!(%error, "node sweep failed"),
        }
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(std::time::Instant::now());
            let beats = daarion_store::ago(Duration::from_secs(
                state.settings.heartbeat_retention_hours * 3600,
            ));
            let seen = daarion_store::ago(Duration::from_secs(7 * 24 * 3600));
            let pruned = async {
                store::nodes::prune(&state.db, &beats).await?;
                store::planets::prune_seen(&state.db, &seen).await
            };
            if let Err(error) = pruned.await {
                tracing::warn!(%error, "space prune failed");
            }
        }
    }
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    ("space_heartbeats_total", "Presence heartbeats received."),
    (
        "space_publish_failures_total",
        "Presence events that could not be published.",
    ),
];
