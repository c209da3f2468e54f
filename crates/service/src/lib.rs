//! The service kit: every DAARION service declares itself once, as a
//! [`Service`], and is built from one [`Context`] into a [`Mount`].
//!
//! A service crate exports `pub static SERVICE: Service` and knows nothing
//! of how it is deployed. The binary keeps one list of them; from it come
//! the migration order, `daarion serve <name>`, the `daarion up` mounts, the
//! merged OpenAPI document, the aggregated health, the gateway's built-in
//! route table, the bus streams, the settings sections and the
//! authorization matrix. The kit, not the service, puts the enforcement
//! layer in front of every route ([`Mount::into_parts`]), and [`check`]
//! refuses a service whose declaration and routes disagree.
//!
//! Layout: here the declaration; `context` what a build receives and
//! returns; `openapi` the answers every operation can give; `declared` the
//! bus as a service may use it (only the subjects it declares); `settings`
//! a service's settings section; `live` WebSocket sessions fed by the bus.

mod context;
mod declared;
pub mod live;
pub mod openapi;
pub mod settings;

use daarion_access::{Kind, Resource, Rule};
use daarion_bus::subject::{self, StreamDef, Streams};
use daarion_kernel::ServiceDescriptor;
use daarion_store::{Migration, MigrationSet};
use futures::future::BoxFuture;

pub use context::{BuildError, Context, Mount};
pub use declared::declared;
pub use settings::{Section, ServiceSettings};

/// How a service is built: [`Service::build`]'s type. A service writes
/// `build: |ctx| Box::pin(build(ctx))`.
pub type Build = fn(Context) -> BoxFuture<'static, Result<Mount, BuildError>>;

/// One event subject (a NATS pattern) a service publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub subject: &'static str,
    /// Durable events are held by a stream (durable consumers see them);
    /// live ones reach only current subscribers (presence, cache
    /// invalidations) and must not fall into a stream by accident.
    pub durable: bool,
}

impl Event {
    pub const fn durable(subject: &'static str) -> Self {
        Self {
            subject,
            durable: true,
        }
    }

    pub const fn live(subject: &'static str) -> Self {
        Self {
            subject,
            durable: false,
        }
    }
}

/// Everything the binary needs to know about a service, declared once.
pub struct Service {
    /// Short name: `/api/<name>/`, `/ws/<name>/`, logs, metric labels and
    /// the settings section `[<name>]`.
    pub name: &'static str,
    /// Standard port when served alone (STANDARDS.md, "Ports").
    pub port: u16,
    /// Reported by `/health`.
    pub version: &'static str,
    /// Applied in order, after the platform's and the services' listed
    /// before this one.
    pub migrations: &'static [Migration],
    /// The access rule of every route, HTTP and WebSocket, full paths.
    pub rules: &'static [Rule],
    /// Serves WebSockets under `/ws/<name>/`.
    pub websocket: bool,
    /// The streams this service owns (their subjects are its domain).
    pub streams: &'static [StreamDef],
    /// What it publishes.
    pub events: &'static [Event],
    /// Its `[<name>]` settings, if it has any.
    pub settings: Option<Section>,
    /// For the authorization matrix: an example of each kind of resource
    /// its paths name, as the policies see it, belonging to someone other
    /// than the caller.
    pub example: fn(Kind) -> Option<Resource>,
    pub build: Build,
}

impl Service {
    pub fn descriptor(&self) -> ServiceDescriptor {
        ServiceDescriptor {
            name: self.name,
            port: self.port,
            version: self.version,
        }
    }

    pub const fn migration_set(&self) -> MigrationSet {
        MigrationSet {
            service: self.name,
            migrations: self.migrations,
        }
    }

    /// `/api/<name>/`, and `/ws/<name>/` when it serves WebSockets.
    pub fn prefixes(&self) -> Vec<(String, bool)> {
        let mut prefixes = vec![(format!("/api/{}/", self.name), false)];
        if self.websocket {
            prefixes.push((format!("/ws/{}/", self.name), true));
        }
        prefixes
    }
}

/// Where a service reaches the rest of the city over HTTP when its
/// settings leave that empty: the process's own listener (`own`: its port
/// and whether it speaks TLS) when it is the whole city, else the
/// gateway's standard address on this host.
pub fn city_url(own: Option<(u16, bool)>) -> String {
    let (port, https) = own.unwrap_or((8080, false));
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://127.0.0.1:{port}")
}

/// For services whose paths name no resource the policies read.
pub fn no_example(_: Kind) -> Option<Resource> {
    None
}

/// The durable streams of a process running `services`: the platform's
/// `AUDIT` and every stream a service owns.
pub fn streams(services: &[&Service]) -> Result<Streams, daarion_bus::BusError> {
    Streams::new(
        std::iter::once(subject::AUDIT)
            .chain(services.iter().flat_map(|s| s.streams.iter().copied())),
    )
}

/// What is wrong with `services` together: names and ports used twice,
/// rules outside the service's prefixes, durable events no stream holds,
/// live events a stream would store, settings whose defaults do not
/// validate. Empty when all is well.
pub fn check(services: &[&Service]) -> Vec<String> {
    let mut problems = Vec::new();
    let streams = match streams(services) {
        Ok(streams) => Some(streams),
        Err(error) => {
            problems.push(error.to_string());
            None
        }
    };
    for (i, service) in services.iter().enumerate() {
        let name = service.name;
        for other in &services[..i] {
            if other.name == name || other.port == service.port {
                problems.push(format!(
                    "{name} and {} share a name or a port ({})",
                    other.name, service.port
                ));
            }
        }
        let prefixes = service.prefixes();
        for rule in service.rules {
            let within = prefixes
                .iter()
                .any(|(prefix, _)| rule.path.starts_with(prefix.as_str()));
            if !within {
                problems.push(format!(
                    "{name}: rule {} {} is outside {prefixes:?}",
                    rule.method, rule.path
                ));
            }
            let repeated = service
                .rules
                .iter()
                .filter(|r| r.method == rule.method && r.path == rule.path)
                .count();
            if repeated > 1 {
                problems.push(format!(
                    "{name}: {} {} has {repeated} rules",
                    rule.method, rule.path
                ));
            }
        }
        for event in service.events {
            if let Err(error) = subject::validate_pattern(event.subject) {
                problems.push(format!("{name}: {error}"));
                continue;
            }
            let Some(streams) = &streams else { continue };
            match (event.durable, streams.for_filter(event.subject)) {
                (true, Err(_)) => problems.push(format!(
                    "{name}: durable event {:?} is held by no stream",
                    event.subject
                )),
                (false, Ok(stream)) => problems.push(format!(
                    "{name}: live event {:?} would be stored by stream {}",
                    event.subject, stream.name
                )),
                _ => {}
            }
        }
        if let Some(section) = &service.settings
            && let Err(error) = (section.validate)(name, &(section.default)())
        {
            problems.push(format!("{name}: default settings are invalid: {error}"));
        }
    }
    problems
}

/// Operations (method, full path) of an OpenAPI document.
pub fn operations(doc: &utoipa::openapi::OpenApi) -> Vec<(http::Method, String)> {
    let mut found = Vec::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            (http::Method::GET, item.get.is_some()),
            (http::Method::POST, item.post.is_some()),
            (http::Method::PUT, item.put.is_some()),
            (http::Method::PATCH, item.patch.is_some()),
            (http::Method::DELETE, item.delete.is_some()),
            (http::Method::HEAD, item.head.is_some()),
            (http::Method::OPTIONS, item.options.is_some()),
        ];
        for (method, present) in methods {
            if present {
                found.push((method, path.clone()));
            }
        }
    }
    found
}

/// Compares what a service serves over HTTP (its OpenAPI operations, paths
/// already prefixed) with its rules: every operation needs a rule, and
/// every HTTP rule an operation (WebSocket upgrades are not in OpenAPI).
pub fn check_served(service: &Service, doc: &utoipa::openapi::OpenApi) -> Vec<String> {
    let served = operations(doc);
    let mut problems = Vec::new();
    for (method, path) in &served {
        if !service
            .rules
            .iter()
            .any(|r| r.method == method && r.path == path)
        {
            problems.push(format!(
                "{}: {method} {path} is served without an access rule",
                service.name
            ));
        }
    }
    let ws_prefix = format!("/ws/{}/", service.name);
    for rule in service.rules {
        let is_ws = rule.path.starts_with(&ws_prefix);
        let is_served = served
            .iter()
            .any(|(method, path)| *method == rule.method && path == rule.path);
        if !is_ws && !is_served {
            problems.push(format!(
                "{}: rule {} {} names no operation",
                service.name, rule.method, rule.path
            ));
        }
        if is_ws && rule.method != http::Method::GET {
            problems.push(format!(
                "{}: WebSocket rule {} {} must be a GET (the upgrade)",
                service.name, rule.method, rule.path
            ));
        }
    }
    problems
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    (
        "ws_frames_skipped_total",
        "Live frames a slow WebSocket client missed, by service.",
    ),
    (
        "ws_heartbeat_timeouts_total",
        "WebSocket sessions closed for missed heartbeats, by service.",
    ),
    (
        "ws_sessions_total",
        "WebSocket sessions opened, by service.",
    ),
];

#[cfg(test)]
mod tests;
