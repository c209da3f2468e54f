//! `/health` as in STANDARDS.md: `200` with `"status":"healthy"` when every
//! dependency answers, `503` with `"unhealthy"` otherwise, and a
//! `service_health{service,dependency}` gauge kept in step.

use std::{sync::Arc, time::Instant};

use async_trait::async_trait;
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::ServiceDescriptor;

/// How one dependency answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyStatus {
    Connected,
    Embedded,
    Disconnected,
}

impl DependencyStatus {
    pub fn is_up(self) -> bool {
        !matches!(self, Self::Disconnected)
    }
}

/// A dependency a service needs: the database, the bus, the cache.
#[async_trait]
pub trait DependencyCheck: Send + Sync {
    /// The name in the health document: `database`, `nats`, `redis`, ...
    fn name(&self) -> &'static str;
    async fn check(&self) -> DependencyStatus;
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub status: &'static str,
    pub service: &'static str,
    pub version: &'static str,
    pub uptime: u64,
    pub dependencies: serde_json::Map<String, serde_json::Value>,
}

impl HealthReport {
    pub fn is_healthy(&self) -> bool {
        self.status == "healthy"
    }
}

/// Checks a service's dependencies; cheap to clone into handlers.
#[derive(Clone)]
pub struct Health {
    descriptor: ServiceDescriptor,
    started: Instant,
    checks: Arc<Vec<Arc<dyn DependencyCheck>>>,
}

impl Health {
    pub fn new(descriptor: ServiceDescriptor, checks: Vec<Arc<dyn DependencyCheck>>) -> Self {
        Self {
            descriptor,
            started: Instant::now(),
            checks: Arc::new(checks),
        }
    }

    pub fn descriptor(&self) -> ServiceDescriptor {
        self.descriptor
    }

    pub async fn report(&self) -> HealthReport {
        let results = futures::future::join_all(
            self.checks
                .iter()
                .map(|c| async { (c.name(), c.check().await) }),
        )
        .await;
        let mut dependencies = serde_json::Map::new();
        let mut healthy = true;
        for (name, status) in results {
            healthy &= status.is_up();
            metrics::gauge!("service_health", "service" => self.descriptor.name, "dependency" => name)
                .set(if status.is_up() { 1.0 } else { 0.0 });
            dependencies.insert(
                name.into(),
                serde_json::to_value(status).unwrap_or_default(),
            );
        }
        HealthReport {
            status: if healthy { "healthy" } else { "unhealthy" },
            service: self.descriptor.name,
            version: self.descriptor.version,
            uptime: self.started.elapsed().as_secs(),
            dependencies,
        }
    }

    /// `GET /health`.
    pub async fn respond(&self) -> Response {
        let report = self.report().await;
        let status = if report.is_healthy() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, Json(report)).into_response()
    }
}
