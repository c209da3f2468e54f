//! Settings: built-in defaults (embedded backends) → `daarion.toml` →
//! environment. `DATABASE_URL`, `NATS_URL` and `REDIS_URL` are read as in the
//! seeds; everything else as `DAARION__SECTION__KEY` (e.g.
//! `DAARION__CITY__MAX_MESSAGE_CHARS`). Each service's section (`[city]`)
//! belongs to the service: its type, defaults and rules come from its
//! [`Service`] declaration in [`crate::SERVICES`].

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use daarion_kernel::Secret;
use daarion_service::{Service, ServiceSettings};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

// Not `deny_unknown_fields` (serde cannot with `flatten`): an unknown
// top-level key lands in `services` and `validate` names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Address to listen on; default 127.0.0.1:8080 for `up`, the service's
    /// standard port for `serve`.
    pub listen: Option<SocketAddr>,
    /// Where the embedded database lives.
    pub data_dir: PathBuf,
    /// Where `daarion models install` puts the local models (embeddings);
    /// default `<data_dir>/models`.
    pub models_dir: Option<PathBuf>,
    /// `postgres://...` switches from the embedded SQLite file to PostgreSQL.
    pub database_url: Option<String>,
    /// `nats://...` switches from the in-process bus to NATS JetStream.
    pub nats_url: Option<String>,
    /// Prefix of every subject and stream on NATS (several cities on one server).
    pub nats_namespace: String,
    /// `redis://...` switches from the in-process cache to Redis.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// Log filter (`RUST_LOG` syntax); `RUST_LOG` wins when set.
    pub log: String,
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver (e.g.
    /// `http://127.0.0.1:4318`): each request and event handled is sent
    /// there as a span. Unset: no traces, unless the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub otlp_endpoint: Option<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Days delivered bus events and processed-event ids are kept (dedupe window).
    pub bus_retention_days: u32,
    /// Shared secret (≥ 32 bytes) signing internal service tokens; every
    /// process of a distributed city needs the same one. Unset: service
    /// tokens are refused.
    pub service_token_secret: Option<Secret>,
    pub gateway: GatewaySettings,
    pub server: ServerSettings,
    /// Backups: where they go, when `up` makes them, how many are kept.
    pub backup: daarion_backup::Settings,
    /// One section per service that has settings (`[auth]`, `[city]`,
    /// `[llm]`, `[usage]`…), decoded by the service itself.
    #[serde(flatten)]
    pub services: Sections,
}

/// The services' sections, as values. `Debug` names the sections only:
/// their values may hold secrets, which only the decoded types hide.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sections(BTreeMap<String, serde_json::Value>);

impl std::fmt::Debug for Sections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Sections {
    /// Every service's defaults.
    fn defaults() -> Self {
        Self(
            crate::SERVICES
                .iter()
                .filter_map(|s| Some((s.name.to_owned(), (s.settings?.default)())))
                .collect(),
        )
    }

    /// The section of `service` (an empty one if it has no settings).
    pub fn get(&self, service: &Service) -> serde_json::Value {
        self.0
            .get(service.name)
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}))
    }

    /// Replaces the section of `service` (unset keys take their defaults).
    pub fn set(&mut self, service: &Service, value: serde_json::Value) {
        self.0.insert(service.name.to_owned(), value);
    }

    /// The section of `service`, decoded.
    pub fn decode<T: ServiceSettings>(&self, service: &Service) -> Result<T, ConfigError> {
        daarion_service::settings::decode(service.name, &self.get(service)).map_err(ConfigError)
    }

    /// Changes some settings of `service`'s section.
    pub fn update<T: ServiceSettings>(
        &mut self,
        service: &Service,
        change: impl FnOnce(&mut T),
    ) -> Result<(), ConfigError> {
        let mut decoded: T = self.decode(service)?;
        change(&mut decoded);
        let value = serde_json::to_value(decoded).map_err(|e| ConfigError(e.to_string()))?;
        self.set(service, value);
        Ok(())
    }

    /// Every section belongs to a service of this build and is valid.
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in &self.0 {
            let section =
                section_of(name).ok_or_else(|| ConfigError(format!("unknown setting {name:?}")))?;
            (section.validate)(name, value).map_err(ConfigError)?;
        }
        Ok(())
    }

    /// Each section decoded and encoded again: secrets read `***`.
    fn shown(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0
            .iter()
            .map(|(name, value)| {
                let shown = section_of(name)
                    .and_then(|section| (section.show)(name, value).ok())
                    .unwrap_or_else(|| "(invalid)".into());
                (name.clone(), shown)
            })
            .collect()
    }
}

/// The settings section of the service named `name`, if it has one.
fn section_of(name: &str) -> Option<daarion_service::Section> {
    crate::service(name).ok()?.settings
}

/// `[server]`: the listener, in every shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// A client must send its request headers within this many seconds...
    pub header_read_timeout_secs: u64,
    /// ...and never pause longer than this while sending a body (408).
    pub body_read_timeout_secs: u64,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Open connections one client address may hold.
    pub max_connections_per_client: usize,
    /// PEM certificate chain and private key: serve HTTPS (HTTP/2 by ALPN).
    /// Reloaded when the files change.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// With TLS: also listen here on plain HTTP and redirect to HTTPS.
    pub http_redirect_listen: Option<SocketAddr>,
    /// Besides loopback clients, who may read `/metrics`: these networks
    /// (a Prometheus server's)...
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// ...and requests with `Authorization: Bearer <this>`.
    pub metrics_token: Option<Secret>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            max_header_bytes: 64 * 1024,
            max_connections_per_client: 256,
            tls_cert: None,
            tls_key: None,
            http_redirect_listen: None,
            metrics_allow: Vec::new(),
            metrics_token: None,
        }
    }
}

impl ServerSettings {
    pub fn body_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.body_read_timeout_secs)
    }

    pub fn metrics(&self) -> daarion_kernel::metrics::MetricsAccess {
        daarion_kernel::metrics::MetricsAccess {
            allow: self.metrics_allow.clone(),
            token: self.metrics_token.clone(),
        }
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// The listener's options; loads the certificate when TLS is on.
    /// `exempt`: proxies in front of us, to which the per-client cap does not apply.
    pub fn options(
        &self,
        exempt: &[ipnet::IpNet],
    ) -> Result<daarion_kernel::server::ServerOptions, ConfigError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                daarion_kernel::server::Tls::load(cert.clone(), key.clone())
                    .map_err(|e| ConfigError(format!("server.tls_cert / server.tls_key: {e}")))?,
            ),
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "server.tls_cert and server.tls_key go together".into(),
                ));
            }
        };
        Ok(daarion_kernel::server::ServerOptions {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            max_header_bytes: self.max_header_bytes,
            max_connections_per_client: self.max_connections_per_client,
            exempt: exempt.to_vec(),
            tls,
            ..Default::default()
        })
    }
}

/// `[gateway]`: the edge, in `daarion up` and `daarion gateway`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Route table file (TOML), reloaded on change or SIGHUP; unset: the
    /// built-in table (every service on its standard port).
    pub routes_file: Option<PathBuf>,
    /// Proxies (CIDRs) whose X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Default rate limit of `/api/` routes, per client address.
    pub rate_limit_per_second: f64,
    pub rate_limit_burst: u32,
    /// Requests per signed-in person or agent (per API key for keys), on
    /// top of the per-address limit.
    pub principal_rate_limit_per_second: f64,
    pub principal_rate_limit_burst: u32,
    /// Origins allowed to call the API from a browser (CORS); empty: off.
    pub cors_origins: Vec<String>,
    /// Serve the embedded web UI on paths no route claims.
    pub web_ui: bool,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            routes_file: None,
            trusted_proxies: Vec::new(),
            rate_limit_per_second: 10.0,
            rate_limit_burst: 20,
            principal_rate_limit_per_second: 20.0,
            principal_rate_limit_burst: 40,
            cors_origins: Vec::new(),
            web_ui: true,
        }
    }
}

impl GatewaySettings {
    pub fn edge(&self, server: &ServerSettings) -> daarion_gateway::EdgeSettings {
        daarion_gateway::EdgeSettings {
            trusted_proxies: self.trusted_proxies.clone(),
            default_rate_limit: daarion_cache::RateLimit {
                per_second: self.rate_limit_per_second,
                burst: self.rate_limit_burst,
            },
            tls: server.tls_enabled(),
            routes_file: self.routes_file.clone(),
            cors_origins: self.cors_origins.clone(),
            web_ui: self.web_ui,
            metrics: server.metrics(),
        }
    }

    /// The route table: the file's, or `built_in`.
    pub fn table(
        &self,
        built_in: daarion_gateway::config::RouteTable,
    ) -> Result<daarion_gateway::config::RouteTable, ConfigError> {
        match &self.routes_file {
            Some(path) => daarion_gateway::config::RouteTable::load(path)
                .map_err(|e| ConfigError(format!("gateway.routes_file: {e}"))),
            None => Ok(built_in),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: None,
            data_dir: PathBuf::from("./data"),
            models_dir: None,
            database_url: None,
            nats_url: None,
            nats_namespace: String::new(),
            redis_url: None,
            redis_prefix: "daarion:".into(),
            log: "info".into(),
            otlp_endpoint: None,
            max_body_bytes: 1024 * 1024,
            bus_retention_days: 7,
            service_token_secret: None,
            gateway: GatewaySettings::default(),
            server: ServerSettings::default(),
            backup: daarion_backup::Settings::default(),
            services: Sections::defaults(),
        }
    }
}

/// A setting that is wrong, named.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Where the local models are (`models_dir`, or `<data_dir>/models`).
    pub fn models_dir(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("models"))
    }

    /// Loads the layers. `file` must exist when given explicitly; the default
    /// `daarion.toml` is optional.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("daarion.toml")),
        }
        let settings: Settings = figment
            .merge(Env::raw().only(&["DATABASE_URL", "NATS_URL", "REDIS_URL"]))
            .merge(Env::prefixed("DAARION__").split("__"))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let scheme = |name: &str, value: &Option<String>, schemes: &[&str]| match value {
            Some(url) if !schemes.iter().any(|s| url.starts_with(s)) => Err(ConfigError(format!(
                "{name} must start with one of {schemes:?}, got {url:?}"
            ))),
            _ => Ok(()),
        };
        scheme(
            "DATABASE_URL",
            &self.database_url,
            &["postgres://", "postgresql://", "sqlite:"],
        )?;
        scheme("NATS_URL", &self.nats_url, &["nats://", "tls://"])?;
        scheme("REDIS_URL", &self.redis_url, &["redis://", "rediss://"])?;
        if !self.nats_namespace.is_empty()
            && daarion_bus::subject::validate(&self.nats_namespace).is_err()
        {
            return Err(ConfigError(
                "nats_namespace must be dot-separated letters, digits, - and _".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes must be at least 1024".into()));
        }
        if self.bus_retention_days == 0 {
            return Err(ConfigError("bus_retention_days must be at least 1".into()));
        }
        self.service_tokens()?;
        self.backup.validate().map_err(ConfigError)?;
        self.services.validate()?;
        let rate = self.gateway.rate_limit_per_second;
        if !(rate.is_finite() && rate > 0.0) || self.gateway.rate_limit_burst == 0 {
            return Err(ConfigError(
                "gateway.rate_limit_per_second and gateway.rate_limit_burst must be positive"
                    .into(),
            ));
        }
        let rate = self.gateway.principal_rate_limit_per_second;
        if !(rate.is_finite() && rate > 0.0) || self.gateway.principal_rate_limit_burst == 0 {
            return Err(ConfigError(
                "gateway.principal_rate_limit_per_second and gateway.principal_rate_limit_burst must be positive"
                    .into(),
            ));
        }
        self.gateway.table(crate::default_routes())?;
        if let Some(token) = &self.server.metrics_token
            && (token.expose().len() < 24
                || daarion_kernel::secret::is_placeholder(token.expose().as_bytes()))
        {
            return Err(ConfigError(
                "server.metrics_token must be a generated token of 24 characters or more (head -c 24 /dev/urandom | base64)".into(),
            ));
        }
        if self.server.header_read_timeout_secs == 0
            || self.server.body_read_timeout_secs == 0
            || self.server.max_connections_per_client == 0
        {
            return Err(ConfigError(
                "server.header_read_timeout_secs, server.body_read_timeout_secs and server.max_connections_per_client must be positive".into(),
            ));
        }
        if self.server.max_header_bytes < 8192 {
            return Err(ConfigError(
                "server.max_header_bytes must be at least 8192".into(),
            ));
        }
        self.server.options(&[])?;
        if self.server.http_redirect_listen.is_some() && !self.server.tls_enabled() {
            return Err(ConfigError(
                "server.http_redirect_listen needs server.tls_cert".into(),
            ));
        }
        Ok(())
    }

    /// Signs and verifies service tokens, when a secret is configured.
    pub fn service_tokens(
        &self,
    ) -> Result<Option<daarion_access::token::ServiceTokens>, ConfigError> {
        self.service_token_secret
            .as_ref()
            .map(|secret| {
                daarion_access::token::ServiceTokens::new(secret.expose().as_bytes())
                    .map_err(|e| ConfigError(format!("service_token_secret: {e}")))
            })
            .transpose()
    }

    /// Where backups go: `backup.dir`, or `<data_dir>/backups`.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("backups"))
    }

    /// The database to use: `DATABASE_URL`, or the SQLite file in the data dir.
    pub fn database(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("daarion.db").display()))
    }
}

/// Settings as shown by `config check`: URLs without passwords, secrets as
/// `***`.
pub fn redacted(settings: &Settings) -> serde_json::Value {
    let mut shown = settings.clone();
    let strip = |url: &mut Option<String>| {
        if let Some(u) = url.as_mut()
            && let Some((scheme, rest)) = u.split_once("://")
            && let Some((auth, host)) = rest.split_once('@')
        {
            let user = auth.split(':').next().unwrap_or("");
            *u = format!("{scheme}://{user}:***@{host}");
        }
    };
    strip(&mut shown.database_url);
    strip(&mut shown.nats_url);
    strip(&mut shown.redis_url);
    let sections = shown.services.shown();
    shown.services = Sections::default();
    let mut value = serde_json::to_value(shown).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.extend(sections);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_settings_are_named() {
        let bad = Settings {
            database_url: Some("mysql://x".into()),
            ..Settings::default()
        };
        let message = bad
            .validate()
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default();
        assert!(message.contains("DATABASE_URL"), "{message}");
        let bad = Settings {
            redis_url: Some("http://x".into()),
            ..Settings::default()
        };
        assert!(bad.validate().is_err());
        let mut bad = Settings::default();
        bad.services
            .update(&daarion_city::SPEC, |c: &mut daarion_city::Settings| {
                c.max_message_chars = 0
            })
            .unwrap();
        assert!(
            bad.validate()
                .map_err(|e| e.to_string())
                .err()
                .unwrap_or_default()
                .contains("city.max_message_chars")
        );
        assert!(Settings::default().validate().is_ok());
        for (token, refused) in [
            ("short", true),
            ("replace-with-a-long-random-token", true),
            ("Kd83hQp0vZ2mW7xN4cT9bY1eR6", false),
        ] {
            let mut settings = Settings::default();
            settings.server.metrics_token = Some(token.into());
            assert_eq!(settings.validate().is_err(), refused, "{token}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let mut s = Settings {
            database_url: Some("postgres://u:secret@h/db".into()),
            service_token_secret: Some("tok-Qz8LwX3-tok-Rv5NpM2-tok-Kc9JdH7-tok".into()),
            ..Settings::default()
        };
        s.services.set(
            &daarion_llm::SPEC,
            serde_json::json!({"providers": {"p": {
                "kind": "openai", "base_url": "http://127.0.0.1:9", "api_key": "sk-provider-secret"
            }}}),
        );
        assert!(!format!("{s:?}").contains("sk-provider"));
        let shown = redacted(&s).to_string();
        assert!(!shown.contains("sk-provider"), "{shown}");
        assert!(shown.contains("\"max_message_chars\":4000"), "{shown}");
        assert!(!shown.contains(":secret@"), "{shown}");
        assert!(!shown.contains("Qz8LwX3"), "{shown}");
        assert!(shown.contains("postgres://u:***@h/db"));
    }
}
