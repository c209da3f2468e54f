//! Enforcement on every request: each service declares, per endpoint, the
//! action and resource it needs ([`Rule`]); one middleware authenticates the
//! caller, loads the resource, asks the engine, answers `401`/`403` itself,
//! and writes every state-changing decision to the `AUDIT` stream. An
//! endpoint without a rule is refused, never open.

use std::sync::Arc;

use async_trait::async_trait;
use axum::{
    extract::{
        FromRequestParts, MatchedPath, OptionalFromRequestParts, RawPathParams, Request, State,
    },
    http::{Method, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use daarion_bus::Envelope;
use daarion_cache::{Cache, RateLimit};
use daarion_kernel::ApiError;
use serde_json::json;

use crate::{
    Action, Decision, Engine, Facts, Kind, Principal, PrincipalKind, Resource, token::ServiceTokens,
};

pub use daarion_kernel::http::API_KEY_PREFIX;

/// Who may call one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (sign-in ceremonies, health).
    Public,
    /// Any authenticated principal; the handler decides on its own data
    /// (e.g. "my sessions").
    SignedIn,
    /// The engine decides `action` on the target.
    Check(Action, Target),
    /// Reading: like `Check(Read, target)` for a caller with credentials;
    /// without any, allowed where the service lets anyone read
    /// ([`Enforcer::allow_public_reads`]) and the target is public (the
    /// city, or a resource whose `public` attribute is true).
    PublicRead(Target),
    /// Like `Check`, for a person's session only: changes to an account
    /// (passkeys, sessions, recovery codes, API keys) and invitations, which
    /// a leaked API key must never make (it could add a passkey that
    /// outlives the key).
    SessionCheck(Action, Target),
}

/// Which resource an endpoint acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The city itself.
    City,
    /// The caller's own account (`User` = the caller).
    Myself,
    /// The resource of this kind named by a path parameter.
    Path(Kind, &'static str),
    /// A fixed resource of this kind (e.g. the policy set).
    Named(Kind, &'static str),
}

/// One endpoint's declared decision. `path` is the full route template as
/// mounted (`/api/city/rooms/{slug}`), the same as in the OpenAPI document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

impl Rule {
    pub const fn new(method: Method, path: &'static str, access: Access) -> Self {
        Self {
            method,
            path,
            access,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("credential store unavailable: {0}")]
pub struct AuthnUnavailable(pub String);

/// Resolves credentials to principals (the auth service implements it).
#[async_trait]
pub trait Authenticate: Send + Sync + 'static {
    /// `Ok(None)`: unknown, expired or revoked.
    async fn session(&self, token: &str) -> Result<Option<Principal>, AuthnUnavailable>;
    async fn api_key(&self, token: &str) -> Result<Option<Principal>, AuthnUnavailable>;
    /// A principal by kind and id, as it would authenticate (roles included),
    /// for decisions about someone other than the caller.
    async fn principal(
        &self,
        kind: PrincipalKind,
        id: &str,
    ) -> Result<Option<Principal>, AuthnUnavailable>;
    /// Whether `credential` still stands (not revoked, not past its
    /// expiry): long-lived connections ask now and then, in case they
    /// missed a revocation event.
    async fn is_current(&self, credential: &crate::Credential) -> Result<bool, AuthnUnavailable>;
}

/// Loads the resources a service's paths name, with what the policies read.
#[async_trait]
pub trait Resources: Send + Sync + 'static {
    /// `Ok(None)` when there is no such resource (the caller gets `404`).
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError>;

    /// Loads it for a request: a service may leave what it read in the
    /// request's `extensions`, so its handler need not read it again.
    async fn load_for_request(
        &self,
        kind: Kind,
        id: &str,
        _extensions: &mut axum::http::Extensions,
    ) -> Result<Option<Resource>, ApiError> {
        self.load(kind, id).await
    }
}

/// Resources for services whose paths name nothing to load.
pub struct NoResources;

#[async_trait]
impl Resources for NoResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        Ok(Some(Resource::new(kind, id)))
    }
}

/// The enforcement point of one service.
pub struct Enforcer {
    service: &'static str,
    rules: &'static [Rule],
    engine: Arc<Engine>,
    authn: Arc<dyn Authenticate>,
    tokens: Option<ServiceTokens>,
    resources: Arc<dyn Resources>,
    audit: daarion_bus::QueuedPublisher,
    limiter: Option<(Arc<dyn Cache>, RateLimit)>,
    failures: Option<Arc<dyn Cache>>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    session_cookie: &'static str,
    /// Whether `PublicRead` routes answer callers without credentials.
    public_reads: std::sync::atomic::AtomicBool,
}

/// Refused credentials are counted per client over this window.
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// What every enforcer of a process shares.
#[derive(Clone)]
pub struct AccessDeps {
    pub engine: Arc<Engine>,
    pub authn: Arc<dyn Authenticate>,
    pub tokens: Option<ServiceTokens>,
    /// Where audit events go (`AUDIT` stream, off the request path).
    pub audit: daarion_bus::QueuedPublisher,
    /// Requests per signed-in principal (per API key for keys), counted in
    /// the cache: with Redis, one budget across every replica.
    pub limiter: Option<(Arc<dyn Cache>, RateLimit)>,
    /// Where refused credentials are counted per client and minute, so a
    /// flood of bad keys writes a handful of audit rows (the first, then at
    /// 10, 100, 1000... with the count), not one each. `None`: one each.
    pub failures: Option<Arc<dyn Cache>>,
    /// Proxies (our gateway) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// The session cookie's name: `daarion_kernel::http::session_cookie_name`
    /// of the city's scheme (only that name is read).
    pub session_cookie: &'static str,
}

impl Enforcer {
    pub fn new(
        service: &'static str,
        rules: &'static [Rule],
        resources: Arc<dyn Resources>,
        deps: AccessDeps,
    ) -> Arc<Self> {
        Arc::new(Self {
            service,
            rules,
            engine: deps.engine,
            authn: deps.authn,
            tokens: deps.tokens,
            resources,
            audit: deps.audit,
            limiter: deps.limiter,
            failures: deps.failures,
            trusted_proxies: deps.trusted_proxies,
            session_cookie: deps.session_cookie,
            public_reads: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Lets callers without credentials read what `PublicRead` routes
    /// name when it is public (the city's `public_read` setting).
    pub fn allow_public_reads(&self, allowed: bool) {
        self.public_reads
            .store(allowed, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Looks principals up (for decisions about someone else).
    pub fn directory(&self) -> &Arc<dyn Authenticate> {
        &self.authn
    }

    fn rule(&self, method: &Method, path: &str) -> Option<&'static Rule> {
        // HEAD is answered by the GET route.
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.rules
            .iter()
            .find(|r| r.method == *method && r.path == path)
    }

    /// Who the request's credentials name. A credential that is present but
    /// wrong is an error, never a silent fall-back to anonymous.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, ApiError> {
        if let Some(token) = bearer(parts)? {
            if token.starts_with(API_KEY_PREFIX) {
                return match self.authn.api_key(token).await {
                    Ok(Some(principal)) => Ok(Some(principal)),
                    Ok(None) => {
                        let message = "API key is unknown, expired or revoked";
                        self.refused(parts, "api_key", message).await;
                        Err(ApiError::unauthorized(message))
                    }
                    Err(e) => Err(ApiError::unavailable(&e)),
                };
            }
            let Some(tokens) = &self.tokens else {
                return Err(ApiError::unauthorized(
                    "service tokens are not enabled here",
                ));
            };
            return match tokens.verify_bearer(token, self.service) {
                Ok(crate::token::Bearer::Service(name)) => Ok(Some(Principal::service(&name))),
                Ok(crate::token::Bearer::Dao { dao, .. }) => Ok(Some(Principal::governance(&dao))),
                Ok(crate::token::Bearer::Agent { agent, .. }) => {
                    // The agent as it is now (its roles, its owner), with
                    // the token as its credential: a runtime never holds
                    // the agent's own keys.
                    match self.authn.principal(PrincipalKind::Agent, &agent).await {
                        Ok(Some(principal)) => Ok(Some(Principal {
                            credential: crate::Credential::ServiceToken,
                            scopes: None,
                            ..principal
                        })),
                        Ok(None) => {
                            let message = "the token acts as an agent that does not exist";
                            self.refused(parts, "service_token", message).await;
                            Err(ApiError::unauthorized(message))
                        }
                        Err(e) => Err(ApiError::unavailable(&e)),
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    self.refused(parts, "service_token", &message).await;
                    Err(ApiError::unauthorized(message))
                }
            };
        }
        if let Some(token) = session_cookie(parts, self.session_cookie) {
            return match self.authn.session(token).await {
                Ok(Some(principal)) => Ok(Some(principal)),
                Ok(None) => Err(ApiError::unauthorized(
                    "session is expired or revoked; sign in again",
                )),
                Err(e) => Err(ApiError::unavailable(&e)),
            };
        }
        Ok(None)
    }

    /// Records a refused bearer credential (a forged token, a revoked or
    /// unknown key) on the `AUDIT` stream: per client and minute the first
    /// one, then the 10th, 100th... with the count, so guessing keys cannot
    /// write without bound. Expired sessions are routine and not recorded.
    async fn refused(&self, parts: &Parts, credential: &str, reason: &str) {
        let client = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or_else(
                || "unknown".to_owned(),
                |c| {
                    daarion_kernel::http::client_ip(c.0, &parts.headers, &self.trusted_proxies)
                        .to_string()
                },
            );
        let count = match &self.failures {
            Some(cache) => cache
                .incr(&format!("audit:refused:{client}"), 1, Some(FAILURE_WINDOW))
                .await
                .unwrap_or(1),
            None => 1,
        };
        metrics::counter!("access_credentials_refused_total", "service" => self.service)
            .increment(1);
        if !is_power_of_ten(count) {
            return;
        }
        let payload = json!({
            "service": self.service,
            "what": "credential refused",
            "credential": credential,
            "reason": reason,
            "client": client,
            "count": count,
            "window_secs": FAILURE_WINDOW.as_secs(),
        });
        self.audit
            .publish(Envelope::new(self.service, "audit.error", payload))
            .await;
    }

    /// Spends one request of the principal's budget: `429` when it is gone.
    async fn limit(&self, principal: &Principal) -> Result<(), ApiError> {
        let Some((cache, limit)) = &self.limiter else {
            return Ok(());
        };
        let key = match &principal.credential {
            crate::Credential::ApiKey { id, .. } => format!("rl:key:{id}"),
            _ => format!("rl:{}", principal.name()),
        };
        match cache.rate_limit(&key, *limit).await {
            Ok(decision) if !decision.allowed => {
                metrics::counter!("access_rate_limited_total", "service" => self.service)
                    .increment(1);
                Err(ApiError::rate_limited(decision.retry_after))
            }
            Ok(_) => Ok(()),
            Err(error) => {
                // Failing open: a cache outage must not lock everyone out.
                tracing::warn!(%error, "per-principal rate limit check failed; request admitted");
                Ok(())
            }
        }
    }

    /// Whether `principal` may do `action` to `resource`, for an answer
    /// that tells a client what to offer (a settings button): nothing is
    /// attempted, so nothing is audited.
    pub fn allows(&self, principal: &Principal, action: Action, resource: &Resource) -> bool {
        principal.scope_allows(self.service, action)
            && self
                .engine
                .decide(principal, action, resource, Facts::default())
                .allowed
    }

    /// Decides, audits what changes state, and turns a denial into `403`.
    pub async fn check(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        facts: Facts,
    ) -> Result<Decision, ApiError> {
        let decision = if principal.scope_allows(self.service, action) {
            self.engine.decide(principal, action, resource, facts)
        } else {
            Decision {
                allowed: false,
                policies: vec!["api-key-scope".into()],
                errors: Vec::new(),
            }
        };
        metrics::counter!(
            "pdp_decisions_total",
            "service" => self.service,
            "action" => action.as_str(),
            "decision" => if decision.allowed { "allow" } else { "deny" },
        )
        .increment(1);
        if action.changes_state() {
            self.audit(principal, action, resource, &decision).await;
        }
        if decision.allowed {
            Ok(decision)
        } else {
            Err(ApiError::forbidden(format!(
                "{} may not {action} this {}",
                principal.handle, resource.kind
            )))
        }
    }

    async fn audit(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        decision: &Decision,
    ) {
        let payload = json!({
            "service": self.service,
            "principal": principal.name(),
            "handle": principal.handle,
            "action": action,
            "resource": {"type": resource.kind, "id": resource.id},
            "allowed": decision.allowed,
            "policies": decision.policies,
        });
        let event =
            Envelope::new(self.service, "audit.action", payload).with_actor(principal.name());
        self.audit.publish(event).await;
    }

    async fn target(
        &self,
        target: Target,
        principal: Option<&Principal>,
        parts: &mut Parts,
    ) -> Result<Resource, ApiError> {
        match target {
            Target::City => Ok(Resource::city()),
            Target::Myself => principal
                .map(|p| Resource::new(p.kind.kind(), p.id.clone()))
                .ok_or_else(signed_out),
            Target::Named(kind, id) => Ok(Resource::new(kind, id)),
            Target::Path(kind, param) => {
                let params = RawPathParams::from_request_parts(parts, &())
                    .await
                    .map_err(|e| ApiError::bad_request(e.body_text()))?;
                let id = params
                    .iter()
                    .find(|(name, _)| *name == param)
                    .map(|(_, value)| value.to_owned())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("missing path parameter {param}"))
                    })?;
                self.resources
                    .load_for_request(kind, &id, &mut parts.extensions)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("no such {kind}: {id}")))
            }
        }
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(daarion_kernel::http::bearer_token)
        .map(Some)
        .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`"))
}

fn session_cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The middleware: `route_layer(from_fn_with_state(enforcer, enforce))`.
pub async fn enforce(
    State(enforcer): State<Arc<Enforcer>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    match authorize(&enforcer, &mut parts).await {
        Ok(principal) => {
            if let Some(principal) = principal {
                parts.extensions.insert(principal);
            }
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}

async fn authorize(enforcer: &Enforcer, parts: &mut Parts) -> Result<Option<Principal>, ApiError> {
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some(rule) = enforcer.rule(&parts.method, &path) else {
        let mut allowed: Vec<&str> = enforcer
            .rules
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.method.as_str())
            .collect();
        if !allowed.is_empty() {
            if allowed.contains(&"GET") {
                allowed.push("HEAD");
            }
            allowed.sort_unstable();
            return Err(ApiError::method_not_allowed(&allowed));
        }
        tracing::error!(method = %parts.method, path, "endpoint has no access rule: refused");
        return Err(ApiError::forbidden("this endpoint declares no access rule"));
    };
    if rule.access == Access::Public {
        // A stale or revoked cookie must not stand between a person and
        // signing in again (or out): public routes take what authenticates
        // and ignore the rest.
        let principal = enforcer.authenticate(parts).await.ok().flatten();
        if let Some(principal) = &principal {
            enforcer.limit(principal).await?;
        }
        // A cross-site page's request acts for nobody.
        return Ok(principal.filter(|p| !riding_a_cookie(p, parts)));
    }
    let principal = enforcer.authenticate(parts).await?;
    if let Some(principal) = &principal {
        if riding_a_cookie(principal, parts) {
            return Err(ApiError::forbidden(
                "cross-site request refused: a page of another site cannot act with this site's session",
            ));
        }
        enforcer.limit(principal).await?;
    }
    match rule.access {
        Access::Public => Ok(principal),
        Access::SignedIn => principal.map(Some).ok_or_else(signed_out),
        Access::PublicRead(target) => {
            let resource = enforcer.target(target, principal.as_ref(), parts).await?;
            match principal {
                Some(principal) => {
                    enforcer
                        .check(&principal, Action::Read, &resource, Facts::default())
                        .await?;
                    Ok(Some(principal))
                }
                None if enforcer
                    .public_reads
                    .load(std::sync::atomic::Ordering::Relaxed)
                    && resource.is_public() =>
                {
                    Ok(None)
                }
                None => Err(signed_out()),
            }
        }
        Access::Check(action, target) | Access::SessionCheck(action, target) => {
            let principal = principal.ok_or_else(signed_out)?;
            if matches!(rule.access, Access::SessionCheck(..))
                && !matches!(principal.credential, crate::Credential::Session { .. })
            {
                return Err(ApiError::forbidden(
                    "only a person signed in with a passkey may do this; API keys and service tokens cannot change an account or invite",
                ));
            }
            let resource = enforcer.target(target, Some(&principal), parts).await?;
            enforcer
                .check(&principal, action, &resource, Facts::default())
                .await?;
            Ok(Some(principal))
        }
    }
}

fn signed_out() -> ApiError {
    ApiError::unauthorized("sign in first (session cookie or Bearer API key)")
}

/// Whether this is another site's page making the browser act with our
/// session cookie (CSRF, cross-site WebSocket hijacking): a state-changing
/// request or a WebSocket upgrade, authenticated by the cookie, that the
/// browser marks cross-site (`Sec-Fetch-Site`) or whose `Origin` is not this
/// host. Bearer credentials are never sent by a browser on its own, and
/// clients that send neither header (scripts, older browsers) pass: the
/// cookie is also `SameSite=Lax`.
fn riding_a_cookie(principal: &Principal, parts: &Parts) -> bool {
    let by_cookie = matches!(principal.credential, crate::Credential::Session { .. });
    let acts = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        || parts.headers.contains_key(axum::http::header::UPGRADE);
    by_cookie && acts && cross_site(&parts.headers)
}

fn cross_site(headers: &axum::http::HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_none_or(|(_, authority)| !authority.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// 1, 10, 100, ...: the counts at which repeated failures are recorded.
fn is_power_of_ten(mut n: i64) -> bool {
    if n < 1 {
        return false;
    }
    while n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(signed_out)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}
