//! The route table: path prefixes → upstream groups, from TOML.
//!
//! ```toml
//! [[routes]]
//! prefix = "/api/living-map/"
//! upstream = "living-map"
//! rewrite = "/living-map/"        # replace the prefix upstream (or strip_prefix = true)
//! websocket = false
//! max_body_bytes = 1048576
//! rate_limit = { per_second = 10.0, burst = 20 }   # or rate_limit = "off"
//! timeouts = { connect_ms = 2000, response_ms = 30000, idle_ms = 60000 }
//!
//! [upstreams.living-map]
//! addresses = ["127.0.0.1:7017"]
//! balance = "round_robin"          # or "least_requests", or { hash = "header:x-user" } / { hash = "cookie:sid" }
//! health_check = { path = "/health", interval_ms = 5000, healthy = 2, unhealthy = 3 }
//! passive = { failures = 3, eject_ms = 10000 }
//! retries = 1                      # idempotent methods on connection failures only
//! ```
//!
//! Adding a service is one `[[routes]]` entry and one `[upstreams.NAME]`.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Path prefix, starting and ending with `/`; the longest match wins.
    pub prefix: String,
    /// Name of an upstream group.
    pub upstream: String,
    /// Drop the prefix upstream (`/api/x/y` → `/y`).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Replace the prefix upstream (`/api/living-map/y` → `/living-map/y`).
    #[serde(default)]
    pub rewrite: Option<String>,
    /// Whether WebSocket upgrades may pass.
    #[serde(default)]
    pub websocket: bool,
    #[serde(default = "default_body")]
    pub max_body_bytes: u64,
    /// Largest WebSocket frame a client may send through this route.
    #[serde(default = "default_ws_frame")]
    pub max_ws_frame_bytes: u64,
    /// Written out only when not the default (which has no spelling).
    #[serde(default, skip_serializing_if = "RateLimitSetting::is_default")]
    pub rate_limit: RateLimitSetting,
    #[serde(default)]
    pub timeouts: Timeouts,
}

impl Route {
    /// The per-client limit this route applies, given the default one:
    /// `default` covers the API and WebSocket upgrades (each attempt
    /// authenticates, and a refused credential is audited), not the other
    /// upstreams (Grafana, Matrix... have their own).
    pub fn limit(&self, default: (f64, u32)) -> Option<(f64, u32)> {
        match self.rate_limit {
            RateLimitSetting::Off(_) => None,
            RateLimitSetting::Custom { per_second, burst } => Some((per_second, burst)),
            RateLimitSetting::Default
                if self.prefix.starts_with("/api/") || self.prefix.starts_with("/ws/") =>
            {
                Some(default)
            }
            RateLimitSetting::Default => None,
        }
    }
}

fn default_body() -> u64 {
    1024 * 1024
}

fn default_ws_frame() -> u64 {
    1024 * 1024
}

/// A route's rate limit: the default (STANDARDS: 10 r/s, burst 20 per client
/// address on `/api/`), a custom one, or none.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RateLimitSetting {
    #[default]
    #[serde(skip)]
    Default,
    Custom {
        per_second: f64,
        burst: u32,
    },
    Off(Off),
}

impl RateLimitSetting {
    pub fn is_default(&self) -> bool {
        *self == RateLimitSetting::Default
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Off {
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    pub connect_ms: u64,
    /// Until the upstream's response headers arrive.
    pub response_ms: u64,
    /// A streamed body or WebSocket with no traffic for this long is closed.
    pub idle_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: 2_000,
            response_ms: 30_000,
            idle_ms: 300_000,
        }
    }
}

impl Timeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn response(&self) -> Duration {
        Duration::from_millis(self.response_ms)
    }
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamGroup {
    /// `host:port` of each replica. Empty: an optional upstream not configured
    /// here (its routes answer 404).
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub balance: Balance,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub passive: Passive,
    /// Extra attempts for idempotent requests whose connection failed.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Whether DAARION credentials (the session cookie, `Bearer dk_…` API
    /// keys) pass to this upstream: true for DAARION's own services only.
    /// Anything else (Grafana, Matrix...) never sees a city session; its
    /// own cookies and headers pass as they are.
    #[serde(default)]
    pub credentials: bool,
}

fn default_retries() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastRequests,
    /// Consistent hashing on `header:<name>` or `cookie:<name>` (sticky sessions).
    Hash(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheck {
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Successes in a row before an unhealthy address is used again.
    pub healthy: u32,
    /// Failures in a row before an address is taken out.
    pub unhealthy: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: "/health".into(),
            interval_ms: 5_000,
            timeout_ms: 2_000,
            healthy: 2,
            unhealthy: 3,
        }
    }
}

/// Passive ejection: after `failures` errors in a row an address is skipped
/// for `eject_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Passive {
    pub failures: u32,
    pub eject_ms: u64,
}

impl Default for Passive {
    fn default() -> Self {
        Self {
            failures: 3,
            eject_ms: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("route table is not valid TOML: {0}")]
    Parse(String),
    #[error("route {prefix:?}: {reason}")]
    Route { prefix: String, reason: String },
    #[error("upstream {name:?}: {reason}")]
    Upstream { name: String, reason: String },
    #[error("cannot read route table {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl RouteTable {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let table: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        table.validate()?;
        Ok(table)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for route in &self.routes {
            let fail = |reason: &str| ConfigError::Route {
                prefix: route.prefix.clone(),
                reason: reason.into(),
            };
            if !route.prefix.starts_with('/') || !route.prefix.ends_with('/') {
                return Err(fail("prefix must start and end with '/'"));
            }
            if !seen.insert(route.prefix.as_str()) {
                return Err(fail("prefix is listed twice"));
            }
            if !self.upstreams.contains_key(&route.upstream) {
                return Err(fail(&format!("unknown upstream {:?}", route.upstream)));
            }
            if route.strip_prefix && route.rewrite.is_some() {
                return Err(fail("use strip_prefix or rewrite, not both"));
            }
            if route
                .rewrite
                .as_deref()
                .is_some_and(|r| !r.starts_with('/') || !r.ends_with('/'))
            {
                return Err(fail("rewrite must start and end with '/'"));
            }
            if let RateLimitSetting::Custom { per_second, burst } = route.rate_limit
                && (!(per_second.is_finite() && per_second > 0.0) || burst == 0)
            {
                return Err(fail("rate_limit needs per_second > 0 and burst > 0"));
            }
            if route.timeouts.connect_ms == 0
                || route.timeouts.response_ms == 0
                || route.timeouts.idle_ms == 0
            {
                return Err(fail("timeouts must be positive"));
            }
        }
        for (name, group) in &self.upstreams {
            let fail = |reason: String| ConfigError::Upstream {
                name: name.clone(),
                reason,
            };
            for address in &group.addresses {
                if address.parse::<std::net::SocketAddr>().is_err()
                    && address
                        .rsplit_once(':')
                        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                {
                    return Err(fail(format!("address {address:?} is not host:port")));
                }
            }
            if let Balance::Hash(key) = &group.balance
                && !(key.starts_with("header:") || key.starts_with("cookie:"))
            {
                return Err(fail(
                    "hash must be \"header:<name>\" or \"cookie:<name>\"".into(),
                ));
            }
            if let Some(check) = &group.health_check
                && (!check.path.starts_with('/')
                    || check.interval_ms == 0
                    || check.healthy == 0
                    || check.unhealthy == 0)
            {
                return Err(fail(
                    "health_check needs a path starting with '/' and positive numbers".into(),
                ));
            }
        }
        Ok(())
    }

    /// The route for `path`: the longest prefix that matches. A prefix also
    /// matches the path without its trailing slash (`/api/city` for `/api/city/`).
    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| path.starts_with(&r.prefix) || path == r.prefix.trim_end_matches('/'))
            .max_by_key(|r| r.prefix.len())
    }

    /// `services` on their standard ports on this host, and the seed's
    /// optional upstreams, unconfigured. Operator endpoints (`/api/ops/`),
    /// which every DAARION process serves, go to the first service.
    pub fn default_table(services: &[ServiceRoute]) -> Self {
        let mut routes = Vec::new();
        let mut upstreams = BTreeMap::new();
        let group = |addresses: Vec<String>| UpstreamGroup {
            addresses,
            balance: Balance::RoundRobin,
            health_check: Some(HealthCheck::default()),
            passive: Passive::default(),
            retries: 1,
            credentials: true,
        };
        let route = |prefix: String, upstream: &str, websocket: bool| Route {
            prefix,
            upstream: upstream.into(),
            strip_prefix: false,
            rewrite: None,
            websocket,
            max_body_bytes: default_body(),
            max_ws_frame_bytes: default_ws_frame(),
            rate_limit: RateLimitSetting::Default,
            timeouts: Timeouts::default(),
        };
        for service in services {
            let (name, port) = (service.name, service.port);
            upstreams.insert(name.to_owned(), group(vec![format!("127.0.0.1:{port}")]));
            routes.push(route(format!("/api/{name}/"), name, false));
            if service.websocket {
                routes.push(route(format!("/ws/{name}/"), name, true));
            }
        }
        if let Some(first) = services.first() {
            routes.push(route("/api/ops/".into(), first.name, false));
        }
        for (prefix, name, ws) in [
            ("/matrix/", "matrix", true),
            ("/_matrix/", "matrix", true),
            ("/grafana/", "grafana", true),
            ("/prometheus/", "prometheus", false),
            ("/rag/", "rag", false),
            ("/notify/", "notify", false),
        ] {
            upstreams
                .entry(name.to_owned())
                .or_insert_with(|| UpstreamGroup {
                    health_check: None,
                    credentials: false,
                    ..group(Vec::new())
                });
            let mut extra = route(prefix.into(), name, ws);
            extra.rate_limit = RateLimitSetting::Off(Off::Off);
            routes.push(extra);
        }
        Self { routes, upstreams }
    }
}

/// A service the built-in table routes to.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRoute {
    pub name: &'static str,
    pub port: u16,
    /// Also `/ws/<name>/`.
    pub websocket: bool,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The services of DESIGN §3 with their standard ports.
    pub(crate) fn design_services() -> Vec<ServiceRoute> {
        [
            ("city", 7001, true),
            ("space", 7002, false),
            ("secondme", 7003, false),
            ("messaging", 7004, true),
            ("router", 7006, false),
            ("llm", 7007, false),
            ("memory", 7008, false),
            ("auth", 7011, false),
            ("pdp", 7012, false),
            ("usage", 7013, false),
            ("agents", 7014, true),
            ("microdao", 7015, false),
            ("dao", 7016, false),
            ("living-map", 7017, true),
            ("ingest", 8100, false),
            ("control", 9200, false),
            ("bots", 9300, false),
        ]
        .into_iter()
        .map(|(name, port, websocket)| ServiceRoute {
            name,
            port,
            websocket,
        })
        .collect()
    }

    #[test]
    fn the_default_table_is_valid_and_routes_every_service() {
        let table = RouteTable::default_table(&design_services());
        table.validate().unwrap();
        assert_eq!(table.route_for("/api/city/rooms").unwrap().upstream, "city");
        assert_eq!(table.route_for("/api/city").unwrap().upstream, "city");
        assert_eq!(
            table.route_for("/ws/living-map/").unwrap().upstream,
            "living-map"
        );
        assert!(table.route_for("/ws/living-map/").unwrap().websocket);
        assert!(!table.route_for("/api/city/rooms").unwrap().websocket);
        assert_eq!(
            table.route_for("/_matrix/client").unwrap().upstream,
            "matrix"
        );
        assert!(table.route_for("/elsewhere").is_none());
        assert!(table.upstreams["grafana"].addresses.is_empty());
    }

    #[test]
    fn a_table_parses_from_toml_and_the_longest_prefix_wins() {
        let table = RouteTable::parse(
            r#"
            [[routes]]
            prefix = "/api/"
            upstream = "a"
            [[routes]]
            prefix = "/api/living-map/"
            upstream = "b"
            rewrite = "/living-map/"
            rate_limit = "off"
            [[routes]]
            prefix = "/upload/"
            upstream = "a"
            rate_limit = { per_second = 2.5, burst = 5 }
            [upstreams.a]
            addresses = ["127.0.0.1:9001", "localhost:9002"]
            balance = { hash = "header:x-user" }
            [upstreams.b]
            addresses = ["127.0.0.1:9003"]
            balance = "least_requests"
            "#,
        )
        .unwrap();
        let r = table.route_for("/api/living-map/x").unwrap();
        assert_eq!(
            (r.upstream.as_str(), r.rewrite.as_deref()),
            ("b", Some("/living-map/"))
        );
        assert_eq!(r.rate_limit, RateLimitSetting::Off(Off::Off));
        assert_eq!(table.route_for("/api/other").unwrap().upstream, "a");
        assert_eq!(
            table.route_for("/upload/f").unwrap().rate_limit,
            RateLimitSetting::Custom {
                per_second: 2.5,
                burst: 5
            }
        );
        assert_eq!(
            table.route_for("/api/other").unwrap().rate_limit,
            RateLimitSetting::Default
        );
        assert_eq!(
            table.upstreams["a"].balance,
            Balance::Hash("header:x-user".into())
        );
    }

    #[track_caller]
    fn rejects(toml: &str, needle: &str) {
        let error = RouteTable::parse(toml).unwrap_err().to_string();
        assert!(error.contains(needle), "{error}");
    }

    #[test]
    fn broken_tables_are_rejected_with_a_reason() {
        rejects(
            "[[routes]]\nprefix = \"/x/\"\nupstream = \"nope\"\n",
            "unknown upstream",
        );
        rejects(
            "[[routes]]\nprefix = \"x\"\nupstream = \"a\"\n[upstreams.a]\n",
            "start and end",
        );
        rejects("[upstreams.a]\naddresses = [\"nohost\"]\n", "host:port");
        rejects(
            "[upstreams.a]\nbalance = { hash = \"ip\" }\n",
            "hash must be",
        );
        rejects(
            "[[routes]]\nprefix = \"/x/\"\nupstream = \"a\"\nstrip_prefix = true\nrewrite = \"/y/\"\n[upstreams.a]\n",
            "not both",
        );
        rejects("routes = 5", "not valid TOML");
        rejects(
            "[[routes]]\nprefix = \"/x/\"\nupstream = \"a\"\nbogus = 1\n[upstreams.a]\n",
            "not valid TOML",
        );
    }
}
