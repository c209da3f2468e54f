//! A service's view of the bus: publishing a subject its declaration does
//! not list is refused, so `Service::events` (and the streams checked
//! against it) stay true.

use std::sync::Arc;

use async_trait::async_trait;
use daarion_bus::{Bus, BusError, Consumer, ConsumerSpec, Envelope, Subscription, subject};

use crate::Service;

/// `bus`, as `service` may use it.
pub fn declared(service: &'static Service, bus: Arc<dyn Bus>) -> Arc<dyn Bus> {
    Arc::new(Declared { service, bus })
}

struct Declared {
    service: &'static Service,
    bus: Arc<dyn Bus>,
}

impl Declared {
    fn check(&self, event: &Envelope) -> Result<(), BusError> {
        let listed = self
            .service
            .events
            .iter()
            .any(|e| subject::matches(e.subject, &event.subject));
        if listed {
            Ok(())
        } else {
            Err(BusError::Undeclared {
                service: self.service.name,
                subject: event.subject.clone(),
            })
        }
    }
}

#[async_trait]
impl Bus for Declared {
    async fn publish(&self, event: &Envelope) -> Result<(), BusError> {
        self.check(event)?;
        self.bus.publish(event).await
    }

    async fn publish_batch(&self, events: &[Envelope]) -> Result<(), BusError> {
        events.iter().try_for_each(|e| self.check(e))?;
        self.bus.publish_batch(events).await
    }

    async fn stage_in(
        &self,
        tx: &mut daarion_store::sql::Transaction<'_, daarion_store::sql::Any>,
        events: &[Envelope],
    ) -> Result<bool, BusError> {
        events.iter().try_for_each(|e| self.check(e))?;
        self.bus.stage_in(tx, events).await
    }

    async fn announce(&self, events: &[Envelope]) -> Result<(), BusError> {
        self.bus.announce(events).await
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        self.bus.subscribe(pattern).await
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, BusError> {
        self.bus.consumer(spec).await
    }

    async fn backlog(&self) -> Result<Vec<daarion_bus::Backlog>, BusError> {
        self.bus.backlog().await
    }

    fn kind(&self) -> &'static str {
        self.bus.kind()
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.bus.ping().await
    }
}
