//! Memberships as role groups on every principal (`dao:<slug>:<role>`),
//! for every process's enforcement layer. Looked up once per principal and
//! cached for a few seconds; a membership change makes this process forget
//! at once and every other one as its event arrives, so a removed member
//! loses access on the next request wherever it lands.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use daarion_access::{RoleSource, enforce::AuthnUnavailable};
use daarion_bus::Bus;
use daarion_kernel::shutdown::CancellationToken;
use daarion_store::Db;

/// How long looked-up roles are trusted if no event says otherwise.
const CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct MembershipRoles {
    db: Db,
    cache: moka::future::Cache<String, Arc<Vec<String>>>,
}

impl MembershipRoles {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            cache: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }

    /// Drops the cached roles of `principal` (`user:<id>`, `agent:<id>`).
    pub async fn forget(&self, principal: &str) {
        self.cache.invalidate(principal).await;
    }

    /// Forgets every principal's roles: a custom role's permissions
    /// changed, and who holds it is not known here.
    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }

    /// Forgets the roles of every member whose membership changes on any
    /// replica (a founder's included), and everyone's when a custom role changes, until shutdown.
    pub async fn follow(self, bus: Arc<dyn Bus>, shutdown: CancellationToken) {
        let members = daarion_bus::runner::follow(
            bus.as_ref(),
            crate::events::MEMBER_CHANGED,
            shutdown.clone(),
            |event| {
                let cache = &self.cache;
                async move {
                    if let Some(principal) = event.payload["principal"].as_str() {
                        cache.invalidate(principal).await;
                    }
                }
            },
        );
        // A founder becomes the owner without a member event.
        let founders = daarion_bus::runner::follow(
            bus.as_ref(),
            "microdao.dao.created.*",
            shutdown.clone(),
            |event| {
                let cache = &self.cache;
                async move {
                    if let Some(founder) = event.actor.as_deref() {
                        cache.invalidate(founder).await;
                    }
                }
            },
        );
        let roles = daarion_bus::runner::follow(
            bus.as_ref(),
            crate::events::ROLE_CHANGED,
            shutdown,
            |_| async { self.forget_all() },
        );
        let (members, founders, roles) = tokio::join!(members, founders, roles);
        if let Err(error) = members.and(founders).and(roles) {
            tracing::error!(%error, "cannot follow membership changes; cached roles expire within 5 s");
        }
    }
}

#[async_trait]
impl RoleSource for MembershipRoles {
    async fn roles(&self, name: &str) -> Result<Vec<String>, AuthnUnavailable> {
        let db = &self.db;
        let roles = self
            .cache
            .try_get_with(name.to_owned(), async move {
                crate::store::role_groups(db, name).await.map(Arc::new)
            })
            .await
            .map_err(|e| AuthnUnavailable(e.to_string()))?;
        Ok(roles.as_ref().clone())
    }
}
