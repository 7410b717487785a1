//! Liveness and readiness, served by every role; the same check feeds the service manager's
//! health loop (`service.rs`).

use axum::{Json, Router, extract::State, http::StatusCode};
use cmdbus_bus::Broker;
use cmdbus_store::Db;
use serde::Serialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

#[derive(Debug, Clone)]
pub(crate) struct Health {
    pool: Db,
    broker: Broker,
    /// Whether this process needs the broker to do its work. A notifier does not: it reads
    /// every change from PostgreSQL (the events fanout only makes pushes faster), so a load
    /// balancer keeps sending it clients while its broker session is away.
    needs_broker: bool,
    /// Cancelled when a graceful stop begins: the process drains and takes no new work.
    stopping: CancellationToken,
}

impl Health {
    /// `needs_broker`: whether the broker is part of readiness (every role but the notifier);
    /// `stopping`: cancelled when a graceful stop begins.
    pub(crate) fn new(
        pool: Db,
        broker: Broker,
        needs_broker: bool,
        stopping: CancellationToken,
    ) -> Self {
        Self {
            pool,
            broker,
            needs_broker,
            stopping,
        }
    }

    /// Which dependencies this process reaches now: what `/readyz` answers and what the service
    /// manager is told (`service.rs`).
    pub(crate) async fn check(&self) -> Readiness {
        let database = tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("select 1").execute(&self.pool),
        )
        .await
        .is_ok_and(|result| result.is_ok());
        Readiness {
            database,
            broker: self.broker.is_connected(),
            draining: self.stopping.is_cancelled(),
        }
    }

    /// Whether `readiness` lets this process do its work: PostgreSQL answers, the broker does
    /// for a role that needs it, and no graceful stop is under way.
    pub(crate) fn is_ready(&self, readiness: &Readiness) -> bool {
        readiness.database && (readiness.broker || !self.needs_broker) && !readiness.draining
    }

    /// Sees every new broker session (and its loss), so that a waiter learns of it at once.
    #[cfg(unix)] // the only waiter is systemd's health loop
    pub(crate) fn watch_broker(
        &self,
    ) -> tokio::sync::watch::Receiver<Option<std::sync::Arc<cmdbus_bus::Session>>> {
        self.broker.watch_sessions()
    }
}

pub(crate) fn router(health: Health) -> Router {
    let (router, _) = routes().split_for_parts();
    router.with_state(health)
}

/// The routes with their description.
pub(crate) fn routes() -> OpenApiRouter<Health> {
    OpenApiRouter::new()
        .routes(routes!(alive))
        .routes(routes!(ready))
}

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "Alive.", body = String, content_type = "text/plain")),
)]
async fn alive() -> &'static str {
    "ok"
}

/// Which dependencies this process reaches.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// PostgreSQL answered within 2 s.
    pub(crate) database: bool,
    /// A broker session is up.
    pub(crate) broker: bool,
    /// A graceful stop is under way: running handlers finish and clients still get their
    /// changes, but new clients belong elsewhere.
    pub(crate) draining: bool,
}

/// Readiness: PostgreSQL answers and, for a role that needs it (every role but the notifier), a
/// broker session is up; and no graceful stop is under way.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready: the body says which dependency is missing, or \
            that the process is draining for a graceful stop.",
            body = Readiness),
    ),
)]
async fn ready(State(health): State<Health>) -> (StatusCode, Json<Readiness>) {
    let readiness = health.check().await;
    let status = if health.is_ready(&readiness) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}
