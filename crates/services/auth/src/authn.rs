//! Credentials → principals for every service's enforcement layer, with a
//! short in-process cache. Revocation clears the local cache at once and
//! tells the other replicas over the bus (`authn.revoked`, live-only).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use daarion_access::{
    Credential, Principal, PrincipalKind, Scope,
    enforce::{Authenticate, AuthnUnavailable},
    events::{REVOKED, Revoked},
};
use daarion_bus::{Bus, Envelope};
use daarion_kernel::shutdown::CancellationToken;
use daarion_store::Db;

use crate::{
    domain::{AuthError, hash_secret},
    store,
};

/// How long a resolved credential is trusted without asking the store.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// `last_seen_at` is written at most this often per session or key.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

#[derive(Clone)]
pub struct Authenticator {
    db: Db,
    bus: Arc<dyn Bus>,
    idle: chrono::Duration,
    cache: moka::future::Cache<String, Option<Principal>>,
}

/// A person, with the city roles their account holds.
fn person(user: store::User, scopes: Option<Vec<Scope>>, credential: Credential) -> Principal {
    Principal {
        kind: PrincipalKind::User,
        handle: user.username,
        id: user.id,
        roles: user.city_role.groups(),
        owner: None,
        scopes,
        credential,
    }
}

/// An agent acting for `owner`.
fn agent_of(
    id: &str,
    owner: String,
    scopes: Option<Vec<Scope>>,
    credential: Credential,
) -> Principal {
    Principal {
        kind: PrincipalKind::Agent,
        handle: Principal::handle_for(PrincipalKind::Agent, id),
        id: id.to_owned(),
        roles: Vec::new(),
        owner: Some(owner),
        scopes,
        credential,
    }
}

/// Past `at` (an unreadable time counts as past).
fn passed(at: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    daarion_store::parse_time(at).is_none_or(|t| t <= now)
}

fn stale(last: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    daarion_store::parse_time(last).is_none_or(|t| now - t > TOUCH_EVERY)
}

impl Authenticator {
    pub fn new(db: Db, bus: Arc<dyn Bus>, session_idle: Duration) -> Self {
        Self {
            db,
            bus,
            idle: chrono::Duration::from_std(session_idle).unwrap_or(chrono::Duration::days(7)),
            cache: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }

    /// Forgets revoked credentials (`(id, token hash)`) here and on every
    /// replica, and closes the sockets opened with them.
    pub async fn revoked(&self, credentials: &[(String, String)]) {
        let revoked = Revoked::of(credentials);
        for hash in &revoked.token_hashes {
            self.cache.invalidate(hash).await;
        }
        let event = Envelope::new(
            crate::SERVICE,
            REVOKED,
            serde_json::to_value(&revoked).unwrap_or_default(),
        );
        if let Err(error) = self.bus.publish(&event).await {
            tracing::warn!(%error, "revocation not broadcast; other replicas forget within 5 s");
        }
    }

    /// Writes a security event (failed sign-in, refused credential) to the
    /// `AUDIT` stream.
    pub async fn audit_failure(&self, what: &str, detail: serde_json::Value) {
        let event = Envelope::new(
            crate::SERVICE,
            "audit.error",
            serde_json::json!({ "service": crate::SERVICE, "what": what, "detail": detail }),
        );
        if let Err(error) = self.bus.publish(&event).await {
            tracing::error!(%error, "audit event not published");
        }
    }

    /// Listens for revocations from other replicas until shutdown.
    pub async fn follow_revocations(self, shutdown: CancellationToken) {
        let cache = &self.cache;
        let followed =
            daarion_bus::runner::follow(self.bus.as_ref(), REVOKED, shutdown, |event| async move {
                let revoked: Revoked = serde_json::from_value(event.payload).unwrap_or_default();
                for hash in &revoked.token_hashes {
                    cache.invalidate(hash).await;
                }
            })
            .await;
        if let Err(error) = followed {
            tracing::error!(%error, "cannot follow revocations; cached credentials expire within 5 s");
        }
    }

    async fn resolve_session(&self, hash: &str) -> Result<Option<Principal>, AuthError> {
        let Some(session) = store::session_by_hash(&self.db, hash).await? else {
            return Ok(None);
        };
        let now = chrono::Utc::now();
        let expired = passed(&session.expires_at, now)
            || daarion_store::parse_time(&session.last_seen_at).is_none_or(|t| now - t > self.idle);
        if expired {
            return Ok(None);
        }
        let Some(user) = store::user_by_id(&self.db, &session.user_id).await? else {
            return Ok(None);
        };
        if stale(&session.last_seen_at, now) {
            store::touch_session(&self.db, &session.id).await?;
        }
        Ok(Some(person(
            user,
            None,
            Credential::Session { id: session.id },
        )))
    }

    async fn resolve_api_key(&self, hash: &str) -> Result<Option<Principal>, AuthError> {
        let Some(key) = store::api_key_by_hash(&self.db, hash).await? else {
            return Ok(None);
        };
        let now = chrono::Utc::now();
        if key.expires_at.as_deref().is_some_and(|e| passed(e, now)) {
            return Ok(None);
        }
        let Some(user) = store::user_by_id(&self.db, &key.user_id).await? else {
            return Ok(None);
        };
        if key.last_used_at.as_deref().is_none_or(|t| stale(t, now)) {
            store::touch_api_key(&self.db, &key.id).await?;
        }
        let credential = Credential::ApiKey {
            id: key.id,
            limits: key.limits,
        };
        Ok(Some(match key.agent_id {
            Some(agent) => agent_of(&agent, user.id, Some(key.scopes), credential),
            None => person(user, Some(key.scopes), credential),
        }))
    }

    async fn cached(
        &self,
        hash: String,
        resolve: impl std::future::Future<Output = Result<Option<Principal>, AuthError>>,
    ) -> Result<Option<Principal>, AuthnUnavailable> {
        if let Some(hit) = self.cache.get(&hash).await {
            return Ok(hit);
        }
        let resolved = resolve.await.map_err(|e| AuthnUnavailable(e.to_string()))?;
        self.cache.insert(hash, resolved.clone()).await;
        Ok(resolved)
    }
}

#[async_trait]
impl Authenticate for Authenticator {
    async fn session(&self, token: &str) -> Result<Option<Principal>, AuthnUnavailable> {
        let hash = hash_secret(token);
        self.cached(hash.clone(), self.resolve_session(&hash)).await
    }

    async fn api_key(&self, token: &str) -> Result<Option<Principal>, AuthnUnavailable> {
        let hash = hash_secret(token);
        self.cached(hash.clone(), self.resolve_api_key(&hash)).await
    }

    async fn principal(
        &self,
        kind: PrincipalKind,
        id: &str,
    ) -> Result<Option<Principal>, AuthnUnavailable> {
        let unavailable = |e: AuthError| AuthnUnavailable(e.to_string());
        Ok(match kind {
            PrincipalKind::User => store::user_by_id(&self.db, id)
                .await
                .map_err(unavailable)?
                .map(|user| person(user, None, Credential::ServiceToken)),
            PrincipalKind::Agent => store::agent_owner(&self.db, id)
                .await
                .map_err(unavailable)?
                .map(|owner| agent_of(id, owner, None, Credential::ServiceToken)),
            PrincipalKind::Service => Some(Principal::service(id)),
        })
    }

    async fn is_current(&self, credential: &Credential) -> Result<bool, AuthnUnavailable> {
        let unavailable = |e: AuthError| AuthnUnavailable(e.to_string());
        let now = chrono::Utc::now();
        Ok(match credential {
            Credential::Session { id } => store::session_by_id(&self.db, id)
                .await
                .map_err(unavailable)?
                .is_some_and(|s| !passed(&s.expires_at, now)),
            Credential::ApiKey { id, .. } => store::api_key_by_id(&self.db, id)
                .await
                .map_err(unavailable)?
                .is_some_and(|k| !k.expires_at.as_deref().is_some_and(|e| passed(e, now))),
            // Short-lived (minutes) and never revoked.
            Credential::ServiceToken => true,
        })
    }
}
