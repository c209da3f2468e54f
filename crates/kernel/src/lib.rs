//! The kernel every DAARION service stands on: the JSON error shape, request
//! ids and trace ids, JSON logs, Prometheus metrics, health reports, the
//! service descriptor and graceful shutdown.
//!
//! Layout:
//! - `error`: [`ApiError`], the one error type handlers return, and the
//!   middleware that gives every 4xx/5xx the same JSON body.
//! - `breaker`: a circuit breaker for a dependency that stopped answering.
//! - `context`: per-request [`RequestContext`] (request id and W3C trace
//!   context) carried in a task-local so errors, logs, calls and bus events
//!   can read it.
//! - `telemetry`: JSON log lines with the standard fields.
//! - `traces`: OpenTelemetry spans over OTLP, when a collector is set.
//! - `metrics`: the process-wide Prometheus recorder and HTTP metrics layer.
//! - `health`: dependency checks and the `/health` document.
//! - `http`: the standard middleware stack and helpers (JSON extractor,
//!   pagination).
//! - `server`: the accept loop (HTTP/1.1 + HTTP/2, TLS, slow-client and
//!   per-client limits, graceful drain).
//! - `secret`: [`Secret`], a setting that is never printed.
//! - `shutdown`: SIGINT/SIGTERM handling shared by HTTP, WebSocket and bus
//!   consumers.

pub mod breaker;
pub mod context;
pub mod error;
pub mod health;
pub mod http;
pub mod metrics;
pub mod names;
pub mod outbound;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod traces;

pub use context::RequestContext;
pub use error::{ApiError, ErrorCode};
pub use health::{DependencyCheck, DependencyStatus, HealthReport};
pub use secret::Secret;

/// What a service is, independent of how it is deployed: the binary reads
/// this to mount it in-process or serve it on its own port.
#[derive(Debug, Clone, Copy)]
pub struct ServiceDescriptor {
    /// Short name, used in URLs (`/api/<name>/`), logs and metric labels.
    pub name: &'static str,
    /// Standard port when served alone (STANDARDS.md, "Ports").
    pub port: u16,
    /// Version reported by `/health`.
    pub version: &'static str,
}
