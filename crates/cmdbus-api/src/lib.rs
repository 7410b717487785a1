//! The api role: the REST surface of `/v1/commands`, and the sweeps that make sure every recorded
//! command reaches the broker (the outbox relay) and no dead worker's command stays `running`
//! (the lease reaper).
//!
//! Layout. `lib.rs` builds the router and the state. The routes: `submit.rs` (validated by
//! `fields.rs` and `payload.rs`, counted by `quota.rs`, recorded by `batch.rs`), `read.rs`
//! (one command, long-poll, pages), `operate.rs` (replay, cancel), `keys.rs` (key management),
//! `auth.rs` (the `Caller` extractor, whoami, tokens), `types.rs` (the type catalogue). Both
//! submit and the sweeps hand rows to the broker through `dispatch.rs`; `sweep.rs` runs the
//! relay, redelivery, reaper and retention. `extract.rs` and `error.rs` are the one way in and
//! out (problem+json); `openapi.rs` and `responses.rs` derive the description.

mod auth;
mod batch;
mod dispatch;
mod error;
mod extract;
mod fields;
mod keys;
mod openapi;
mod operate;
mod payload;
mod quota;
mod read;
mod responses;
mod submit;
mod sweep;
mod types;

use axum::{Router, extract::DefaultBodyLimit};
use cmdbus_auth::Authenticator;
use cmdbus_bus::{Broker, ChangeFeed};
use cmdbus_store::Db;
use std::{sync::Arc, time::Duration};

pub use cmdbus_auth::problem_response as problem;
pub use cmdbus_auth::request_id::{REQUEST_ID_HEADER, current_request_id, request_id};
pub use error::ApiError;
pub use extract::ApiJson;
pub use openapi::{Deployment, describe_deployment, openapi, require_bearer};
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
    /// Most unfinished commands per tenant (0: unlimited).
    pub max_unfinished_per_tenant: i64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            body_limit: 256 * 1024,
            publish_wait: Duration::from_secs(2),
            redeliver_after: Duration::from_secs(300),
            max_unfinished_per_tenant: 100_000,
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub(crate) pool: Db,
    pub(crate) broker: Broker,
    pub(crate) feed: ChangeFeed,
    pub(crate) types: Arc<types::TypeCache>,
    pub(crate) batcher: batch::Batcher,
    pub(crate) auth: Authenticator,
    pub(crate) quota: Arc<quota::Quota>,
    pub(crate) config: ApiConfig,
}

impl ApiState {
    /// State over a pool, a broker, this process's change feed and its authenticator.
    pub fn new(
        pool: Db,
        broker: Broker,
        feed: ChangeFeed,
        auth: Authenticator,
        config: ApiConfig,
    ) -> Self {
        Self {
            types: Arc::new(types::TypeCache::new(pool.clone(), broker.clone())),
            batcher: batch::Batcher::start(pool.clone(), broker.clone(), config.redeliver_after),
            quota: Arc::new(quota::Quota::new(
                pool.clone(),
                config.max_unfinished_per_tenant,
            )),
            auth,
            pool,
            broker,
            feed,
            config,
        }
    }
}

/// The `/v1` REST routes.
pub fn router(state: ApiState) -> Router {
    let body_limit = state.config.body_limit;
    let (router, _) = openapi::routes().split_for_parts();
    router
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
