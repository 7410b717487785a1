//! Liveness and readiness, served by every role.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use cmdbus_bus::Broker;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Health {
    pool: PgPool,
    broker: Broker,
}

pub(crate) fn router(pool: PgPool, broker: Broker) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Health { pool, broker })
}

/// `200` when PostgreSQL answers and a broker session is up; `503` with what is missing.
async fn ready(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let database = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("select 1").execute(&health.pool),
    )
    .await
    .is_ok_and(|result| result.is_ok());
    let broker = health.broker.is_connected();
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"database": database, "broker": broker})),
    )
}
