//! Auth service (port 7011, `/api/auth/`): passkeys (WebAuthn registration
//! and login, username-first and discoverable / autofill), sessions,
//! recovery codes and API keys. It also provides the [`Authenticator`] every
//! service's enforcement layer uses to turn credentials into principals.
//!
//! Layout: `domain` (names, secrets, errors), `store` (queries),
//! `ceremony` (WebAuthn begin/finish over stored, single-use state),
//! `authn` (credential → principal, cached), `api` (routes), `access`
//! (the rule of every route).

pub mod access;
pub mod api;
pub mod authn;
mod ceremony;
pub mod domain;
pub mod store;

use std::{sync::Arc, time::Duration};

use daarion_cache::Cache;
use daarion_service::{BuildError, Context, Event, Mount, Section, Service, ServiceSettings};
use daarion_store::{Db, migration};
use serde::{Deserialize, Serialize};

pub use authn::Authenticator;
pub use domain::AuthError;

pub const SERVICE: &str = "auth";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7011,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_auth_tables"),
        migration!(2, "002_create_auth_invites"),
        migration!(3, "003_add_api_key_limits"),
        migration!(4, "004_add_session_authenticated_at"),
        migration!(5, "005_create_auth_secrets"),
    ],
    rules: access::RULES,
    websocket: false,
    streams: &[],
    // Revocations clear every replica's credential cache; a replica that
    // misses one serves the stale entry for at most the cache's 5 s.
    events: &[
        Event::live(daarion_access::events::REVOKED),
        Event::durable("audit.error"),
    ],
    settings: Some(Section::of::<Settings>()),
    example: daarion_service::no_example,
    build: |ctx| Box::pin(async move { build(ctx) }),
};

/// `[auth]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// WebAuthn relying-party id: the site's domain (`localhost` in development).
    pub rp_id: String,
    /// Shown by authenticators.
    pub rp_name: String,
    /// Origins passkeys are used from (scheme://host[:port]). Empty: the
    /// listener's own, `http(s)://localhost:<port>`.
    pub origins: Vec<String>,
    /// Anyone may register (the first person becomes the city admin). When
    /// false, every registration needs an invitation: from a city admin
    /// (`POST /api/auth/invites`) or the operator (`daarion admin invite`).
    pub open_registration: bool,
    /// How a city without an admin gets one: `open` (the first person to
    /// register), `invite` (only with an invitation: `daarion up` / `serve
    /// auth` print an admin one at start). Unset: `open` on a loopback
    /// listener, `invite` on any other, so a city exposed to a network is
    /// never the first visitor's.
    pub first_admin: Option<FirstAdmin>,
    /// A session ends after this long without use...
    pub session_idle_secs: u64,
    /// ...and after this long in any case.
    pub session_absolute_secs: u64,
    /// Time to finish a passkey ceremony.
    pub ceremony_secs: u64,
    /// Sign-in attempts per minute, per client address and per username.
    pub login_attempts_per_minute: u32,
    /// Adding a passkey or making new recovery codes needs a passkey proved
    /// this recently (sign-in or `POST /api/auth/reauth/*`), so a session
    /// left open on a shared computer cannot take the account over.
    pub reauth_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rp_id: "localhost".into(),
            rp_name: "DAARION".into(),
            origins: Vec::new(),
            open_registration: true,
            first_admin: None,
            session_idle_secs: 7 * 24 * 3600,
            session_absolute_secs: 30 * 24 * 3600,
            ceremony_secs: 300,
            login_attempts_per_minute: 10,
            reauth_secs: 600,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        self.webauthn().map(|_| ())?;
        if self.session_idle_secs < 60 || self.session_absolute_secs < self.session_idle_secs {
            return Err(
                "auth.session_idle_secs must be ≥ 60 and ≤ auth.session_absolute_secs".into(),
            );
        }
        if !(30..=900).contains(&self.ceremony_secs) {
            return Err("auth.ceremony_secs must be between 30 and 900".into());
        }
        if self.login_attempts_per_minute == 0 {
            return Err("auth.login_attempts_per_minute must be positive".into());
        }
        if !(1..=86_400).contains(&self.reauth_secs) {
            return Err("auth.reauth_secs must be between 1 and 86400".into());
        }
        Ok(())
    }
}

impl Settings {
    /// The session cookie's name: `__Host-` prefixed when every origin
    /// people open the city at is HTTPS.
    pub fn session_cookie(&self) -> &'static str {
        let https =
            !self.origins.is_empty() && self.origins.iter().all(|o| o.starts_with("https://"));
        daarion_kernel::http::session_cookie_name(https)
    }

    pub(crate) fn webauthn(&self) -> Result<webauthn_rs::Webauthn, String> {
        let mut origins = self.origins.iter().map(|o| {
            webauthn_rs::prelude::Url::parse(o)
                .map_err(|e| format!("auth.origins: {o:?} is not a URL: {e}"))
        });
        let localhost = || {
            webauthn_rs::prelude::Url::parse("http://localhost:8080")
                .map_err(|e| format!("auth.origins: {e}"))
        };
        // Unresolved defaults (`config check`) stand for the default port.
        let first = origins.next().unwrap_or_else(localhost)?;
        let mut builder = webauthn_rs::WebauthnBuilder::new(&self.rp_id, &first)
            .map_err(|e| format!("auth.rp_id / auth.origins do not fit together: {e}"))?
            .rp_name(&self.rp_name)
            .timeout(Duration::from_secs(self.ceremony_secs));
        for origin in origins {
            builder = builder.append_allowed_origin(&origin?);
        }
        builder
            .build()
            .map_err(|e| format!("auth.rp_id / auth.origins do not fit together: {e}"))
    }
}

/// See [`Settings::first_admin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstAdmin {
    Open,
    Invite,
}

impl Settings {
    /// What the settings leave to the listener: the first-admin rule
    /// (`open` on loopback) and, when people open this listener itself
    /// (`port`, and whether it is HTTPS), the passkey origin
    /// `localhost:<port>`; otherwise the gateway's default, port 8080.
    pub fn resolve_for_listener(&mut self, loopback: bool, own: Option<(u16, bool)>) {
        self.first_admin.get_or_insert(if loopback {
            FirstAdmin::Open
        } else {
            FirstAdmin::Invite
        });
        if self.origins.is_empty() {
            let (port, https) = own.unwrap_or((8080, false));
            let scheme = if https { "https" } else { "http" };
            self.origins.push(format!("{scheme}://localhost:{port}"));
        }
    }
}

/// A one-time admin invitation when the city has no admin and registers
/// its first one by invitation; the binary prints it at start (as Jupyter
/// prints its token). Each start without an admin mints a new one.
pub async fn first_admin_invitation(
    db: &Db,
    settings: &Settings,
) -> Result<Option<String>, AuthError> {
    if settings.first_admin != Some(FirstAdmin::Invite) || store::has_admin(db).await? {
        return Ok(None);
    }
    let (invite, _) = api::issue_invite(
        db,
        daarion_access::vocab::roles::CityRole::Admin,
        "operator",
        Duration::from_secs(24 * 3600),
    )
    .await?;
    Ok(Some(invite))
}

#[derive(Clone)]
pub struct AuthState {
    db: Db,
    cache: Arc<dyn Cache>,
    authenticator: Authenticator,
    webauthn: Arc<webauthn_rs::Webauthn>,
    settings: Arc<Settings>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Read from the store on first use (`ceremony::decoy_login`).
    decoy_key: Arc<tokio::sync::OnceCell<String>>,
}

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let settings: Settings = ctx.settings()?;
    let webauthn = settings.webauthn().map_err(BuildError::new)?;
    let state = AuthState {
        db: ctx.db.clone(),
        cache: ctx.cache.clone(),
        // The process's authenticator (also behind every enforcer):
        // revocations made here must clear its cache.
        authenticator: ctx.component()?,
        webauthn: Arc::new(webauthn),
        settings: Arc::new(settings),
        trusted_proxies: ctx.trusted_proxies.clone(),
        decoy_key: Arc::default(),
    };
    let enforcer = ctx.enforcer(daarion_access::enforce::NoResources);
    Ok(Mount::new(enforcer, api::router().with_state(state)))
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    ("auth_logins_total", "Passkey sign-ins, by outcome."),
    (
        "auth_registrations_total",
        "Passkey registrations, by outcome.",
    ),
];
