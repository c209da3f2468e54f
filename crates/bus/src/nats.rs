//! NATS JetStream. Durable subjects are published to the streams of
//! DESIGN §4 and acknowledged by the server before `publish` returns; live
//! subscriptions are plain NATS subscriptions, which see those same messages,
//! so real-time fan-out reaches every replica.
//!
//! A namespace prefixes every subject and stream name, so that tests (or
//! several cities on one NATS) never see each other's events.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};

use crate::{
    Acker, Backlog, Bus, BusError, Consumer, ConsumerSpec, Delivery, Envelope, Subscription,
    subject::{self, Streams},
};

#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    namespace: String,
    streams: Streams,
    /// The consumers this process opened, by stream: whose backlog it
    /// reports.
    opened: Arc<Mutex<BTreeSet<(String, String)>>>,
}

impl NatsBus {
    /// Connects and creates (or updates) `streams`.
    pub async fn connect(url: &str, namespace: &str, streams: Streams) -> Result<Self, BusError> {
        if !namespace.is_empty() {
            subject::validate(namespace)?;
        }
        let client = async_nats::ConnectOptions::new()
            .name("daarion")
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(BusError::unavailable)?;
        // Connecting retries in the background; fail start-up clearly if the
        // server does not answer soon.
        tokio::time::timeout(Duration::from_secs(10), client.flush())
            .await
            .map_err(BusError::unavailable)?
            .map_err(BusError::unavailable)?;
        let js = jetstream::new(client.clone());
        let bus = Self {
            client,
            js,
            namespace: namespace.to_owned(),
            streams,
            opened: Arc::default(),
        };
        for def in bus.streams.iter() {
            bus.js
                .create_or_update_stream(stream::Config {
                    name: bus.stream_name(def.name),
                    subjects: def.subjects.iter().map(|s| bus.qualify(s)).collect(),
                    max_age: Duration::from_secs(7 * 24 * 3600),
                    duplicate_window: Duration::from_secs(120),
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(BusError::unavailable)?;
        }
        Ok(bus)
    }

    fn qualify(&self, subject: &str) -> String {
        if self.namespace.is_empty() {
            subject.to_owned()
        } else {
            format!("{}.{subject}", self.namespace)
        }
    }

    fn stream_name(&self, name: &str) -> String {
        if self.namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.namespace.replace('.', "_"))
        }
    }
}

impl NatsBus {
    /// Sends one event: to its stream (returning the pending
    /// acknowledgement), or live only when no stream holds its subject.
    async fn send(
        &self,
        event: &Envelope,
    ) -> Result<Option<jetstream::context::PublishAckFuture>, BusError> {
        subject::validate(&event.subject)?;
        let body = serde_json::to_vec(event)?;
        let target = self.qualify(&event.subject);
        if self.streams.for_subject(&event.subject).is_some() {
            let mut headers = async_nats::HeaderMap::new();
            // JetStream drops a second publish with the same id (retries).
            headers.insert("Nats-Msg-Id", event.id.as_str());
            let ack = self
                .js
                .publish_with_headers(target, headers, body.into())
                .await
                .map_err(BusError::unavailable)?;
            Ok(Some(ack))
        } else {
            self.client
                .publish(target, body.into())
                .await
                .map_err(BusError::unavailable)?;
            Ok(None)
        }
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, event: &Envelope) -> Result<(), BusError> {
        self.publish_batch(std::slice::from_ref(event)).await
    }

    /// Sends every event before waiting for JetStream's acknowledgements,
    /// so a batch costs about one round trip rather than one per event.
    async fn publish_batch(&self, events: &[Envelope]) -> Result<(), BusError> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            if let Some(ack) = self.send(event).await? {
                acks.push(ack);
            }
        }
        for ack in acks {
            ack.await.map_err(BusError::unavailable)?;
        }
        Ok(())
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        subject::validate_pattern(pattern)?;
        let subscriber = self
            .client
            .subscribe(self.qualify(pattern))
            .await
            .map_err(BusError::unavailable)?;
        let stream = subscriber.filter_map(|message| async move {
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) => Some(envelope),
                Err(error) => {
                    tracing::warn!(%error, subject = %message.subject, "dropped undecodable event");
                    None
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, BusError> {
        let def = self.streams.for_filter(&spec.filter)?;
        let stream_name = self.stream_name(def.name);
        let stream = self
            .js
            .get_stream(&stream_name)
            .await
            .map_err(BusError::unavailable)?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &spec.name,
                pull::Config {
                    durable_name: Some(spec.name.clone()),
                    filter_subject: self.qualify(&spec.filter),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: spec.ack_wait,
                    // Dead-lettering is decided by the runner, the same way on
                    // every bus; the server keeps redelivering until then.
                    max_deliver: -1,
                    deliver_policy: if spec.from_start {
                        jetstream::consumer::DeliverPolicy::All
                    } else {
                        jetstream::consumer::DeliverPolicy::New
                    },
                    ..Default::default()
                },
            )
            .await
            .map_err(BusError::unavailable)?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(usize::try_from(spec.prefetch.max(1)).unwrap_or(1))
            .messages()
            .await
            .map_err(BusError::unavailable)?;
        if let Ok(mut opened) = self.opened.lock() {
            opened.insert((stream_name, spec.name.clone()));
        }
        Ok(Box::new(NatsConsumer { messages }))
    }

    /// The server's count of what each consumer has not yet been given
    /// (`num_pending`) plus what it holds unacknowledged.
    async fn backlog(&self) -> Result<Vec<Backlog>, BusError> {
        let opened: Vec<(String, String)> = match self.opened.lock() {
            Ok(opened) => opened.iter().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut backlog = Vec::with_capacity(opened.len());
        for (stream, consumer) in opened {
            let info = self
                .js
                .get_stream_no_info(&stream)
                .await
                .map_err(BusError::unavailable)?
                .consumer_info(&consumer)
                .await
                .map_err(BusError::unavailable)?;
            backlog.push(Backlog {
                consumer,
                pending: info
                    .num_pending
                    .saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX)),
            });
        }
        Ok(backlog)
    }

    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.client.flush().await.map_err(BusError::unavailable)
    }
}

struct NatsConsumer {
    messages: pull::Stream,
}

#[async_trait]
impl Consumer for NatsConsumer {
    /// The messages the pull stream already holds come with the first.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut batch = vec![self.next().await?];
        // `next` is cancel-safe up to taking a message from the stream,
        // which a not-ready poll has not done (an undecodable message being
        // terminated when dropped is redelivered and terminated again).
        // A failure is left for the next call to meet.
        while batch.len() < max
            && let Some(Ok(delivery)) = self.next().now_or_never()
        {
            batch.push(delivery);
        }
        Ok(batch)
    }

    /// Acknowledgements in flight together, each confirmed by the server.
    async fn ack_batch(&mut self, deliveries: Vec<Delivery>) -> Result<(), BusError> {
        futures::future::try_join_all(deliveries.into_iter().map(Delivery::ack)).await?;
        Ok(())
    }

    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let message = match self.messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => return Err(BusError::unavailable(error)),
                None => {
                    return Err(BusError::Unavailable("consumer stream ended".into()));
                }
            };
            let attempt = message
                .info()
                .map(|info| u32::try_from(info.delivered).unwrap_or(u32::MAX))
                .unwrap_or(1);
            let (message, acker) = message.split();
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) => {
                    return Ok(Delivery {
                        envelope,
                        attempt,
                        acker: Box::new(NatsAcker(acker)),
                    });
                }
                Err(error) => {
                    // Not ours to retry: it will never decode.
                    tracing::error!(%error, subject = %message.subject, "terminated undecodable event");
                    let _ = acker.ack_with(AckKind::Term).await;
                }
            }
        }
    }
}

struct NatsAcker(jetstream::message::Acker);

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(&self) -> Result<(), BusError> {
        // Wait for the server's confirmation, so an acknowledged event is
        // never redelivered after the handler's work was committed.
        self.0.double_ack().await.map_err(BusError::Unavailable)
    }

    async fn nack(&self, delay: Duration) -> Result<(), BusError> {
        self.0
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(BusError::Unavailable)
    }

    async fn term(&self) -> Result<(), BusError> {
        self.0
            .ack_with(AckKind::Term)
            .await
            .map_err(BusError::Unavailable)
    }

    /// JetStream's "working on it": the ack wait starts again.
    async fn progress(&self) -> Result<(), BusError> {
        self.0
            .ack_with(AckKind::Progress)
            .await
            .map_err(BusError::Unavailable)
    }
}
