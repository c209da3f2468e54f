//! City service (port 7001): public rooms, their messages, and presence.
//!
//! - `GET/POST /api/city/rooms`, `GET /api/city/rooms/{slug}`,
//!   `GET/POST /api/city/rooms/{slug}/messages`, `GET /api/city/presence`.
//! - `/ws/city/rooms/{slug}`: live messages of a room, and posting.
//! - `/ws/city/presence`: join / heartbeat / leave events.
//! - `GET /api/city/map`, `PUT/DELETE /api/city/map/districts/{slug}`,
//!   `PUT/DELETE /api/city/map/places/{slug}`: the city map.
//! - `GET /api/city/feed`, `/ws/city/feed`: what happens in public.
//! - `GET /api/city/agents`, `GET /api/city/agents/{agent}`,
//!   `POST /api/city/agents/presence`: agents' presence.
//!
//! The rooms are messaging's public rooms and the messages messaging's:
//! this service is the city's view of them (rooms by slug, authors by
//! handle), posting through [`daarion_messaging::post`]. Live delivery
//! goes through the bus (`message.received.<room id>`, `presence.city.*`),
//! so clients connected to different replicas, or to messaging's socket,
//! see the same messages. Presence lives in the cache as an expiring set.
//!
//! Layout: `domain` (rules and errors), `map` (the map's shapes and
//! rules), `feed` (what enters the feed, its consumers), `agents` (agents'
//! presence), `store` (the view of messaging's rooms; `store::map`,
//! `store::feed`, `store::agents`), `api` (HTTP routes, OpenAPI), `access`
//! (rules, rooms as the policies see them), `events` (what it publishes),
//! `ws` (what clients send on the sockets; the sessions themselves are the
//! kit's `live`), `presence` (people's).

pub mod access;
pub mod agents;
pub mod api;
pub mod domain;
pub mod events;
pub mod feed;
pub mod map;
mod presence;
pub mod store;
mod ws;

use std::{sync::Arc, time::Duration};

use daarion_access::{Enforcer, Kind, Principal};
use daarion_bus::{Bus, Envelope, Outbox};
use daarion_cache::Cache;
use daarion_kernel::shutdown::{CancellationToken, TaskTracker};
use daarion_service::{
    BuildError, Context, Event, Mount, Section, Service, ServiceSettings, live::Live,
};
use daarion_store::{Db, migration};
use serde::Deserialize;

use crate::{
    api::MessageView,
    domain::{CityError, Slug},
};

pub const SERVICE: &str = "city";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7001,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_city_tables"),
        migration!(2, "002_create_city_map_feed_agents"),
        migration!(3, "003_create_city_communities"),
    ],
    rules: access::RULES,
    websocket: true,
    // Rooms and messages are messaging's (its `MESSAGES` stream).
    streams: &[],
    events: &[
        Event::durable(daarion_messaging::events::CHANGED),
        Event::live(events::PRESENCE),
        Event::live(feed::LIVE),
        Event::live(agents::LIVE),
        Event::durable("usage.message"),
    ],
    settings: Some(Section::of::<Settings>()),
    example: |kind| {
        (kind == Kind::Room)
            .then(|| domain::Slug::parse("general").ok())
            .flatten()
            .map(|slug| access::room_resource(&slug))
    },
    build: |ctx| Box::pin(build(ctx)),
};

/// `[city]` settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Longest message body, in characters.
    pub max_message_chars: usize,
    /// Presence lasts this long after the last heartbeat.
    pub presence_ttl_secs: u64,
    /// Largest WebSocket message a client may send, in bytes.
    pub ws_max_message_bytes: usize,
    /// Messages a WebSocket client may send per second, sustained...
    pub ws_messages_per_second: f64,
    /// ...and in a burst.
    pub ws_burst: u32,
    /// The server pings each socket this often; a client silent for two
    /// intervals is disconnected.
    pub ws_ping_secs: u64,
    /// Each socket asks this often whether its session or key still stands
    /// and the policies still grant it (revocations and policy changes
    /// close sockets at once; this catches a missed event).
    pub ws_recheck_secs: u64,
    /// The longest a socket stays open; the client reconnects.
    pub ws_max_lifetime_secs: u64,
    /// Whether people who have not signed in may read the city's rooms
    /// and their history, the map, the feed and agents' presence.
    pub public_read: bool,
    /// The map's size, in cells.
    pub map_width: u32,
    pub map_height: u32,
    /// Feed entries are kept this many days.
    pub feed_retention_days: u32,
    /// An agent's reported status lasts this long; silent longer, it is
    /// offline.
    pub agent_presence_ttl_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_message_chars: 4000,
            presence_ttl_secs: 30,
            ws_max_message_bytes: 16 * 1024,
            ws_messages_per_second: 5.0,
            ws_burst: 20,
            ws_ping_secs: 30,
            ws_recheck_secs: 60,
            ws_max_lifetime_secs: 24 * 3600,
            public_read: true,
            map_width: 12,
            map_height: 8,
            feed_retention_days: 30,
            agent_presence_ttl_secs: 90,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.max_message_chars == 0 || self.max_message_chars > 100_000 {
            return Err("city.max_message_chars must be between 1 and 100000".into());
        }
        if self.presence_ttl_secs < 3 {
            return Err("city.presence_ttl_secs must be at least 3".into());
        }
        if self.ws_max_message_bytes < 256 {
            return Err("city.ws_max_message_bytes must be at least 256".into());
        }
        let rate_ok = self.ws_messages_per_second.is_finite() && self.ws_messages_per_second > 0.0;
        if !rate_ok || self.ws_burst == 0 {
            return Err("city.ws_messages_per_second and city.ws_burst must be positive".into());
        }
        if self.ws_ping_secs == 0 || self.ws_ping_secs > 3600 {
            return Err("city.ws_ping_secs must be between 1 and 3600".into());
        }
        if self.ws_recheck_secs == 0 || self.ws_recheck_secs > 3600 {
            return Err("city.ws_recheck_secs must be between 1 and 3600".into());
        }
        if self.ws_max_lifetime_secs < 60 {
            return Err("city.ws_max_lifetime_secs must be at least 60".into());
        }
        let cells = 1..=map::MAX_CELLS;
        if !cells.contains(&self.map_width) || !cells.contains(&self.map_height) {
            return Err(format!(
                "city.map_width and city.map_height must be between 1 and {}",
                map::MAX_CELLS
            ));
        }
        if self.feed_retention_days == 0 || self.feed_retention_days > 3650 {
            return Err("city.feed_retention_days must be between 1 and 3650".into());
        }
        if !(3..=86_400).contains(&self.agent_presence_ttl_secs) {
            return Err("city.agent_presence_ttl_secs must be between 3 and 86400".into());
        }
        Ok(())
    }
}

impl Settings {
    fn presence_ttl(&self) -> Duration {
        Duration::from_secs(self.presence_ttl_secs)
    }

    fn grid(&self) -> map::Grid {
        map::Grid {
            width: self.map_width,
            height: self.map_height,
        }
    }
}

#[derive(Clone)]
pub struct CityState {
    db: Db,
    bus: Arc<dyn Bus>,
    cache: Arc<dyn Cache>,
    settings: Arc<Settings>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    live: Live,
    access: Arc<Enforcer>,
    /// Relays the events staged with rooms.
    outbox: Outbox,
    /// Posts messages through messaging's group commit.
    poster: daarion_messaging::Poster,
}

impl CityState {
    /// Publishes a live event. The data is already committed, so a bus
    /// failure costs live delivery only (clients catch up from history).
    async fn publish(&self, event: &Envelope) {
        if let Err(error) = self.bus.publish(event).await {
            metrics::counter!("city_publish_failures_total").increment(1);
            tracing::error!(%error, subject = %event.subject, "live event not published");
        }
    }
}

/// Builds the service on migrated storage, creating the `general` room and
/// starting the presence sweeper.
async fn build(ctx: Context) -> Result<Mount, BuildError> {
    store::ensure_general(&ctx.db)
        .await
        .map_err(BuildError::new)?;
    let access = ctx.enforcer(access::CityResources::new(ctx.db.clone()));
    let settings: Settings = ctx.settings()?;
    access.allow_public_reads(settings.public_read);
    let state = CityState {
        live: ctx.live(),
        settings: Arc::new(settings),
        db: ctx.db.clone(),
        bus: ctx.bus.clone(),
        cache: ctx.cache.clone(),
        shutdown: ctx.shutdown.clone(),
        tasks: ctx.tasks.clone(),
        access: access.clone(),
        outbox: ctx.outbox.clone(),
        poster: daarion_messaging::Poster::start(ctx.db.clone(), ctx.outbox.clone()),
    };
    state.tasks.spawn(presence::sweep(state.clone()));
    state.tasks.spawn(agents::sweep(state.clone()));
    state.tasks.spawn(feed::prune(state.clone()));
    for (name, filter) in [
        ("city-feed", feed::MESSAGES),
        ("city-feed-daos", feed::DAOS),
    ] {
        let feeder = state.clone();
        ctx.consume_batches(name, filter, move |events| {
            feed::apply(feeder.clone(), events)
        });
    }
    Ok(Mount::new(access, api::router().with_state(state.clone()))
        .with_ws(ws::router().with_state(state)))
}

/// Posts a message (HTTP or WebSocket) through messaging, which stages
/// its events (live delivery, agents) and usage record with it.
async fn post_message(
    state: &CityState,
    slug: &Slug,
    author: &Principal,
    body: &str,
    idempotency_key: Option<&str>,
) -> Result<(MessageView, bool), CityError> {
    let (message, fresh) = store::create_message(
        &state.db,
        &state.poster,
        slug,
        author,
        (body, state.settings.max_message_chars),
        idempotency_key,
    )
    .await?;
    if fresh {
        metrics::counter!("city_messages_total").increment(1);
    }
    Ok((MessageView::from(message), fresh))
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    (
        "city_feed_entries_total",
        "Entries added to the city feed, by kind.",
    ),
    ("city_messages_total", "Messages posted in city rooms."),
    (
        "city_publish_failures_total",
        "City events that could not be published.",
    ),
];
