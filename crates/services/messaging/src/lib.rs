//! Messaging service (port 7004): one message store for every kind of room.
//!
//! - Rooms: city rooms (`POST /api/messaging/rooms`), microDAO rooms (`GET/POST
//!   …/daos/{dao}/rooms`; every microDAO gets `general`), direct (`POST
//!   …/direct`) and group (`POST …/groups`) conversations; settings
//!   (`PATCH …/rooms/{room}`: audience and posters by microDAO role, agents
//!   allowed, slow mode), archive, participants.
//! - Messages: markdown rendered safely (`markdown`), topics, replies,
//!   edits with their history, deletes leaving tombstones, reactions,
//!   mentions (an agent's raises `message.mention.<agent>`), attachments by
//!   reference; history both ways by sequence number; read markers per room
//!   and topic with unread counts; full-text search (FTS5 embedded,
//!   PostgreSQL full text distributed).
//!
//! Every change to a room takes the room's next sequence number and is
//! logged (`messaging_log`), so a client that saw up to N can be told what
//! changed since. Events are staged with the data (`MESSAGES` stream).
//!
//! Layout: `domain` (rules), `markdown`, `posting` (group commit), `store`
//! (queries: rooms; messages; new posts; reads; search), `api` (routes:
//! rooms; messages), `access` (rules, rooms as the policies see them),
//! `events`.

pub mod access;
pub mod api;
pub mod domain;
pub mod events;
pub mod markdown;
mod posting;
pub mod store;
mod ws;

use std::sync::Arc;

use daarion_access::{Authenticate, Enforcer, Kind};
use daarion_bus::{Bus, Outbox, subject::StreamDef};
use daarion_cache::Cache;
use daarion_service::{
    BuildError, Context, Event, Mount, Section, Service, ServiceSettings, live::Live,
};
use daarion_store::{Db, migration};
pub use posting::{Poster, Posting};
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "messaging";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7004,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_messaging_tables"),
        migration!(2, "002_take_in_city_rooms"),
        migration!(3, "003_add_room_responders"),
    ],
    rules: access::RULES,
    websocket: true,
    streams: &[StreamDef {
        name: "MESSAGES",
        subjects: &["message.>"],
    }],
    events: &[
        Event::durable(events::CHANGED),
        Event::durable("usage.message"),
        Event::live(events::TYPING),
    ],
    settings: Some(Section::of::<Settings>()),
    example: |kind| match kind {
        Kind::Room => {
            let room = domain::Room {
                id: "rm_example".into(),
                kind: domain::RoomKind::Public,
                dao: None,
                slug: Some("general".into()),
                title: "General".into(),
                description: String::new(),
                audience: None,
                posters: None,
                agents_allowed: true,
                responder: None,
                slow_mode_secs: 0,
                last_seq: 0,
                created_by: "system".into(),
                created_at: String::new(),
                archived_at: None,
            };
            Some(access::room_resource(&room, &[]))
        }
        Kind::MicroDao => Some(daarion_access::Resource::micro_dao("makers")),
        _ => None,
    },
    build: |ctx| Box::pin(build(ctx)),
};

/// `[messaging]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Longest message body, in characters.
    pub max_message_chars: usize,
    /// Messages one person may post per second in one room, sustained...
    pub posts_per_second: f64,
    /// ...and in a burst.
    pub posts_burst: u32,
    /// Most people and agents in a group conversation.
    pub max_group_participants: usize,
    /// Largest frame a WebSocket client may send, in bytes.
    pub ws_max_message_bytes: usize,
    /// Frames a WebSocket client may send per second, sustained...
    pub ws_messages_per_second: f64,
    /// ...and in a burst.
    pub ws_burst: u32,
    /// The server pings each socket this often; two silent intervals end it.
    pub ws_ping_secs: u64,
    /// How often each socket re-asks its caller's credential and access.
    pub ws_recheck_secs: u64,
    /// The longest a socket stays open; the client reconnects.
    pub ws_max_lifetime_secs: u64,
    /// Open sockets per person (or agent) across the city.
    pub ws_connections_per_person: u32,
    /// Rooms one socket may follow.
    pub ws_rooms_per_connection: usize,
    /// The most changes a resuming socket is replayed; past it, the client
    /// is told to reload the room.
    pub ws_replay_max: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_message_chars: 10_000,
            posts_per_second: 5.0,
            posts_burst: 20,
            max_group_participants: 50,
            ws_max_message_bytes: 16 * 1024,
            ws_messages_per_second: 10.0,
            ws_burst: 50,
            ws_ping_secs: 30,
            ws_recheck_secs: 60,
            ws_max_lifetime_secs: 24 * 3600,
            ws_connections_per_person: 20,
            ws_rooms_per_connection: 200,
            ws_replay_max: 1000,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if self.max_message_chars == 0 || self.max_message_chars > 100_000 {
            return Err("messaging.max_message_chars must be between 1 and 100000".into());
        }
        let rate_ok = self.posts_per_second.is_finite() && self.posts_per_second > 0.0;
        if !rate_ok || self.posts_burst == 0 {
            return Err(
                "messaging.posts_per_second and messaging.posts_burst must be positive".into(),
            );
        }
        if !(2..=1000).contains(&self.max_group_participants) {
            return Err("messaging.max_group_participants must be between 2 and 1000".into());
        }
        if self.ws_max_message_bytes < 256 {
            return Err("messaging.ws_max_message_bytes must be at least 256".into());
        }
        let ws_rate_ok =
            self.ws_messages_per_second.is_finite() && self.ws_messages_per_second > 0.0;
        if !ws_rate_ok || self.ws_burst == 0 {
            return Err(
                "messaging.ws_messages_per_second and messaging.ws_burst must be positive".into(),
            );
        }
        if !(1..=3600).contains(&self.ws_ping_secs) || !(1..=3600).contains(&self.ws_recheck_secs) {
            return Err(
                "messaging.ws_ping_secs and messaging.ws_recheck_secs must be between 1 and 3600"
                    .into(),
            );
        }
        if self.ws_max_lifetime_secs < 60 {
            return Err("messaging.ws_max_lifetime_secs must be at least 60".into());
        }
        if self.ws_connections_per_person == 0
            || self.ws_rooms_per_connection == 0
            || self.ws_replay_max == 0
        {
            return Err("messaging.ws_connections_per_person, ws_rooms_per_connection and ws_replay_max must be positive".into());
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct MessagingState {
    db: Db,
    cache: Arc<dyn Cache>,
    outbox: Outbox,
    access: Arc<Enforcer>,
    /// Tells whether a person or agent brought into a conversation exists.
    authn: Arc<dyn Authenticate>,
    settings: Arc<Settings>,
    poster: Poster,
    live: Live,
    /// Live-only events (typing); data events go through the outbox.
    bus: Arc<dyn Bus>,
}

async fn build(ctx: Context) -> Result<Mount, BuildError> {
    store::ensure_city_square(&ctx.db)
        .await
        .map_err(BuildError::new)?;
    let access = ctx.enforcer(access::MessagingResources { db: ctx.db.clone() });
    let db = ctx.db.clone();
    ctx.consume("messaging-daos", events::DAO_CHANGED, move |event| {
        events::on_dao_changed(db.clone(), event)
    });
    let state = MessagingState {
        settings: Arc::new(ctx.settings()?),
        live: ctx.live(),
        poster: Poster::start(ctx.db.clone(), ctx.outbox.clone()),
        bus: ctx.bus.clone(),
        authn: ctx.access.authn.clone(),
        db: ctx.db,
        cache: ctx.cache,
        outbox: ctx.outbox,
        access: access.clone(),
    };
    Ok(Mount::new(access, api::router().with_state(state.clone()))
        .with_ws(ws::router().with_state(state)))
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    ("messaging_messages_total", "Messages posted, by kind."),
    (
        "messaging_post_batch_size",
        "Posts written together in one transaction.",
    ),
];
