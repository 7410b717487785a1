//! The api role: the REST surface of `/v1/commands`, and the sweeps that make sure every recorded
//! command reaches the broker (the outbox relay) and no dead worker's command stays `running`
//! (the lease reaper).
//!
//! Layout. `lib.rs` builds the router and the state. The routes: `submit.rs` (validated by
//! `fields.rs` and `payload.rs`, counted by `quota.rs`, recorded by `batch.rs`; its `prepare`
//! also checks each command of `batch_submit.rs`, the batch route), `run_at.rs` (when a
//! submit asks to run), `delayed.rs` (re-timing a scheduled command), `read.rs`
//! (one command, long-poll), `search.rs` (pages, search and counts per status), `stats.rs`
//! (runs per minute or hour, from the rollup), `changes.rs` (the change feed: many commands, one
//! long-poll), `operate.rs` (replay, cancel), `keys.rs` (key management), `auth.rs` (the
//! `Caller` extractor, whoami, tokens), `types.rs` (the type catalogue, with `schema.rs`'s
//! compiled payload validators, which submit checks),
//! `runs.rs` (a command's attempt history, the live workers), `bulk.rs` (bulk cancel),
//! `discard.rs` (parked failures dropped, one or in bulk), `pause.rs` (pause and resume a type),
//! `queues.rs` (queue depths), `schedules.rs` (recurring commands: create, list, pause, resume,
//! delete; their cron and time zone read, and which ticks are due decided, by `recurrence.rs`;
//! `schedule_file.rs` declares them from a startup file) and `audit.rs` (the operators' audit
//! trail, which bulk actions, pauses and schedule changes write). Both
//! submit and the sweeps hand rows to the broker through `dispatch.rs`; `sweep.rs` runs the
//! release of due delayed commands, the relay, redelivery, reaper (with the release of silent
//! workers' runs) and retention; `schedule_sweep.rs` submits schedules' due ticks through the
//! same store submit and dispatch. `extract.rs` and `error.rs` are the one way in and
//! out (problem+json); `openapi.rs` and `responses.rs` derive the description,
//! `type_schemas.rs` adds each typed command type's schemas to it.

mod audit;
mod auth;
mod batch;
mod batch_submit;
mod bulk;
mod changes;
mod delayed;
mod discard;
mod dispatch;
mod error;
mod extract;
mod fields;
mod keys;
mod openapi;
mod operate;
mod pause;
mod payload;
mod queues;
mod quota;
mod read;
mod recurrence;
mod responses;
mod run_at;
mod runs;
mod schedule_file;
mod schedule_sweep;
mod schedules;
mod schema;
mod search;
mod stats;
mod submit;
mod sweep;
mod type_schemas;
mod types;

use axum::{Router, extract::DefaultBodyLimit};
use cmdbus_auth::Authenticator;
use cmdbus_bus::Broker;
use cmdbus_feed::ChangeFeed;
use cmdbus_store::Db;
use std::{sync::Arc, time::Duration};

pub use cmdbus_auth::problem_response as problem;
pub use cmdbus_auth::request_id::{REQUEST_ID_HEADER, current_request_id, request_id};
pub use error::ApiError;
pub use extract::ApiJson;
pub use openapi::{Deployment, describe_deployment, openapi, require_bearer};
pub use recurrence::{Missed, Plan, Recurrence};
pub use schedule_file::{ScheduleFileError, declare_schedules};
pub use schedule_sweep::{MISSED_AFTER, ScheduleConfig, run_schedules, tick_key};
pub use sweep::{SweepConfig, run_sweeps};
pub use type_schemas::describe_type_schemas;

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
            batcher: batch::Batcher::start(
                pool.for_batches(),
                broker.clone(),
                config.redeliver_after,
            ),
            quota: Arc::new(quota::Quota::new(
                pool.clone(),
                config.max_unfinished_per_tenant,
                auth.config().shares,
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
