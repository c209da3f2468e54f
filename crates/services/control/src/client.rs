//! The cached reader services use for control-plane documents. A change
//! announced on the bus (`control.<kind>.changed`) evicts the entry in every
//! replica at once; entries also expire after 30 s, in case an announcement
//! was lost.

use std::{sync::Arc, time::Duration};

use daarion_bus::{Bus, Envelope};
use daarion_kernel::shutdown::CancellationToken;
use daarion_store::Db;

use crate::{
    domain::{ControlError, DocKind},
    store::{self, Document},
};

pub const CHANGED: &str = "control.*.changed";

pub fn changed_subject(kind: DocKind) -> String {
    format!("control.{}.changed", kind.as_str())
}

#[derive(Clone)]
pub struct ControlClient {
    db: Db,
    cache: moka::future::Cache<(DocKind, String), Option<Arc<Document>>>,
}

impl ControlClient {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            cache: moka::future::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
        }
    }

    /// The current version of a document, from the cache when it has it.
    pub async fn get(
        &self,
        kind: DocKind,
        key: &str,
    ) -> Result<Option<Arc<Document>>, ControlError> {
        let id = (kind, key.to_owned());
        if let Some(hit) = self.cache.get(&id).await {
            return Ok(hit);
        }
        let loaded = store::current(&self.db, kind, key).await?.map(Arc::new);
        self.cache.insert(id, loaded.clone()).await;
        Ok(loaded)
    }

    pub async fn forget(&self, kind: DocKind, key: &str) {
        self.cache.invalidate(&(kind, key.to_owned())).await;
    }

    /// Announces a change to every replica (and forgets it here).
    pub async fn announce(
        &self,
        bus: &dyn Bus,
        kind: DocKind,
        key: &str,
        version: u64,
        actor: &str,
    ) {
        self.forget(kind, key).await;
        let event = Envelope::new(
            crate::SERVICE,
            changed_subject(kind),
            serde_json::json!({ "kind": kind, "key": key, "version": version }),
        )
        .with_actor(actor);
        if let Err(error) = bus.publish(&event).await {
            tracing::warn!(%error, "control change not announced; replicas refresh within 30 s");
        }
    }

    /// Evicts changed documents as their announcements arrive, until shutdown.
    pub async fn follow(self, bus: Arc<dyn Bus>, shutdown: CancellationToken) {
        let this = &self;
        let followed =
            daarion_bus::runner::follow(bus.as_ref(), CHANGED, shutdown, |event| async move {
                let kind = serde_json::from_value::<DocKind>(event.payload["kind"].clone());
                if let (Ok(kind), Some(key)) = (kind, event.payload["key"].as_str()) {
                    this.forget(kind, key).await;
                }
            })
            .await;
        if let Err(error) = followed {
            tracing::error!(%error, "cannot follow control changes; cached documents expire within 30 s");
        }
    }
}
