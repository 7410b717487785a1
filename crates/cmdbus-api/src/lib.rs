//! The api role: the REST surface of `/v1/commands`, and the sweeps that make sure every recorded
//! command reaches the broker (the outbox relay) and no dead worker's command stays `running`
//! (the lease reaper).

mod batch;
mod commands;
mod dispatch;
mod error;
mod operate;
mod request_id;
mod sweep;
mod types;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use cmdbus_bus::{Broker, ChangeFeed};
use sqlx::PgPool;
use std::{sync::Arc, time::Duration};

pub use error::{ApiError, ApiJson, problem};
pub use request_id::{REQUEST_ID_HEADER, current_request_id, request_id};
pub use sweep::{SweepConfig, run_sweeps};

/// Api settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// How long a submit waits for the broker's confirm before it answers with `new`.
    pub publish_wait: Duration,
    /// How long a `queue` row may wait unclaimed before its message is published again.
    pub redeliver_after: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            body_limit: 256 * 1024,
            publish_wait: Duration::from_secs(2),
            redeliver_after: Duration::from_secs(300),
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub(crate) pool: PgPool,
    pub(crate) broker: Broker,
    pub(crate) feed: ChangeFeed,
    pub(crate) types: Arc<types::TypeCache>,
    pub(crate) batcher: batch::Batcher,
    pub(crate) config: ApiConfig,
}

impl ApiState {
    /// State over a pool, a broker and this process's change feed.
    pub fn new(pool: PgPool, broker: Broker, feed: ChangeFeed, config: ApiConfig) -> Self {
        Self {
            types: Arc::new(types::TypeCache::new(pool.clone(), broker.clone())),
            batcher: batch::Batcher::start(pool.clone(), broker.clone(), config.redeliver_after),
            pool,
            broker,
            feed,
            config,
        }
    }
}

/// The OpenAPI 3.1 description of the HTTP API (kept beside the code; a test checks that every
/// route it names answers).
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// The `/v1` REST routes.
pub fn router(state: ApiState) -> Router {
    let body_limit = state.config.body_limit;
    Router::new()
        .route("/v1/commands", post(commands::submit).get(commands::list))
        .route("/v1/commands/retry", post(operate::retry_matching))
        .route("/v1/commands/{id}", get(commands::show))
        .route("/v1/commands/{id}/retry", post(operate::retry))
        .route("/v1/commands/{id}/cancel", post(operate::cancel))
        .route("/v1/types", get(types::list))
        .route("/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
