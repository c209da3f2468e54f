//! The event bus: one interface, two implementations.
//!
//! - [`EmbeddedBus`]: in-process, with durable events persisted in the SQL
//!   store so unacknowledged deliveries survive a restart (all-in-one mode).
//! - [`NatsBus`]: NATS JetStream (distributed mode, several replicas).
//!
//! Which subjects are durable is the [`subject::Streams`] each bus is built
//! with: the platform's `AUDIT` and the streams the process's services own.
//!
//! Both offer ephemeral subscriptions (every subscriber sees every matching
//! event, for real-time fan-out) and durable consumers (each event is
//! delivered to one worker of the consumer until acknowledged; at least once).
//! What must behave the same on both, deduplication by event id and dead
//! letters after too many failed deliveries, lives once in [`runner`].
//!
//! Layout: `envelope` (the event envelope), `subject` (subject rules and
//! streams), `embedded`, `nats`, `runner` (consumer loop, dedupe, dead letters),
//! `outbox` (events written with their data, relayed after commit), `queued`
//! (batched publishing off the request path).

mod embedded;
mod envelope;
mod nats;
pub mod outbox;
mod queued;
pub mod retention;
pub mod runner;
pub mod subject;

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use embedded::EmbeddedBus;
pub use envelope::Envelope;
pub use nats::NatsBus;
pub use outbox::{Outbox, Staged};
pub use queued::QueuedPublisher;
pub use runner::{
    DeadLetter, DeadLetters, HandlerError, report_backlog, run_batch_consumer, run_consumer,
};

pub const MIGRATIONS: daarion_store::MigrationSet = daarion_store::MigrationSet {
    service: "bus",
    migrations: &[
        daarion_store::migration!(1, "001_create_bus_tables"),
        daarion_store::migration!(2, "002_create_bus_outbox"),
    ],
};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid subject {0:?}: dot-separated tokens of letters, digits, - and _")]
    InvalidSubject(String),
    #[error("{service} publishes {subject:?}, which its declaration does not list")]
    Undeclared {
        service: &'static str,
        subject: String,
    },
    #[error("invalid streams: {0}")]
    InvalidStreams(String),
    #[error("no stream holds subjects matching {0:?}")]
    NoStream(String),
    #[error("bus unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("event could not be encoded or decoded")]
    Codec(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] daarion_store::StoreError),
}

impl BusError {
    fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

/// A live feed of events matching a subject pattern.
pub type Subscription = BoxStream<'static, Envelope>;

/// A durable consumer's settings.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable name shared by every worker (and replica) of the consumer.
    pub name: String,
    /// Subject pattern, within one stream (`city.message.>`).
    pub filter: String,
    /// How long a delivery may stay unacknowledged, without word from its
    /// worker, before it is redelivered (the runner sends word while a
    /// handler works: see [`Delivery::progress`]).
    pub ack_wait: Duration,
    /// Deliveries before an event goes to the dead-letter store.
    pub max_deliver: u32,
    /// Deliveries one worker takes ahead (hidden from the others until
    /// acknowledged or `ack_wait` passes): many for quick handlers, one
    /// for long ones, so that workers share them.
    pub prefetch: u32,
    /// A consumer created for the first time also takes the events its
    /// stream still holds (JetStream's `DeliverPolicy::All`); otherwise it
    /// starts with what is published after. For handlers that are
    /// idempotent and whose work must not be lost while no worker existed
    /// yet (agent runs requested before any runtime started).
    pub from_start: bool,
}

impl ConsumerSpec {
    pub fn new(name: impl Into<String>, filter: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            filter: filter.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            prefetch: 32,
            from_start: false,
        }
    }
}

/// A durable consumer's queue lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub consumer: String,
    /// Events not delivered yet, or delivered and not yet acknowledged.
    pub pending: u64,
}

/// One delivery of an event to a durable consumer; must be settled with
/// [`ack`](Delivery::ack), [`nack`](Delivery::nack) or [`term`](Delivery::term),
/// otherwise it is redelivered after `ack_wait`.
pub struct Delivery {
    pub envelope: Envelope,
    /// 1 on first delivery.
    pub attempt: u32,
    acker: Box<dyn Acker>,
}

impl Delivery {
    /// Done: never deliver again.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    /// Failed: deliver again after `delay`.
    pub async fn nack(self, delay: Duration) -> Result<(), BusError> {
        self.acker.nack(delay).await
    }

    /// Give up: never deliver again (used after dead-lettering).
    pub async fn term(self) -> Result<(), BusError> {
        self.acker.term().await
    }

    /// Still working on it: not to be redelivered for another `ack_wait`.
    /// A handler that runs long keeps its delivery this way, so `ack_wait`
    /// is how soon the delivery of a worker that died comes back, not how
    /// long the work may take.
    pub async fn progress(&self) -> Result<(), BusError> {
        self.acker.progress().await
    }
}

#[async_trait]
trait Acker: Send + Sync {
    async fn ack(&self) -> Result<(), BusError>;
    async fn nack(&self, delay: Duration) -> Result<(), BusError>;
    async fn term(&self) -> Result<(), BusError>;
    async fn progress(&self) -> Result<(), BusError>;
}

/// Receives deliveries of one durable consumer.
#[async_trait]
pub trait Consumer: Send {
    async fn next(&mut self) -> Result<Delivery, BusError>;

    /// The next delivery, waited for, and up to `max - 1` more that are
    /// already at hand (none is waited for).
    async fn next_batch(&mut self, _max: usize) -> Result<Vec<Delivery>, BusError> {
        Ok(vec![self.next().await?])
    }

    /// Acknowledges deliveries of this consumer, as one write where the
    /// bus allows it.
    async fn ack_batch(&mut self, deliveries: Vec<Delivery>) -> Result<(), BusError> {
        for delivery in deliveries {
            delivery.ack().await?;
        }
        Ok(())
    }
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes an event. Subjects that belong to a stream are stored durably
    /// before this returns; every matching subscriber also gets it live.
    async fn publish(&self, event: &Envelope) -> Result<(), BusError>;

    /// Publishes events in order, stopping at the first failure. The
    /// embedded bus stores them in one transaction (all or none); NATS sends
    /// them all before waiting for the acknowledgements.
    async fn publish_batch(&self, events: &[Envelope]) -> Result<(), BusError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }

    /// Stores `events` within the caller's transaction when this bus keeps
    /// its events in that database (the embedded bus), so they are durable
    /// exactly when the data is; `false` when it cannot (they then go
    /// through the outbox table). See [`Outbox`].
    async fn stage_in(
        &self,
        _tx: &mut daarion_store::sql::Transaction<'_, daarion_store::sql::Any>,
        _events: &[Envelope],
    ) -> Result<bool, BusError> {
        Ok(false)
    }

    /// Delivers live, after their transaction committed, events that
    /// [`Bus::stage_in`] stored.
    async fn announce(&self, events: &[Envelope]) -> Result<(), BusError> {
        self.publish_batch(events).await
    }

    /// Live events whose subject matches `pattern` (`*` one token, `>` the rest),
    /// from now on. A subscriber that falls far behind skips events rather
    /// than slowing the publisher.
    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError>;

    /// Opens (creating if needed) a durable consumer. It receives events
    /// published after it was first created.
    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, BusError>;

    /// How many events each durable consumer has yet to settle: the
    /// embedded bus knows every consumer of the city, NATS those this
    /// process opened.
    async fn backlog(&self) -> Result<Vec<Backlog>, BusError>;

    /// `embedded` or `nats`, for health reports and logs.
    fn kind(&self) -> &'static str;

    async fn ping(&self) -> Result<(), BusError>;
}

/// Health check for whichever bus is in use.
pub struct BusHealth(pub std::sync::Arc<dyn Bus>);

#[async_trait]
impl daarion_kernel::DependencyCheck for BusHealth {
    fn name(&self) -> &'static str {
        match self.0.kind() {
            "nats" => "nats",
            _ => "bus",
        }
    }

    async fn check(&self) -> daarion_kernel::DependencyStatus {
        use daarion_kernel::DependencyStatus::*;
        match tokio::time::timeout(Duration::from_secs(2), self.0.ping()).await {
            Ok(Ok(())) if self.0.kind() == "nats" => Connected,
            Ok(Ok(())) => Embedded,
            _ => Disconnected,
        }
    }
}

impl From<daarion_store::sql::Error> for BusError {
    fn from(error: daarion_store::sql::Error) -> Self {
        Self::Store(error.into())
    }
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    (
        "bus_deliveries_total",
        "Deliveries to durable consumers settled, by consumer and outcome.",
    ),
    (
        "bus_outbox_deferred_total",
        "Events left in the outbox for the relay because the bus did not take them.",
    ),
    (
        "bus_publish_failures_total",
        "Events the batched publisher could not publish, by domain.",
    ),
    (
        "bus_consumer_pending_events",
        "Events a durable consumer has yet to settle (queue lag), by consumer.",
    ),
];
