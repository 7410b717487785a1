//! Liveness and readiness, served by every role.

use axum::{Json, Router, extract::State, http::StatusCode};
use cmdbus_bus::Broker;
use cmdbus_store::Db;
use serde::Serialize;
use std::time::Duration;
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
}

pub(crate) fn router(pool: Db, broker: Broker, needs_broker: bool) -> Router {
    let (router, _) = routes().split_for_parts();
    router.with_state(Health {
        pool,
        broker,
        needs_broker,
    })
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
struct Readiness {
    /// PostgreSQL answered within 2 s.
    database: bool,
    /// A broker session is up.
    broker: bool,
}

/// Readiness: PostgreSQL answers and, for a role that needs it (every role but the notifier), a
/// broker session is up.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready: the body says which dependency is missing.",
            body = Readiness),
    ),
)]
async fn ready(State(health): State<Health>) -> (StatusCode, Json<Readiness>) {
    let database = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("select 1").execute(&health.pool),
    )
    .await
    .is_ok_and(|result| result.is_ok());
    let broker = health.broker.is_connected();
    let status = if database && (broker || !health.needs_broker) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { database, broker }))
}
